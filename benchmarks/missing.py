"""Missing values, measured: a dev set with a share of its values removed at random, filled back by
``--fill``, against the same run on the complete files.

    python -m benchmarks.missing [--dataset Trace] [--model lstm-fcn] [--fractions 0 0.1 0.3]
                                 [--fills interpolate ffill] [--seeds 1] [--data-dir ../shared/data]
                                 [--out benchmarks/results/missing.json]

Each fraction f removes f of the values of both files (each value independently, missing completely
at random, the draw fixed by f), writes them as ``?`` into a copy of the files, and trains the
model's default recipe on the copy as `jax-lstm train --data COPY_TRAIN.ts --test-data COPY_TEST.ts
--fill F` does (`jax_lstm.data.from_ts_files`, then the run the CLI resolves). Fraction 0 is the
complete files. The test accuracy of the reported epoch, the values removed and the wall time per
run, with the machine and versions, go to ``missing.json``.
"""

from __future__ import annotations

from jax_lstm.runtime import use_all_cores

use_all_cores()  # as `jax-lstm train` runs: one host device per core, before JAX starts

import argparse  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.archive import DATASETS, dataset_files, one_run, resolved_config, run_argv  # noqa: E402
from jax_lstm import data, reporting  # noqa: E402


def remove_values(ts: data.TsData, fraction: float, rng: np.random.Generator) -> tuple[str, int]:
    """`ts` as .ts text with each value replaced by ``?`` with probability `fraction`; and how many
    were. Values are written by repr, so the kept ones are read back exactly."""
    labels = " ".join(ts.class_labels or sorted(set(ts.labels or [])))
    lines = [f"@problemName {ts.problem_name}", f"@dimensions {ts.series[0].shape[1]}"]
    lines += [f"@classLabel true {labels}", "@data"]
    removed = 0
    for x, label in zip(ts.series, ts.labels or [], strict=True):
        drop = rng.random(x.shape) < fraction
        removed += int(drop.sum())
        channels = [
            ",".join("?" if d else repr(float(v)) for v, d in zip(x[:, c], drop[:, c], strict=True))
            for c in range(x.shape[1])
        ]
        lines.append(":".join([*channels, label]))
    return "\n".join(lines) + "\n", removed


def run(args: argparse.Namespace) -> dict[str, Any]:
    train_file, test_file = dataset_files(args.dataset, Path(args.data_dir))
    train_ts, test_ts = data.load_ts(train_file), data.load_ts(test_file)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fraction in args.fractions:
            rng = np.random.default_rng(round(fraction * 1e6))
            train_path, test_path = train_file, test_file
            removed = 0
            if fraction > 0:
                train_path, test_path = Path(tmp) / "gaps_TRAIN.ts", Path(tmp) / "gaps_TEST.ts"
                for ts, path in ((train_ts, train_path), (test_ts, test_path)):
                    text, n = remove_values(ts, fraction, rng)
                    path.write_text(text)
                    removed += n
            for fill in args.fills if fraction > 0 else [args.fills[0]]:
                dataset = data.from_ts_files(train_path, test_path, fill=fill)
                for seed in range(args.seeds):
                    argv = run_argv(args.model, seed, 1, train_path, test_path)
                    config = resolved_config(argv, dataset)
                    what = f"{args.dataset} {args.model} {fraction:.0%} missing, {fill}, seed {seed}"
                    print(f"{what}: {config.epochs} epochs ...", flush=True)
                    measured = one_run(config, dataset)
                    measured.update(fraction=fraction, fill=fill if fraction > 0 else None, removed=removed)
                    measured["notes"] = list(dataset.notes)
                    rows.append(measured)
                    print(
                        f"    {100 * measured['test_accuracy']:.2f}% (epoch {measured['reported_epoch']}) "
                        f"in {measured['seconds']:.0f} s",
                        flush=True,
                    )
    return {
        "dataset": args.dataset,
        "model": args.model,
        "command": "python -m benchmarks.missing " + " ".join(_flags(args)),
        "runs": rows,
        "environment": reporting.environment(),
    }


def _flags(args: argparse.Namespace) -> list[str]:
    return [
        "--dataset", args.dataset, "--model", args.model, "--seeds", str(args.seeds),
        "--fractions", *map(str, args.fractions), "--fills", *args.fills,
    ]  # fmt: skip


def markdown(results: dict[str, Any]) -> str:
    """The table: fraction, fill, test accuracy (mean and range over the seeds), wall time."""
    out = [
        f"{results['dataset']}, {results['model']} (`{results['command']}`)",
        "",
        "| values missing | fill | test accuracy %, mean (range) | wall time per run |",
        "|---|---|---|---|",
    ]
    groups: dict[tuple[float, str | None], list[dict[str, Any]]] = {}
    for r in results["runs"]:
        groups.setdefault((r["fraction"], r["fill"]), []).append(r)
    for (fraction, fill), runs in groups.items():
        accuracy = [100 * r["test_accuracy"] for r in runs]
        seconds = float(np.median([r["seconds"] for r in runs]))
        label = f"{fraction:.0%} ({runs[0]['removed']} values)" if fraction else "none (the complete files)"
        out.append(
            f"| {label} | {fill or '-'} | {np.mean(accuracy):.1f} ({min(accuracy):.1f}-{max(accuracy):.1f}), "
            f"n={len(runs)} | {seconds:.0f} s |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="Trace")
    parser.add_argument("--model", default="lstm-fcn")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.1, 0.3])
    fills = ["interpolate", "ffill"]
    parser.add_argument("--fills", nargs="+", choices=fills, default=fills)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--data-dir", default="../shared/data", help="the folder holding ucr/ and uea/")
    parser.add_argument("--out", default="benchmarks/results/missing.json")
    args = parser.parse_args(argv)
    if any(not 0 <= f < 1 for f in args.fractions):
        parser.error("--fractions must each be in [0, 1)")
    results = run(args)
    results["markdown"] = markdown(results)
    reporting.write_json(args.out, results)
    print(results["markdown"])
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
