"""K convolution stacks at once, in each of the forms XLA:CPU could run them in:

    python -m benchmarks.convforms [--quick] [--models 5] [--rounds 7] [--out benchmarks/results]

The FCN block of LSTM-FCN at OSULeaf's shape (batch 16 of 427 steps, one channel; Conv1d 1->128,
kernel 8, ReLU, 128->256, kernel 5, ReLU, 256->128, kernel 3, ReLU, the mean over time; no
BatchNorm, which is elementwise and the same in every form), forward and backward to every weight,
for K models with their own weights and their own batches:

- ``one model x K``: one model's step (jax_lstm's Eigen-form `conv1d`, the program's top level),
  its time multiplied by K: what K separate runs cost;
- ``lax.map, Eigen form``: what `fit_many` and ensembles run (`jax_lstm.nn.conv1d` inside
  `lax.map` over the models);
- ``lax.map, autodiff``: the same loop with JAX's own convolution in torch's (N, C, W) layout and
  JAX's transposition rules for the backward pass, the form the convolutions had before
  `jax_lstm.nn.conv` was written;
- ``vmap, autodiff``: `jax.vmap` over the models, which turns every convolution into a grouped one
  (``feature_group_count=K``);
- ``batched matmul``: each convolution as a window unfold and one batched matmul over the models
  (``einsum('kbtc,kco->kbto')``);
- ``shared input, K x filters``: the models see the same batch (an ensemble could), so the first
  layer is one convolution with K times the filters; the later layers as ``lax.map``.

Medians (minima) of interleaved rounds on one JAX device, compile time apart. Writes
``convforms.json`` and ``convforms.md`` to --out.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.harness import measure
from jax_lstm import reporting
from jax_lstm.nn.conv import conv1d, same_padding

# (in, out, kernel) per layer: LSTM-FCN's block.
LAYERS = ((1, 128, 8), (128, 256, 5), (256, 128, 3))


def _weights(models: int, channels: int, seed: int = 0) -> list[jax.Array]:
    rng = np.random.default_rng(seed)
    sizes = ((channels, 128, 8), *LAYERS[1:])
    return [
        jnp.asarray(rng.standard_normal((models, o, i, k)) / np.sqrt(i * k), jnp.float32) for i, o, k in sizes
    ]


def _eigen_stack(weights: list[jax.Array], x: jax.Array) -> jax.Array:
    """One model: x (B, T, C), weights [(O, I, K)] -> scalar loss."""
    for w in weights:
        x = jax.nn.relu(conv1d(x, w, same_padding(w.shape[-1])))
    return jnp.mean(x)


def _autodiff_stack(weights: list[jax.Array], x: jax.Array) -> jax.Array:
    """The same in torch's (N, C, W) layout with JAX's own transposition rules."""
    x = jnp.swapaxes(x, 1, 2)
    for w in weights:
        x = jax.lax.conv_general_dilated(
            x,
            w,
            (1,),
            [same_padding(w.shape[-1])],
            dimension_numbers=("NCH", "OIH", "NCH"),
            precision=jax.lax.Precision.HIGHEST,
        )
        x = jax.nn.relu(x)
    return jnp.mean(x)


def _unfold(x: jax.Array, kernel: int) -> jax.Array:
    """(..., T, C) -> (..., T, K * C): each step's window of `kernel` steps, "same" padded."""
    left, right = same_padding(kernel)
    pad = [(0, 0)] * (x.ndim - 2) + [(left, right), (0, 0)]
    padded = jnp.pad(x, pad)
    steps = x.shape[-2]
    return jnp.concatenate([padded[..., j : j + steps, :] for j in range(kernel)], axis=-1)


def _matmul_stack(weights: list[jax.Array], x: jax.Array) -> jax.Array:
    """K models at once: x (K, B, T, C), weights [(K, O, I, W)] -> scalar (sum of the K losses)."""
    for w in weights:
        k, o, i, width = w.shape
        kernel = jnp.transpose(w, (0, 3, 2, 1)).reshape(k, width * i, o)  # (K, W*I, O), window-major
        x = jax.nn.relu(jnp.einsum("kbtc,kco->kbto", _unfold(x, width), kernel, precision="highest"))
    return jnp.sum(jnp.mean(x, axis=(1, 2, 3)))


def _shared_first_stack(weights: list[jax.Array], x: jax.Array) -> jax.Array:
    """K models on one batch x (B, T, C): the first layer as one convolution with K x 128 filters."""
    first = weights[0]
    k, o = first.shape[:2]
    wide = first.reshape(k * o, *first.shape[2:])
    h = jax.nn.relu(conv1d(x, wide, same_padding(first.shape[-1])))  # (B, T, K * O)
    h = jnp.moveaxis(h.reshape(*h.shape[:2], k, o), 2, 0)  # (K, B, T, O)
    return jnp.sum(jax.lax.map(lambda item: _eigen_stack(list(item[0]), item[1]), (tuple(weights[1:]), h)))


