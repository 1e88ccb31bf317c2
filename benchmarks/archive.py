"""The archive benchmark: every classifier of the registry (and ensembles of them) with its default
recipe on the development sets, several seeds, beside the best published results on the same split.

    python -m benchmarks.archive [--datasets JapaneseVowels Coffee Trace OSULeaf ACSF1]
        [--models lstm-fcn mlstm-fcn ...] [--seeds 5] [--ensemble 5 --ensemble-models lstm-fcn]
        [--data-dir ../shared/data] [--out benchmarks/results/archive.json] [--fresh] [--report]

Each run is exactly ``jax-lstm train --data TRAIN --test-data TEST --model M --seed S`` (with
``--ensemble K`` for an ensemble row): the model's default recipe, nothing tuned here, and the test
split chooses nothing (the reported epoch is the one the recipe's selection keeps: the last, or the
lowest training loss). The published figures (`benchmarks/published_archive.json`, each with its
source file and commit) are accuracies on the archive's default train/test split: the bake off
redux's (Middlehurst, Schäfer and Bagnall 2024, tsml-eval results files, resample 0 and the mean of
30 resamples) for MiniRocket, InceptionTime, ResNet and HC2; dl-4-tsc's FCN and ResNet (mean of 10
runs); LSTM-FCN's own results file (Karim et al.; its originally published figures chose the epoch on
the test split, so they are marked as such).

Results are written after every run (atomically), and a rerun skips the runs already there with the
same settings (``--fresh`` starts over), so an interrupted benchmark loses at most one run.
``--report`` only rewrites the table and the plot from the results file. Wall time per run includes
compilation; the load average at each run's start and end is stored beside it, since a busy machine
inflates the times (never the accuracies).
"""

from __future__ import annotations

from jax_lstm.runtime import use_all_cores

use_all_cores()  # as `jax-lstm train` runs: one host device per core, before JAX starts

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from jax_lstm import data, reporting, training  # noqa: E402
from jax_lstm.cli import build_parser  # noqa: E402
from jax_lstm.experiment import flags as run_flags  # noqa: E402
from jax_lstm.models import registry  # noqa: E402

DATASETS = ("JapaneseVowels", "Coffee", "Trace", "OSULeaf", "ACSF1")
# The published methods shown beside ours, in the table's order: (name in published_archive.json,
# the figure used, a short label).
PUBLISHED_COLUMNS = (
    ("MiniRocket", "default_split", "MiniRocket"),
    ("InceptionTime", "default_split", "InceptionTime (5 nets)"),
    ("ResNet", "default_split", "ResNet"),
    ("HC2", "default_split", "HC2"),
    ("FCN", "default_split_mean_of_10_runs", "FCN (dl-4-tsc, mean of 10)"),
    ("LSTM-FCN", "default_split", "LSTM-FCN (Karim et al.'s file)"),
)
PUBLISHED_FILE = Path(__file__).with_name("published_archive.json")


def dataset_files(name: str, data_dir: Path) -> tuple[Path, Path]:
    """The archive's TRAIN and TEST files of `name` under `data_dir` (its ``ucr/`` or ``uea/``)."""
    for sub in ("ucr", "uea"):
        for suffix in (".ts.gz", ".ts"):
            train = data_dir / sub / f"{name}_TRAIN{suffix}"
            if train.exists():
                return train, data_dir / sub / f"{name}_TEST{suffix}"
    raise SystemExit(
        f"no {name}_TRAIN.ts(.gz) under {data_dir}/ucr or {data_dir}/uea; pass --data-dir (the folder "
        "holding ucr/ and uea/, ../shared/data in the project's workspace)"
    )


def run_argv(model: str, seed: int, ensemble: int, train: Path, test: Path) -> list[str]:
    """The `jax-lstm train` command line of one run (the table's rows say exactly this)."""
    argv = ["train", "--data", str(train), "--test-data", str(test), "--model", model, "--seed", str(seed)]
    return argv + (["--ensemble", str(ensemble)] if ensemble > 1 else [])


def resolved_config(argv: list[str], dataset: data.Dataset) -> training.TrainConfig:
    """The config `jax-lstm train` resolves for `argv` (the model's recipe on this data)."""
    args = build_parser().parse_args([*argv, "--quiet"])
    request = run_flags.train_request(args)
    return training.resolve_config(args.model, dataset, **request.given_settings())


