"""One FCN model against K trained at once, and both against torch:

    python -m benchmarks.kmodels [--quick] [--models lstm-fcn mlstm-fcn] [--seeds 5]
        [--datasets japanese-vowels osuleaf] [--osuleaf-dir ../shared/data/ucr] [--epochs N]
        [--rounds 7] [--no-runs] [--out benchmarks/results]

For each model and dataset (the embedded JapaneseVowels: batch 16 of up to 29 steps, 12 channels;
OSULeaf: batch 16 of 427 steps, 1 channel; ACSF1 with ``--datasets acsf1``: 1460 steps), with the
model's default recipe:

- **train step** (forward, backward, Adam) of K = 1 and K = `--seeds` models, JAX's production
  step (`make_train_step`, over the mesh `fit` or `fit_many` would choose) against torch stepping its
  K twins one after another, interleaved, warm-up excluded, JAX's compile time apart, medians and
  minima;
- **whole run** (every epoch evaluated) of K = 1 (`fit`) and K models (`fit_many`) against torch
  training its K twins one after another (`train_torch`), JAX's compile time estimated apart as
  `harness.timed_fit` does; each a single run, the order of the sides alternating. ``--epochs``
  shortens the recipe's runs (the compile time then weighs more in the ratio).

Without OSULeaf's or ACSF1's files the rows run on random data of that dataset's shape, and say so.
Writes ``kmodels.json`` and ``kmodels.md`` to --out. --quick: tiny shapes, a check that it runs.
"""

from __future__ import annotations

from jax_lstm.runtime import use_all_cores

use_all_cores()  # before JAX starts: one host device per core, as `jax-lstm train` runs

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.accuracy import default_config  # noqa: E402
from benchmarks.harness import measure, timed_fit  # noqa: E402
from jax_lstm import data, reporting, training  # noqa: E402
from jax_lstm.training import parallel  # noqa: E402
from torch_ref.train import torch_twin, train_torch  # noqa: E402

MODELS = ("lstm-fcn", "mlstm-fcn")
DATASETS = ("japanese-vowels", "osuleaf")
# (train series, test series, steps, channels, classes) of the UCR/UEA files, for random stand-ins.
SHAPES = {
    "osuleaf": (200, 242, 427, 1, 6),
    "acsf1": (100, 100, 1460, 1, 10),
    "tiny": (24, 8, 16, 3, 3),
}
_FILES = {"osuleaf": "OSULeaf", "acsf1": "ACSF1"}


def random_dataset(name: str, seed: int = 0) -> data.Dataset:
    """Random series of `name`'s shape (`SHAPES`), every class present."""
    n_train, n_test, steps, channels, classes = SHAPES[name]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_test, steps, channels)).astype(np.float32)
    y = np.arange(n_train + n_test) % classes
    labels = tuple(str(c) for c in range(classes))
    return data.Dataset(name, x[:n_train], y[:n_train], x[n_train:], y[n_train:], labels)


def load(name: str, folder: str) -> tuple[data.Dataset, list[str], bool]:
    """The dataset, the `jax-lstm train` flags that select it, and whether it is the real data."""
    if name == "japanese-vowels":
        return data.japanese_vowels(), [], True
    if name in _FILES:
        stem = Path(folder) / _FILES[name]
        for suffix in (".ts.gz", ".ts"):
            train, test = Path(f"{stem}_TRAIN{suffix}"), Path(f"{stem}_TEST{suffix}")
            if train.exists() and test.exists():
                return data.from_ts_files(train, test), ["--data", str(train), "--test-data", str(test)], True
    return random_dataset(name), [], False


def _batch_rows(dataset: data.Dataset, batch: int, k: int) -> np.ndarray:
    """Model k's rows: a batch of distinct training series (wrapping around)."""
    return (np.arange(batch) + k * batch) % len(dataset.y_train)


def jax_step(config: training.TrainConfig, dataset: data.Dataset, models: int) -> Callable[[], None]:
    """The production train step of `models` models at once (1: `fit`'s step, each on its own batch
    of `config.batch_size`), over the mesh the training loop would choose, batches placed per call."""
    net = training.make_model(config, dataset.dims)
    many = models > 1
    mesh = training.mesh_for(None, config.batch_size, models=models if many else None)
    step = training.make_train_step(net, training.make_optimizer(config), many=many, mesh=mesh)
    configs = [dataclasses.replace(config, seed=config.seed + k) for k in range(models)]
    states = [training.create_train_state(c, dataset.dims) for c in configs]
    rows = [_batch_rows(dataset, config.batch_size, k) for k in range(models)]
    lengths = dataset.lengths_train

    def host_batch(index):
        return training.Batch(
            dataset.x_train[index],
            dataset.y_train[index].astype(np.int32),
            None if lengths is None else lengths[index].astype(np.int32),
        )

    if many:
        state = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
        batch = host_batch(np.stack(rows))
        key = parallel.SHARDED if step.mesh is not None else parallel.SINGLE
        split = step.mesh is not None
        if step.mesh is not None:
            state = parallel.place(state, step.mesh, split=True)
    else:
        state, batch = states[0], host_batch(rows[0])
        key = step.key_for(len(rows[0]))
        split = key == parallel.SHARDED
        if step.mesh is not None:
            state = parallel.place(state, step.mesh, split=False)

    def run() -> None:
        nonlocal state
        state, metrics = step(key, state, parallel.place(batch, step.mesh, split=split))
        metrics["loss"].block_until_ready()

    return run


