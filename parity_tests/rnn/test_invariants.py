"""jax_lstm against itself: jit, the step-by-step cell, layouts, init, dtypes, and the torch-free import."""

from __future__ import annotations

import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_lstm
from jax_lstm import functional
from jax_lstm.rnn.spec import LSTMSpec, param_shapes


def _init(layer, shape, seed=0):
    x = jax.random.normal(jax.random.key(seed + 1), shape)
    return layer.init(jax.random.key(seed), x), x


@pytest.mark.parametrize(
    "kwargs", [{}, {"num_layers": 2, "bidirectional": True}, {"proj_size": 3, "batch_first": True}]
)
def test_jit_equals_no_jit(kwargs):
    layer = jax_lstm.LSTM(6, **kwargs)
    variables, x = _init(layer, (5, 3, 4))
    eager = layer.apply(variables, x)
    jitted = jax.jit(layer.apply)(variables, x)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("proj_size", [0, 2])
def test_scan_equals_step_by_step_cell_loop(x64, proj_size):
    layer = jax_lstm.LSTM(5, num_layers=2, bidirectional=True, proj_size=proj_size, param_dtype=jnp.float64)
    variables, x = _init(layer, (6, 2, 3))
    x = x.astype(jnp.float64)
    out, (h_n, c_n) = layer.apply(variables, x)

    params = variables["params"]
    layer_input = x
    hs, cs = [], []
    for k in range(2):
        outs = []
        for direction in range(2):
            w = functional.layer_weights(params, k, direction)
            h = jnp.zeros((2, proj_size or 5), jnp.float64)
            c = jnp.zeros((2, 5), jnp.float64)
            steps = range(6) if direction == 0 else reversed(range(6))
            per_step = {}
            for t in steps:
                h, c = functional.lstm_cell(layer_input[t], h, c, w)
                per_step[t] = h
            outs.append(jnp.stack([per_step[t] for t in range(6)]))
            hs.append(h)
            cs.append(c)
        layer_input = jnp.concatenate(outs, axis=-1)
    np.testing.assert_allclose(out, layer_input, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_n, jnp.stack(hs), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c_n, jnp.stack(cs), rtol=1e-12, atol=1e-14)


def test_parameter_names_shapes_and_torch_init():
    hidden = 64
    layer = jax_lstm.LSTM(hidden, num_layers=2, bidirectional=True, proj_size=16)
    variables, _ = _init(layer, (3, 2, 7))
    params = variables["params"]
    expected = param_shapes(LSTMSpec(7, hidden, 2, True, True, 16))
    assert {k: v.shape for k, v in params.items()} == expected
    bound = 1 / math.sqrt(hidden)
    for name, value in params.items():
        value = np.asarray(value)
        assert value.dtype == np.float32
        assert value.min() >= -bound and value.max() <= bound, name
        # U(-k, k), not U(0, k): both signs, spread over the whole interval.
        assert value.min() < -0.8 * bound and value.max() > 0.8 * bound, name
    all_values = np.concatenate([np.ravel(v) for v in params.values()])
    assert abs(all_values.mean()) < 0.02 * bound
    assert abs(all_values.std() - bound / math.sqrt(3)) < 0.02 * bound  # std of U(-k, k)


def test_linear_uses_torch_layout_and_init():
    model = jax_lstm.LSTMClassifier(25, 1, 3)
    variables, _ = _init(model, (2, 4, 5))
    fc = variables["params"]["fc"]
    assert fc["weight"].shape == (3, 25) and fc["bias"].shape == (3,)
    assert np.abs(np.asarray(fc["weight"])).max() <= 1 / 5


