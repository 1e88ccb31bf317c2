"""What an epoch costs at each batch size: the training part and the test evaluation, apart.

    python -m benchmarks.epoch_cost [--model lstm-fcn] [--dataset ACSF1] [--batch-sizes 16 10 8]
                                    [--rounds 3] [--data-dir ../shared/data] [--out benchmarks/results]

The question behind the FCN recipe's batch size (`benchmarks/NOTES.md`, "ACSF1: more updates"): on
a CPU, does an epoch of smaller batches (more updates) cost more than one of larger batches? Each
batch size gets its own run (`jax_lstm.training.loop.Run`, the model's recipe but the batch size)
and its epochs are the library's own (`loop.train_epoch`: the shuffled batches, then the test
evaluation and the scheduler step). The first epoch of each is the warm-up (compilation, reported
apart); then `--rounds` rounds, one epoch of every batch size each, the order alternating. The
training part is the epoch's own timer (`EpochRecord.seconds`, up to the device sync of its
losses); the rest of the epoch, the evaluation, is the wall time minus it. Medians (minima), the
CPU share other processes took, the machine and versions; results in ``epoch_cost.json``.
"""

from __future__ import annotations

from jax_lstm.runtime import use_all_cores

use_all_cores()  # as `jax-lstm train` runs: one host device per core, before JAX starts

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from benchmarks.archive import DATASETS, dataset_files  # noqa: E402
from benchmarks.harness import LoadMonitor  # noqa: E402
from jax_lstm import data, reporting, training  # noqa: E402
from jax_lstm.training import loop  # noqa: E402


def measure(model: str, dataset: data.Dataset, batch_sizes: list[int], rounds: int) -> dict[str, Any]:
    """{batch size: its steps per epoch, warm-up seconds and per-round training and evaluation
    seconds}, the rounds interleaved across the batch sizes."""
    runs, states, schedules, epochs, out = {}, {}, {}, {}, {}
    for size in batch_sizes:
        config = training.resolve_config(model, dataset, batch_size=size, log_every=0)
        runs[size] = run = loop.Run.build(config, dataset)
        states[size] = run.initial_state()
        schedules[size] = [run.scheduler.init(config.lr) for _ in run.configs]
        epochs[size] = 0
        out[size] = {
            "steps": math.ceil(len(dataset.y_train) / size),
            "train_s": [],
            "eval_s": [],
            "others": [],
        }

    def one_epoch(size: int) -> tuple[float, float, float]:
        monitor = LoadMonitor()
        load = monitor.start()
        start = time.perf_counter()
        done = loop.train_epoch(runs[size], states[size], schedules[size], epochs[size], log=None)
        total = time.perf_counter() - start
        states[size], schedules[size] = done.state, done.schedules
        epochs[size] += 1
        train = done.records[0].seconds
        return train, total - train, monitor.others(load)

    for size in batch_sizes:
        out[size]["warmup_s"] = sum(one_epoch(size)[:2])
        print(f"batch {size}: warm-up epoch {out[size]['warmup_s']:.1f} s (compilation included)", flush=True)
    for r in range(rounds):
        for size in batch_sizes if r % 2 == 0 else batch_sizes[::-1]:
            train, evaluation, others = one_epoch(size)
            for key, value in (("train_s", train), ("eval_s", evaluation), ("others", others)):
                out[size][key].append(value)
            print(
                f"round {r + 1}, batch {size}: train {train:.2f} s, evaluation {evaluation:.2f} s", flush=True
            )
    return {str(size): row for size, row in out.items()}


def markdown(model: str, dataset: data.Dataset, results: dict[str, Any]) -> str:
    def stat(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} ({min(values):.2f})"

    lines = [
        f"**{model} on {dataset.describe()}**",
        "",
        "| batch | updates an epoch | training, s (min) | test evaluation, s (min) | per update, ms "
        "| warm-up epoch, s | others' CPU share, max |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, row in results.items():
        per_update = 1000 * statistics.median(row["train_s"]) / row["steps"]
        lines.append(
            f"| {size} | {row['steps']} | {stat(row['train_s'])} | {stat(row['eval_s'])} | {per_update:.0f} "
            f"| {row['warmup_s']:.1f} | {max(row['others']):.0%} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="lstm-fcn")
    parser.add_argument("--dataset", default="ACSF1", choices=DATASETS)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 10, 8])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-dir", default="../shared/data", help="the folder holding ucr/ and uea/")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    if args.rounds < 1 or min(args.batch_sizes) < 1:
        parser.error("--rounds and every --batch-sizes value must be at least 1")
    train_file, test_file = dataset_files(args.dataset, Path(args.data_dir))
    dataset = data.from_ts_files(train_file, test_file)
    env = reporting.environment()
    print(f"{args.model} on {dataset.describe()} | {env}", flush=True)
    results = measure(args.model, dataset, args.batch_sizes, args.rounds)
    table = markdown(args.model, dataset, results)
    print(table)
    payload = {
        "model": args.model,
        "dataset": args.dataset,
        "results": results,
        "environment": env,
        "markdown": table,
    }
    path = reporting.write_json(Path(args.out) / "epoch_cost.json", payload)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
