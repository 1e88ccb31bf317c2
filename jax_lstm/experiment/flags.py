"""The flags of a run, defined once: those of the model and its optimisation and of the outputs are
shared by ``jax-lstm train``, ``jax-lstm forecast`` and ``python -m torch_ref train``; the data
flags are each subcommand's own. `train_request` and `forecast_request` turn parsed flags into the
requests the library runs (`TrainRequest`, `ForecastRequest`); nothing here runs anything.

Every model and optimisation flag defaults to None, "the model's recipe": `resolve_config` fills
what is left open, the same way for every entry point.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from jax_lstm.experiment.predict import PredictRequest
from jax_lstm.experiment.requests import (
    BUILTIN_DATASETS,
    ForecastRequest,
    TrainRequest,
)
from jax_lstm.models import registry
from jax_lstm.rnn.layer import CELL_MODES
from jax_lstm.training.config import SCHEDULE_NAMES, SELECTIONS

__all__ = [
    "add_distributed_arguments",
    "add_forecast_arguments",
    "add_model_arguments",
    "add_output_arguments",
    "add_predict_arguments",
    "add_train_arguments",
    "add_train_data_arguments",
    "forecast_request",
    "predict_request",
    "settings",
    "train_request",
]


def add_model_arguments(parser: argparse.ArgumentParser, models: tuple[str, ...] | None = None) -> None:
    """The model and optimisation flags (`TrainConfig` fields; None: the model's recipe). With
    `models`, a ``--model`` choice among them (the forecast has one model and no flag)."""
    group = parser.add_argument_group(
        "model and optimisation (default: the model's recipe, printed in the header)"
    )
    if models is not None:
        group.add_argument(
            "--model",
            choices=models,
            default=models[0],
            help="lstm and bn-lstm are the article's; lstm-fcn, mlstm-fcn (Karim et al.) and attention-lstm "
            "its extensions; mdlstm the 2-D MDLSTM (Graves and Schmidhuber) over each series as a "
            f"(time, feature) grid. Each has its own default recipe (default: {models[0]})",
        )
    group.add_argument(
        "--cell",
        choices=tuple(CELL_MODES),
        default=None,
        help="the model's recurrent layer: lstm (the article's), gru, or rnn (tanh) (default: lstm)",
    )
    group.add_argument(
        "--patch",
        type=int,
        metavar="P",
        help="lstm, bn-lstm, attention-lstm, mdlstm: the recurrent layer reads each P consecutive steps "
        "as one step of P x features (the MDLSTM: a grid of ceil(T/P) rows of P x features) (default: "
        "the recipe's, the fewest that make the recurrence at most 32 steps long; 1: every step its "
        "own, the article's)",
    )
    group.add_argument("--epochs", type=int, help="epochs (default: the recipe's, for the data's size)")
    group.add_argument(
        "--batch-size",
        type=int,
        help="series (or windows) per batch (default: the recipe's; lstm-fcn and mlstm-fcn: about ten "
        "batches an epoch, of 8 to 16 series)",
    )
    group.add_argument("--hidden-size", type=int, help="the recurrent layer's hidden size")
    group.add_argument("--num-layers", type=int, help="recurrent layers")
    group.add_argument("--lr", type=float, help="Adam's learning rate (the article's 0.001)")
    group.add_argument(
        "--clip", type=float, help="max gradient norm; 0 disables clipping (the article's 1.0)"
    )
    group.add_argument(
        "--schedule",
        choices=SCHEDULE_NAMES,
        help="the learning rate per epoch: plateau (the article's ReduceLROnPlateau on the training loss) or "
        "cosine (torch's CosineAnnealingLR over the run's epochs down to --eta-min)",
    )
    group.add_argument(
        "--warmup-epochs",
        type=int,
        help="with --schedule cosine: a linear warm-up from a third of --lr over this many epochs first "
        "(torch's SequentialLR of LinearLR and CosineAnnealingLR; default 0)",
    )
    group.add_argument("--eta-min", type=float, help="with --schedule cosine: the lowest learning rate (0)")
    group.add_argument("--patience", type=int, help="ReduceLROnPlateau patience in epochs (the article's 2)")
    group.add_argument("--factor", type=float, help="ReduceLROnPlateau factor (the article's 0.1)")
    group.add_argument("--min-lr", type=float, help="ReduceLROnPlateau's floor for the learning rate (0)")
    group.add_argument("--weight-decay", type=float, help="Adam's L2 term, as torch (0)")
    group.add_argument("--accumulate", type=int, help="gradient accumulation: micro-batches per update (1)")
    group.add_argument(
        "--dropout",
        type=float,
        help="the article's models: inter-layer dropout (0); the FCN models: dropout on the LSTM's output",
    )
    group.add_argument(
        "--select",
        choices=SELECTIONS,
        help="the epoch whose weights are kept and reported: last (default), validation (the best on "
        "--validation-split or a forecast's validation period), train-loss (the lowest training loss); "
        "none looks at test data",
    )
    group.add_argument(
        "--ensemble",
        type=int,
        metavar="K",
        help="train K members at once (seeds --seed .. --seed+K-1) and predict with the mean of their "
        "probabilities (default 1: one model)",
    )
    group.add_argument("--seed", type=int, default=0, help="initial weights and batch order (default 0)")
    group.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    if models is None:
        return  # the forecast: its loop has no test split (its validation windows: every epoch)
    group.add_argument(
        "--eval-every",
        type=int,
        metavar="N",
        help="evaluate the test split after every N epochs and the last (the reported epoch's is measured "
        "whichever it is; it chooses nothing) (default: the recipe's, 1 unless the test split is much "
        "larger than the training split, then so that it costs at most about half the training's time)",
    )


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Checkpoints, metrics, plots, the torch comparison and the log, for both subcommands."""
    group = parser.add_argument_group("output")
    group.add_argument("--checkpoint-dir", metavar="DIR", help="save the full state here after every epoch")
    group.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir"
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in a --checkpoint-dir that holds a checkpoint, deleting it (default: refuse)",
    )
    group.add_argument("--metrics-json", metavar="PATH", help="write per-epoch and final metrics here")
    group.add_argument("--plot", metavar="PATH.png", help="plot the run (curves; a forecast's test period)")
    group.add_argument(
        "--compare-torch",
        action="store_true",
        help="also train the torch twin from the same weights on the same batches and compare per epoch",
    )
    group.add_argument(
        "--quiet",
        action="store_true",
        help="train: no per-step log lines (epoch lines, notes and results still print); forecast: results",
    )
    group.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not keep compiled programs on disk (default: ~/.cache/jax-lstm/xla, or $JAX_LSTM_CACHE)",
    )


