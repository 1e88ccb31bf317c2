"""The 2-D MDLSTM: the wavefront scan against the cell-by-cell loop and the torch twin, its memory, and
the classifier trained on scikit-learn's digits:

    python -m benchmarks.mdlstm [--quick] [--rounds 5] [--skip-digits] [--out benchmarks/results]

1. Train step (forward and backward of the classifier's cross-entropy, no optimizer update), float32,
   at the digits' shape (B=32, 8x8 grids of one channel) and a 64x64 one (B=8): the wavefront with its
   hand-written backward ("fused", with and without remat), the same scan differentiated by JAX
   ("scan"), the cell-by-cell loop (`mdlstm2d_reference`, differentiated by JAX) and the torch twin
   (`torch_ref.mdlstm`, a Python loop over the cells). Interleaved rounds, warm-up excluded, compile
   time apart, medians and minima. JAX runs one program on one device (XLA:CPU runs it on one
   thread); torch uses its default threads.
2. Memory of the backward pass on a 128x128 grid (B=8, C=1, hidden 32, one direction), each
   implementation with and without remat: XLA's buffer assignment of the compiled gradient program
   (`memory_analysis`: arguments, outputs and the peak of temporaries), and its time.
3. Digits (unless --skip-digits): registry model ``mdlstm`` trained as ``jax-lstm train --model
   mdlstm --dataset digits --seed S`` trains it (`jax_lstm.training.fit` with the model's recipe;
   --hidden, --epochs, --lr, --batch override it), seeds 0-4, test accuracy of the last epoch, wall
   time per run; and a picture (`mdlstm.png`): the order of the wavefronts over a grid, and the
   seed-0 model's hidden activations on test digits.

Writes ``mdlstm.json``, ``mdlstm.md`` and ``mdlstm.png`` to --out. --skip-steps / --skip-digits rerun
one part and keep the other's results from the existing ``mdlstm.json``. --quick: tiny shapes and
runs, a check that it works (writes ``mdlstm_quick.json`` only).
"""

from __future__ import annotations

from jax_lstm.runtime import use_all_cores

use_all_cores()  # before JAX starts: one host device per core, as `jax-lstm train` runs

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.harness import measure  # noqa: E402
from jax_lstm import data, reporting, training  # noqa: E402
from jax_lstm.atomic import write_atomically  # noqa: E402
from jax_lstm.models.mdlstm import MDLSTMClassifier, mean_over_cells  # noqa: E402
from jax_lstm.rnn import mdlstm  # noqa: E402
from torch_ref import mdlstm as torch_mdlstm  # noqa: E402


@dataclasses.dataclass(frozen=True)
class StepShape:
    name: str
    batch: int
    height: int  # T of the (B, T, F) batch: the grid's rows
    width: int  # F: the grid's columns
    hidden: int
    classes: int = 10


STEP_SHAPES = (StepShape("digits", 32, 8, 8, 32), StepShape("64x64", 8, 64, 64, 32))
QUICK_STEP_SHAPES = (StepShape("tiny", 4, 4, 3, 4),)

# The JAX sides of the step benchmark: (implementation, remat) of the wavefront, or the cell loop.
JAX_SIDES: dict[str, tuple[str, bool] | None] = {
    "jax_fused": ("fused", False),
    "jax_fused_remat": ("fused", True),
    "jax_scan": ("scan", False),
    "jax_cells": None,
}


def _layer(side: tuple[str, bool] | None) -> Callable:
    if side is None:
        return lambda p, x: mdlstm.mdlstm2d_reference(p, x, 4)
    implementation, remat = side
    return lambda p, x: mdlstm.mdlstm2d(p, x, 4, remat=remat, implementation=implementation)


def _logits(params: dict, x: jax.Array, layer: Callable) -> jax.Array:
    """The classifier's forward pass (`MDLSTMClassifier`) with the MDLSTM layer given."""
    out = layer(params["mdlstm"], x[..., None])  # (B, T, F, 4H)
    pooled = mean_over_cells(out, jnp.ones(x.shape, bool))
    return pooled @ params["fc"]["weight"].T + params["fc"]["bias"][None, :]


