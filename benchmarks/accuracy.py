"""Test accuracy over seeds for every classifier with `jax-lstm train`'s default flags, on the embedded
JapaneseVowels and (given its files) OSULeaf; the torch reference beside the article's LSTM.

    python -m benchmarks.accuracy [--seeds 5] [--models lstm mlstm-fcn ...]
        [--datasets japanese-vowels osuleaf] [--osuleaf-dir ../shared/data/ucr]
        [--out benchmarks/results/accuracy.json]

Each run is exactly ``jax-lstm train --model M --seed S`` on the dataset (the model's default recipe,
no validation split): the reported accuracy is the last epoch's, never one chosen on the test split.
The torch reference (`--torch-models`, default: lstm) trains its twin with torch's own
initialisation from the same seed on the same batches. Results are written after every run, so an
interrupted benchmark keeps what it measured. Published figures are printed beside ours, with how
they were obtained.
"""

from __future__ import annotations

from jax_lstm.runtime import use_all_cores

use_all_cores()  # as `jax-lstm train` runs: one host device per core, before JAX starts

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from jax_lstm import data, reporting, training  # noqa: E402
from jax_lstm.cli import build_parser  # noqa: E402
from jax_lstm.experiment import flags as run_flags  # noqa: E402
from jax_lstm.models import registry  # noqa: E402

# Published test accuracies (none measured here). The LSTM-FCN papers' reference code keeps the
# epoch that scores best on the test split, so their figures are upper bounds for a last-epoch one.
PUBLISHED = {
    "japanese-vowels": [
        (
            "LSTM, PyTorch, reference figure quoted in the project's issue: mean of 5 seeds",
            "96.6% (96.2-97.8)",
        ),
        (
            "LSTM-FCN (Karim et al. 2019, as the project's issue quotes it; epoch chosen on the test split)",
            "99%",
        ),
        ("MLSTM-FCN (Karim et al. 2019, same)", "100%"),
        ("FCN (as the project's issue quotes it)", "99.3%"),
        ("ResNet (as the project's issue quotes it)", "99.2%"),
    ],
    "osuleaf": [
        (
            "fine-tuned FCNs (Fawaz et al., IJCNN 2019, companion repository's table; as published)",
            "97.5%",
        ),
        ("ResNets (same source)", "98.3%"),
        ("NNE, their ensemble of networks (same source)", "98.8%"),
    ],
}
DATASETS = ("japanese-vowels", "osuleaf")


def load(name: str, osuleaf_dir: str) -> tuple[data.Dataset, list[str]]:
    """The dataset and the `jax-lstm train` flags that select it."""
    if name == "japanese-vowels":
        return data.japanese_vowels(), []
    folder = Path(osuleaf_dir)
    train, test = folder / "OSULeaf_TRAIN.ts.gz", folder / "OSULeaf_TEST.ts.gz"
    if not train.exists():
        train, test = folder / "OSULeaf_TRAIN.ts", folder / "OSULeaf_TEST.ts"
    flags = ["--data", str(train), "--test-data", str(test)]
    return data.from_ts_files(train, test), flags


def default_config(model: str, seed: int, flags: list[str], dataset: data.Dataset) -> training.TrainConfig:
    """`jax-lstm train --model M --seed S <flags>`'s config: the model's recipe, nothing tuned here."""
    args = build_parser().parse_args(["train", "--model", model, "--seed", str(seed), "--quiet", *flags])
    request = run_flags.train_request(args)
    return training.resolve_config(model, dataset, **request.given_settings())


def run(args: argparse.Namespace) -> dict:
    result: dict = {"environment": reporting.environment(), "datasets": {}}
    for name in args.datasets:
        dataset, flags = load(name, args.osuleaf_dir)
        entry = result["datasets"].setdefault(name, {"dataset": dataset.describe(), "models": {}})
        for model in args.models:
            sides = ["jax"] + (["torch"] if model in args.torch_models else [])
            rows = entry["models"].setdefault(model, {side: [] for side in sides})
            for seed in range(args.seeds):
                config = default_config(model, seed, flags, dataset)
                rows["config"] = {k: v for k, v in vars(config).items() if k not in ("seed", "log_every")}
                start = time.perf_counter()
                accuracy = training.fit(config, dataset, log=None).test_accuracy
                seconds = time.perf_counter() - start
                rows["jax"].append({"seed": seed, "test_accuracy": accuracy, "seconds": seconds})
                print(
                    f"{name} {model} jax   seed {seed}: {100 * accuracy:.2f}% in {seconds:.1f} s", flush=True
                )
                if "torch" in sides:
                    from torch_ref.train import train_torch

                    start = time.perf_counter()
                    accuracy = train_torch(config, dataset, log=None).test_accuracy
                    seconds = time.perf_counter() - start
                    rows["torch"].append({"seed": seed, "test_accuracy": accuracy, "seconds": seconds})
                    print(
                        f"{name} {model} torch seed {seed}: {100 * accuracy:.2f}% in {seconds:.1f} s",
                        flush=True,
                    )
                result["markdown"] = markdown(result)
                reporting.write_json(args.out, result)
    return result


def summary(runs: list[dict]) -> str:
    accs = [100 * r["test_accuracy"] for r in runs]
    secs = [r["seconds"] for r in runs]
    return f"{statistics.mean(accs):.1f}% ({min(accs):.1f}-{max(accs):.1f}) | {statistics.median(secs):.0f} s"


def markdown(result: dict) -> str:
    lines = []
    for name, entry in result["datasets"].items():
        lines += [
            f"**{entry['dataset']}**",
            "",
            "| model | test accuracy, mean of seeds (range) | time per run, 2 CPU cores (median) |",
            "|---|---|---|",
        ]
        for model, rows in entry["models"].items():
            twin = registry.get(model).torch_class_name
            if rows["jax"]:
                n = len(rows["jax"])
                lines.append(f"| {model} (jax_lstm, default flags, {n} seeds) | {summary(rows['jax'])} |")
            if rows.get("torch"):
                n = len(rows["torch"])
                lines.append(
                    f"| {model} (torch_ref.{twin}, same flags and batches, {n} seeds) | "
                    f"{summary(rows['torch'])} |"
                )
        lines += [f"| {label} | {acc} | |" for label, acc in PUBLISHED.get(name, [])]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=list(registry.names("classification")))
    parser.add_argument("--torch-models", nargs="*", default=["lstm"], help="also train these torch twins")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--osuleaf-dir", default="../shared/data/ucr", help="holds OSULeaf_TRAIN.ts(.gz)")
    parser.add_argument("--out", default="benchmarks/results/accuracy.json")
    args = parser.parse_args()
    unknown = sorted(set(args.models) - set(registry.names("classification")))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {registry.names('classification')}")
    result = run(args)
    print(result.get("markdown", ""))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