def add_train_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``jax-lstm train``'s data: a built-in dataset or two .ts files, and a validation split."""
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        choices=BUILTIN_DATASETS,
        default="japanese-vowels",
        help="built-in dataset (default: japanese-vowels, embedded; synthetic is the article's setup)",
    )
    data.add_argument("--data", metavar="TRAIN.ts", help="train on this sktime/UEA .ts file instead")
    data.add_argument("--test-data", metavar="TEST.ts", help="the matching test .ts file (with --data)")
    data.add_argument(
        "--no-standardize",
        action="store_true",
        help=".ts data: skip the per-channel standardisation fitted on the training split",
    )
    add_fill_argument(data)
    data.add_argument(
        "--validation-split",
        type=float,
        default=None,
        metavar="FRACTION",
        help="hold out this stratified fraction of the training series; with it, --select defaults to "
        "validation: the epoch with the best validation accuracy is the one reported and kept",
    )


def add_fill_argument(group: argparse._ActionsContainer) -> None:
    """``--fill``: what becomes of a .ts file's missing values (`jax_lstm.data.fill_series`)."""
    group.add_argument(
        "--fill",
        choices=["interpolate", "ffill", "none"],
        default="interpolate",
        help=".ts data: missing values (? or NaN) are interpolated linearly within each series (the "
        "default), or carry the last value forward (ffill); a channel missing throughout a series "
        "takes the training mean. Trailing steps missing on every channel are read as padding. "
        "none refuses them",
    )


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag of ``jax-lstm train`` that ``python -m torch_ref train`` shares."""
    add_train_data_arguments(parser)
    add_model_arguments(parser, registry.names("classification"))
    add_output_arguments(parser)


def add_forecast_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag of ``jax-lstm forecast``: the table, its periods, then the shared ones."""
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data", metavar="FILE.csv", help="a CSV table, one row per time step (default: Seattle weather)"
    )
    data.add_argument(
        "--time-column", metavar="COL", help="the column of time labels (dates, or quarters like 1970 Q1)"
    )
    data.add_argument("--targets", metavar="A,B", help="columns to forecast (default: every numeric column)")
    data.add_argument("--features", metavar="C,D", help="input columns (default: every numeric column)")
    data.add_argument(
        "--fill", choices=["ffill", "interpolate"], help="fill missing values (default: refuse them)"
    )
    data.add_argument(
        "--season",
        type=int,
        help="season length for the seasonal naive baseline (default: from the time labels)",
    )
    data.add_argument(
        "--horizon", type=int, help="steps forecast from each origin (default: one season, or 1)"
    )
    data.add_argument(
        "--lookback", type=int, help="input steps per window (default: from horizon and season)"
    )
    data.add_argument("--test-size", type=int, help="rows in the test period (default: 20%%, at most 1000)")
    data.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help="fraction of the rows before the test period kept for validation (default 0.1)",
    )
    future = parser.add_argument_group("the forecast of the future")
    future.add_argument(
        "--output",
        metavar="FUTURE.csv",
        help="write the --horizon steps after the table's last row, every target, original units, with "
        "columns time, target, horizon, forecast, lower_<level>, upper_<level>",
    )
    future.add_argument(
        "--interval",
        metavar="0.8,0.95",
        default=None,
        help="prediction interval levels: split-conformal intervals from the validation period's "
        "residuals, per target and step (default 0.8,0.95)",
    )
    future.add_argument(
        "--from-checkpoint",
        metavar="DIR",
        help="forecast with the model a run saved in DIR, without training, from --data (a newer "
        "version of its table, with the same columns; default: the embedded table it was trained on)",
    )
    add_model_arguments(parser)
    add_output_arguments(parser)


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag of ``jax-lstm predict``."""
    parser.add_argument(
        "--checkpoint-dir", metavar="DIR", required=True, help="the --checkpoint-dir of train"
    )
    parser.add_argument(
        "--data", metavar="FILE.ts", required=True, help="the series to classify (labelled or not)"
    )
    parser.add_argument(
        "--output", metavar="PREDICTIONS.csv", required=True, help="one row per series, in file order"
    )
    parser.add_argument(
        "--batch-size", type=int, metavar="N", help="series per chunk (default: as training evaluated)"
    )
    parser.add_argument("--seed", type=int, help="the run to predict with, of a checkpoint of --seeds K runs")
    parser.add_argument(
        "--train-data",
        metavar="TRAIN.ts",
        help="a checkpoint written before checkpoints recorded their preprocessing: the file it was trained "
        "on, whose per-channel standardisation is refitted exactly",
    )
    parser.add_argument(
        "--no-standardize",
        action="store_true",
        help="a checkpoint written before checkpoints recorded their preprocessing, trained with "
        "--no-standardize: take the series as they are",
    )
    add_fill_argument(parser)
    parser.add_argument("--metrics-json", metavar="PATH", help="write the accuracy and class counts here")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument(
        "--no-compile-cache", action="store_true", help="do not keep compiled programs on disk"
    )


def add_distributed_arguments(parser: argparse.ArgumentParser) -> None:
    """``jax-lstm train``'s flags for training across processes (`runtime.initialize_distributed`)."""
    from jax_lstm.runtime import DEFAULT_DISTRIBUTED_TIMEOUT_S

    group = parser.add_argument_group(
        "several processes or machines",
        "all three of --coordinator, --num-processes, --process-id (the same command in every process "
        "but its --process-id), or --distributed alone under SLURM / Open MPI",
    )
    group.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="address of process 0, which serves JAX's coordination service on PORT",
    )
    group.add_argument("--num-processes", type=int, metavar="N", help="how many processes train together")
    group.add_argument(
        "--process-id", type=int, metavar="I", help="this process, 0..N-1 (process 0 writes the files)"
    )
    group.add_argument(
        "--distributed",
        action="store_true",
        help="join with what JAX detects (SLURM, Open MPI, TPU) instead of the three flags",
    )
    group.add_argument(
        "--distributed-timeout",
        type=float,
        default=DEFAULT_DISTRIBUTED_TIMEOUT_S,
        metavar="SECONDS",
        help="how long to wait for every process to join, and after how long without a heartbeat a "
        f"process counts as lost and the others stop (default {DEFAULT_DISTRIBUTED_TIMEOUT_S})",
    )