def step_sides(shape: StepShape) -> dict[str, Callable[[], None]]:
    """One train step (loss, gradients) per side, from the same weights and batch."""
    torch.manual_seed(0)
    twin = torch_mdlstm.MDLSTMClassifier(shape.hidden, shape.classes)
    params = {
        "mdlstm": {k: jnp.asarray(v.detach().numpy()) for k, v in twin.mdlstm.state_dict().items()},
        "fc": {k: jnp.asarray(v.detach().numpy()) for k, v in twin.fc.state_dict().items()},
    }
    rng = np.random.default_rng(0)
    x = rng.random((shape.batch, shape.height, shape.width)).astype(np.float32)
    y = (np.arange(shape.batch) % shape.classes).astype(np.int32)
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def jax_side(layer: Callable) -> Callable[[], None]:
        @jax.jit
        def step(params, x, y):
            def loss(p):
                logp = jax.nn.log_softmax(_logits(p, x, layer))
                return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

            return jax.value_and_grad(loss)(params)

        return lambda: jax.block_until_ready(step(params, xj, yj))

    sides = {name: jax_side(_layer(side)) for name, side in JAX_SIDES.items()}
    tx, ty = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    def torch_side() -> None:
        twin.zero_grad()
        torch.nn.functional.cross_entropy(twin(tx), ty).backward()

    sides["torch"] = torch_side
    return sides


def run_steps(shapes: tuple[StepShape, ...], rounds: int) -> list[dict]:
    rows = []
    for shape in shapes:
        timings, compile_s = measure(step_sides(shape), rounds)
        row = {"shape": dataclasses.asdict(shape)}
        for side, timing in timings.items():
            row[side] = timing.as_dict()
            if side in compile_s:
                row[side]["compile_s"] = compile_s[side]
        rows.append(row)
        summary = ", ".join(f"{side} {1e3 * t.median:.1f} ms" for side, t in timings.items())
        print(
            f"{shape.name:8} B={shape.batch} {shape.height}x{shape.width} H={shape.hidden}: {summary}",
            flush=True,
        )
    return rows


def run_memory(size: int, batch: int, hidden: int, rounds: int) -> list[dict]:
    """The compiled gradient program's buffers and time, per implementation and remat (one direction)."""
    rng = np.random.default_rng(0)
    params = {
        k: jnp.asarray(rng.uniform(-0.2, 0.2, s), jnp.float32)
        for k, s in mdlstm.param_shapes(1, hidden).items()
    }
    x = jnp.asarray(rng.random((batch, size, size, 1)), jnp.float32)
    programs, rows = {}, []
    for implementation in mdlstm.IMPLEMENTATIONS:
        for remat in (False, True):

            def loss(p, x, implementation=implementation, remat=remat):
                return jnp.sum(mdlstm.mdlstm2d(p, x, 1, None, remat, implementation) ** 2)

            compiled = jax.jit(jax.grad(loss)).lower(params, x).compile()
            stats = compiled.memory_analysis()
            rows.append(
                {
                    "implementation": implementation,
                    "remat": remat,
                    "temp_bytes": int(stats.temp_size_in_bytes),
                    "argument_bytes": int(stats.argument_size_in_bytes),
                    "output_bytes": int(stats.output_size_in_bytes),
                }
            )
            programs[f"jax_{implementation}{'_remat' if remat else ''}"] = compiled
    fns = {name: (lambda c=c: jax.block_until_ready(c(params, x))) for name, c in programs.items()}
    timings, _ = measure(fns, rounds)
    for row, (name, timing) in zip(rows, timings.items(), strict=True):
        row["step"] = timing.as_dict()
        print(
            f"memory {size}x{size} B={batch} H={hidden} {name}: temporaries "
            f"{row['temp_bytes'] / 2**20:.0f} MiB, step {1e3 * timing.median:.0f} ms",
            flush=True,
        )
    return rows


