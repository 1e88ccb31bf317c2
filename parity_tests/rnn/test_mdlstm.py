"""The 2-D multi-dimensional LSTM (`jax_lstm.rnn.mdlstm`) and its classifier against their torch twins
(`torch_ref.mdlstm`): outputs and every gradient in both dtypes over a table of grids; the wavefront
against the cell-by-cell reference bit for bit; padding invariance; rematerialisation; interop; the
error messages; a few Adam steps in lockstep with torch.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_lstm
from jax_lstm.models.mdlstm import MDLSTMClassifier
from jax_lstm.rnn import mdlstm
from jax_lstm.testing import TOLERANCES, Tolerance, assert_all_close
from torch_ref import mdlstm as torch_mdlstm


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    batch: int
    height: int
    width: int
    channels: int
    hidden: int
    directions: int
    lengths: tuple[int, ...] | None = None


CASES = [
    Case("tall_four_directions", 2, 5, 3, 1, 3, 4),
    # W > H: the wavefront runs on the transposed grid.
    Case("wide_four_directions_lengths", 3, 3, 5, 2, 2, 4, (3, 1, 2)),
    Case("one_row", 2, 1, 4, 2, 2, 4),
    Case("one_column_lengths", 2, 4, 1, 1, 2, 1, (2, 4)),
    Case("batch_one_square_lengths", 1, 4, 4, 2, 3, 1, (3,)),
]


def _inputs(case: Case, dtype: str, seed: int = 0):
    """x (B, H, W, C) with garbage below each grid's length, lengths or None, cotangent of the output."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((case.batch, case.height, case.width, case.channels)).astype(dtype)
    lengths = None
    if case.lengths is not None:
        lengths = np.asarray(case.lengths)
        padding = np.arange(case.height)[None, :] >= lengths[:, None]  # (B, H)
        x[padding] = 1e3  # never read
    cotangent = rng.standard_normal((case.batch, case.height, case.width, case.directions * case.hidden))
    return x, lengths, cotangent.astype(dtype)


