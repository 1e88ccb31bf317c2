"""The training flags shared by ``jax-lstm train`` and ``python -m torch_ref train``, and what they
build: the dataset and the `TrainConfig`."""

from __future__ import annotations

import argparse
import math

from jax_lstm.models import registry
from jax_lstm.rnn.layer import CELL_MODES

__all__ = [
    "DATASETS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "add_distributed_arguments",
    "add_train_arguments",
    "config_from_args",
    "dataset_from_args",
]

DATASETS = ("japanese-vowels", "synthetic", "digits")
# Defaults when --epochs / --batch-size are not given: the article's 10 epochs of batches of 32 for
# its synthetic data (and digits); JapaneseVowels and user .ts files, small real datasets, get 30
# epochs of batches of 16, the better of the settings measured by `python -m benchmarks.accuracy`
# (benchmarks/results/accuracy.json).
DEFAULT_EPOCHS = {"japanese-vowels": 30, "synthetic": 10, "digits": 10, "ts": 30}
DEFAULT_BATCH_SIZE = {"japanese-vowels": 16, "synthetic": 32, "digits": 32, "ts": 16}


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The training flags shared by ``jax-lstm train`` and ``python -m torch_ref train``."""
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        choices=DATASETS,
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
    model = parser.add_argument_group("model and optimisation")
    model.add_argument(
        "--model",
        choices=registry.names("classification"),
        default="lstm",
        help="lstm and bn-lstm are the article's; lstm-fcn, mlstm-fcn (Karim et al.) and attention-lstm "
        "its extensions. Each has its own default recipe, printed in the run's header line; the flags "
        "below override it (default: lstm)",
    )
    model.add_argument(
        "--cell",
        choices=tuple(CELL_MODES),
        default="lstm",
        help="the model's recurrent layer: lstm (the article's), gru, or rnn (tanh) (default: lstm)",
    )
    model.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="default: the model's recipe, else 30 (10 for synthetic/digits)",
    )
    model.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="default: the model's recipe, else 16 (32 for synthetic/digits)",
    )
    model.add_argument("--hidden-size", type=int, default=None, help="default: 128 (the FCN models: 8)")
    model.add_argument("--num-layers", type=int, default=None, help="default: 2 (the FCN models: 1)")
    model.add_argument("--lr", type=float, default=None, help="default: 0.001")
    model.add_argument(
        "--clip",
        type=float,
        default=None,
        help="max gradient norm; 0 disables clipping (default: 1.0; the FCN models: none)",
    )
    model.add_argument(
        "--patience", type=int, default=None, help="ReduceLROnPlateau patience in epochs (default: 2; FCN: 5)"
    )
    model.add_argument(
        "--factor", type=float, default=None, help="ReduceLROnPlateau factor (default: 0.1; FCN: 1/cbrt(2))"
    )
    model.add_argument(
        "--min-lr", type=float, default=None, help="ReduceLROnPlateau's floor (default: 0; FCN: 1e-4)"
    )
    model.add_argument("--weight-decay", type=float, default=0.0, help="Adam's L2 term, as torch")
    model.add_argument(
        "--accumulate", type=int, default=1, help="gradient accumulation: micro-batches per update"
    )
    model.add_argument(
        "--dropout",
        type=float,
        default=None,
        help="inter-layer LSTM dropout (default: 0); the FCN models: dropout on the LSTM's output (0.8)",
    )
    model.add_argument(
        "--validation-split",
        type=float,
        default=None,
        metavar="FRACTION",
        help="hold out this stratified fraction of the training series; the epoch with the best "
        "validation accuracy is the one reported and kept (default: none, the last epoch is reported)",
    )
    model.add_argument("--seed", type=int, default=0, help="initial weights and batch order")
    model.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    out = parser.add_argument_group("output")
    out.add_argument("--checkpoint-dir", metavar="DIR", help="save the full state here after every epoch")
    out.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in a --checkpoint-dir that holds a checkpoint, deleting it (default: refuse)",
    )
    out.add_argument("--metrics-json", metavar="PATH", help="write per-epoch and final metrics here")
    out.add_argument("--plot", metavar="PATH.png", help="plot the loss and accuracy curves")
    out.add_argument("--quiet", action="store_true", help="no per-step log lines")
    out.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not keep compiled programs on disk (default: ~/.cache/jax-lstm/xla, or $JAX_LSTM_CACHE)",
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


def dataset_from_args(args: argparse.Namespace):
    """The Dataset the flags ask for (raises DataError on bad files)."""
    from jax_lstm import data

    if args.data or args.test_data:
        if not (args.data and args.test_data):
            raise data.DataError("--data and --test-data go together: pass both .ts files")
        return data.from_ts_files(args.data, args.test_data, standardize=not args.no_standardize)
    if args.dataset == "synthetic":
        return data.synthetic(seed=args.seed)
    if args.dataset == "digits":
        return data.digits()
    return data.japanese_vowels(standardize=not args.no_standardize)


def check_numbers(args: argparse.Namespace) -> None:
    """Refuses non-finite or out-of-range float flags with the flag's name (argparse takes "nan",
    "inf" and negative numbers as floats). Flags not given (None) take the recipe's values."""
    rules = [
        ("--lr", args.lr, lambda v: v > 0, "a finite number > 0"),
        ("--clip", args.clip, lambda v: v >= 0, "a finite number >= 0 (0 disables clipping)"),
        ("--weight-decay", args.weight_decay, lambda v: v >= 0, "a finite number >= 0"),
        ("--dropout", args.dropout, lambda v: 0 <= v <= 1, "a number in [0, 1]"),
        ("--factor", args.factor, lambda v: 0 < v < 1, "a number in (0, 1)"),
        ("--min-lr", args.min_lr, lambda v: v >= 0, "a finite number >= 0"),
        (
            "--validation-split",
            args.validation_split,
            lambda v: 0 < v < 1,
            "a fraction in (0, 1), e.g. 0.2 (leave it out to train on every training series)",
        ),
    ]
    for flag, value, in_range, wanted in rules:
        if value is not None and (not math.isfinite(value) or not in_range(value)):
            raise ValueError(f"{flag} must be {wanted}, got {value}")


def config_from_args(args: argparse.Namespace, num_train: int = 0, seq_len: int = 0):
    """The TrainConfig the flags ask for (validated): each flag given, else the model's recipe.

    `num_train` and `seq_len` (the training series and their padded length, once the data is read)
    let a recipe with ``min_steps`` raise its epochs for small training sets, within its
    ``max_work`` (`registry.recipe_epochs`); an explicit ``--epochs`` stands.
    """
    from jax_lstm.training import TrainConfig

    check_numbers(args)
    source = "ts" if args.data else args.dataset
    given = {field: getattr(args, field) for field in registry.RECIPE_FIELDS}
    settings = registry.resolve_recipe(
        args.model, given, DEFAULT_EPOCHS[source], DEFAULT_BATCH_SIZE[source], num_train, seq_len
    )
    return TrainConfig(
        model=args.model,
        cell=args.cell,
        **settings,
        weight_decay=args.weight_decay,
        accumulate=args.accumulate,
        seed=args.seed,
        dtype=args.dtype,
        log_every=0 if args.quiet else 10,
        # Only `jax-lstm train` has the flag; torch_ref's train shares the rest.
        implementation=getattr(args, "implementation", "fused"),
    ).validate()