def train_digits(settings: dict, seed: int, dataset: data.Dataset) -> tuple[dict, dict]:
    """One run as ``jax-lstm train --model mdlstm --dataset digits --seed S`` makes it: the config
    resolved from the model's recipe and `settings` (TrainConfig fields; None: the recipe's), trained
    by the library's loop (`training.fit`: data-parallel over the host devices, the test set
    evaluated after every epoch). Returns (result row with the test accuracy of the last epoch, the
    resolved config's fields, final variables)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    config = training.resolve_config("mdlstm", dataset, seed=seed, log_every=0, **settings)
    result = training.fit(config, dataset, log=None)
    history = [
        {"train_loss": h.train_loss, "test_accuracy": h.test_accuracy, "lr": h.lr} for h in result.history
    ]
    row = {
        "seed": seed,
        "test_accuracy": history[-1]["test_accuracy"],
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu_start,
        "devices": jax.device_count(),
        "history": history,
    }
    return row, dataclasses.asdict(config), result.variables()


def run_digits(settings: dict, seeds: list[int], dataset: data.Dataset) -> tuple[dict, dict]:
    runs, first, config = [], None, {}
    for seed in seeds:
        row, config, variables = train_digits(settings, seed, dataset)
        runs.append(row)
        first = variables if first is None else first
        accuracy, seconds = row["test_accuracy"], row["seconds"]
        print(f"digits {settings}: seed {seed} test accuracy {accuracy:.4f} in {seconds:.1f} s", flush=True)
    accuracies = [r["test_accuracy"] for r in runs]
    recipe_fields = ("hidden_size", "epochs", "batch_size", "lr", "clip", "schedule", "patience", "factor")
    summary = {
        "recipe": {key: config[key] for key in recipe_fields},
        "runs": runs,
        "mean_accuracy": float(np.mean(accuracies)),
        "min_accuracy": float(np.min(accuracies)),
        "max_accuracy": float(np.max(accuracies)),
        "mean_seconds": float(np.mean([r["seconds"] for r in runs])),
        "mean_cpu_seconds": float(np.mean([r["cpu_seconds"] for r in runs])),
    }
    return summary, first


def plot(path: Path, model: MDLSTMClassifier, variables: dict, dataset: data.Dataset) -> Path:
    """Left: the wavefront index i + j of every cell of a 6x9 grid (each colour one scan step, all its
    cells computed together). Right: test digits and the norm of each direction's h at every cell."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = 6, 9
    order = np.add.outer(np.arange(rows), np.arange(cols))
    examples = [int(np.flatnonzero(dataset.y_test == digit)[0]) for digit in (0, 3, 7)]
    x = jnp.asarray(dataset.x_test[examples])
    out = mdlstm.mdlstm2d(variables["params"]["mdlstm"], x[..., None], 4)  # (N, 8, 8, 4H)
    hidden = out.shape[-1] // 4
    norms = np.linalg.norm(np.asarray(out).reshape(*out.shape[:3], 4, hidden), axis=-1)  # (N, 8, 8, 4)
    predicted = np.asarray(jnp.argmax(model.apply(variables, x), axis=-1))

    fig = plt.figure(figsize=(13, 6.4))
    grid = fig.add_gridspec(len(examples), 6, width_ratios=[2.6, 1, 1, 1, 1, 1])
    ax = fig.add_subplot(grid[:, 0])
    ax.imshow(order, cmap="viridis")
    for i in range(rows):
        for j in range(cols):
            ax.text(j, i, str(order[i, j]), ha="center", va="center", color="white", fontsize=9)
    ax.set_title(
        f"scan step of each cell (direction 0):\n{rows + cols - 1} steps for {rows * cols} cells; "
        "a cell needs\nthe one above and the one to its left",
        fontsize=9,
    )
    ax.set_xlabel("j (W)")
    ax.set_ylabel("i (H)")
    names = ["top-left", "top-right", "bottom-left", "bottom-right"]
    for n, index in enumerate(examples):
        image_ax = fig.add_subplot(grid[n, 1])
        image_ax.imshow(dataset.x_test[index], cmap="gray_r")
        image_ax.set_title(f"digit {dataset.y_test[index]} (predicted {predicted[n]})", fontsize=8)
        image_ax.axis("off")
        for d in range(4):
            direction_ax = fig.add_subplot(grid[n, 2 + d])
            direction_ax.imshow(norms[n, :, :, d], cmap="magma")
            direction_ax.set_title(f"|h| of the scan from {names[d]}", fontsize=8)
            direction_ax.axis("off")
    fig.suptitle("MDLSTM2d: the wavefront, and a trained MDLSTMClassifier's hidden state on test digits")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return write_atomically(path, buffer.getvalue())