def torch_steps(
    config: training.TrainConfig, dataset: data.Dataset, models: int, device: str = "cpu"
) -> Callable[[], None]:
    """`models` torch twins, each stepped once on its own batch, one after another."""
    criterion = torch.nn.CrossEntropyLoss()
    twins = []
    for k in range(models):
        c = dataclasses.replace(config, seed=config.seed + k)
        twin = torch_twin(c, dataset, training.initial_variables(c, dataset.dims))
        twin = twin.to(device).train()
        index = _batch_rows(dataset, config.batch_size, k)
        lengths = dataset.lengths_train
        inputs = (
            torch.from_numpy(dataset.x_train[index]).to(device),
            None if lengths is None else torch.from_numpy(lengths[index].astype(np.int64)).to(device),
        )
        labels = torch.from_numpy(dataset.y_train[index].astype(np.int64)).to(device)
        twins.append((twin, torch.optim.Adam(twin.parameters(), lr=config.lr), inputs, labels))
    sync = (lambda: torch.cuda.synchronize(device)) if device.startswith("cuda") else (lambda: None)

    def run() -> None:
        for twin, optimizer, (x, lengths), labels in twins:
            optimizer.zero_grad()
            loss = criterion(twin(x, lengths), labels)
            loss.backward()
            if config.clip is not None:
                torch.nn.utils.clip_grad_norm_(twin.parameters(), max_norm=config.clip)
            optimizer.step()
        sync()

    return run


def timed_fit_many(config: training.TrainConfig, dataset: data.Dataset, seeds: list[int]) -> dict[str, float]:
    """`fit_many` timed as `harness.timed_fit` times `fit`: total seconds and a compile estimate
    (the total minus epochs x the median later epoch, each epoch timed between its log calls)."""
    marks: list[float] = []
    start = time.perf_counter()
    training.fit_many(config, dataset, seeds, log=lambda _line: marks.append(time.perf_counter()))
    seconds = time.perf_counter() - start
    if len(marks) != config.epochs:
        raise RuntimeError(f"expected one log call per epoch ({config.epochs}), got {len(marks)}")
    epochs = [b - a for a, b in zip([start, *marks[:-1]], marks, strict=True)]
    later = statistics.median(epochs[1:]) if len(epochs) > 1 else 0.0
    return {"seconds": seconds, "compile_s": max(0.0, seconds - config.epochs * later)}


def whole_runs(config: training.TrainConfig, dataset: data.Dataset, models: int, torch_first: bool) -> dict:
    """One JAX run of `models` models (`fit` for 1, `fit_many` else) and torch's `models` runs one
    after another, in the order `torch_first` says."""
    seeds = [config.seed + k for k in range(models)]

    def jax_side() -> dict[str, float]:
        if models == 1:
            return timed_fit(config, dataset, None)
        return timed_fit_many(config, dataset, seeds)

    def torch_side() -> float:
        start = time.perf_counter()
        for seed in seeds:
            train_torch(dataclasses.replace(config, seed=seed), dataset, log=None)
        return time.perf_counter() - start

    if torch_first:
        torch_s = torch_side()
        jax_run = jax_side()
    else:
        jax_run = jax_side()
        torch_s = torch_side()
    return {"jax_s": jax_run["seconds"], "jax_compile_s": jax_run["compile_s"], "torch_s": torch_s}


