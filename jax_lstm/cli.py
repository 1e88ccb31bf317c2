"""The ``jax-lstm`` command. Thin: it parses arguments and calls library functions.

``jax-lstm train`` and ``python -m torch_ref train`` share the argument definitions below, so the
two sides accept the same flags and build the same dataset and config from them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

# Free: importing jax_lstm.cli runs jax_lstm/__init__, which imports both already (JAX is imported,
# its backend is not started, so `use_all_cores` still works).
from jax_lstm.functional import IMPLEMENTATIONS
from jax_lstm.train import MODELS

__all__ = [
    "add_train_arguments",
    "config_from_args",
    "dataset_from_args",
    "enable_compilation_cache",
    "main",
    "use_all_cores",
]

DATASETS = ("japanese-vowels", "synthetic", "digits")
# Defaults when --epochs / --batch-size are not given: the article's 10 epochs of batches of 32 for
# its synthetic data (and digits); JapaneseVowels and user .ts files, small real datasets (270
# training series), get 30 epochs of batches of 16. Measured over seeds 0-4 on JapaneseVowels:
# batch 32 gave 96.0% mean test accuracy after 30 epochs (96.0% after 40, 95.9% after 50), batch 16
# gave 96.5% after 30 (python -m benchmarks.accuracy).
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
    model.add_argument("--model", choices=MODELS, default="lstm")
    model.add_argument("--epochs", type=int, default=None, help="default: 30 (10 for synthetic/digits)")
    model.add_argument("--batch-size", type=int, default=None, help="default: 16 (32 for synthetic/digits)")
    model.add_argument("--hidden-size", type=int, default=128)
    model.add_argument("--num-layers", type=int, default=2)
    model.add_argument("--lr", type=float, default=1e-3)
    model.add_argument("--clip", type=float, default=1.0, help="max gradient norm; 0 disables clipping")
    model.add_argument("--patience", type=int, default=2, help="ReduceLROnPlateau patience (epochs)")
    model.add_argument("--weight-decay", type=float, default=0.0, help="Adam's L2 term, as torch")
    model.add_argument(
        "--accumulate", type=int, default=1, help="gradient accumulation: micro-batches per update"
    )
    model.add_argument("--dropout", type=float, default=0.0, help="inter-layer LSTM dropout")
    model.add_argument("--seed", type=int, default=0, help="initial weights and batch order")
    model.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    out = parser.add_argument_group("output")
    out.add_argument("--checkpoint-dir", metavar="DIR", help="save the full state here after every epoch")
    out.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    out.add_argument("--metrics-json", metavar="PATH", help="write per-epoch and final metrics here")
    out.add_argument("--plot", metavar="PATH.png", help="plot the loss and accuracy curves")
    out.add_argument("--quiet", action="store_true", help="no per-step log lines")
    out.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not keep compiled programs on disk (default: ~/.cache/jax-lstm/xla, or $JAX_LSTM_CACHE)",
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


def config_from_args(args: argparse.Namespace):
    """The TrainConfig the flags ask for (validated)."""
    from jax_lstm.train import TrainConfig

    source = "ts" if args.data else args.dataset
    epochs = DEFAULT_EPOCHS[source] if args.epochs is None else args.epochs
    batch_size = DEFAULT_BATCH_SIZE[source] if args.batch_size is None else args.batch_size
    return TrainConfig(
        model=args.model,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        epochs=epochs,
        batch_size=batch_size,
        lr=args.lr,
        clip=args.clip if args.clip > 0 else None,
        patience=args.patience,
        weight_decay=args.weight_decay,
        accumulate=args.accumulate,
        dropout=args.dropout,
        seed=args.seed,
        dtype=args.dtype,
        log_every=0 if args.quiet else 10,
        # Only `jax-lstm train` has the flag; torch_ref's train shares the rest.
        implementation=getattr(args, "implementation", "fused"),
    ).validate()


def _progress_factory() -> Callable[[int, int], Any] | None:
    """A tqdm bar over all training steps when stderr is a terminal; None (no bar) otherwise."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return lambda total, initial: tqdm(total=total, initial=initial, unit="step", leave=False)