def markdown(report: dict) -> str:
    env = report["environment"]
    sides = [*JAX_SIDES, "torch"]
    lines = [
        f"Machine: {env.get('cpu', '?')}, {env.get('cpu_count', '?')} cores; jax {env['jax']} (one device, "
        f"one thread), torch {env.get('torch', '?')} ({env.get('torch_threads', '?')} thread(s)). Train step "
        "(forward and backward), float32, medians (minima) of interleaved rounds; JAX compile time apart.",
        "",
        "| shape | " + " | ".join(sides) + " |",
        "|---|" + "---|" * len(sides),
    ]
    for row in report.get("steps", []):
        s = row["shape"]
        cells = []
        for side in sides:
            t = row[side]
            compile_s = f", compile {t['compile_s']:.1f} s" if "compile_s" in t else ""
            cells.append(f"{1e3 * t['median_s']:.1f} ms ({1e3 * t['min_s']:.1f}{compile_s})")
        lines.append(
            f"| {s['name']}: B={s['batch']} {s['height']}x{s['width']} H={s['hidden']} | "
            + " | ".join(cells)
            + " |"
        )
    if report.get("memory"):
        m = report["memory_shape"]
        lines += [
            "",
            f"Backward pass on {m['size']}x{m['size']} grids, B={m['batch']}, C=1, H={m['hidden']}, one "
            "direction (XLA's buffer assignment of the gradient program):",
            "",
            "| implementation | remat | temporaries | arguments + outputs | step |",
            "|---|---|---|---|---|",
        ]
        for r in report["memory"]:
            edges = (r["argument_bytes"] + r["output_bytes"]) / 2**20
            lines.append(
                f"| {r['implementation']} | {r['remat']} | {r['temp_bytes'] / 2**20:.0f} MiB | "
                f"{edges:.1f} MiB | {1e3 * r['step']['median_s']:.0f} ms |"
            )
    if report.get("digits"):
        d = report["digits"]
        r = d["recipe"]
        schedule = (
            "cosine to 0"
            if r["schedule"] == "cosine"
            else f"plateau patience {r['patience']} factor {r['factor']}"
        )
        lines += [
            "",
            f"Digits (8x8 grids, 1437 train / 360 test), hidden {r['hidden_size']}, {r['epochs']} epochs "
            f"of {r['batch_size']}, Adam lr {r['lr']} (clip {r['clip']}, {schedule}): test accuracy of the "
            "last epoch "
            f"{100 * d['mean_accuracy']:.2f}% ({100 * d['min_accuracy']:.2f}-{100 * d['max_accuracy']:.2f}) "
            f"over seeds {[run['seed'] for run in d['runs']]}, {d['mean_seconds']:.0f} s per run "
            "(compilation included; "
            f"{d['mean_cpu_seconds']:.0f} s of CPU time).",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-digits", action="store_true")
    parser.add_argument("--skip-steps", action="store_true", help="no train-step or memory benchmark")
    # One thread: the JAX side runs one program on one thread, and the twin's per-cell operations are
    # too small to split (with 2 threads on a shared machine they measured 10-50x slower).
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    # The digits runs' settings; None: the registry recipe's (`jax_lstm.models.mdlstm.MDLSTM_RECIPE`).
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)  # as XLA:CPU does (benchmarks/NOTES.md, "Denormals")
    torch.set_num_threads(args.torch_threads)
    env = reporting.environment()
    print(
        f"jax {env['jax']} on {env['jax_backend']}, torch {torch.__version__} ({args.torch_threads} threads)"
    )
    rounds = 2 if args.quick else args.rounds
    out = Path(args.out)
    json_path = out / ("mdlstm_quick.json" if args.quick else "mdlstm.json")
    report: dict = {"environment": env}
    if (args.skip_steps or args.skip_digits) and json_path.exists():
        # A part skipped keeps its results (and the environment they were measured in) from the
        # previous run's file, so each part can be rerun alone.
        previous = json.loads(json_path.read_text())
        parts = ("steps", "memory_shape", "memory") if args.skip_steps else ("digits",)
        report["previous_environment"] = previous.get("environment")
        report.update({key: previous[key] for key in parts if key in previous})
    if not args.skip_steps:
        report["steps"] = run_steps(QUICK_STEP_SHAPES if args.quick else STEP_SHAPES, rounds)
        shape = (
            {"size": 8, "batch": 2, "hidden": 4} if args.quick else {"size": 128, "batch": 8, "hidden": 32}
        )
        report["memory_shape"] = shape
        report["memory"] = run_memory(shape["size"], shape["batch"], shape["hidden"], rounds)
    if not args.skip_digits:
        dataset = data.digits()
        settings = {
            "hidden_size": args.hidden,
            "epochs": args.epochs,
            "lr": args.lr,
            "batch_size": args.batch,
        }
        settings = {k: v for k, v in settings.items() if v is not None}
        if args.quick:
            settings.update(hidden_size=4, epochs=1)
        seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
        report["digits"], variables = run_digits(settings, seeds, dataset)
        if not args.quick:
            model = MDLSTMClassifier(report["digits"]["recipe"]["hidden_size"], dataset.num_classes)
            plot(out / "mdlstm.png", model, variables, dataset)
    report["markdown"] = markdown(report)
    reporting.write_json(json_path, report)
    if not args.quick:
        write_atomically(out / "mdlstm.md", (report["markdown"] + "\n").encode())
    print(report["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