def step_rows(
    model: str,
    name: str,
    config: training.TrainConfig,
    dataset: data.Dataset,
    ks: list[int],
    rounds: int,
    device: str = "cpu",
) -> list[dict]:
    """The train-step rows of one model and dataset, K in `ks` (torch's twins on `device`)."""
    rows = []
    for k in ks:
        timings, compile_s = measure(
            {"jax": jax_step(config, dataset, k), "torch": torch_steps(config, dataset, k, device)}, rounds
        )
        row = {
            "dataset": name,
            "model": model,
            "models": k,
            "batch": config.batch_size,
            "jax": timings["jax"].as_dict(),
            "torch": timings["torch"].as_dict(),
            "jax_compile_s": compile_s["jax"],
        }
        rows.append(row)
        print(
            f"{name:16} {model:10} K={k} step: jax {1e3 * row['jax']['median_s']:.1f} ms "
            f"(min {1e3 * row['jax']['min_s']:.1f}), torch {1e3 * row['torch']['median_s']:.1f} ms "
            f"(min {1e3 * row['torch']['min_s']:.1f}): torch/jax "
            f"{row['torch']['median_s'] / row['jax']['median_s']:.2f}; compile {compile_s['jax']:.1f} s",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kmodels", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 2 rounds, 2 epochs")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=(*DATASETS, "acsf1"))
    parser.add_argument("--seeds", type=int, default=5, help="K, the models trained at once")
    parser.add_argument("--osuleaf-dir", default="../shared/data/ucr", help="OSULeaf's and ACSF1's files")
    parser.add_argument("--epochs", type=int, default=None, help="whole runs: epochs (default: the recipe's)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-runs", action="store_true", help="train steps only")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error(f"--seeds must be at least 2 (K models against one), got {args.seeds}")
    env = reporting.environment()
    print(
        f"{env['cpu']} ({env['cpu_count']} cores), jax {env['jax']} on {len(jax.devices())} "
        f"{jax.default_backend()} devices, torch {torch.__version__} ({torch.get_num_threads()} threads)",
        flush=True,
    )
    rounds = 2 if args.quick else args.rounds
    report: dict = {"environment": env, "mode": "quick" if args.quick else "full", "steps": [], "runs": []}
    report["datasets"] = {}
    json_path = Path(args.out) / ("kmodels_quick.json" if args.quick else "kmodels.json")
    for name in ["tiny"] if args.quick else args.datasets:
        if args.quick:
            dataset, flags, real = random_dataset("tiny"), [], False
        else:
            dataset, flags, real = load(name, args.osuleaf_dir)
        report["datasets"][name] = {"real": real, "describe": dataset.describe()}
        for model in args.models:
            config = default_config(model, 0, flags, dataset)
            if args.quick:
                config = dataclasses.replace(config, epochs=2, hidden_size=4)
            elif args.epochs is not None:
                config = dataclasses.replace(config, epochs=args.epochs)
            config = dataclasses.replace(config, log_every=0)
            report["steps"] += step_rows(model, name, config, dataset, [1, args.seeds], rounds)
            if args.no_runs:
                continue
            for k in (1, args.seeds):
                run = {"dataset": name, "model": model, "models": k, "epochs": config.epochs}
                run.update(whole_runs(config, dataset, k, torch_first=len(report["runs"]) % 2 == 1))
                report["runs"].append(run)
                print(
                    f"{name:16} {model:10} K={k} whole run ({config.epochs} epochs): jax "
                    f"{run['jax_s']:.1f} s (compile {run['jax_compile_s']:.1f} s), "
                    f"torch {run['torch_s']:.1f} s",
                    flush=True,
                )
            report["markdown"] = markdown(report)
            reporting.write_json(json_path, report)  # after every model: an interrupted run keeps them
    report["markdown"] = markdown(report)
    reporting.write_json(json_path, report)
    if not args.quick:
        (Path(args.out) / "kmodels.md").write_text(report["markdown"] + "\n")
    print(report["markdown"])
    return 0


def _ms(timing: dict) -> str:
    return f"{1e3 * timing['median_s']:.1f} ms ({1e3 * timing['min_s']:.1f})"


def markdown(report: dict) -> str:
    env = report["environment"]
    stand_ins = [name for name, d in report["datasets"].items() if not d["real"]]
    lines = [
        f"Machine: {env.get('cpu', '?')}, {env.get('cpu_count', '?')} cores, {len(env['jax_devices'])} "
        f"JAX devices; jax {env['jax']}, torch {env.get('torch', '?')} "
        f"({env.get('torch_threads', '?')} threads). "
        "Medians (minima) of interleaved rounds; torch steps or trains its K twins one after another."
        + (f" Random data of the real shapes: {', '.join(stand_ins)}." if stand_ins else ""),
        "",
        "| data | model | K | train step, jax | train step, torch | torch / jax | jax K / jax 1 "
        "| jax compile |",
        "|---|---|---|---|---|---|---|---|",
    ]
    single = {(r["dataset"], r["model"]): r for r in report["steps"] if r["models"] == 1}
    for r in report["steps"]:
        one = single.get((r["dataset"], r["model"]))
        per_one = r["jax"]["median_s"] / one["jax"]["median_s"] if one else float("nan")
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['models']} | {_ms(r['jax'])} | {_ms(r['torch'])} | "
            f"{r['torch']['median_s'] / r['jax']['median_s']:.2f}x | {per_one:.2f} | "
            f"{r['jax_compile_s']:.1f} s |"
        )
    if report["runs"]:
        lines += [
            "",
            "| data | model | K | epochs | whole run, jax (compile) | torch | torch / jax | jax K / jax 1 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        single_runs = {(r["dataset"], r["model"]): r for r in report["runs"] if r["models"] == 1}
        for r in report["runs"]:
            one = single_runs.get((r["dataset"], r["model"]))
            per_one = r["jax_s"] / one["jax_s"] if one else float("nan")
            lines.append(
                f"| {r['dataset']} | {r['model']} | {r['models']} | {r['epochs']} | {r['jax_s']:.1f} s "
                f"({r['jax_compile_s']:.1f} s) | {r['torch_s']:.1f} s | {r['torch_s'] / r['jax_s']:.2f}x | "
                f"{per_one:.2f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