def _log_function(progress: Callable | None, prefix: str = "") -> Callable[[str], None]:
    if progress is None:
        return lambda line: print(prefix + line, flush=True)
    from tqdm import tqdm

    return lambda line: tqdm.write(prefix + line)


def _fail(message: str, status: int = 2) -> int:
    print(f"jax-lstm: error: {message}", file=sys.stderr)
    return status


def _train(args: argparse.Namespace) -> int:
    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)  # before any array exists
    if not args.no_compile_cache:
        enable_compilation_cache()
    from jax_lstm import reporting
    from jax_lstm.data import DataError
    from jax_lstm.testing import TRAINING_LOSS_RTOL
    from jax_lstm.train import TrainingDivergedError, fit, initial_variables

    try:
        config = config_from_args(args)  # first: the synthetic data is drawn from the seed
        dataset = dataset_from_args(args)
        dataset.validate()
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
                raise ValueError(
                    f"--seeds trains several models at once; it does not combine with {clashing[0]}"
                )
    except (DataError, ValueError, FileNotFoundError) as err:
        return _fail(str(err))
    if args.seeds > 1:
        return _train_many(args, dataset, config)

    torch_model = None
    variables = None
    if args.compare_torch:
        try:
            from torch_ref.train import torch_twin
        except ImportError:
            return _fail("--compare-torch needs PyTorch: pip install 'jax-lstm[torch]'")

        if config.dropout > 0:
            print("note: with dropout the two sides draw different masks; losses will differ")
        variables = initial_variables(config, dataset.num_features, dataset.num_classes)
        torch_model = torch_twin(config, dataset, variables)

    env = reporting.environment()
    print(dataset.describe())
    print(
        f"model {config.model}: hidden {config.hidden_size}, layers {config.num_layers} | "
        f"{config.epochs} epochs, batch {config.batch_size}, lr {config.lr}, clip {config.clip}, "
        f"patience {config.patience}, seed {config.seed}, {config.dtype} | "
        f"jax {env['jax']} on {env['jax_backend']}",
        flush=True,
    )
    progress = _progress_factory()
    start = time.perf_counter()
    try:
        result = fit(
            config,
            dataset,
            variables=variables,
            checkpoint_dir=args.checkpoint_dir,
            resume=args.resume,
            log=_log_function(progress),
            progress=progress,
        )
    except TrainingDivergedError as err:
        kept = f" The last good checkpoint is in {args.checkpoint_dir}." if args.checkpoint_dir else ""
        return _fail(f"{err}{kept}", status=3)
    except (ValueError, FileNotFoundError) as err:  # resume problems, reported before training
        return _fail(str(err))
    seconds = time.perf_counter() - start
    print(
        f"JAX: test accuracy {100 * result.test_accuracy:.2f}% after {config.epochs} epochs "
        f"({seconds:.1f} s including compilation)"
    )
    payload: dict[str, Any] = reporting.run_record(dataset, config, result.history, seconds, env)
    torch_history = None
    status = 0
    if torch_model is not None:
        from torch_ref.train import train_torch

        start = time.perf_counter()
        torch_result = train_torch(
            config,
            dataset,
            model=torch_model,
            log=_log_function(None, "[torch] ") if not args.quiet else None,
        )
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
                "note: training amplifies float32 rounding differences (measured on JapaneseVowels "
                "after 30 epochs: 5.4e-4 with batch 16, 1.3e-3 with batch 32, with the same "
                "accuracies); rerun with --dtype float64 to separate rounding from semantics: there "
                "the runs agree to ~1e-13"
            )
        payload["torch"] = {
            "epochs": torch_history,
            "test_accuracy": torch_result.test_accuracy,
            "seconds": torch_seconds,
        }
        payload["comparison"] = {**summary, "tolerance": tolerance, "agree": agree}
        status = 0 if agree else 1
    if args.metrics_json:
        print(f"metrics written to {reporting.write_json(args.metrics_json, payload)}")
    if args.plot:
        title = f"{dataset.name}, {config.model}, seed {config.seed}"
        print(f"plot written to {reporting.plot_history(args.plot, result.history, torch_history, title)}")
    return status


