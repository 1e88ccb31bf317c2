"""The ``jax-lstm`` command: parses flags and calls the library. ``train`` and ``forecast`` are runs
of `jax_lstm.experiment` (their flags defined once in `jax_lstm.experiment.flags`, shared with
``python -m torch_ref train``); ``export`` and ``parity`` are their own small modules. Every
expected failure ends in one ``jax-lstm: error: ...`` line and a documented status
(`jax_lstm.experiment.exit_status`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Sequence

from jax_lstm import runtime
from jax_lstm.experiment import flags
from jax_lstm.experiment.outputs import EXIT_BAD_INPUT, EXIT_WRITE_FAILED
from jax_lstm.rnn.stack import IMPLEMENTATIONS

__all__ = ["build_parser", "fail", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jax-lstm",
        description="A JAX LSTM with exact PyTorch parity: train the article's models, classify new "
        "series with them, forecast, export, check parity.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train",
        help="train a classifier (default: the article's LSTM on JapaneseVowels, embedded)",
        description=(
            "Trains a registered classifier (the article's LSTM and BN-LSTM, LSTM-FCN, MLSTM-FCN, "
            "attention-LSTM, the 2-D MDLSTM) with Adam, gradient clipping and a learning-rate schedule, "
            "evaluating on the test split after every epoch. With no arguments: the UEA JapaneseVowels "
            "benchmark shipped with the package. --dataset synthetic is the article's own setup."
        ),
    )
    flags.add_train_arguments(train)
    train.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="K",
        help="train K models (seeds --seed .. --seed+K-1) at once, in one program, spread over the cores",
    )
    train.add_argument(
        "--implementation",
        choices=IMPLEMENTATIONS,
        default=None,
        help="the LSTM recurrence: fused (default, any device), scan (the plain reference), "
        "cudnn (cuDNN's fused LSTM; CUDA GPU, float32)",
    )
    train.add_argument(
        "--plot-attention",
        metavar="PATH.png",
        help="models with attention (attention-lstm): draw the attention weights over time of a few "
        "test series beside their input channels",
    )
    flags.add_distributed_arguments(train)
    train.set_defaults(func=_train)

    forecast = sub.add_parser(
        "forecast",
        help="train the LSTM forecaster on a table and score it against baselines (default: Seattle weather)",
        description=(
            "Splits a table by time (train | validation | test), scales it on the training period, "
            "trains an LSTM forecaster of --horizon steps from --lookback steps with the training loop "
            "of `jax-lstm train` (MSE, Adam, clipping, ReduceLROnPlateau), and prints its MAE, RMSE and "
            "MASE over every test origin beside the naive, seasonal naive, mean and VAR baselines. "
            "With no arguments: daily Seattle weather 2012-2015, shipped with the package."
        ),
    )
    flags.add_forecast_arguments(forecast)
    forecast.set_defaults(func=_forecast)

    predict = sub.add_parser(
        "predict",
        help="classify the series of a .ts file with a trained model (a --checkpoint-dir of train)",
        description=(
            "Loads the classifier a training run saved (--checkpoint-dir), scales the series of a .ts "
            "file as its training series were scaled (the standardisation the checkpoint records), "
            "and writes one CSV row per series in file order: index, label (the predicted class), "
            "prob_<class> for every class, and true_label when the file has labels. Prints the "
            "accuracy on a labelled file, a summary of the predicted classes on an unlabelled one "
            "(@classLabel false). An ensemble predicts with the mean of its members' probabilities."
        ),
    )
    flags.add_predict_arguments(predict)
    predict.set_defaults(func=_predict)

    export = sub.add_parser(
        "export",
        help="write a checkpoint's model as a torch state dict (.pt) or a jax.export artefact (.jaxexport)",
        description=(
            "OUT.pt: the weights as the torch twin's state dict (one per model of --seeds or an "
            "ensemble). OUT.jaxexport: the classifier's inference function as serialised StableHLO "
            "(jax.export) with its weights, preprocessing and class names in one file, run by "
            "jax_lstm.load_exported (numpy and jax only), for any batch size or --batch-size N."
        ),
    )
    export.add_argument("checkpoint_dir", help="the --checkpoint-dir of a training run")
    export.add_argument("output", help="where to write the .pt (.pth) or .jaxexport file")
    export.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help=".jaxexport: a program for batches of N series (default: a symbolic batch, any size)",
    )
    export.add_argument("--seed", type=int, help=".jaxexport: the run of a checkpoint of several (--seeds)")
    export.set_defaults(func=_export)

    parity = sub.add_parser(
        "parity",
        help="compare outputs, states and gradients with torch on this machine",
        description=(
            "Builds every registered model and the layers and cells of the recurrent family over a "
            "spread of configurations, loads identical weights into torch and JAX, and prints the "
            "largest differences of outputs, states, BatchNorm statistics and gradients against the "
            "tolerances. Exits 1 if any exceeds its tolerance."
        ),
    )
    parity.add_argument(
        "--dtype",
        nargs="+",
        choices=["float32", "float64"],
        default=["float32", "float64"],
        help="precisions to check (default: both)",
    )
    parity.add_argument(
        "--device",
        default=None,
        help="torch device, e.g. cpu or cuda (default: cuda when available). JAX uses its default device.",
    )
    parity.add_argument(
        "--cases", default=None, help="only cases whose name contains this text (e.g. bidirectional, fcn)"
    )
    parity.add_argument(
        "--verbose", action="store_true", help="one row per compared leaf instead of the worst per kind"
    )
    parity.add_argument("--seed", type=int, default=0, help="seed for weights and inputs (default 0)")
    parity.add_argument(
        "--implementation",
        choices=IMPLEMENTATIONS,
        default="fused",
        help="the JAX recurrence to check (cudnn: CUDA GPU, float32, no projections)",
    )
    parity.set_defaults(func=_parity)
    return parser


def fail(message: str, status: int = EXIT_BAD_INPUT) -> int:
    """Prints ``jax-lstm: error: message`` to stderr and returns the exit status."""
    print(f"jax-lstm: error: {message}", file=sys.stderr)
    return status


def _start(args: argparse.Namespace) -> None:
    """JAX's process-wide settings a run asks for, before any array exists."""
    import jax

    if args.dtype == "float64" and not jax.config.read("jax_enable_x64"):
        jax.config.update("jax_enable_x64", True)
    if not args.no_compile_cache:
        runtime.enable_compilation_cache()


