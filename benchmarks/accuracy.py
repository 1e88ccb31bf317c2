"""Test accuracy on JapaneseVowels over several seeds: jax_lstm and the torch reference, default flags.

    python -m benchmarks.accuracy [--seeds 5] [--out benchmarks/results/accuracy.json]

Each seed trains `jax-lstm train`'s default configuration (the article's LSTM classifier: hidden 128,
2 layers, Adam 1e-3, clip 1.0, ReduceLROnPlateau(patience=2); batch 16, 30 epochs) on the embedded UEA
split, then the torch reference with torch's own initialisation from the same seed and the same
batches. Prints a Markdown table with reference figures (not measured here) and writes JSON,
including the epochs and batch size the runs used.
"""

from __future__ import annotations

from jax_lstm.runtime import use_all_cores

use_all_cores()  # as `jax-lstm train` runs: one host device per core, before JAX starts

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from jax_lstm import data, reporting, training  # noqa: E402
from jax_lstm.cli.args import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS  # noqa: E402

# Reference figures on the standard JapaneseVowels split (test accuracy), none measured here: the
# PyTorch LSTM figure as the project's issue quotes it, the others from the cited papers.
PUBLISHED = [
    (
        "LSTM, PyTorch, reference figure quoted in the project's issue (not measured here): mean of 5 seeds",
        "96.6% (96.2-97.8)",
    ),
    ("FCN (Fawaz et al. 2019)", "99.3%"),
    ("ResNet (Fawaz et al. 2019)", "99.2%"),
    ("MLSTM-FCN (Karim et al. 2019)", "100%"),
]


def run(
    seeds: int, with_torch: bool = True, epochs: int | None = None, batch_size: int | None = None
) -> dict:
    """Trains seeds 0..seeds-1 on each side; `epochs`/`batch_size` default to `jax-lstm train`'s."""
    dataset = data.japanese_vowels()
    rows: dict[str, list[dict]] = {"jax": [], "torch": []}
    epochs = epochs or DEFAULT_EPOCHS["japanese-vowels"]
    batch_size = batch_size or DEFAULT_BATCH_SIZE["japanese-vowels"]
    for seed in range(seeds):
        config = training.TrainConfig(seed=seed, epochs=epochs, batch_size=batch_size, log_every=0)
        start = time.perf_counter()
        result = training.fit(config, dataset, log=None)
        seconds = time.perf_counter() - start
        rows["jax"].append({"seed": seed, "test_accuracy": result.test_accuracy, "seconds": seconds})
        print(f"jax   seed {seed}: {100 * result.test_accuracy:.2f}% in {seconds:.1f} s", flush=True)
        if with_torch:
            from torch_ref.train import train_torch

            start = time.perf_counter()
            torch_result = train_torch(config, dataset, log=None)
            seconds = time.perf_counter() - start
            rows["torch"].append(
                {"seed": seed, "test_accuracy": torch_result.test_accuracy, "seconds": seconds}
            )
            print(
                f"torch seed {seed}: {100 * torch_result.test_accuracy:.2f}% in {seconds:.1f} s", flush=True
            )
    return {
        "dataset": dataset.describe(),
        "environment": reporting.environment(),
        "epochs": epochs,
        "batch_size": batch_size,
        "runs": rows,
    }


def summary(runs: list[dict]) -> str:
    accs = [100 * r["test_accuracy"] for r in runs]
    secs = [r["seconds"] for r in runs]
    return f"{statistics.mean(accs):.1f}% ({min(accs):.1f}-{max(accs):.1f}) | {statistics.median(secs):.1f} s"


def markdown(result: dict) -> str:
    runs = result["runs"]
    n = len(runs["jax"])
    defaults = {
        "epochs": DEFAULT_EPOCHS["japanese-vowels"],
        "batch_size": DEFAULT_BATCH_SIZE["japanese-vowels"],
    }
    overrides = [
        f"--{k.replace('_', '-')} {result[k]}" for k in defaults if result.get(k, defaults[k]) != defaults[k]
    ]
    flags = "`jax-lstm train` defaults" + (f" except {' '.join(overrides)}" if overrides else "")
    lines = [
        "| model | test accuracy, mean of seeds (range) | training time per run (median) |",
        "|---|---|---|",
        f"| jax_lstm.LSTMClassifier, {flags} ({n} seeds) | {summary(runs['jax'])} |",
    ]
    if runs["torch"]:
        lines.append(
            f"| torch_ref.MultiDimLSTM, same flags and batches ({n} seeds) | {summary(runs['torch'])} |"
        )
    lines += [f"| {name} | {acc} | |" for name, acc in PUBLISHED]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--epochs", type=int, default=None, help="default: jax-lstm train's (30)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: jax-lstm train's (16)")
    parser.add_argument("--out", default="benchmarks/results/accuracy.json")
    args = parser.parse_args()
    result = run(args.seeds, not args.no_torch, args.epochs, args.batch_size)
    table = markdown(result)
    result["markdown"] = table
    reporting.write_json(args.out, result)
    print(table)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
