"""``jax-lstm train``: checks the flags, trains (one model, or K seeds at once), optionally trains the
torch twin beside it, and writes what was asked for."""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

from jax_lstm import runtime
from jax_lstm.cli import torch_bridge
from jax_lstm.cli.args import config_from_args, dataset_from_args
from jax_lstm.cli.common import fail, log_function, progress_factory
from jax_lstm.rnn.layer import describe_cell

__all__ = ["run"]


def _check_flags(args: argparse.Namespace) -> None:
    """Refuses flag combinations that cannot work, before any data is read or work is done."""
    if args.resume and not args.checkpoint_dir:
        raise ValueError("--resume needs --checkpoint-dir")
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
            )
            if used
        ]
        if clashing:
            raise ValueError(f"--seeds trains several models at once; it does not combine with {clashing[0]}")


def run(args: argparse.Namespace) -> int:
    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)  # before any array exists
    if not args.no_compile_cache:
        runtime.enable_compilation_cache()
    from jax_lstm.data import DataError

    try:
        config = config_from_args(args)  # first: the synthetic data is drawn from the seed
        dataset = dataset_from_args(args)
        dataset.validate()
        _check_flags(args)
    except (DataError, ValueError, FileNotFoundError) as err:
        return fail(str(err))
    if args.seeds > 1:
        return _train_many(args, dataset, config)
    return _train_one(args, dataset, config)


def _header(dataset, config, env: dict[str, Any]) -> None:
    print(dataset.describe())
    print(
        f"model {config.model}{describe_cell(config.cell)}: "
        f"hidden {config.hidden_size}, layers {config.num_layers} | "
        f"{config.epochs} epochs, batch {config.batch_size}, lr {config.lr}, clip {config.clip}, "
        f"patience {config.patience}, seed {config.seed}, {config.dtype} | "
        f"jax {env['jax']} on {env['jax_backend']}",
        flush=True,
    )


def _train_one(args: argparse.Namespace, dataset, config) -> int:
    from jax_lstm import reporting
    from jax_lstm.training import TrainingDivergedError, fit, initial_variables

    torch_model = variables = None
    if args.compare_torch:
        if config.dropout > 0:
            print("note: with dropout the two sides draw different masks; losses will differ")
        variables = initial_variables(config, dataset.num_features, dataset.num_classes)
        try:
            torch_model = torch_bridge.torch_twin(config, dataset, variables)
        except torch_bridge.TorchMissing as err:
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
            log=log_function(progress),
            progress=progress,
        )
    except TrainingDivergedError as err:
        kept = f" The last good checkpoint is in {args.checkpoint_dir}." if args.checkpoint_dir else ""
        return fail(f"{err}{kept}", status=3)
    except (ValueError, FileNotFoundError) as err:  # resume problems, reported before training
        return fail(str(err))
    seconds = time.perf_counter() - start
    print(
        f"JAX: test accuracy {100 * result.test_accuracy:.2f}% after {config.epochs} epochs "
        f"({seconds:.1f} s including compilation)"
    )
    payload: dict[str, Any] = reporting.run_record(dataset, config, result.history, seconds, env)
    torch_history, status = None, 0
    if torch_model is not None:
        torch_history, status = _compare_with_torch(args, dataset, config, torch_model, result, payload)
    if args.metrics_json:
        print(f"metrics written to {reporting.write_json(args.metrics_json, payload)}")
    if args.plot:
        title = f"{dataset.name}, {config.model}, seed {config.seed}"
        print(f"plot written to {reporting.plot_history(args.plot, result.history, torch_history, title)}")
    return status


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
        return fail(str(err), status=3)
    seconds = time.perf_counter() - start
    accuracies = [r.test_accuracy for r in results]
    for seed, accuracy in zip(seeds, accuracies, strict=True):
        print(f"seed {seed}: test accuracy {100 * accuracy:.2f}%")
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
                {"seed": seed, "epochs": to_dicts(r.history), "test_accuracy": r.test_accuracy}
                for seed, r in zip(seeds, results, strict=True)
            ],
            "test_accuracy_mean": sum(accuracies) / len(accuracies),
            "seconds": seconds,
        }
        print(f"metrics written to {reporting.write_json(args.metrics_json, payload)}")
    return 0
