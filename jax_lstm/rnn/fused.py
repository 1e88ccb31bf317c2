"""The fast LSTM recurrence: one layer, one direction, with a hand-written backward pass.

`recurrence` computes exactly what `lstm_layer(..., implementation="scan")` computes (the
reference, plain `lax.scan` differentiated by JAX) but arranges the work the way cuDNN does:

- Inference (no gradient): one `lax.scan`; each step does the input and recurrent products of that
  step. On XLA:CPU this beats projecting all timesteps up front, whose per-step dynamic slice of the
  large (T, B, 4H) buffer costs more than it saves.
- Training (`jax.custom_vjp`): the forward pass projects the input of all timesteps in one matmul
  and saves the gate activations and cell states; the backward scan keeps only the recurrent matmul
  per step, and the weight and input gradients are each one matmul over all timesteps afterwards
  (autodiff of a scan would accumulate dW_hh inside the loop, one extra matmul per step).

Shape letters: T time, B batch, I input features, H hidden size, P = H_out (proj or H).
All functions take torch's layouts: w_ih (4H, I), w_hh (4H, P), bias (4H,) = b_ih + b_hh,
w_hr (P, H) or None, valid (T, B) bool or None (right-padded sequences; invalid steps keep the state
and output zeros).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

__all__ = [
    "activations",
    "cell_update",
    "input_projection",
    "masked_update",
    "projected_scan",
    "recurrence",
]

Array = jax.Array


def activations(gates: Array) -> Array:
    """(..., 4H) pre-activations i, f, g, o -> (..., 4H) sigmoid, sigmoid, tanh, sigmoid."""
    hidden = gates.shape[-1] // 4
    i_f, g, o = gates[..., : 2 * hidden], gates[..., 2 * hidden : 3 * hidden], gates[..., 3 * hidden :]
    return jnp.concatenate([jax.nn.sigmoid(i_f), jnp.tanh(g), jax.nn.sigmoid(o)], axis=-1)


def _split4(a: Array) -> tuple[Array, Array, Array, Array]:
    hidden = a.shape[-1] // 4
    return a[..., :hidden], a[..., hidden : 2 * hidden], a[..., 2 * hidden : 3 * hidden], a[..., 3 * hidden :]


def cell_update(acts: Array, c: Array, w_hr: Array | None) -> tuple[Array, Array]:
    """Activated gates (B, 4H) and c (B, H) -> new (h (B, P), c (B, H)), torch's update."""
    i, f, g, o = _split4(acts)
    c = f * c + i * g
    h = o * jnp.tanh(c)
    if w_hr is not None:
        h = h @ w_hr.T
    return h, c


def masked_update(
    keep: Array | None, h_new: Array, c_new: Array, h: Array, c: Array
) -> tuple[Array, Array, Array]:
    """The state and output after one step of right-padded sequences: ``keep`` (B,) marks the
    sequences still running; the others keep their state and output zeros, as torch's packed path.

    Returns (h, c, output): (B, P), (B, H), (B, P).
    """
    if keep is None:
        return h_new, c_new, h_new
    keep = keep[:, None]
    out = jnp.where(keep, h_new, jnp.zeros_like(h_new))
    return jnp.where(keep, h_new, h), jnp.where(keep, c_new, c), out


def _scan_inputs(xs: Array, valid: Array | None):
    return xs if valid is None else (xs, valid)


def projected_scan(
    xw: Array, h0: Array, c0: Array, w_hh: Array, w_hr: Array | None, valid: Array | None, reverse: bool
) -> tuple[Array, Array, Array, Array, Array]:
    """The recurrence over precomputed input projections ``xw = x @ w_ih^T + bias`` (T, B, 4H).

    Returns (out (T, B, P), h_n (B, P), c_n (B, H), activations (T, B, 4H), cells (T, B, H)): what
    the training forward saves for its backward pass. The "scan" reference implementation is this
    function differentiated by JAX (which drops the unused per-step outputs).
    """
    w_hh_t = w_hh.T  # (P, 4H)

    def step(carry, inputs):
        h, c = carry
        xw_t, keep = inputs if valid is not None else (inputs, None)
        # The activations are materialised once per step (they are saved for the backward pass
        # anyway) rather than the pre-activations, which each consumer would re-derive from the
        # slice of xw: faster on XLA:CPU (benchmarks/NOTES.md).
        acts = activations(xw_t + h @ w_hh_t)  # (B, 4H)
        h, c, out = masked_update(keep, *cell_update(acts, c, w_hr), h, c)
        return (h, c), (out, acts, c)

    (h_n, c_n), (out, acts, cells) = lax.scan(step, (h0, c0), _scan_inputs(xw, valid), reverse=reverse)
    return out, h_n, c_n, acts, cells


def _check_mask(valid: Array | None, reverse: bool) -> None:
    if valid is not None and reverse:
        raise ValueError("recurrence: padding masks need reverse=False (reverse inside the lengths)")