def _twin(case: Case, dtype: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch_mdlstm.MDLSTM2d(case.channels, case.hidden, case.directions).to(getattr(torch, dtype))


# One compiled program per function, shape and dtype, shared by the tests below.
@jax.jit
def _wavefront_vjp(params, x, lengths, cotangent):
    out, vjp = jax.vjp(lambda p, xs: mdlstm.mdlstm2d(p, xs, len(p) // 5, lengths), params, x)
    return out, vjp(cotangent)


@jax.jit
def _wavefront(params, x, lengths):
    return mdlstm.mdlstm2d(params, x, len(params) // 5, lengths)


@jax.jit
def _reference(params, x, lengths):
    return mdlstm.mdlstm2d_reference(params, x, len(params) // 5, lengths)


# The backward passes add each weight's contributions over the cells in different orders: measured at
# most 6.6e-13 relative (on an element of 1e-3), 1.8e-15 absolute, over the table (float64).
_REORDERED_SUMS = Tolerance(rtol=1e-12, atol=1e-14)


def _as_jax(lengths):
    return None if lengths is None else jnp.asarray(lengths)


def _torch_run(module: torch.nn.Module, x: np.ndarray, lengths, cotangent: np.ndarray):
    tx = torch.tensor(x, requires_grad=True)
    out = module(tx, None if lengths is None else torch.as_tensor(lengths))
    (out * torch.as_tensor(cotangent)).sum().backward()
    return out, {name: p.grad for name, p in module.named_parameters()}, tx.grad


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_layer_matches_torch(case: Case, dtype: str):
    x, lengths, cotangent = _inputs(case, dtype)
    twin = _twin(case, dtype)
    params = jax_lstm.from_torch(twin.state_dict())["params"]
    out, (grads, grad_x) = _wavefront_vjp(params, jnp.asarray(x), _as_jax(lengths), jnp.asarray(cotangent))
    t_out, t_grads, t_grad_x = _torch_run(twin, x, lengths, cotangent)
    assert out.shape == (case.batch, case.height, case.width, case.directions * case.hidden)
    assert len(t_grads) == 5 * case.directions
    pairs = {"output": (out, t_out), "grad/input": (grad_x, t_grad_x)}
    pairs.update({f"grad/{name}": (grads[name], g) for name, g in t_grads.items()})
    for name, (actual, _) in pairs.items():
        assert actual.dtype == np.dtype(dtype), f"{name} came out as {actual.dtype}"
    assert_all_close(pairs, TOLERANCES[dtype])
    if lengths is not None:
        padding = np.arange(case.height)[None, :] >= lengths[:, None]
        assert np.all(np.asarray(out)[padding] == 0) and np.all(np.asarray(grad_x)[padding] == 0)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_wavefront_is_the_cell_by_cell_reference(case: Case, x64):
    """The wavefront's output is the cell-by-cell loop's, bit for bit (float64).

    Bit for bit wherever both sides' recurrent products are matrix-matrix products. A product of a
    single row (the reference's per-cell product at batch 1, or the wavefront's at batch 1 on a
    one-column grid) XLA:CPU computes as a vector-matrix product, with another kernel that sums in
    another order (and the two sides' operands differ in layout), so at batch 1 the two differ in the
    last bit (a few 1e-16; against torch the batch-1 case is compared like the others). The batch-1
    case is therefore compared with its grid repeated twice in the batch: rows of a batch never
    interact, so that is the same computation with two rows.

    The gradients are compared with torch's in float64 (`test_layer_matches_torch`): the two sides
    sum each weight's contributions over the cells in different orders, so they agree to the last
    few bits only (against the reference: at most 1.7e-13 relative, 1.8e-15 absolute, measured).
    """
    x, lengths, _ = _inputs(case, "float64")
    if case.batch == 1:
        x = np.concatenate([x, x])
        lengths = None if lengths is None else np.concatenate([lengths, lengths])
    params = jax_lstm.from_torch(_twin(case, "float64").state_dict())["params"]
    out = _wavefront(params, jnp.asarray(x), _as_jax(lengths))
    ref = _reference(params, jnp.asarray(x), _as_jax(lengths))
    np.testing.assert_array_equal(out, ref, strict=True)
    assert bool(jnp.all(out == ref)) and out.shape == ref.shape


@functools.partial(jax.jit, static_argnames=("implementation", "remat"))
def _vjp_with(params, x, lengths, cotangent, implementation: str, remat: bool):
    def f(p, xs):
        return mdlstm.mdlstm2d(p, xs, len(p) // 5, lengths, remat=remat, implementation=implementation)

    out, vjp = jax.vjp(f, params, x)
    return out, vjp(cotangent)


@pytest.mark.parametrize(("implementation", "remat"), [("fused", True), ("scan", False), ("scan", True)])
def test_implementations_and_remat_agree(implementation: str, remat: bool, x64):
    """Every backward pass against the default one (hand-written, saving the gates), which
    `test_layer_matches_torch` compares with torch: the same forward pass bit for bit, the gradients
    to the last few bits (the same terms added in other orders); `jax.checkpoint` of the scan's step
    changes no bit of the scan's gradients."""
    case = CASES[1]
    x, lengths, cotangent = _inputs(case, "float64")
    params = jax_lstm.from_torch(_twin(case, "float64").state_dict())["params"]
    args = (jnp.asarray(x), jnp.asarray(lengths), jnp.asarray(cotangent))
    out, grads = _wavefront_vjp(params, *args)
    other, other_grads = _vjp_with(params, *args, implementation=implementation, remat=remat)
    np.testing.assert_array_equal(out, other, strict=True)
    pairs = {f"grad/{k}": (other_grads[0][k], grads[0][k]) for k in params}
    pairs["grad/input"] = (other_grads[1], grads[1])
    assert len(pairs) == 21
    assert_all_close(pairs, _REORDERED_SUMS)
    if implementation == "scan" and remat:
        _, scan_grads = _vjp_with(params, *args, implementation="scan", remat=False)
        for a, b in zip(jax.tree.leaves(other_grads), jax.tree.leaves(scan_grads), strict=True):
            np.testing.assert_array_equal(a, b, strict=True)


def test_skew_puts_each_antidiagonal_in_one_row():
    a = np.arange(3 * 5).reshape(3, 5) + 1  # (S, R)
    skewed = np.asarray(mdlstm.skew(jnp.asarray(a)))
    assert skewed.shape == (3, 7)
    for s in range(3):
        for k in range(7):
            assert skewed[s, k] == (a[s, k - s] if 0 <= k - s < 5 else 0)
    np.testing.assert_array_equal(mdlstm.unskew(jnp.asarray(skewed), 5), a)


def test_padding_changes_nothing(x64):
    """Whatever the padding holds (NaN, inf, huge values), no valid output and no gradient changes,
    bit for bit; each grid alone, unpadded, gives the outputs it has in the padded batch."""
    case = CASES[1]
    x, lengths, cotangent = _inputs(case, "float64")
    params = jax_lstm.from_torch(_twin(case, "float64").state_dict())["params"]
    padding = np.arange(case.height)[None, :] >= lengths[:, None]
    garbage = x.copy()
    garbage[padding] = np.array([np.nan, np.inf, -np.inf, 1e300, -3.0, 0.5])[: case.channels]
    cotangent[padding] = 0.0
    args = (jnp.asarray(lengths), jnp.asarray(cotangent))
    clean = _wavefront_vjp(params, jnp.asarray(np.where(padding[..., None, None], 0.0, x)), *args)
    dirty = _wavefront_vjp(params, jnp.asarray(garbage), *args)
    for a, b in zip(jax.tree.leaves(clean), jax.tree.leaves(dirty), strict=True):
        assert np.all(np.isfinite(b))
        np.testing.assert_array_equal(a, b, strict=True)
    out = np.asarray(dirty[0])
    for b in (1, 2):  # lengths 1 and 2
        length = lengths[b]
        alone = _wavefront(params, jnp.asarray(x[b : b + 1, :length]), None)
        np.testing.assert_allclose(alone[0], out[b, :length], rtol=1e-14, atol=1e-15)
        assert np.all(out[b, length:] == 0)


def test_module_is_the_function(x64):
    """`MDLSTM2d.apply` is `mdlstm2d` on its parameters (the twin's here: CASES[0])."""
    case = CASES[0]
    x, _, _ = _inputs(case, "float64")
    variables = jax_lstm.from_torch(_twin(case, "float64").state_dict())
    module = jax_lstm.MDLSTM2d(case.hidden, case.directions, param_dtype=jnp.float64)
    out = jax.jit(module.apply)(variables, jnp.asarray(x))
    np.testing.assert_array_equal(out, _wavefront(variables["params"], jnp.asarray(x), None), strict=True)


# Initialisation draws every tensor with its own random program: one init, shared by the tests.
_INIT = jax.jit(jax_lstm.MDLSTM2d(16).init)


def test_init_is_torchs_uniform_and_loads_into_the_twin():
    variables = _INIT(jax.random.key(0), jnp.zeros((1, 1, 1, 3)))
    assert {k: tuple(v.shape) for k, v in variables["params"].items()} == mdlstm.param_shapes(3, 16)
    four = jax.eval_shape(jax_lstm.MDLSTM2d(16, 4).init, jax.random.key(0), jnp.zeros((1, 1, 1, 3)))
    assert {k: v.shape for k, v in four["params"].items()} == mdlstm.param_shapes(3, 16, 4)
    # torch's state-dict order is the layout's, which to_torch writes
    assert list(mdlstm.param_shapes(3, 16, 4)) == list(torch_mdlstm.MDLSTM2d(3, 16, 4).state_dict())
    values = np.concatenate([np.ravel(v) for v in jax.tree.leaves(variables)])
    bound = 1 / np.sqrt(16)
    assert np.abs(values).max() <= bound
    assert np.abs(values).max() > 0.95 * bound and abs(values.mean()) < 0.05 * bound
    torch_mdlstm.MDLSTM2d(3, 16).load_state_dict(jax_lstm.to_torch(variables), strict=True)


@pytest.mark.parametrize("directions", [1, 4])
def test_round_trip_is_bit_exact(directions: int):
    twin = torch_mdlstm.MDLSTM2d(3, 4, directions)
    state = twin.state_dict()
    variables = jax_lstm.from_torch(state)
    assert set(variables["params"]) == set(state)
    back = jax_lstm.to_torch(variables)
    assert list(back) == list(state)
    for key in state:
        assert torch.equal(back[key], state[key]), key
    torch_mdlstm.MDLSTM2d(3, 4, directions).load_state_dict(back, strict=True)


def test_round_trip_from_jax_is_bit_exact():
    ours = _INIT(jax.random.key(1), jnp.zeros((1, 1, 1, 3)))
    again = jax_lstm.from_torch(jax_lstm.to_torch(ours))
    assert set(again["params"]) == set(ours["params"])
    for key, value in ours["params"].items():
        np.testing.assert_array_equal(again["params"][key], value, strict=True)


def test_a_wrong_state_dict_names_the_key():
    state = torch_mdlstm.MDLSTM2d(3, 4, 4).state_dict()
    del state["bias_hh_dir2"]
    with pytest.raises(KeyError, match=r"missing bias_hh_dir2 \(20,\)"):
        jax_lstm.from_torch(state)
    state = torch_mdlstm.MDLSTM2d(3, 4, 1).state_dict()
    state["weight_hh_w"] = torch.zeros(20, 5)
    with pytest.raises(ValueError, match=r"weight_hh_w: expected shape \(20, 4\), got \(20, 5\)"):
        jax_lstm.from_torch(state)


# --------------------------------------------------------------------------------------------------
# Bad input: a ValueError (or TypeError for a dtype) naming the problem and the fix, before any work.

_PARAMS = {k: jnp.zeros(s) for k, s in mdlstm.param_shapes(2, 3, 1).items()}
_PARAMS4 = {k: jnp.zeros(s) for k, s in mdlstm.param_shapes(2, 3, 4).items()}
_X = jnp.zeros((2, 4, 3, 2))


def _grid(*shape, dtype=jnp.float32):
    return jnp.zeros(shape, dtype)


def _call(params=_PARAMS, x=_X, directions=1, lengths=None):
    return lambda: mdlstm.mdlstm2d(params, x, directions, None if lengths is None else jnp.asarray(lengths))


ERRORS = [
    ("rank_3", _call(x=_X[0]), ValueError, r"got 3D shape \(4, 3, 2\): add a batch axis"),
    ("rank_5", _call(x=_X[None]), ValueError, r"\(batch, height, width, channels\)"),
    ("channels", _call(x=_grid(2, 4, 3, 5)), ValueError, r"5 channels .* expects 2"),
    ("directions_2", _call(directions=2), ValueError, "directions must be 1 .* or 4"),
    ("directions_params", _call(params=_PARAMS4), ValueError, "pass directions=4"),
    ("integer_input", _call(x=_grid(2, 4, 3, 2, dtype=jnp.int32)), TypeError, "floating-point"),
    ("dtype", _call(x=_grid(2, 4, 3, 2, dtype=jnp.float16)), ValueError, "does not match weight"),
    ("empty_grid", _call(x=_grid(2, 0, 3, 2)), ValueError, "empty axis"),
    ("lengths_long", _call(lengths=[4, 5]), ValueError, "length 4, got 5 .*valid rows along H"),
    ("lengths_zero", _call(lengths=[0, 2]), ValueError, "at least 1"),
    ("lengths_shape", _call(lengths=[1, 2, 3]), ValueError, r"shape \(batch,\) = \(2,\)"),
    ("lengths_float", _call(lengths=[1.0, 2.0]), TypeError, "integers"),
    ("hidden_0", lambda: jax_lstm.MDLSTM2d(0), ValueError, "hidden_size must be at least 1"),
    ("module_directions", lambda: jax_lstm.MDLSTM2d(4, directions=2), ValueError, "directions must be 1"),
    (
        "module_params",
        lambda: jax_lstm.MDLSTM2d(4).apply({"params": _PARAMS}, _X),
        ValueError,
        r"MDLSTM2d\(hidden_size=3, directions=1\), not of this MDLSTM2d\(hidden_size=4",
    ),
    ("module_rank", lambda: jax_lstm.MDLSTM2d(3).apply({"params": _PARAMS}, _X[0]), ValueError, "batch axis"),
    (
        "classifier_rank",
        lambda: MDLSTMClassifier(3, 2).init(jax.random.key(0), _X),
        ValueError,
        r"\(batch, seq_len, features\)",
    ),
    ("classifier_classes", lambda: MDLSTMClassifier(3, 0), ValueError, "num_classes must be at least 1"),
]


@pytest.mark.parametrize(("name", "call", "kind", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_is_named_with_its_fix(name, call, kind, message):
    with pytest.raises(kind, match=message):
        call()


# --------------------------------------------------------------------------------------------------
# The classifier.

CLASSIFIER_B, CLASSIFIER_T, CLASSIFIER_F, CLASSIFIER_H, CLASSIFIER_K = 3, 5, 3, 3, 4


def _classifier_variables(twin: torch.nn.Module) -> dict:
    """The twin's weights as Flax variables: the MDLSTM through from_torch, the head by name."""
    params = {"mdlstm": jax_lstm.from_torch(twin.mdlstm.state_dict())["params"]}
    params["fc"] = {k: jnp.asarray(v.detach().numpy()) for k, v in twin.fc.state_dict().items()}
    return {"params": params}


def _classifier_pair(dtype: str, seed: int = 0):
    torch.manual_seed(seed)
    twin = torch_mdlstm.MDLSTMClassifier(CLASSIFIER_H, CLASSIFIER_K).to(getattr(torch, dtype))
    model = MDLSTMClassifier(CLASSIFIER_H, CLASSIFIER_K, param_dtype=getattr(jnp, dtype))
    return model, _classifier_variables(twin), twin


@functools.partial(jax.jit, static_argnums=0)
def _classifier_vjp(model, params, x, lengths, cotangent):
    logits, vjp = jax.vjp(lambda p, a: model.apply({"params": p}, a, lengths=lengths), params, x)
    return logits, vjp(cotangent)


def test_classifier_matches_torch(dtype: str):
    """Logits and every gradient, on a batch with a full-length grid, a one-row grid and one between
    (without lengths: `test_classifier_ignores_padding_and_matches_each_series_alone`)."""
    model, variables, twin = _classifier_pair(dtype)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((CLASSIFIER_B, CLASSIFIER_T, CLASSIFIER_F)).astype(dtype)
    lengths = np.array([5, 1, 3])
    x[np.arange(CLASSIFIER_T)[None, :] >= lengths[:, None]] = -7.0  # garbage, never read
    cotangent = rng.standard_normal((CLASSIFIER_B, CLASSIFIER_K)).astype(dtype)
    # The structure the Flax module makes is the one built from the twin.
    init = jax.eval_shape(model.init, jax.random.key(0), jnp.asarray(x))
    assert jax.tree.map(lambda a: a.shape, init) == jax.tree.map(lambda a: a.shape, variables)
    args = (jnp.asarray(x), jnp.asarray(lengths), jnp.asarray(cotangent))
    logits, (grads, grad_x) = _classifier_vjp(model, variables["params"], *args)
    t_logits, t_grads, t_grad_x = _torch_run(twin, x, lengths, cotangent)
    pairs = {"logits": (logits, t_logits), "grad/input": (grad_x, t_grad_x)}
    flat = jax_lstm.interop.flatten_variables({"params": grads})
    assert set(flat) == set(t_grads) and len(flat) == 22
    pairs.update({f"grad/{name}": (flat[name], g) for name, g in t_grads.items()})
    assert_all_close(pairs, TOLERANCES[dtype])


def test_classifier_ignores_padding_and_matches_each_series_alone(x64):
    """NaN in the padding: finite logits and gradients, the same as with zeros there, bit for bit;
    a series alone (no lengths) gives its logits in the padded batch."""
    model, variables, _ = _classifier_pair("float64", seed=2)
    rng = np.random.default_rng(3)
    lengths = np.array([2, 5, 4])
    x = rng.standard_normal((CLASSIFIER_B, CLASSIFIER_T, CLASSIFIER_F))
    padding = np.arange(CLASSIFIER_T)[None, :] >= lengths[:, None]
    dirty, clean = x.copy(), x.copy()
    dirty[padding], clean[padding] = np.nan, 0.0
    cotangent = jnp.asarray(rng.standard_normal((CLASSIFIER_B, CLASSIFIER_K)))
    runs = [
        _classifier_vjp(model, variables["params"], jnp.asarray(a), jnp.asarray(lengths), cotangent)
        for a in (dirty, clean)
    ]
    for a, b in zip(jax.tree.leaves(runs[0]), jax.tree.leaves(runs[1]), strict=True):
        assert np.all(np.isfinite(a))
        np.testing.assert_array_equal(a, b, strict=True)
    logits = runs[0][0]
    alone = jax.jit(model.apply)(variables, jnp.asarray(x[2:3, : lengths[2]]))  # length 4, no lengths
    np.testing.assert_allclose(alone[0], logits[2], rtol=1e-13, atol=1e-14)
