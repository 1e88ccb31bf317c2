"""jax_lstm against PyTorch, side by side in one process: ``python -m benchmarks [--quick]``.

Measures train steps (forward, backward, clip, Adam), inference, the article's whole 10-epoch run
(compile time reported apart), sweeps over batch size and sequence length, and K models trained at
once (one program) against torch training them one after another. Writes JSON, a Markdown table and a
PNG plot of the speedups to --out (default benchmarks/results). --quick runs tiny shapes in seconds
(for CI: it checks that the suite runs, and asserts nothing about speed).
"""

from __future__ import annotations

from jax_lstm.runtime import enable_compilation_cache, use_all_cores

use_all_cores()  # before JAX starts its backend: one host device per core, as `jax-lstm` runs

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import torch  # noqa: E402

from benchmarks import cases  # noqa: E402
from benchmarks.cases import (  # noqa: E402
    GRU_CASES,
    INFERENCE_CASES,
    QUICK_CASES,
    QUICK_GRU_CASES,
    TRAIN_CASES,
    Shape,
)
from benchmarks.harness import interleaved, measure  # noqa: E402
from jax_lstm import reporting, training  # noqa: E402

FULL = {
    "train": TRAIN_CASES,
    "inference": INFERENCE_CASES,
    "gru": GRU_CASES,
    "batch_sweep": [Shape(b, 20, 5, 128, 2) for b in (8, 32, 128, 512)],
    "length_sweep": [Shape(32, t, 5, 128, 2) for t in (10, 50, 200)],
    "whole_run": {"epochs": 10, "num_samples": 1000, "hidden": 128, "layers": 2},
    "many": {"models": 8, "shape": Shape(32, 20, 5, 128, 2), "epochs": 10, "num_samples": 1000},
    "rounds": 7,
}
QUICK = {
    "train": QUICK_CASES,
    "inference": QUICK_CASES,
    "gru": QUICK_GRU_CASES,
    "batch_sweep": [Shape(b, 5, 3, 8, 1) for b in (2, 8)],
    "length_sweep": [Shape(4, t, 3, 8, 1) for t in (3, 9)],
    "whole_run": {"epochs": 2, "num_samples": 64, "hidden": 8, "layers": 1},
    "many": {"models": 2, "shape": Shape(4, 5, 3, 8, 1), "epochs": 1, "num_samples": 64},
    "rounds": 2,
}


def matmul_peak(n: int) -> dict[str, float]:
    """GFLOP/s of an n x n float32 matmul on each side: the machine's practical peak."""
    a = jnp.ones((n, n), jnp.float32)
    mm = jax.jit(lambda u, v: u @ v)
    mm(a, a).block_until_ready()
    ta = torch.ones(n, n)
    times = interleaved({"jax": lambda: mm(a, a).block_until_ready(), "torch": lambda: ta @ ta}, 5, 3, 1)
    return {side: 2.0 * n**3 / t.minimum / 1e9 for side, t in times.items()}