def test_float32_stays_float32_with_x64_on(x64):
    layer = jax_lstm.LSTM(4, num_layers=2)
    variables, x = _init(layer, (3, 2, 3))
    out, (h, c) = layer.apply(variables, x.astype(jnp.float32))
    assert out.dtype == h.dtype == c.dtype == jnp.float32
    model = jax_lstm.BNLSTMClassifier(4, 1, 2)
    mvars, mx = _init(model, (3, 2, 3))
    logits, updates = model.apply(mvars, mx.astype(jnp.float32), train=True, mutable=["batch_stats"])
    assert logits.dtype == jnp.float32
    assert updates["batch_stats"]["bn"]["running_var"].dtype == jnp.float32


def test_unbatched_equals_batch_of_one():
    layer = jax_lstm.LSTM(5, num_layers=2, bidirectional=True)
    variables, x = _init(layer, (6, 1, 3))
    out, (h, c) = layer.apply(variables, x)
    out1, (h1, c1) = layer.apply(variables, x[:, 0])
    np.testing.assert_allclose(out1, out[:, 0], rtol=1e-6)
    np.testing.assert_allclose(h1, h[:, 0], rtol=1e-6)
    np.testing.assert_allclose(c1, c[:, 0], rtol=1e-6)


def test_batch_first_is_a_transpose_of_the_io_only():
    tm = jax_lstm.LSTM(5, num_layers=2)
    bf = jax_lstm.LSTM(5, num_layers=2, batch_first=True)
    variables, x = _init(tm, (6, 3, 4))
    out, (h, c) = tm.apply(variables, x)
    out_bf, (h_bf, c_bf) = bf.apply(variables, jnp.swapaxes(x, 0, 1))
    np.testing.assert_allclose(jnp.swapaxes(out_bf, 0, 1), out, rtol=1e-6)
    np.testing.assert_allclose(h_bf, h, rtol=1e-6)
    np.testing.assert_allclose(c_bf, c, rtol=1e-6)


def test_reverse_direction_is_the_forward_recurrence_on_flipped_time():
    layer = jax_lstm.LSTM(5, bidirectional=True)
    variables, x = _init(layer, (6, 2, 3))
    out, (h, c) = layer.apply(variables, x)
    params = variables["params"]
    reverse_as_forward = {k.replace("_reverse", ""): v for k, v in params.items() if k.endswith("_reverse")}
    flipped_out, (fh, fc) = functional.lstm(reverse_as_forward, x[::-1])
    np.testing.assert_allclose(out[:, :, 5:], flipped_out[::-1], rtol=1e-6)
    np.testing.assert_allclose(h[1], fh[0], rtol=1e-6)
    np.testing.assert_allclose(c[1], fc[0], rtol=1e-6)


def test_functional_lstm_equals_the_module():
    layer = jax_lstm.LSTM(5, num_layers=2, proj_size=2)
    variables, x = _init(layer, (6, 2, 3))
    module_out = layer.apply(variables, x)
    functional_out = functional.lstm(variables["params"], x)
    for a, b in zip(jax.tree.leaves(module_out), jax.tree.leaves(functional_out), strict=True):
        np.testing.assert_array_equal(a, b)


