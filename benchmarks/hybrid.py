"""The article's extensions against their torch twins, side by side in one process:

    python -m benchmarks.hybrid [--quick] [--osuleaf-dir ../shared/data/ucr] [--out benchmarks/results]

For LSTM-FCN, MLSTM-FCN and attention-LSTM with their default recipes, at the shapes of the embedded
JapaneseVowels (270 series of up to 29 steps, 12 channels) and of OSULeaf (200 series of 427 steps,
1 channel): one train step (forward, backward, Adam; batch as the recipe), interleaved, warm-up
excluded, compile time apart, medians and minima; then whole default runs (`jax-lstm train`'s
recipe, every epoch evaluated) of MLSTM-FCN on both sides, JAX's compile time estimated apart.
Writes ``hybrid.json`` and ``hybrid.md`` to --out. --quick: tiny shapes, a check that it runs.
"""

from __future__ import annotations

from jax_lstm.runtime import use_all_cores

use_all_cores()  # before JAX starts: one host device per core, as `jax-lstm train` runs

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.accuracy import default_config, load  # noqa: E402
from benchmarks.harness import measure, timed_fit  # noqa: E402
from jax_lstm import data, reporting, training  # noqa: E402
from jax_lstm.training import parallel  # noqa: E402
from torch_ref.train import torch_twin, train_torch  # noqa: E402

MODELS = ("lstm-fcn", "mlstm-fcn", "attention-lstm")


def _quick_dataset() -> data.Dataset:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 16, 3)).astype(np.float32)
    y = np.arange(24) % 3
    return data.Dataset("tiny", x[:16], y[:16], x[16:], y[16:], ("a", "b", "c"))


def step_pair(config: training.TrainConfig, dataset: data.Dataset) -> dict:
    """The JAX production train step and the torch twin's step, from the same weights, one batch."""
    variables = training.initial_variables(config, dataset.dims)
    rows = np.arange(min(config.batch_size, len(dataset.y_train)))
    x, y = dataset.x_train[rows], dataset.y_train[rows].astype(np.int32)
    lengths = None if dataset.lengths_train is None else dataset.lengths_train[rows].astype(np.int32)
    model = training.make_model(config, dataset.dims)
    mesh = training.mesh_for(None, config.batch_size)
    step = training.make_train_step(model, training.make_optimizer(config), mesh=mesh)
    state = training.create_train_state(config, dataset.dims, variables)
    key = step.key_for(len(rows))
    if mesh is not None:
        state = parallel.place(state, mesh, split=False)

    def jax_step() -> None:
        nonlocal state
        batch = parallel.place(training.Batch(x, y, lengths), step.mesh, split=key == parallel.SHARDED)
        state, metrics = step(key, state, batch)
        metrics["loss"].block_until_ready()

    twin = torch_twin(config, dataset, variables)
    twin.train()
    optimizer = torch.optim.Adam(twin.parameters(), lr=config.lr)
    criterion = torch.nn.CrossEntropyLoss()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    tl = None if lengths is None else torch.from_numpy(lengths.astype(np.int64))

    def torch_step() -> None:
        optimizer.zero_grad()
        loss = criterion(twin(tx, tl), ty)
        loss.backward()
        if config.clip is not None:
            torch.nn.utils.clip_grad_norm_(twin.parameters(), max_norm=config.clip)
        optimizer.step()

    return {"jax": jax_step, "torch": torch_step}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--osuleaf-dir", default="../shared/data/ucr")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    env = reporting.environment()
    threads = torch.get_num_threads()
    print(f"jax {env['jax']} on {env['jax_backend']}, torch {torch.__version__} ({threads} threads)")
    if args.quick:
        sets = {"tiny": (_quick_dataset(), [])}
    else:
        sets = {name: load(name, args.osuleaf_dir) for name in ("japanese-vowels", "osuleaf")}
    rounds = 2 if args.quick else args.rounds
    report: dict = {"environment": env, "steps": [], "runs": []}
    for name, (dataset, flags) in sets.items():
        for model in MODELS:
            config = default_config(model, 0, flags, dataset)
            if args.quick:
                config = dataclasses.replace(config, epochs=2, hidden_size=4)
            timings, compile_s = measure(step_pair(config, dataset), rounds)
            row = {
                "dataset": name,
                "model": model,
                "batch": config.batch_size,
                "jax": timings["jax"].as_dict(),
                "torch": timings["torch"].as_dict(),
                "jax_compile_s": compile_s["jax"],
            }
            report["steps"].append(row)
            ratio = row["torch"]["median_s"] / row["jax"]["median_s"]
            print(
                f"{name:16} {model:15} step: jax {1e3 * row['jax']['median_s']:.1f} ms "
                f"(min {1e3 * row['jax']['min_s']:.1f}), torch {1e3 * row['torch']['median_s']:.1f} ms "
                f"(min {1e3 * row['torch']['min_s']:.1f}): torch/jax {ratio:.2f}; "
                f"compile {compile_s['jax']:.1f} s",
                flush=True,
            )
        config = default_config("mlstm-fcn", 0, flags, dataset)
        if args.quick:
            config = dataclasses.replace(config, epochs=2, hidden_size=4)
        config = dataclasses.replace(config, log_every=0)
        jax_run = timed_fit(config, dataset, None)
        start = time.perf_counter()
        torch_result = train_torch(config, dataset, log=None)
        torch_seconds = time.perf_counter() - start
        run_row = {
            "dataset": name,
            "model": "mlstm-fcn",
            "epochs": config.epochs,
            "jax_s": jax_run["seconds"],
            "jax_compile_s": jax_run["compile_s"],
            "torch_s": torch_seconds,
            "torch_test_accuracy": torch_result.test_accuracy,
        }
        report["runs"].append(run_row)
        print(
            f"{name:16} mlstm-fcn whole run ({config.epochs} epochs): jax {jax_run['seconds']:.1f} s "
            f"(compile {jax_run['compile_s']:.1f} s), torch {torch_seconds:.1f} s",
            flush=True,
        )
        report["markdown"] = markdown(report)
        out = Path(args.out)
        reporting.write_json(out / ("hybrid_quick.json" if args.quick else "hybrid.json"), report)
    if not args.quick:
        (Path(args.out) / "hybrid.md").write_text(report["markdown"] + "\n")
    print(report["markdown"])
    return 0


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        f"Machine: {env.get('cpu', '?')}, {env.get('cpu_count', '?')} cores; jax {env['jax']}, torch "
        f"{env.get('torch', '?')}. Medians (minima) of interleaved rounds.",
        "",
        "| data | model | batch | train step, jax | train step, torch | torch / jax | jax compile |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["steps"]:
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['batch']} | {1e3 * r['jax']['median_s']:.1f} ms "
            f"({1e3 * r['jax']['min_s']:.1f}) | {1e3 * r['torch']['median_s']:.1f} ms "
            f"({1e3 * r['torch']['min_s']:.1f}) | {r['torch']['median_s'] / r['jax']['median_s']:.2f}x | "
            f"{r['jax_compile_s']:.1f} s |"
        )
    lines += ["", "| data | whole default run | epochs | jax (compile) | torch |", "|---|---|---|---|---|"]
    for r in report["runs"]:
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['epochs']} | {r['jax_s']:.0f} s "
            f"({r['jax_compile_s']:.0f} s) | {r['torch_s']:.0f} s |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
