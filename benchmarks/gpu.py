"""jax_lstm against PyTorch on a GPU: ``python -m benchmarks.gpu [--quick] [--out DIR]``.

torch runs `torch_ref` eagerly on CUDA (its `nn.LSTM` is cuDNN's); JAX runs the library's jitted
train step and forward on its default device, once per recurrence: "fused" (XLA) and, where a CUDA
GPU is present, "cudnn" (`jax.experimental.rnn`). TF32 is off on both sides (true float32, as the
parity runs): `torch.backends.{cuda.matmul,cudnn}.allow_tf32 = False` and JAX's matmul precision
"highest". Calls are timed interleaved in one process, each synchronised (`block_until_ready`,
`torch.cuda.synchronize`), warm-up excluded, compile time reported apart, medians and minima. The
torch side is the article's model as written: each forward builds h0/c0 with
`torch.zeros(...).to(device)`, which on CUDA is an allocation on the host and a host-to-device copy
per forward.

Then the FCN models' rows of `benchmarks.kmodels`: the train step of K = 1 and K = 5 LSTM-FCN and
MLSTM-FCN models (JAX's production step, one program for the K models) against torch stepping its
K twins one after another on the same device, at JapaneseVowels' and OSULeaf's shapes (OSULeaf's
files from --osuleaf-dir, else random data of its shape).

Without a GPU it runs the same code on the CPU (torch on CPU, "fused" only) and says so; the
quick mode is how the test suite checks that it runs. Writes ``gpu_benchmark.json`` and
``gpu_benchmark.md`` to --out (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
from pathlib import Path

import jax
import torch

from benchmarks import cases
from benchmarks.cases import INFERENCE_CASES, QUICK_CASES, TRAIN_CASES, Shape
from benchmarks.harness import measure
from jax_lstm import reporting
from jax_lstm.rnn import cudnn

FULL = {"train": TRAIN_CASES, "inference": INFERENCE_CASES, "rounds": 7, "kmodels": 5}
QUICK = {"train": QUICK_CASES, "inference": QUICK_CASES, "rounds": 2, "kmodels": 2}


def compare(name: str, kind: str, shape: Shape, fns: dict, rounds: int) -> dict:
    """Times `fns` ("torch" and one "jax_<implementation>" per recurrence) interleaved."""
    timings, compile_s = measure(fns, rounds)
    torch_t = timings["torch"]
    row = {"name": name, "kind": kind, "shape": shape.label(), "torch": torch_t.as_dict()}
    line = f"{kind:<10} {name:<20} {shape.label():<34} torch {1e3 * torch_t.median:9.3f} ms"
    for side, timing in timings.items():
        if side == "torch":
            continue
        row[side] = {**timing.as_dict(), "compile_s": compile_s[side]}
        row[f"speedup_{side}"] = torch_t.median / timing.median
        line += f"  {side} {1e3 * timing.median:9.3f} ms ({row[f'speedup_{side}']:.2f}x)"
    print(line, flush=True)
    return row


def markdown(report: dict) -> str:
    env = report["environment"]
    sides = report["implementations"]
    lines = [
        f"Measured {report['date']} on {report['device']}; jax {env['jax']} ({env['jax_backend']}), torch "
        f"{env['torch']} (cuDNN {report['cudnn_version']}), Python {env['python']}, host {env['cpu']}. "
        "TF32 off on both sides; the torch model builds h0/c0 as the article writes it, "
        "`torch.zeros(...).to(device)` (a host-to-device copy per forward on CUDA). "
        f"Medians of {report['rounds']} interleaved rounds (min in brackets); "
        "speedup = torch time / JAX time.",
        "",
        "| case | shape | PyTorch (eager) | "
        + " | ".join(f"jax_lstm {s} | speedup | compile" for s in sides)
        + " |",
        "|---|---|---|" + "---|---|---|" * len(sides),
    ]
    for row in report["results"]:
        t = row["torch"]
        cells = [
            f"{row['kind']}: {row['name']}",
            row["shape"],
            f"{1e3 * t['median_s']:.3f} ms ({1e3 * t['min_s']:.3f})",
        ]
        for side in sides:
            j = row[f"jax_{side}"]
            cells += [
                f"{1e3 * j['median_s']:.3f} ms ({1e3 * j['min_s']:.3f})",
                f"**{row[f'speedup_jax_{side}']:.2f}x**",
                f"{j['compile_s']:.2f} s",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    if report.get("kmodels"):
        lines += [
            "",
            "FCN models, K trained at once (JAX: one program; torch: its K twins one after another):",
            "",
            "| data | model | K | train step, jax | train step, torch | torch / jax | jax compile |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in report["kmodels"]:
            j, t = r["jax"], r["torch"]
            lines.append(
                f"| {r['dataset']} | {r['model']} | {r['models']} | {1e3 * j['median_s']:.3f} ms "
                f"({1e3 * j['min_s']:.3f}) | {1e3 * t['median_s']:.3f} ms ({1e3 * t['min_s']:.3f}) | "
                f"**{t['median_s'] / j['median_s']:.2f}x** | {r['jax_compile_s']:.2f} s |"
            )
    return "\n".join(lines)


def fcn_rows(models: int, quick: bool, osuleaf_dir: str, rounds: int, torch_device: str) -> list[dict]:
    """`benchmarks.kmodels`' train-step rows (K = 1 and `models`) with torch's twins on `torch_device`;
    quick: LSTM-FCN on a tiny random dataset."""
    from benchmarks import kmodels
    from benchmarks.accuracy import default_config

    names = ["tiny"] if quick else ["japanese-vowels", "osuleaf"]
    rows = []
    for name in names:
        dataset, flags, _ = (
            (kmodels.random_dataset("tiny"), [], False) if quick else kmodels.load(name, osuleaf_dir)
        )
        for model in ["lstm-fcn"] if quick else list(kmodels.MODELS):
            config = default_config(model, 0, flags, dataset)
            if quick:
                config = dataclasses.replace(config, hidden_size=4)
            rows += kmodels.step_rows(model, name, config, dataset, [1, models], rounds, torch_device)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 2 rounds: checks that it runs")
    parser.add_argument("--out", default="benchmarks/results", help="output folder")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per case")
    parser.add_argument("--osuleaf-dir", default="../shared/data/ucr", help="OSULeaf's files (FCN rows)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    rounds = args.rounds or plan["rounds"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    on_gpu = torch.cuda.is_available() and jax.default_backend() == "gpu"
    torch_device = "cuda" if on_gpu else "cpu"
    implementations = ["fused"] + (["cudnn"] if cudnn.available() else [])
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    env = reporting.environment()
    device = torch.cuda.get_device_name(0) if on_gpu else f"{env['cpu']} (no GPU: a CPU run)"
    print(
        f"{device} | jax {env['jax']} on {jax.devices()[0]} | torch {env['torch']} on {torch_device} | "
        f"implementations {implementations} | {'quick' if args.quick else 'full'} mode",
        flush=True,
    )

    results = []
    # Precision is read when a function is traced: every JAX callable is built and first called
    # (compiled) inside this context.
    with jax.default_matmul_precision("highest"):
        for kind, make_jax, make_torch in (
            ("train", cases.jax_train_step, cases.torch_train_step),
            ("inference", cases.jax_inference, cases.torch_inference),
        ):
            for name, shape in plan[kind]:
                fns = {f"jax_{impl}": make_jax(shape, implementation=impl) for impl in implementations}
                fns["torch"] = make_torch(shape, device=torch_device)
                results.append(compare(name, kind, shape, fns, rounds))
        kmodel_rows = fcn_rows(plan["kmodels"], args.quick, args.osuleaf_dir, rounds, torch_device)

    report = {
        "date": datetime.date.today().isoformat(),
        "device": device,
        "on_gpu": on_gpu,
        "cudnn_version": torch.backends.cudnn.version() if on_gpu else None,
        "mode": "quick" if args.quick else "full",
        "rounds": rounds,
        "implementations": implementations,
        "environment": env,  # reporting.environment() already has "python"
        "results": results,
        "kmodels": kmodel_rows,
    }
    (out / "gpu_benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (out / "gpu_benchmark.md").write_text(table + "\n")
    print(table)
    print(f"written: {out / 'gpu_benchmark.json'}, {out / 'gpu_benchmark.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