def test_import_does_not_need_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
        "import jax, jax.numpy as jnp, jax_lstm\n"
        "m = jax_lstm.LSTMClassifier(8, 2, 3)\n"
        "v = m.init(jax.random.key(0), jnp.ones((2, 4, 5)))\n"
        "print(m.apply(v, jnp.ones((2, 4, 5))).shape)\n"
        "try:\n    jax_lstm.to_torch(v)\nexcept ImportError as e:\n    print('ImportError:', e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-u", "-c", code], capture_output=True, text=True, check=True, timeout=600
    )
    assert "(2, 3)" in result.stdout
    assert "pip install 'jax-lstm[torch]'" in result.stdout


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_layers": 2, "bidirectional": True, "proj_size": 3},
        {"num_layers": 2, "bias": False, "lengths": (5, 1, 7, 3)},
        {"bidirectional": True, "lengths": (7, 2, 4, 4)},
    ],
    ids=["bidirectional_proj", "no_bias_packed", "bidirectional_packed"],
)
def test_fused_recurrence_equals_the_reference_scan(x64, kwargs):
    """The hand-written backward pass and the inference loop compute what autodiff of the plain
    scan computes, to rounding, for every parameter, the input and the initial states."""
    kwargs = dict(kwargs)
    lengths = kwargs.pop("lengths", None)
    lengths = None if lengths is None else np.asarray(lengths, np.int32)
    x = jax.random.normal(jax.random.key(1), (7, 4, 3), jnp.float64)
    h0 = jax.random.normal(
        jax.random.key(2), (2 * kwargs.get("num_layers", 1), 4, kwargs.get("proj_size", 0) or 6), jnp.float64
    )
    c0 = jax.random.normal(jax.random.key(3), (2 * kwargs.get("num_layers", 1), 4, 6), jnp.float64)
    if not kwargs.get("bidirectional"):
        h0, c0 = h0[: kwargs.get("num_layers", 1)], c0[: kwargs.get("num_layers", 1)]
    layers = {
        impl: jax_lstm.LSTM(6, param_dtype=jnp.float64, implementation=impl, **kwargs)
        for impl in ("fused", "scan")
    }
    variables = layers["scan"].init(jax.random.key(0), x)

    def loss(impl, params, xs, state):
        out, (h, c) = layers[impl].apply({"params": params}, xs, state, lengths=lengths)
        return jnp.sum(jnp.sin(out)) + jnp.sum(h**2) + jnp.sum(c**3)

    results = {}
    for impl in layers:
        value, grads = jax.value_and_grad(lambda *a, impl=impl: loss(impl, *a), argnums=(0, 1, 2))(
            variables["params"], x, (h0, c0)
        )
        results[impl] = (layers[impl].apply(variables, x, (h0, c0), lengths=lengths), value, grads)
    for a, b in zip(jax.tree.leaves(results["fused"]), jax.tree.leaves(results["scan"]), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-13)


def test_unknown_implementation_is_refused():
    with pytest.raises(ValueError, match="implementation must be one of"):
        jax_lstm.LSTM(4, implementation="cuda")


def test_compare_handles_infinities_and_nan_in_both_directions():
    from jax_lstm.testing import Tolerance, compare

    tol = Tolerance(rtol=1e-6, atol=1e-6)
    assert compare("x", np.array([np.inf, 1.0]), np.array([np.inf, 1.0]), tol).ok  # inf - inf is no NaN
    opposite = compare("x", np.array([np.inf]), np.array([-np.inf]), tol)
    assert not opposite.ok and opposite.worst == np.inf
    assert not compare("x", np.array([np.inf]), np.array([1.0]), tol).ok
    assert (
        compare("x", np.array([np.nan]), np.array([1.0]), tol).problem == "NaN where the reference has none"
    )
    assert (
        compare("x", np.array([1.0]), np.array([np.nan]), tol).problem
        == "a number where the reference has NaN"
    )
    assert compare("x", np.array([np.nan, 2.0]), np.array([np.nan, 2.0 + 1e-7]), tol).ok
    assert not compare("x", np.array([2.0]), np.array([2.0 + 1e-5]), tol).ok


def test_forward_mode_needs_scan_and_agrees_with_reverse_mode(x64):
    """As documented: "fused" has a custom VJP, so forward mode refuses it; "scan" supports it, and
    its forward-mode Jacobian equals the hand-written backward's reverse-mode one."""
    x = jnp.asarray(np.random.default_rng(0).standard_normal((5, 2, 3)))
    layer = jax_lstm.LSTM(4, num_layers=2, param_dtype=jnp.float64)
    params = layer.init(jax.random.key(0), x)["params"]

    def output(impl):
        return lambda xs: functional.lstm(params, xs, implementation=impl)[0]

    np.testing.assert_allclose(
        jax.jacfwd(output("scan"))(x), jax.jacrev(output("fused"))(x), rtol=1e-12, atol=1e-14
    )
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(output("fused"), (x,), (jnp.ones_like(x),))
