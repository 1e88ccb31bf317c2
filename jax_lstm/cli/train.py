"""``jax-lstm train``: checks the flags, trains (one model, or K seeds at once), optionally trains the
torch twin beside it, and writes what was asked for."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import sys
import time
from typing import Any

from jax_lstm import runtime
from jax_lstm.cli import torch_bridge
from jax_lstm.cli.args import config_from_args, dataset_from_args
from jax_lstm.cli.common import (
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_WRITE_FAILED,
    check_output_file,
    fail,
    log_function,
    progress_factory,
)
from jax_lstm.rnn.layer import describe_cell

__all__ = ["run"]


def _check_flags(args: argparse.Namespace) -> None:
    """Refuses flag combinations that cannot work, before any data is read or work is done."""
    if args.resume and not args.checkpoint_dir:
        raise ValueError("--resume needs --checkpoint-dir")
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the checkpoint and --overwrite starts over: pass one, not both")
    if args.overwrite and not args.checkpoint_dir:
        raise ValueError("--overwrite needs --checkpoint-dir (it starts over in that directory)")
    if args.validation_split is not None and args.resume:
        raise ValueError(
            "--validation-split chooses among the epochs of one run, whose weights a checkpoint does "
            "not keep: it cannot --resume"
        )
    if args.compare_torch and args.resume:
        raise ValueError("--compare-torch starts both sides from the same weights; it cannot --resume")
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    if args.seeds > 1:
        clashing = [
            flag
            for flag, used in (
                ("--compare-torch", args.compare_torch),
                ("--checkpoint-dir", args.checkpoint_dir),
                ("--resume", args.resume),
                ("--plot", args.plot),
                ("--plot-attention", args.plot_attention),
            )
            if used
        ]
        if clashing:
            raise ValueError(f"--seeds trains several models at once; it does not combine with {clashing[0]}")
    if args.plot_attention:
        from jax_lstm.models import registry

        if not registry.get(args.model).attention:
            with_attention = [n for n in registry.names("classification") if registry.get(n).attention]
            raise ValueError(
                f"--plot-attention draws attention weights, and model {args.model!r} has none: "
                f"use --model {' or '.join(with_attention)}"
            )
        check_output_file(args.plot_attention, "--plot-attention", (".png",))
    # Every output path, before any data is read or work is done.
    if args.metrics_json:
        check_output_file(args.metrics_json, "--metrics-json", (".json",))
    if args.plot:
        check_output_file(args.plot, "--plot", (".png",))
    if args.checkpoint_dir:
        from jax_lstm.training import check_checkpoint_dir

        check_checkpoint_dir(args.checkpoint_dir, resume=args.resume, overwrite=args.overwrite)


def _join(args: argparse.Namespace) -> int | None:
    """Joins the other processes when the flags ask for it (before JAX's backend starts); returns an
    exit status when the flags are wrong or the coordinator cannot be reached, None to go on."""
    wanted = [args.coordinator, args.num_processes, args.process_id]
    try:
        runtime.check_distributed_arguments(*wanted, args.distributed_timeout)
        if args.distributed and any(v is not None for v in wanted):
            raise ValueError("--distributed detects the cluster: pass it or the three flags, not both")
        if (args.distributed or args.coordinator is not None) and args.compare_torch:
            raise ValueError("--compare-torch runs on one process; it does not combine with several")
    except ValueError as err:
        return fail(str(err))
    if not args.distributed and args.coordinator is None:
        return None
    if args.process_id == 0 and not args.quiet:
        print(
            f"process 0: serving the coordinator on {args.coordinator}, waiting up to "
            f"{args.distributed_timeout:g} s for {args.num_processes} processes",
            flush=True,
        )
    try:
        runtime.initialize_distributed(*wanted, timeout_s=args.distributed_timeout)
    except (ConnectionError, ValueError, RuntimeError) as err:
        return fail(str(err), status=4)
    return None


class _Prefixed(io.TextIOBase):
    """Standard output of a process other than 0: every line prefixed ``[process i]``."""

    def __init__(self, stream, prefix: str):
        self._stream, self._prefix, self._at_line_start = stream, prefix, True

    def write(self, text: str) -> int:
        for piece in text.splitlines(keepends=True):
            if self._at_line_start:
                self._stream.write(self._prefix)
            self._stream.write(piece)
            self._at_line_start = piece.endswith("\n")
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


def _as_this_process(args: argparse.Namespace, train) -> int:
    """Runs `train()`; in a multi-process run, process i > 0 prints prefixed (nothing with --quiet)
    and a lost process ends this one with status 4 instead of a hang or an abort."""
    import jax

    from jax_lstm.training import parallel

    if not parallel.multiprocess():
        return train()
    index = jax.process_index()
    if index == 0:
        output = contextlib.nullcontext()
    else:
        # Process 0 writes the files (the loop writes its checkpoints); `train` reads these flags.
        args.metrics_json = args.plot = None
        stream = open(os.devnull, "w") if args.quiet else _Prefixed(sys.stdout, f"[process {index}] ")
        output = contextlib.redirect_stdout(stream)
    try:
        with output:
            return train()
    except parallel.ProcessLostError as err:
        fail(str(err), status=4)
        sys.stdout.flush()
        sys.stderr.flush()
        # A normal exit would wait at JAX's shutdown barrier for the lost process, then abort.
        os._exit(4)


def run(args: argparse.Namespace) -> int:
    import jax

    joined = _join(args)
    if joined is not None:
        return joined
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)  # before any array exists
    if not args.no_compile_cache:
        runtime.enable_compilation_cache()
    from jax_lstm import data
    from jax_lstm.data import DataError

    try:
        config = config_from_args(args)
        _check_flags(args)
        dataset = dataset_from_args(args)
        dataset.validate()
        if args.validation_split is not None:
            dataset = data.validation_split(dataset, args.validation_split, seed=args.seed)
        config = config_from_args(args, num_train=len(dataset.y_train), seq_len=dataset.seq_len)
    except (DataError, ValueError, FileNotFoundError) as err:
        return fail(str(err))
    if args.seeds > 1:
        return _as_this_process(args, lambda: _train_many(args, dataset, config))
    return _as_this_process(args, lambda: _train_one(args, dataset, config))


def _header(dataset, config, env: dict[str, Any]) -> None:
    print(dataset.describe())
    print(
        f"model {config.model}{describe_cell(config.cell)}: "
        f"hidden {config.hidden_size}, layers {config.num_layers}, dropout {config.dropout:g} | "
        f"{config.epochs} epochs, batch {config.batch_size}, lr {config.lr:g}, clip {config.clip}, "
        f"plateau patience {config.patience} factor {config.factor:.3g} min lr {config.min_lr:g}, "
        f"seed {config.seed}, {config.dtype} | jax {env['jax']} on {env['jax_backend']}",
        flush=True,
    )


def _train_one(args: argparse.Namespace, dataset, config) -> int:
    from jax_lstm import reporting
    from jax_lstm.training import TrainingDivergedError, fit, initial_variables

    torch_model = variables = None
    if args.compare_torch:
        if config.dropout > 0:
            print("note: with dropout the two sides draw different masks; losses will differ")
        variables = initial_variables(
            config, dataset.num_features, dataset.num_classes, seq_len=dataset.seq_len
        )
        try:
            torch_model = torch_bridge.torch_twin(config, dataset, variables)
        except torch_bridge.TorchMissingError as err:
            return fail(str(err))

    env = reporting.environment()
    _header(dataset, config, env)
    progress = progress_factory()
    start = time.perf_counter()
    try:
        result = fit(
            config,
            dataset,
            variables=variables,
            checkpoint_dir=args.checkpoint_dir,
            resume=args.resume,
            overwrite=args.overwrite,
            log=log_function(progress),
            progress=progress,
        )
    except TrainingDivergedError as err:
        partial = getattr(err, "partial", None)
        message = f"{err}{_checkpoint_note(args, partial)}"
        if partial is not None and args.metrics_json:
            message += _write_partial_metrics(args, dataset, config, partial, start, env, "diverged")
        return fail(message, status=EXIT_DIVERGED)
    except KeyboardInterrupt as err:
        partial = getattr(err, "partial", None)
        if partial is not None and args.metrics_json:
            _write_partial_metrics(args, dataset, config, partial, start, env, "interrupted")
        if partial is None:
            return fail("interrupted", status=EXIT_INTERRUPTED)
        note = _checkpoint_note(args, partial, short=True)
        return fail(f"interrupted at epoch {partial.epoch}{note}", status=EXIT_INTERRUPTED)
    except OSError as err:  # a checkpoint that could not be written (disk full, permissions)
        partial = getattr(err, "partial", None)
        if not args.checkpoint_dir or partial is None:
            raise  # not a checkpoint write: unexpected, keep the traceback
        message = f"could not write the checkpoint in {args.checkpoint_dir}: {err.strerror or err}"
        message += _checkpoint_note(args, partial)
        if partial is not None and args.metrics_json:
            message += _write_partial_metrics(args, dataset, config, partial, start, env, "write failed")
        return fail(message, status=EXIT_WRITE_FAILED)
    except (ValueError, FileNotFoundError) as err:  # resume problems, reported before training
        return fail(str(err))
    seconds = time.perf_counter() - start
    chosen = ""
    if result.selected_epoch is not None:
        chosen = f" at epoch {result.selected_epoch} (chosen on the validation split)"
    print(
        f"JAX: test accuracy {100 * result.test_accuracy:.2f}%{chosen} after {config.epochs} epochs "
        f"({seconds:.1f} s including compilation)"
    )
    payload: dict[str, Any] = reporting.run_record(
        dataset, config, result.history, seconds, env, selected_epoch=result.selected_epoch
    )
    torch_history, status = None, 0
    if torch_model is not None:
        torch_history, status = _compare_with_torch(args, dataset, config, torch_model, result, payload)
    try:
        if args.metrics_json:
            print(f"metrics written to {reporting.write_json(args.metrics_json, payload)}")
        if args.plot:
            title = f"{dataset.name}, {config.model}, seed {config.seed}"
            written = reporting.plot_history(args.plot, result.history, torch_history, title)
            print(f"plot written to {written}")
        if args.plot_attention:
            print(
                f"attention plot written to {_plot_attention(args.plot_attention, dataset, config, result)}"
            )
    except OSError as err:
        what = err.filename or "an output"
        return fail(f"could not write {what}: {err.strerror or err}", EXIT_WRITE_FAILED)
    return status


def _plot_attention(path: str, dataset, config, result, count: int = 4):
    """Draws the attention weights of the first test series of up to `count` classes."""
    import jax.numpy as jnp
    import numpy as np

    from jax_lstm import reporting
    from jax_lstm.training import make_model

    rows = [int(np.flatnonzero(dataset.y_test == c)[0]) for c in np.unique(dataset.y_test)[:count]]
    x = dataset.x_test[rows].astype(config.dtype)
    lengths = None if dataset.lengths_test is None else dataset.lengths_test[rows]
    model = make_model(config, dataset.num_features, dataset.num_classes, seq_len=dataset.seq_len)
    logits, weights = model.apply(
        result.variables(),
        jnp.asarray(x),
        lengths=None if lengths is None else jnp.asarray(lengths),
        return_attention=True,
    )
    predicted = np.asarray(logits).argmax(-1)
    titles = [
        f"series {i}: class {dataset.classes[dataset.y_test[i]]}, predicted {dataset.classes[p]}"
        for i, p in zip(rows, predicted, strict=True)
    ]
    title = f"{dataset.name}, {config.model}: attention over time (test series)"
    return reporting.plot_attention(path, x, np.asarray(weights), lengths, titles, title)


def _checkpoint_note(args: argparse.Namespace, partial, short: bool = False) -> str:
    """What is on disk after a run stopped early, exactly: never a checkpoint that was not written."""
    if not args.checkpoint_dir:
        return ""
    epoch = None if partial is None else partial.checkpoint_epoch
    if short:
        return f"; last checkpoint at epoch {epoch}" if epoch is not None else "; no checkpoint was written"
    if epoch is None:
        return f" No checkpoint was written to {args.checkpoint_dir}."
    return f" The last good checkpoint (epoch {epoch}) is in {args.checkpoint_dir}."


def _write_partial_metrics(args, dataset, config, partial, start: float, env, stopped: str) -> str:
    """Writes the epochs measured before the run stopped, saying why (`reporting.run_record`);
    returns a note for the error message."""
    from jax_lstm import reporting

    seconds = time.perf_counter() - start
    payload = reporting.run_record(dataset, config, partial.history, seconds, env, stopped=stopped)
    try:
        reporting.write_json(args.metrics_json, payload)
    except OSError as err:
        return f" The metrics could not be written either: {err.strerror or err}."
    return f" The {len(partial.history)} completed epochs are in {args.metrics_json}."


def _compare_with_torch(args, dataset, config, torch_model, result, payload: dict[str, Any]):
    """Trains the torch twin on the same batches, prints both runs side by side and records them in
    `payload`; returns (torch history, exit status: 1 when the runs disagree)."""
    from jax_lstm import reporting
    from jax_lstm.testing import TRAINING_LOSS_RTOL
    from jax_lstm.training.history import to_dicts

    start = time.perf_counter()
    log = log_function(None, "[torch] ") if not args.quiet else None
    torch_result = torch_bridge.train_torch(config, dataset, torch_model, log)
    torch_seconds = time.perf_counter() - start
    torch_history = torch_result.history
    summary = reporting.comparison(result.history, torch_history)
    tolerance = TRAINING_LOSS_RTOL[config.dtype]
    agree = max(summary["max_rel_diff_train_loss"], summary["max_rel_diff_test_loss"]) <= tolerance
    print(f"PyTorch: test accuracy {100 * torch_result.test_accuracy:.2f}% ({torch_seconds:.1f} s)")
    print(reporting.comparison_table(result.history, torch_history))
    print(
        "largest relative difference of per-epoch losses: "
        f"train {summary['max_rel_diff_train_loss']:.2e}, "
        f"test {summary['max_rel_diff_test_loss']:.2e} "
        f"(tolerance {tolerance:.0e} in {config.dtype}): " + ("agree" if agree else "DISAGREE")
    )
    if not agree and config.dtype == "float32":
        print(
            "note: training amplifies float32 rounding differences over long runs (README, "
            "'Training'); rerun with --dtype float64 to separate rounding from semantics: there "
            "the runs agree to ~1e-13"
        )
    payload["torch"] = {
        "epochs": to_dicts(torch_history),
        "test_accuracy": torch_result.test_accuracy,
        "seconds": torch_seconds,
    }
    payload["comparison"] = {**summary, "tolerance": tolerance, "agree": agree}
    return torch_history, 0 if agree else 1


def _train_many(args: argparse.Namespace, dataset, config) -> int:
    """--seeds K: K models (seeds seed..seed+K-1) trained in one program (`fit_many`)."""
    from jax_lstm import reporting
    from jax_lstm.training import TrainingDivergedError, fit_many
    from jax_lstm.training.history import to_dicts

    seeds = list(range(config.seed, config.seed + args.seeds))
    env = reporting.environment()
    print(dataset.describe())
    print(
        f"{len(seeds)} models (seeds {seeds[0]}-{seeds[-1]}) trained at once: {config.model}, hidden "
        f"{config.hidden_size}, layers {config.num_layers} | {config.epochs} epochs, batch "
        f"{config.batch_size}, lr {config.lr} | jax {env['jax']} on {env['jax_backend']}",
        flush=True,
    )
    progress = progress_factory()
    start = time.perf_counter()
    try:
        results = fit_many(config, dataset, seeds, log=log_function(progress), progress=progress)
    except TrainingDivergedError as err:
        return fail(str(err), status=EXIT_DIVERGED)
    except KeyboardInterrupt:
        return fail("interrupted", status=EXIT_INTERRUPTED)
    seconds = time.perf_counter() - start
    accuracies = [r.test_accuracy for r in results]
    for seed, r in zip(seeds, results, strict=True):
        chosen = (
            ""
            if r.selected_epoch is None
            else f" at epoch {r.selected_epoch} (chosen on the validation split)"
        )
        print(f"seed {seed}: test accuracy {100 * r.test_accuracy:.2f}%{chosen}")
    print(
        f"JAX: {len(seeds)} models, test accuracy mean {100 * sum(accuracies) / len(accuracies):.2f}% "
        f"(range {100 * min(accuracies):.2f}-{100 * max(accuracies):.2f}) after {config.epochs} epochs "
        f"({seconds:.1f} s for all, including compilation)"
    )
    if args.metrics_json:
        payload = {
            "dataset": dataset.describe(),
            "config": dataclasses.asdict(config),
            "environment": env,
            "models": [
                {
                    "seed": seed,
                    "epochs": to_dicts(r.history),
                    "test_accuracy": r.test_accuracy,
                    "selected_epoch": r.selected_epoch,
                }
                for seed, r in zip(seeds, results, strict=True)
            ],
            "test_accuracy_mean": sum(accuracies) / len(accuracies),
            "seconds": seconds,
        }
        try:
            print(f"metrics written to {reporting.write_json(args.metrics_json, payload)}")
        except OSError as err:
            return fail(f"could not write {args.metrics_json}: {err.strerror or err}", EXIT_WRITE_FAILED)
    return 0
