"""Clipping, Adam and ReduceLROnPlateau against torch: single steps, many steps, every scheduler option."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jax_lstm import optim

# Metric sequences chosen to hit every branch: steady improvement, ties (equal values), values
# exactly at the relative (x0.9) and absolute (-0.1) thresholds, negative metrics, plateaus, spikes.
SEQUENCES = {
    "improving": [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1],
    "constant_ties": [0.5] * 12,
    "plateau_then_drop": [1.0, 0.99, 0.995, 1.0, 0.999, 0.5, 0.5, 0.5, 0.5, 0.49, 0.49, 0.49],
    "at_rel_threshold": [1.0, 0.9, 0.81, 0.81 * 0.9, 0.81 * 0.9, 0.6, 0.6, 0.6, 0.6],
    "at_abs_threshold": [1.0, 0.9, 0.8, 0.7, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6],
    "negative": [-1.0, -1.1, -1.21, -1.21, -1.2, -1.3, -1.3, -1.3, -1.3, -2.0, -2.0, -2.0],
    "rising": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    "oscillating": [1.0, 2.0, 0.5, 3.0, 0.4, 0.45, 0.41, 0.39, 5.0, 0.1, 0.1, 0.1, 0.1],
    "zero_and_sign_change": [0.0, 0.0, -0.0, 1e-12, -1e-12, 0.0, 0.0, 0.0],
}

ARGUMENTS = [
    dict(mode=m, threshold_mode=tm, threshold=t, patience=p, cooldown=c, min_lr=ml, eps=e, factor=f)
    for m, tm, t, p, c, ml, e, f in itertools.product(
        ["min", "max"],
        ["rel", "abs"],
        [1e-4, 0.1, 0.0],
        [0, 2],
        [0, 2],
        [0.0, 2e-4],
        [1e-8, 5e-4],
        [0.1, 0.5],
    )
]


def torch_trace(kwargs, metrics, lr=1e-3):
    """(lr after each step, torch's final bookkeeping) from torch's own scheduler."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **kwargs)
    lrs = []
    for metric in metrics:
        scheduler.step(metric)
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs, (scheduler.best, scheduler.num_bad_epochs, scheduler.cooldown_counter, scheduler.last_epoch)


def jax_trace(kwargs, metrics, lr=1e-3):
    scheduler = optim.reduce_lr_on_plateau(**kwargs)
    state = scheduler.init(lr)
    lrs = []
    for metric in metrics:
        state = scheduler.update(state, metric)
        lrs.append(state.lr)
    return lrs, (state.best, state.num_bad_epochs, state.cooldown_counter, state.last_epoch)


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_plateau_lr_trace_equals_torch_for_every_argument_combination(sequence):
    metrics = SEQUENCES[sequence]
    reductions = 0
    for kwargs in ARGUMENTS:
        expected_lrs, expected_state = torch_trace(kwargs, metrics)
        actual_lrs, actual_state = jax_trace(kwargs, metrics)
        assert actual_lrs == expected_lrs, f"{kwargs}: {actual_lrs} != torch {expected_lrs}"
        assert actual_state == expected_state, kwargs
        reductions += expected_lrs[-1] != 1e-3
    assert reductions > 0, "the sequence never made torch reduce the learning rate: a weak test"


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    kwargs=st.sampled_from(ARGUMENTS),
    metrics=st.lists(
        st.one_of(
            st.floats(-10, 10, allow_nan=False),
            st.sampled_from([0.0, 1.0, 0.9, 1.1, -1.0]),  # repeated values make ties likely
        ),
        min_size=1,
        max_size=30,
    ),
    lr=st.sampled_from([1e-3, 0.1, 1.0]),
)
def test_plateau_random_traces_equal_torch(kwargs, metrics, lr):
    assert jax_trace(kwargs, metrics, lr) == torch_trace(kwargs, metrics, lr)


def test_plateau_argument_errors_match_torch():
    with pytest.raises(ValueError, match=r"Factor should be < 1\.0\."):
        optim.reduce_lr_on_plateau(factor=1.0)
    with pytest.raises(ValueError, match="mode avg is unknown"):
        optim.reduce_lr_on_plateau(mode="avg")
    with pytest.raises(ValueError, match="threshold mode pct is unknown"):
        optim.reduce_lr_on_plateau(threshold_mode="pct")


def _grads(rng, dtype, scale):
    shapes = {"weight_ih_l0": (8, 3), "weight_hh_l0": (8, 2), "bias_ih_l0": (8,), "bias_hh_l0": (8,)}
    return {k: (rng.standard_normal(s) * scale).astype(dtype) for k, s in shapes.items()}