def _train_many(args: argparse.Namespace, dataset, config) -> int:
    """--seeds K: K models (seeds seed..seed+K-1) trained in one program (`fit_many`)."""
    from jax_lstm import reporting
    from jax_lstm.train import TrainingDivergedError, fit_many

    seeds = list(range(config.seed, config.seed + args.seeds))
    env = reporting.environment()
    print(dataset.describe())
    print(
        f"{len(seeds)} models (seeds {seeds[0]}-{seeds[-1]}) trained at once: {config.model}, hidden "
        f"{config.hidden_size}, layers {config.num_layers} | {config.epochs} epochs, batch "
        f"{config.batch_size}, lr {config.lr} | jax {env['jax']} on {env['jax_backend']}",
        flush=True,
    )
    progress = _progress_factory()
    start = time.perf_counter()
    try:
        results = fit_many(config, dataset, seeds, log=_log_function(progress), progress=progress)
    except TrainingDivergedError as err:
        return _fail(str(err), status=3)
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
                {"seed": seed, "epochs": r.history, "test_accuracy": r.test_accuracy}
                for seed, r in zip(seeds, results, strict=True)
            ],
            "test_accuracy_mean": sum(accuracies) / len(accuracies),
            "seconds": seconds,
        }
        print(f"metrics written to {reporting.write_json(args.metrics_json, payload)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError:
        return _fail("export needs PyTorch: pip install 'jax-lstm[torch]'")
    import jax_lstm
    from jax_lstm import checkpoint

    try:
        loaded = checkpoint.load(args.checkpoint_dir)
    except (FileNotFoundError, ValueError) as err:
        return _fail(str(err))
    state_dict = jax_lstm.to_torch(loaded.variables())
    torch.save(state_dict, args.output)
    cls = "MultiDimLSTM" if loaded.config.model == "lstm" else "BN_LSTM"
    print(
        f"wrote {args.output}: a {cls} state dict after {loaded.epoch} epochs; load it with "
        f"torch_ref.{cls}({loaded.data['num_features']}, {loaded.config.hidden_size}, "
        f"{loaded.config.num_layers}, {len(loaded.data['classes'])}).load_state_dict(torch.load(...))"
    )
    return 0


def _parity(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError:
        return _fail(
            "jax-lstm parity compares against PyTorch, which is not installed: pip install 'jax-lstm[torch]'"
        )
    from torch_ref.report import run_parity_report

    if args.implementation == "cudnn":
        from jax_lstm import cudnn

        if not cudnn.available():
            return _fail(
                "--implementation cudnn needs a CUDA GPU as JAX's default backend; "
                "run it on a GPU machine, or check the default implementation (fused) here"
            )
    device = args.device
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return run_parity_report(
        dtypes=args.dtype,
        torch_device=device,
        name_filter=args.cases,
        seed=args.seed,
        verbose=args.verbose,
        implementation=args.implementation,
    )


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
    train.set_defaults(func=_train)

    export = sub.add_parser("export", help="write a checkpoint's weights as a torch state dict (.pt)")
    export.add_argument("checkpoint_dir", help="the --checkpoint-dir of a training run")
    export.add_argument("output", help="where to write the .pt file")
    export.set_defaults(func=_export)

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
    parity.set_defaults(func=_parity)
    return parser


def use_all_cores(max_devices: int = 8) -> None:
    """Starts JAX's CPU backend with one device per core (at most `max_devices`), unless XLA_FLAGS
    already says how many. XLA runs a program on one thread; with several host devices,
    `jax_lstm.train` splits each batch (or the models of `--seeds`) across them. Must run before
    JAX initialises its backend; it changes nothing on a GPU."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    count = max(1, min(os.cpu_count() or 1, max_devices))
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def enable_compilation_cache(path: str | None = None) -> str:
    """Keeps compiled XLA programs on disk (JAX's persistent compilation cache), so that a second
    run of the same configuration skips most of its compile time (`python -m benchmarks`, whole
    article run: 1.71 s of compilation cold, 0.60 s in a later process). Location: `path`, $JAX_LSTM_CACHE, or
    ~/.cache/jax-lstm/xla."""
    import jax

    default = os.path.join(os.path.expanduser("~"), ".cache", "jax-lstm", "xla")
    path = path or os.environ.get("JAX_LSTM_CACHE") or default
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    use_all_cores()
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