def compare(
    name: str, kind: str, shape: Shape, fns: dict, rounds: int, flops: float, peak: float, samples: int
) -> dict:
    """Times the callables in `fns` ("jax", optionally "jax_1device", "torch") interleaved."""
    timings, compile_s = measure(fns, rounds)
    torch_t = timings["torch"]
    row = {"name": name, "kind": kind, "shape": shape.label(), "torch": torch_t.as_dict()}
    for side, timing in timings.items():
        if side == "torch":
            continue
        row[side] = {**timing.as_dict(), "compile_s": compile_s[side]}
        row[f"speedup_{side}"] = torch_t.median / timing.median
    row["speedup"] = row["speedup_jax"]  # the headline column; the quick-mode test reads this key
    row["samples_per_s"] = {side: samples / t.median for side, t in timings.items()}
    row["gflops"] = {side: flops / t.median / 1e9 for side, t in timings.items()}
    row["peak_fraction"] = {side: g / peak for side, g in row["gflops"].items()}
    single = ""
    if "jax_1device" in timings:
        single = (
            f"  (1 device {1e3 * timings['jax_1device'].median:8.2f} ms, {row['speedup_jax_1device']:4.2f}x)"
        )
    print(
        f"{kind:<12} {name:<20} {shape.label():<34} torch {1e3 * torch_t.median:9.2f} ms  "
        f"jax {1e3 * timings['jax'].median:9.2f} ms  speedup {row['speedup']:5.2f}x{single}  "
        f"compile {row['jax']['compile_s']:.2f} s",
        flush=True,
    )
    return row


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        f"Measured {report['date']} on {env['cpu']} ({env['cpu_count']} cores), {env['system']} "
        f"{env['machine']}; jax {env['jax']} ({env['jax_backend']}), torch {env['torch']} "
        f"({env['torch_threads']} threads, denormals flushed as in XLA), Python {env['python']}. Matmul peak "
        f"({report['peak_size']}^2 float32): jax {report['matmul_peak']['jax']:.0f}, torch "
        f"{report['matmul_peak']['torch']:.0f} GFLOP/s. Medians of {report['rounds']} interleaved "
        "rounds (min in brackets), except the rows marked single run; speedup = torch time / JAX time. "
        "Whole-run compile: the run's time minus epochs x its median later epoch (evaluation "
        "included); the warm run is a fresh Python process reading the compilation cache the cold "
        "run filled, its interpreter startup not counted.",
        "",
        f"jax_lstm runs as `jax-lstm` does: {report['jax_devices_used']} host device(s), the batch (or "
        "the models) split across them; the 1-device column is the same code on one device.",
        "",
        "| case | shape | PyTorch (eager) | jax_lstm | speedup | jax_lstm, 1 device | speedup | "
        "jax GFLOP/s (% of peak) | jax compile |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["results"]:
        j, t = row["jax"], row["torch"]
        one = row.get("jax_1device")
        single = (
            f"{1e3 * one['median_s']:.2f} ms ({1e3 * one['min_s']:.2f}) | {row['speedup_jax_1device']:.2f}x"
            if one
            else "| "
        )
        lines.append(
            f"| {row['kind']}: {row['name']} | {row['shape']} | {1e3 * t['median_s']:.2f} ms "
            f"({1e3 * t['min_s']:.2f}) | {1e3 * j['median_s']:.2f} ms ({1e3 * j['min_s']:.2f}) | "
            f"**{row['speedup']:.2f}x** | {single} | {row['gflops']['jax']:.1f} "
            f"({100 * row['peak_fraction']['jax']:.0f}%) | {j['compile_s']:.2f} s |"
        )
    run = report["whole_run"]
    lines.append(
        f"| whole article run, {run['epochs']} epochs (single run) | {run['num_samples']} x 20 x 5, "
        f"H={run['hidden']}, L={run['layers']} | {run['torch_s']:.2f} s | "
        f"{run['jax_s']:.2f} s (incl. {run['jax_compile_s']:.2f} s compile) | "
        f"**{run['torch_s'] / run['jax_s']:.2f}x** | | | | |"
    )
    lines.append(
        f"| whole article run, warm compilation cache, fresh process (single run) | same | "
        f"{run['torch_s']:.2f} s | {run['jax_warm_s']:.2f} s (incl. {run['jax_warm_compile_s']:.2f} s "
        f"compile; startup {run['jax_warm_startup_s']:.2f} s apart) | "
        f"**{run['torch_s'] / run['jax_warm_s']:.2f}x** | | | | |"
    )
    many = report["many_models"]
    lines.append(
        f"| {many['models']} models, {many['epochs']} epochs each (single run) | one JAX program vs torch "
        "one after "
        f"another | {many['torch_s']:.2f} s | {many['jax_s']:.2f} s | "
        f"**{many['torch_s'] / many['jax_s']:.2f}x** "
        "| | | | |"
    )
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['kind']}: {r['name']}" for r in report["results"]]
    speedups = [r["speedup"] for r in report["results"]]
    labels += [
        "whole article run (cold compile)",
        "whole article run (warm cache)",
        f"{report['many_models']['models']} models at once",
    ]
    speedups += [
        report["whole_run"]["torch_s"] / report["whole_run"]["jax_s"],
        report["whole_run"]["torch_s"] / report["whole_run"]["jax_warm_s"],
        report["many_models"]["torch_s"] / report["many_models"]["jax_s"],
    ]
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(labels) + 1.5))
    colors = ["C2" if s >= 1 else "C3" for s in speedups]
    ax.barh(range(len(labels)), speedups, color=colors)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("speedup over PyTorch eager (torch time / JAX time; > 1: JAX faster)")
    ax.set_title(f"jax_lstm vs PyTorch, {report['environment']['cpu']}, {report['date']}")
    for i, s in enumerate(speedups):
        ax.text(s, i, f" {s:.2f}x", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 2 rounds: checks that it runs")
    parser.add_argument("--out", default="benchmarks/results", help="output folder")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per case")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    rounds = args.rounds or plan["rounds"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # XLA:CPU flushes denormal floats to zero; torch does not by default, and long recurrences of
    # a training run drift into denormals that x86 computes slowly (benchmarks/NOTES.md, the long
    # sequence row). Same arithmetic on both sides, and the comparison does not flatter JAX.
    torch.set_flush_denormal(True)
    env = reporting.environment()  # torch is imported: includes torch_threads
    env["torch_flush_denormal"] = True
    env["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    env["jax_devices"] = [str(d) for d in jax.devices()]
    print(
        f"{env['cpu']} ({env['cpu_count']} cores) | Python {env['python']} | jax {env['jax']} "
        f"{env['jax_backend']} {len(jax.devices())} device(s) | torch {env['torch']} "
        f"{env['torch_threads']} threads | {'quick' if args.quick else 'full'} mode",
        flush=True,
    )
    peak_size = 256 if args.quick else 2048
    peak = matmul_peak(peak_size)
    best_peak = max(peak.values())
    print(f"matmul peak ({peak_size}^2 float32): jax {peak['jax']:.0f}, torch {peak['torch']:.0f} GFLOP/s")

    mesh = training.data_parallel_mesh()
    devices = 1 if mesh is None else mesh.size

    def variants(make_jax, torch_fn):
        fns = {"jax": make_jax(mesh)}
        if mesh is not None:
            fns["jax_1device"] = make_jax(None)
        fns["torch"] = torch_fn
        return fns

    results = []
    for name, shape in plan["train"]:
        fns = variants(
            lambda m, shape=shape: cases.jax_train_step(shape, mesh=m), cases.torch_train_step(shape)
        )
        results.append(
            compare(
                name, "train step", shape, fns, rounds, 3 * cases.forward_flops(shape), best_peak, shape.batch
            )
        )
    for name, shape in plan["inference"]:
        fns = variants(
            lambda m, shape=shape: cases.jax_inference(shape, mesh=m), cases.torch_inference(shape)
        )
        results.append(
            compare(name, "inference", shape, fns, rounds, cases.forward_flops(shape), best_peak, shape.batch)
        )
    for name, shape in plan["gru"]:
        # The GRU (a plain scan differentiated by JAX) in the article's model against nn.GRU.
        for kind, jax_case, torch_case, flops in (
            ("train step", cases.jax_train_step, cases.torch_train_step, 3 * cases.forward_flops(shape)),
            ("inference", cases.jax_inference, cases.torch_inference, cases.forward_flops(shape)),
        ):
            fns = variants(lambda m, shape=shape, make=jax_case: make(shape, mesh=m), torch_case(shape))
            results.append(compare(name, kind, shape, fns, rounds, flops, best_peak, shape.batch))
    for sweep, key in (("batch sweep", "batch_sweep"), ("length sweep", "length_sweep")):
        for shape in plan[key]:
            label = f"batch {shape.batch}" if key == "batch_sweep" else f"length {shape.steps}"
            fns = variants(
                lambda m, shape=shape: cases.jax_train_step(shape, mesh=m), cases.torch_train_step(shape)
            )
            results.append(
                compare(
                    label, sweep, shape, fns, rounds, 3 * cases.forward_flops(shape), best_peak, shape.batch
                )
            )

    many = plan["many"]
    shape = many["shape"]
    k = many["models"]
    torch_one = cases.torch_train_step(shape)

    def torch_many() -> None:
        for _ in range(k):
            torch_one()

    fns = variants(lambda m: cases.jax_train_step(shape, many=k, mesh=m), torch_many)
    row = compare(
        f"{k} models",
        "many models",
        shape,
        fns,
        rounds,
        3 * k * cases.forward_flops(shape),
        best_peak,
        k * shape.batch,
    )
    row["note"] = f"one step of {k} models: one JAX program vs {k} torch steps one after another"
    results.append(row)

    # A throwaway persistent compilation cache for the whole runs (cold here, then warm in a fresh
    # process); the timed cases above all ran before it existed.
    cache_dir = enable_compilation_cache(tempfile.mkdtemp(prefix="jax-lstm-bench-cache-"))
    run = plan["whole_run"]
    print(f"whole run: {run['epochs']} epochs of the article's experiment on each side...", flush=True)
    whole = {
        **run,
        **cases.whole_runs(run["epochs"], run["num_samples"], run["hidden"], run["layers"], cache_dir),
    }
    print(
        f"whole run: torch {whole['torch_s']:.2f} s, jax {whole['jax_s']:.2f} s (compile "
        f"{whole['jax_compile_s']:.2f} s), jax in a fresh process with a warm compilation cache "
        f"{whole['jax_warm_s']:.2f} s (compile {whole['jax_warm_compile_s']:.2f} s; startup "
        f"{whole['jax_warm_startup_s']:.2f} s not counted)",
        flush=True,
    )
    print(f"{k} models x {many['epochs']} epochs: fit_many vs torch one after another...", flush=True)
    many_runs = {
        "models": k,
        "epochs": many["epochs"],
        **cases.many_models_runs(k, many["epochs"], many["num_samples"], shape.hidden, shape.layers),
    }
    print(f"{k} models: torch {many_runs['torch_s']:.2f} s, jax {many_runs['jax_s']:.2f} s", flush=True)

    report = {
        "date": datetime.date.today().isoformat(),
        "jax_devices_used": devices,
        "mode": "quick" if args.quick else "full",
        "rounds": rounds,
        "environment": env,
        "peak_size": peak_size,
        "matmul_peak": peak,
        "results": results,
        "whole_run": whole,
        "many_models": many_runs,
    }
    (out / "benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (out / "benchmark.md").write_text(table + "\n")
    plot(report, out / "speedup.png")
    print(table)
    print(f"written: {out / 'benchmark.json'}, {out / 'benchmark.md'}, {out / 'speedup.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
