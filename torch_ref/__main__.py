"""``python -m torch_ref train``: the article's PyTorch training run, with the flags of ``jax-lstm
train`` (`jax_lstm.experiment.flags`), the same data and the same resolved config."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from jax_lstm.experiment import flags
from jax_lstm.rnn.layer import describe_cell


def _train(args: argparse.Namespace) -> int:
    import torch

    from jax_lstm import reporting
    from jax_lstm.data import DataError
    from jax_lstm.experiment.outputs import run_record, write_metrics
    from jax_lstm.training import FitResult
    from torch_ref.train import CHECKPOINT_NAME, train_torch

    try:
        if args.dtype == "float64":
            import jax

            jax.config.update("jax_enable_x64", True)  # TrainConfig checks it for float64
        if args.validation_split is not None:
            raise ValueError(
                "--validation-split selects an epoch in jax-lstm train; the torch reference always "
                "reports the last epoch: leave the flag out"
            )
        request = flags.train_request(args)
        dataset, config = request.prepare()
        existing = args.checkpoint_dir and (Path(args.checkpoint_dir) / CHECKPOINT_NAME).exists()
        if existing and not (args.resume or args.overwrite):
            raise ValueError(
                f"{args.checkpoint_dir} already holds a checkpoint, which this run would overwrite: "
                "continue it with --resume, or start over on purpose with --overwrite"
            )
    except (DataError, ValueError, FileNotFoundError) as err:
        print(f"torch_ref: error: {err}", file=sys.stderr)
        return 2
    print(dataset.describe())
    print(
        f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads), model {config.model}"
        f"{describe_cell(config.cell)}: hidden {config.hidden_size}, "
        f"layers {config.num_layers}, dropout {config.dropout:g} | {config.epochs} epochs, batch "
        f"{config.batch_size}, lr {config.lr:g}, clip {config.clip}, plateau patience "
        f"{config.patience} factor {config.factor:.3g} min lr {config.min_lr:g}, "
        f"seed {config.seed}, {config.dtype}",
        flush=True,
    )
    start = time.perf_counter()
    try:
        result = train_torch(
            config,
            dataset,
            log=lambda line: print(line, flush=True),
            checkpoint_dir=args.checkpoint_dir,
            resume=args.resume,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"torch_ref: error: {err}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print(
        f"PyTorch: test accuracy {100 * result.test_accuracy:.2f}% after {config.epochs} epochs "
        f"({seconds:.1f} s)"
    )
    if args.metrics_json:
        models = [FitResult(None, None, result.history, config, dataset.num_classes)]
        payload = run_record(
            "classification", dataset.describe(), config, seconds, reporting.environment(), models, False
        )
        print(f"metrics written to {write_metrics(args.metrics_json, payload)}")
    if args.plot:
        title = f"{dataset.name}, {config.model} (PyTorch), seed {config.seed}"
        print(f"plot written to {reporting.plot_history(args.plot, result.history, title=title)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m torch_ref", description="The article's PyTorch models and training loop."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train the article's torch model (same flags as jax-lstm train)")
    flags.add_train_arguments(train)
    train.set_defaults(func=_train)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