def row_key(model: str, ensemble: int) -> str:
    return model if ensemble <= 1 else f"{model} x{ensemble}"


def settings(config: training.TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in vars(config).items() if k not in ("seed", "log_every")}


def one_run(config: training.TrainConfig, dataset: data.Dataset) -> dict[str, Any]:
    """Trains `config` on `dataset` and returns what the table needs: the reported test accuracy,
    the epoch it comes from, wall seconds (compilation included) and the first epoch's seconds."""
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    result = training.fit(config, dataset, log=None)
    seconds = time.perf_counter() - start
    return {
        "seed": config.seed,
        "test_accuracy": float(result.test_accuracy),
        "reported_epoch": result.selected_epoch or len(result.history),
        "epochs": len(result.history),
        "seconds": seconds,
        "first_epoch_seconds": result.history[0].seconds,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg()[0],
        "members_test_accuracy": (
            None if not result.members else [float(m.test_accuracy) for m in result.members]
        ),
    }


def load_results(path: Path, fresh: bool) -> dict[str, Any]:
    if fresh or not path.exists():
        return {"datasets": {}}
    return json.loads(path.read_text())


def run(args: argparse.Namespace) -> dict[str, Any]:
    results = load_results(Path(args.out), args.fresh)
    rows = [(m, 1) for m in args.models] + [
        (m, args.ensemble) for m in args.ensemble_models if args.ensemble > 1
    ]
    total = len(args.datasets) * len(rows) * args.seeds
    done = 0
    for name in args.datasets:
        train_file, test_file = dataset_files(name, Path(args.data_dir))
        dataset = data.from_ts_files(train_file, test_file)
        entry = results["datasets"].setdefault(name, {"models": {}})
        entry["dataset"] = dataset.describe()
        for model, ensemble in rows:
            key = row_key(model, ensemble)
            for seed in range(args.seeds):
                done += 1
                argv = run_argv(model, seed, ensemble, train_file, test_file)
                config = resolved_config(argv, dataset)
                row = entry["models"].setdefault(key, {"runs": []})
                if row.get("settings") != settings(config):
                    row.update(settings=settings(config), runs=[])  # another recipe: measured anew
                row["command"] = "jax-lstm " + " ".join(run_argv(model, 0, ensemble, train_file, test_file))
                row["command"] = row["command"].replace(str(Path(args.data_dir)), "DATA")
                if any(r["seed"] == seed for r in row["runs"]):
                    continue
                print(f"[{done}/{total}] {name} {key} seed {seed}: {config.epochs} epochs ...", flush=True)
                measured = one_run(config, dataset)
                row["runs"].append(measured)
                print(
                    f"    {100 * measured['test_accuracy']:.2f}% (epoch {measured['reported_epoch']}) "
                    f"in {measured['seconds']:.0f} s (load {measured['load_average_start']:.1f})",
                    flush=True,
                )
                results["environment"] = reporting.environment()
                reporting.write_json(args.out, results)
    return results


# --- the table and the plot ------------------------------------------------------------------------


def published() -> dict[str, Any]:
    return json.loads(PUBLISHED_FILE.read_text())["datasets"]


def _figure(methods: dict[str, Any], method: str, field: str) -> float | None:
    value = methods.get(method, {}).get(field)
    return None if value is None else float(value)


def summary(runs: list[dict[str, Any]]) -> str:
    accs = [100 * r["test_accuracy"] for r in runs]
    if not accs:
        return "-"
    return f"{statistics.mean(accs):.1f} ({min(accs):.1f}-{max(accs):.1f}), n={len(accs)}"