@pytest.mark.parametrize("scale", [0.01, 0.3, 10.0], ids=["far_below", "near", "far_above"])
def test_clip_grad_norm_single_step_equals_torch(dtype, scale):
    grads = _grads(np.random.default_rng(0), dtype, scale)
    params = [torch.nn.Parameter(torch.zeros(g.shape, dtype=getattr(torch, dtype))) for g in grads.values()]
    for p, g in zip(params, grads.values(), strict=True):
        p.grad = torch.tensor(g)
    total = torch.nn.utils.clip_grad_norm_(params, max_norm=1.0)
    tx = optim.clip_grad_norm(1.0)
    clipped, _ = tx.update({k: jnp.asarray(v) for k, v in grads.items()}, tx.init(None))
    rtol = 1e-6 if dtype == "float32" else 1e-14
    np.testing.assert_allclose(float(optim.global_norm(grads)), float(total), rtol=rtol)
    for p, name in zip(params, grads, strict=True):
        assert clipped[name].dtype == np.dtype(dtype)
        np.testing.assert_allclose(np.asarray(clipped[name]), p.grad.numpy(), rtol=rtol, atol=0)
    if dtype == "float64" and scale == 10.0:
        # optax's clip_by_global_norm divides by the norm without torch's 1e-6: visibly different
        # in float64, which is why jax_lstm has its own transformation.
        optax_clipped, _ = optax.clip_by_global_norm(1.0).update(grads, None)
        gap = np.abs(np.asarray(optax_clipped["weight_ih_l0"]) - params[0].grad.numpy()).max()
        assert gap > 1e-10


@pytest.mark.parametrize(
    "norm, scaled", [(1.0 - 5e-7, True), (1.0 - 2e-6, False)], ids=["inside_the_1e-6", "below_it"]
)
def test_clip_grad_norm_at_the_threshold_follows_torchs_1e6(x64, norm, scaled):
    """Where torch's ``+ 1e-6`` decides: a norm in (max_norm - 1e-6, max_norm) is still scaled, by
    max_norm / (norm + 1e-6) < 1 (optax leaves it alone); below that the coefficient clamps at 1."""
    grads = _grads(np.random.default_rng(1), "float64", 1.0)
    factor = norm / float(optim.global_norm(grads))
    grads = {k: v * factor for k, v in grads.items()}
    params = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads.values()]
    for p, g in zip(params, grads.values(), strict=True):
        p.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_norm_(params, max_norm=1.0)
    tx = optim.clip_grad_norm(1.0)
    clipped, _ = tx.update({k: jnp.asarray(v) for k, v in grads.items()}, tx.init(None))
    optax_clipped, _ = optax.clip_by_global_norm(1.0).update(grads, None)
    for p, name in zip(params, grads, strict=True):
        np.testing.assert_allclose(np.asarray(clipped[name]), p.grad.numpy(), rtol=1e-15, atol=0)
        changed = not np.array_equal(p.grad.numpy(), grads[name])
        assert changed == scaled
        # optax does not scale below max_norm: it differs from torch exactly where torch scales.
        assert np.array_equal(np.asarray(optax_clipped[name]), grads[name])


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("clip", [None, 0.5])
def test_adam_many_steps_equal_torch(dtype, weight_decay, clip):
    """50 steps of (clip +) Adam from identical parameters and gradients, lr changed midway."""
    rng = np.random.default_rng(1)
    init = _grads(rng, dtype, 1.0)
    tparams = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in init.items()}
    topt = torch.optim.Adam(tparams.values(), lr=1e-2, weight_decay=weight_decay)
    tx = optim.adam(1e-2, weight_decay=weight_decay, max_grad_norm=clip)
    params = {k: jnp.asarray(v) for k, v in init.items()}
    state = optim.set_learning_rate(tx.init(params), 1e-2)
    update = jax.jit(tx.update)
    for step in range(50):
        if step == 25:  # as ReduceLROnPlateau would, between steps
            topt.param_groups[0]["lr"] = 1e-3
            state = optim.set_learning_rate(state, 1e-3)
        grads = _grads(rng, dtype, 2.0)
        for k, p in tparams.items():
            p.grad = torch.tensor(grads[k])
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(tparams.values(), max_norm=clip)
        topt.step()
        updates, state = update({k: jnp.asarray(v) for k, v in grads.items()}, state, params)
        params = optax.apply_updates(params, updates)
    assert update._cache_size() == 1  # the learning-rate change did not recompile
    # Measured after 50 float32 clip+Adam steps: 4.9e-7 absolute (1.7e-5 relative, on a parameter
    # near 0.03), inside atol 1e-6 alone; float64: rounding level.
    rtol, atol = (1e-5, 1e-6) if dtype == "float32" else (1e-12, 1e-14)
    for k, p in tparams.items():
        assert params[k].dtype == np.dtype(dtype)
        np.testing.assert_allclose(np.asarray(params[k]), p.detach().numpy(), rtol=rtol, atol=atol)
    assert float(optim.learning_rate(state)) == pytest.approx(1e-3)