@functools.partial(jax.custom_vjp, nondiff_argnums=(8,))
def recurrence(x, h0, c0, w_ih, w_hh, bias, w_hr, valid, reverse: bool):
    """One LSTM layer in one direction. x (T, B, I) -> (out (T, B, P), h_n (B, P), c_n (B, H)).

    `valid` marks right padding and is only allowed with ``reverse=False`` (the reverse direction of
    padded sequences is run forward on sequences reversed inside their lengths, see lstm_layer).
    """
    _check_mask(valid, reverse)
    # Inference path: the input product inside the loop (see the module docstring).
    w_ih_t, w_hh_t = w_ih.T, w_hh.T  # (I, 4H), (P, 4H)

    def step(carry, inputs):
        h, c = carry
        x_t, keep = inputs if valid is not None else (inputs, None)
        gates = x_t @ w_ih_t + h @ w_hh_t
        if bias is not None:
            gates = gates + bias[None, :]
        h_new, c_new = cell_update(activations(gates), c, w_hr)
        h, c, out = masked_update(keep, h_new, c_new, h, c)
        return (h, c), out

    (h_n, c_n), out = lax.scan(step, (h0, c0), _scan_inputs(x, valid), reverse=reverse)
    return out, h_n, c_n


def _recurrence_fwd(x, h0, c0, w_ih, w_hh, bias, w_hr, valid, reverse):
    _check_mask(valid, reverse)
    out, h_n, c_n, acts, cells = projected_scan(
        input_projection(x, w_ih, bias), h0, c0, w_hh, w_hr, valid, reverse
    )
    residuals = (x, h0, c0, w_ih, w_hh, bias, w_hr, valid, out, acts, cells)
    return (out, h_n, c_n), residuals


def input_projection(x: Array, w_ih: Array, bias: Array | None) -> Array:
    """x (T, B, I) -> (T, B, 4H): every timestep's ``x_t @ w_ih^T + bias`` as one matmul."""
    xw = jnp.einsum("tbi,gi->tbg", x, w_ih)
    return xw if bias is None else xw + bias[None, None, :]


def _previous(seq: Array, first: Array, reverse: bool) -> Array:
    """The value each step started from: seq shifted by one step in scan order, `first` at the start."""
    if reverse:
        return jnp.concatenate([seq[1:], first[None]], axis=0)
    return jnp.concatenate([first[None], seq[:-1]], axis=0)


def _recurrence_bwd(reverse, residuals, cotangents):
    x, h0, c0, w_ih, w_hh, bias, w_hr, valid, out, acts, cells = residuals
    d_out, d_hn, d_cn = cotangents
    # The state each step started from. With padding (only at the end of a forward scan) the
    # values at invalid steps are wrong, but their gate gradients are masked to zero below.
    h_prev = _previous(out, h0, reverse)  # (T, B, P)
    c_prev = _previous(cells, c0, reverse)  # (T, B, H)
    # Everything that does not depend on the backward recurrence, for all steps at once:
    # dc_t = dc_{t+1} f_{t+1} + dh_raw_t * dc_dh_t, and the pre-activation gradients are
    # [dc, dc, dc, dh_raw] * scale_t (chain rule through the gate non-linearities).
    i, f, g, o = _split4(acts)
    tanh_c = jnp.tanh(cells)
    dc_dh = o * (1 - tanh_c * tanh_c)  # (T, B, H)
    scale = jnp.concatenate(
        [g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g), tanh_c * o * (1 - o)], axis=-1
    )  # (T, B, 4H)
    if valid is not None:
        keep_all = valid[:, :, None]
        d_out = jnp.where(keep_all, d_out, jnp.zeros_like(d_out))
        scale = jnp.where(keep_all, scale, jnp.zeros_like(scale))  # invalid steps: no gate gradient

    def step(carry, inputs):
        dh_next, dc_next = carry  # gradients reaching h_t (B, P) and c_t (B, H) from later steps
        d_out_t, dc_dh_t, scale_t, f_t, keep = inputs
        dh = d_out_t + dh_next  # (B, P)
        dh_raw = dh @ w_hr if w_hr is not None else dh  # (B, H): back through the projection
        dc = dc_next + dh_raw * dc_dh_t
        d_gates = jnp.concatenate([dc, dc, dc, dh_raw], axis=-1) * scale_t  # (B, 4H)
        dh_prev = d_gates @ w_hh  # (B, P): the only matmul in the loop (plus the projection's)
        dc_prev = dc * f_t
        if keep is not None:
            keep = keep[:, None]
            dh = jnp.where(keep, dh, jnp.zeros_like(dh))
            dh_prev = jnp.where(keep, dh_prev, dh_next)  # an invalid step passed h and c through
            dc_prev = jnp.where(keep, dc_prev, dc_next)
        return (dh_prev, dc_prev), (d_gates, dh) if w_hr is not None else d_gates

    inputs = (d_out, dc_dh, scale, f, valid)
    (dh0, dc0), per_step = lax.scan(step, (d_hn, d_cn), inputs, reverse=not reverse)
    d_gates, dh_seq = per_step if w_hr is not None else (per_step, None)
    # Everything else is one contraction over all timesteps and the batch.
    d_x = jnp.einsum("tbg,gi->tbi", d_gates, w_ih)
    d_w_ih = jnp.einsum("tbg,tbi->gi", d_gates, x)
    d_w_hh = jnp.einsum("tbg,tbp->gp", d_gates, h_prev)
    d_bias = jnp.sum(d_gates, axis=(0, 1)) if bias is not None else None
    d_w_hr = None
    if w_hr is not None:
        d_w_hr = jnp.einsum("tbp,tbh->ph", dh_seq, o * tanh_c)  # h before the projection
    return d_x, dh0, dc0, d_w_ih, d_w_hh, d_bias, d_w_hr, None


recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)