def programs(models: int, batch: int, steps: int, channels: int) -> dict[str, Callable[[], object]]:
    weights = _weights(models, channels)
    rng = np.random.default_rng(1)
    xs = jnp.asarray(rng.standard_normal((models, batch, steps, channels)), jnp.float32)
    one = [w[0] for w in weights]

    def over_models(stack):
        return lambda ws, x: jnp.sum(jax.lax.map(lambda item: stack(list(item[0]), item[1]), (tuple(ws), x)))

    def vmapped(ws, x):
        return jnp.sum(jax.vmap(_autodiff_stack)(ws, x))

    grads = {
        "one model": (jax.jit(jax.grad(_eigen_stack)), (one, xs[0])),
        "lax.map, Eigen form": (jax.jit(jax.grad(over_models(_eigen_stack))), (weights, xs)),
        "lax.map, autodiff": (jax.jit(jax.grad(over_models(_autodiff_stack))), (weights, xs)),
        "vmap, autodiff": (jax.jit(jax.grad(vmapped)), (weights, xs)),
        "batched matmul": (jax.jit(jax.grad(_matmul_stack)), (weights, xs)),
        "shared input, K x filters": (jax.jit(jax.grad(_shared_first_stack)), (weights, xs[0])),
    }
    return {f"jax {name}": (lambda f=f, a=a: jax.block_until_ready(f(*a))) for name, (f, a) in grads.items()}


def check_same_gradients(models: int, batch: int, steps: int, channels: int) -> float:
    """The largest relative difference between the forms' gradients (they compute one function)."""
    weights = _weights(models, channels)
    xs = jnp.asarray(np.random.default_rng(1).standard_normal((models, batch, steps, channels)), jnp.float32)
    want = jax.grad(
        lambda ws: jnp.sum(jnp.stack([_eigen_stack([w[m] for w in ws], xs[m]) for m in range(models)]))
    )(weights)
    worst = 0.0

    def mapped(ws):
        return jnp.sum(jax.lax.map(lambda item: _autodiff_stack(list(item[0]), item[1]), (tuple(ws), xs)))

    for got in (
        jax.grad(mapped)(weights),
        jax.grad(lambda ws: jnp.sum(jax.vmap(_autodiff_stack)(ws, xs)))(weights),
        jax.grad(lambda ws: _matmul_stack(ws, xs))(weights),
    ):
        for g, w in zip(got, want, strict=True):
            worst = max(worst, float(jnp.max(jnp.abs(g - w)) / (jnp.max(jnp.abs(w)) + 1e-30)))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 2 rounds")
    parser.add_argument("--models", type=int, default=5, help="K")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    if args.models < 1 or args.rounds < 1:
        parser.error("--models and --rounds must be at least 1")
    batch, steps, channels = (2, 12, 1) if args.quick else (16, 427, 1)
    rounds = 2 if args.quick else args.rounds
    env = reporting.environment()
    print(
        f"{env.get('cpu', '?')}, jax {env['jax']} on {jax.device_count()} {jax.default_backend()} device(s)"
    )
    worst = check_same_gradients(args.models, batch, min(steps, 64), channels)
    print(f"gradients of the forms agree to a relative {worst:.1e}")
    timings, compile_s = measure(programs(args.models, batch, steps, channels), rounds)
    one = timings["jax one model"].median * args.models
    rows = []
    for side, timing in timings.items():
        name = side.removeprefix("jax ")
        k_times = timing.median / timings["jax one model"].median
        rows.append(
            {
                "form": name,
                **timing.as_dict(),
                "compile_s": compile_s[side],
                "over_one_model": k_times,
                "over_k_separate": timing.median / one,
            }
        )
        print(
            f"{name:28s} {1e3 * timing.median:9.1f} ms (min {1e3 * timing.minimum:.1f}), "
            f"{k_times:.2f}x one model, compile {compile_s[side]:.1f} s"
        )
    report = {
        "environment": env,
        "shape": {"batch": batch, "steps": steps, "channels": channels, "layers": LAYERS},
        "models": args.models,
        "max_relative_gradient_difference": worst,
        "rows": rows,
    }
    lines = [
        f"Machine: {env.get('cpu', '?')}, {env.get('cpu_count', '?')} cores, one JAX device; "
        f"jax {env['jax']}. "
        f"LSTM-FCN's convolution block, forward and backward, batch {batch} of {steps} steps, "
        f"K = {args.models} models; medians (minima) of {rounds} interleaved rounds.",
        "",
        "| form | time | x one model's step | compile |",
        "|---|---|---|---|",
    ]
    for r in rows:
        label = "one model (K = 1)" if r["form"] == "one model" else r["form"]
        lines.append(
            f"| {label} | {1e3 * r['median_s']:.1f} ms ({1e3 * r['min_s']:.1f}) | "
            f"{r['over_one_model']:.2f} | {r['compile_s']:.1f} s |"
        )
    report["markdown"] = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reporting.write_json(out / "convforms.json", report)
    (out / "convforms.md").write_text(report["markdown"])
    print(report["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