# Float flags and the range each must be in (argparse takes "nan", "inf" and negative numbers).
_RANGES = {
    "lr": (lambda v: v > 0, "a finite number > 0"),
    "clip": (lambda v: v >= 0, "a finite number >= 0 (0 disables clipping)"),
    "weight_decay": (lambda v: v >= 0, "a finite number >= 0"),
    "dropout": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "factor": (lambda v: 0 < v < 1, "a number in (0, 1)"),
    "min_lr": (lambda v: v >= 0, "a finite number >= 0"),
    "eta_min": (lambda v: v >= 0, "a finite number >= 0"),
    "validation_split": (
        lambda v: 0 < v < 1,
        "a fraction in (0, 1), e.g. 0.2 (leave it out to train on every training series)",
    ),
}

# The TrainConfig fields the model and optimisation flags set.
_SETTINGS = (
    "cell",
    "patch",
    "epochs",
    "batch_size",
    "hidden_size",
    "num_layers",
    "lr",
    "clip",
    "patience",
    "factor",
    "min_lr",
    "weight_decay",
    "accumulate",
    "dropout",
    "select",
    "schedule",
    "warmup_epochs",
    "eta_min",
    "ensemble",
    "eval_every",
    "seed",
    "dtype",
)


def _check_numbers(args: argparse.Namespace) -> None:
    """Refuses non-finite or out-of-range float flags with the flag's name."""
    for field, (in_range, wanted) in _RANGES.items():
        value = getattr(args, field, None)
        if value is not None and (not math.isfinite(value) or not in_range(value)):
            raise ValueError(f"--{field.replace('_', '-')} must be {wanted}, got {value}")


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The `TrainConfig` fields the flags give (None where a flag was left to the recipe), after
    checking the float flags' ranges."""
    _check_numbers(args)
    given = {field: getattr(args, field, None) for field in _SETTINGS}
    if getattr(args, "implementation", None) is not None:
        given["implementation"] = args.implementation
    return given


