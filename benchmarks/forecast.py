"""The default ``jax-lstm forecast`` over several seeds: the LSTM's test MASE beside the baselines'.

    python -m benchmarks.forecast [--seeds 5] [--out benchmarks/results/forecast.json]

Each seed is one fresh ``jax-lstm forecast --no-compile-cache`` process, timed from start to exit
(imports, compilation, training, baselines and evaluation included), so a time is what a user
waits for one default run. The first seed also draws the plot (benchmarks/results/forecast.png).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from jax_lstm.atomic import write_atomically

RESULTS = Path(__file__).resolve().parent / "results"


def run_seed(seed: int, workdir: Path, plot: Path | None) -> tuple[dict, float]:
    metrics = workdir / f"seed{seed}.json"
    command = [sys.executable, "-m", "jax_lstm.cli", "forecast", "--quiet", "--no-compile-cache"]
    command += ["--seed", str(seed), "--metrics-json", str(metrics)]
    if plot is not None:
        command += ["--plot", str(plot)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads(metrics.read_text()), time.perf_counter() - start


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "forecast.json")
    parser.add_argument("--plot", type=Path, default=RESULTS / "forecast.png")
    args = parser.parse_args(argv)
    runs = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            payload, seconds = run_seed(seed, Path(tmp), args.plot if seed == 0 else None)
            runs.append((seed, payload, seconds))
            print(f"seed {seed}: MASE {payload['mase']:.4f}, {seconds:.1f} s", flush=True)
    first = runs[0][1]
    baselines = {
        name: {k: b[k] for k in ("mae", "rmse", "mase", "note")} if "mase" in b else b
        for name, b in first["baselines"].items()
    }
    mase = [p["mase"] for _, p, _ in runs]
    best = min((b["mase"], name) for name, b in baselines.items() if "mase" in b)
    result = {
        "command": "jax-lstm forecast --seed S (defaults; fresh process, no compile cache)",
        "dataset": first["dataset"],
        "lookback": first["lookback"],
        "horizon": first["horizon"],
        "test_origins": first["test_origins"],
        "config": {
            k: first["config"][k] for k in ("hidden_size", "num_layers", "epochs", "batch_size", "lr")
        },
        "environment": first["environment"],
        "seeds": [
            {
                "seed": seed,
                "mase": p["mase"],
                "mae": p["mae"],
                "rmse": p["rmse"],
                "final_validation_mse": p["epochs"][-1]["validation_loss"],
                "seconds": seconds,
            }
            for seed, p, seconds in runs
        ],
        "lstm": {metric: summary([p[metric] for _, p, _ in runs]) for metric in ("mase", "mae", "rmse")},
        "seconds_per_run": summary([s for _, _, s in runs]),
        # A shared machine's other work slows every run: the 1-minute load average before and after.
        "load_average": [load_before, os.getloadavg()[0]],
        "baselines": baselines,
        "best_baseline": best[1],
        "lstm_beats_best_baseline_in": sum(m < best[0] for m in mase),
    }
    write_atomically(args.out, (json.dumps(result, indent=2) + "\n").encode())
    print(
        f"LSTM MASE mean {result['lstm']['mase']['mean']:.4f} (range {min(mase):.4f}-{max(mase):.4f}) over "
        f"{len(mase)} seeds; best baseline {best[1]} {best[0]:.4f}; written to {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