def _train(args: argparse.Namespace) -> int:
    from jax_lstm.experiment import run_training

    joined = _join(args)
    if joined is not None:
        return joined
    try:
        request = flags.train_request(args)
    except ValueError as err:  # a flag's value out of range
        return fail(str(err))
    _start(args)
    return _as_this_process(args.quiet, lambda: run_training(request))


def _forecast(args: argparse.Namespace) -> int:
    from jax_lstm.experiment import run_forecast

    try:
        request = flags.forecast_request(args)
    except ValueError as err:
        return fail(str(err))
    _start(args)
    return run_forecast(request)


def _predict(args: argparse.Namespace) -> int:
    from jax_lstm.experiment import run_predict

    request = flags.predict_request(args)
    if not args.no_compile_cache:
        runtime.enable_compilation_cache()
    return run_predict(request)


def _export(args: argparse.Namespace) -> int:
    from jax_lstm.cli import export

    return export.run(args.checkpoint_dir, args.output, batch_size=args.batch_size, seed=args.seed)


def _parity(args: argparse.Namespace) -> int:
    from jax_lstm.cli import parity

    return parity.run(args)


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
        return fail(str(err), status=EXIT_WRITE_FAILED)
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


def _as_this_process(quiet: bool, run) -> int:
    """Runs `run()`; in a multi-process run, process i > 0 prints prefixed (nothing with --quiet;
    only process 0 writes files, which the library sees to) and a lost process ends this one with
    status 4 instead of a hang or an abort."""
    import jax

    from jax_lstm.training import parallel

    if not parallel.multiprocess():
        return run()
    index = jax.process_index()
    if index == 0:
        output = contextlib.nullcontext()
    else:
        stream = open(os.devnull, "w") if quiet else _Prefixed(sys.stdout, f"[process {index}] ")
        output = contextlib.redirect_stdout(stream)
    try:
        with output:
            return run()
    except parallel.ProcessLostError as err:
        fail(str(err), status=EXIT_WRITE_FAILED)
        sys.stdout.flush()
        sys.stderr.flush()
        # A normal exit would wait at JAX's shutdown barrier for the lost process, then abort.
        os._exit(EXIT_WRITE_FAILED)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs a subcommand; returns its exit status.

    Every expected failure ends in one ``jax-lstm: error: ...`` line on stderr and a documented
    status: 2 bad input (flags, files, checkpoints), 3 the training diverged, 4 an output could not
    be written (or a process of the run was lost), 130 interrupted (Ctrl-C); 1 is a parity check or
    torch comparison that disagrees. Unexpected exceptions keep their traceback.
    """
    from jax_lstm.experiment import exit_status

    runtime.use_all_cores()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (Exception, KeyboardInterrupt) as err:
        expected = exit_status(err)
        if expected is None:
            raise
        status, message = expected
        return fail(message, status)