def _names(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(name.strip() for name in text.split(",") if name.strip())


def _outputs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "checkpoint_dir": args.checkpoint_dir,
        "resume": args.resume,
        "overwrite": args.overwrite,
        "metrics_json": args.metrics_json,
        "plot": args.plot,
        "compare_torch": args.compare_torch,
        "quiet": args.quiet,
    }


def _fill(args: argparse.Namespace) -> str | None:
    fill = getattr(args, "fill", "interpolate")
    return None if fill == "none" else fill


def train_request(args: argparse.Namespace) -> TrainRequest:
    """The `TrainRequest` of ``jax-lstm train``'s (or ``python -m torch_ref train``'s) flags."""
    return TrainRequest(
        model=args.model,
        dataset=args.dataset,
        data=args.data,
        test_data=args.test_data,
        standardize=not args.no_standardize,
        fill=_fill(args),
        validation_split=args.validation_split,
        settings=settings(args),
        seeds=getattr(args, "seeds", 1),
        plot_attention=getattr(args, "plot_attention", None),
        **_outputs(args),
    )


def predict_request(args: argparse.Namespace) -> PredictRequest:
    """The `PredictRequest` of ``jax-lstm predict``'s flags."""
    return PredictRequest(
        checkpoint_dir=args.checkpoint_dir,
        data=args.data,
        output=args.output,
        batch_size=args.batch_size,
        seed=args.seed,
        train_data=args.train_data,
        no_standardize=args.no_standardize,
        fill=_fill(args),
        metrics_json=args.metrics_json,
        quiet=args.quiet,
    )


def forecast_request(args: argparse.Namespace) -> ForecastRequest:
    """The `ForecastRequest` of ``jax-lstm forecast``'s flags."""
    return ForecastRequest(
        data=args.data,
        time_column=args.time_column,
        targets=_names(args.targets),
        features=_names(args.features),
        fill=args.fill,
        season=args.season,
        horizon=args.horizon,
        lookback=args.lookback,
        test_size=args.test_size,
        val_fraction=args.val_fraction,
        settings=settings(args),
        output=args.output,
        intervals=_levels(args.interval),
        from_checkpoint=args.from_checkpoint,
        **_outputs(args),
    )


def _levels(text: str | None) -> tuple[float, ...]:
    """--interval's levels (`jax_lstm.forecasting.parse_levels`; ValueError naming a bad one)."""
    from jax_lstm.forecasting.intervals import parse_levels

    return parse_levels(text)