def markdown(results: dict[str, Any]) -> str:
    """One table per dataset: our rows (mean, range, runs, median wall time) and the published ones."""
    marks = published()
    lines = []
    for name, entry in results["datasets"].items():
        lines += [
            f"**{entry.get('dataset', name)}**",
            "",
            "| model | test accuracy %, mean (range), seeds | wall time per run (median) | reported epoch |",
            "|---|---|---|---|",
        ]
        for key, row in entry["models"].items():
            runs = row["runs"]
            if not runs:
                continue
            secs = statistics.median(r["seconds"] for r in runs)
            epochs = sorted({r["reported_epoch"] for r in runs})
            shown = f"{epochs[0]}-{epochs[-1]}" if len(epochs) > 1 else str(epochs[0])
            selection = row["settings"].get("select", "last")
            lines.append(
                f"| {key} (ours, {row['settings']['epochs']} epochs of {row['settings']['batch_size']}, "
                f"{row['settings']['schedule']}, "
                f"select {selection}) | {summary(runs)} | {secs:.0f} s | {shown} of {runs[0]['epochs']} |"
            )
        methods = marks.get(name, {})
        for method, field, label in PUBLISHED_COLUMNS:
            value = _figure(methods, method, field)
            if value is None:
                continue
            resampled = _figure(methods, method, "resample_mean")
            extra = f"; 30 resamples: {100 * resampled:.1f}" if resampled is not None else ""
            note = (
                " (their file; the paper's own figures chose the epoch on the test split)"
                if method == "LSTM-FCN"
                else ""
            )
            lines.append(f"| {label}, published{note} | {100 * value:.1f}{extra} | | |")
        lines.append("")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> Path | None:
    """Per dataset, a dot per seed for each of our rows beside the published marks."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return None
    marks = published()
    names = [n for n, e in results["datasets"].items() if any(r["runs"] for r in e["models"].values())]
    if not names:
        return None
    # One colour per model across the panels (a dataset may lack some rows, e.g. an ensemble).
    keys = list(dict.fromkeys(k for n in names for k in results["datasets"][n]["models"]))
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        models = [(k, r) for k, r in results["datasets"][name]["models"].items() if r["runs"]]
        for i, (key, row) in enumerate(models):
            accs = [100 * r["test_accuracy"] for r in row["runs"]]
            colour = f"C{keys.index(key) % 10}"
            label = key if name == names[0] else None
            ax.plot([i] * len(accs), accs, "o", alpha=0.7, color=colour, label=label)
        # Methods with the same figure share one line and one label (on easy sets they all score 100).
        lines: dict[float, list[str]] = {}
        for method, field, label in PUBLISHED_COLUMNS:
            value = _figure(marks.get(name, {}), method, field)
            if value is not None and method != "LSTM-FCN":
                lines.setdefault(round(100 * value, 1), []).append(label.split(" ")[0])
        # Figures less than 1.5 points apart share one label (at the highest), so they stay legible.
        clusters: list[list[float]] = []
        for value in sorted(lines, reverse=True):
            ax.axhline(value, lw=0.8, ls="--", color="grey")
            if clusters and clusters[-1][-1] - value <= 1.5:
                clusters[-1].append(value)
            else:
                clusters.append([value])
        for cluster in clusters:
            many = len(cluster) > 1
            text = "; ".join(", ".join(lines[v]) + (f" {v:g}" if many else "") for v in cluster)
            ax.annotate(text, (len(models) + 0.45, cluster[0]), fontsize=6, va="bottom", ha="right")
        ax.set_xticks(range(len(models)), [k for k, _ in models], rotation=45, ha="right", fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlim(-0.5, len(models) + 0.5)
    axes[0][0].set_ylabel("test accuracy %")
    fig.suptitle("Test accuracy per seed (dots) against published results (dashed lines)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    classifiers = list(registry.names("classification"))
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--models", nargs="*", default=classifiers, help=f"of {classifiers}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--ensemble", type=int, default=5, help="members of the ensemble rows (1: none)")
    parser.add_argument("--ensemble-models", nargs="*", default=["lstm-fcn"])
    parser.add_argument("--data-dir", default="../shared/data", help="the folder holding ucr/ and uea/")
    parser.add_argument("--out", default="benchmarks/results/archive.json")
    parser.add_argument("--plot", default="benchmarks/results/archive.png")
    parser.add_argument("--fresh", action="store_true", help="forget the results file's runs")
    parser.add_argument("--report", action="store_true", help="only rewrite the table and the plot")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models) | set(args.ensemble_models) - set(classifiers))
    unknown = [m for m in unknown if m not in classifiers]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {classifiers}")
    if args.seeds < 1 or args.ensemble < 1:
        parser.error("--seeds and --ensemble must be at least 1")
    results = load_results(Path(args.out), False) if args.report else run(args)
    results["markdown"] = markdown(results)
    reporting.write_json(args.out, results)
    print(results["markdown"])
    picture = plot(results, Path(args.plot))
    print(f"written to {args.out}" + (f" and {picture}" if picture else ""))


if __name__ == "__main__":
    main()
