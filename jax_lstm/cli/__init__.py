"""The ``jax-lstm`` command. Thin: each subcommand is a module (`train`, `forecast`, `export`, `parity`)
that parses nothing and calls library functions; `torch_bridge` is the only one that reaches `torch_ref`.

``jax-lstm train`` and ``python -m torch_ref train`` share the argument definitions in `args`, so the
two sides accept the same flags and build the same dataset and config from them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from jax_lstm import runtime
from jax_lstm.cli import export as export_command
from jax_lstm.cli import forecast as forecast_command
from jax_lstm.cli import parity as parity_command
from jax_lstm.cli import train as train_command
from jax_lstm.cli.args import add_distributed_arguments, add_train_arguments
from jax_lstm.cli.common import EXIT_INTERRUPTED, OutputPathError, fail
from jax_lstm.cli.forecast import add_forecast_arguments
from jax_lstm.rnn.stack import IMPLEMENTATIONS

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jax-lstm",
        description="A JAX LSTM with exact PyTorch parity: train the article's models, check parity.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train",
        help="train an LSTM classifier (default: JapaneseVowels, embedded)",
        description=(
            "Trains the article's LSTM classifier (or its BatchNorm variant) with Adam, gradient "
            "clipping and ReduceLROnPlateau, evaluating on the test split after every epoch. "
            "With no arguments: the UEA JapaneseVowels benchmark shipped with the package. "
            "--dataset synthetic is the article's own setup."
        ),
    )
    add_train_arguments(train)
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
        default="fused",
        help="the LSTM recurrence: fused (default, any device), scan (the plain reference), "
        "cudnn (cuDNN's fused LSTM; CUDA GPU, float32)",
    )
    train.add_argument(
        "--compare-torch",
        action="store_true",
        help="also train torch_ref from the same weights on the same batches and compare per epoch",
    )
    train.add_argument(
        "--plot-attention",
        metavar="PATH.png",
        help="models with attention (attention-lstm): draw the attention weights over time of a few "
        "test series beside their input channels",
    )
    add_distributed_arguments(train)
    train.set_defaults(func=train_command.run)

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
    add_forecast_arguments(forecast)
    forecast.set_defaults(func=forecast_command.run)

    export = sub.add_parser("export", help="write a checkpoint's weights as a torch state dict (.pt)")
    export.add_argument("checkpoint_dir", help="the --checkpoint-dir of a training run")
    export.add_argument("output", help="where to write the .pt file")
    export.set_defaults(func=export_command.run)

    parity = sub.add_parser(
        "parity",
        help="compare outputs, states and gradients with torch.nn.LSTM on this machine",
        description=(
            "Builds the article's models and a spread of nn.LSTM configurations, loads identical "
            "weights into torch and JAX, and prints the largest differences of outputs, states and "
            "gradients against the tolerances. Exits 1 if any exceeds its tolerance."
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
        "--cases", default=None, help="only cases whose name contains this text (e.g. bidirectional)"
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
    parity.set_defaults(func=parity_command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs a subcommand; returns its exit status.

    Every expected failure ends in one ``jax-lstm: error: ...`` line on stderr and a documented
    status: 2 bad input (flags, files, checkpoints), 3 the training diverged, 4 an output could not
    be written, 130 interrupted (Ctrl-C); 1 is a parity check or torch comparison that disagrees.
    Unexpected exceptions keep their traceback.
    """
    from jax_lstm.data import DataError
    from jax_lstm.training.checkpoint import CheckpointError

    runtime.use_all_cores()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, CheckpointError, OutputPathError) as err:
        return fail(str(err))
    except KeyboardInterrupt:
        return fail("interrupted", status=EXIT_INTERRUPTED)
