"""The 2-D multi-dimensional LSTM (Graves, Fernandez and Schmidhuber, ICANN 2007; Graves and
Schmidhuber, NIPS 2009) as a wavefront scan: pure functions, the cell-by-cell reference, the Flax module.

(Not the article's `MultiDimLSTM`, which is a 1-D LSTM over multivariate series.)

In scan coordinates cell (i, j) of a grid (H, W) sees the states of (i-1, j) and (i, j-1), zero
outside the grid::

    a       = x[i,j] W_ih^T + b_ih + h[i-1,j] W_hh_h^T + h[i,j-1] W_hh_w^T + b_hh    (5 chunks)
    i, f_h, f_w, g, o = sigmoid, sigmoid, sigmoid, tanh, sigmoid of the chunks
    c[i,j]  = f_h * c[i-1,j] + f_w * c[i,j-1] + i * g
    h[i,j]  = o * tanh(c[i,j])

Parameters, torch-named, per direction d (suffix ``_dir{d}`` for d = 1, 2, 3, none for d = 0):
``weight_ih`` (5H, C), ``weight_hh_h`` (5H, H), ``weight_hh_w`` (5H, H), ``bias_ih``, ``bias_hh``
(5H,), all U(-1/sqrt(H), 1/sqrt(H)). Direction 0 scans from the top-left corner, 1 from the top-right
(the grid flipped along W), 2 from the bottom-left (flipped along H), 3 from the bottom-right; each
output is flipped back and the directions are concatenated on the last axis in that order.

The wavefront: every cell of the anti-diagonal k = i + j depends only on diagonal k - 1, so the grid
is one `lax.scan` over H + W - 1 diagonals. The grid is skewed first (cell (i, j) moves to (i + j, j),
by a pad and two reshapes, no gather), so that diagonal k is the contiguous row k of the skewed
grid, indexed by j: the neighbour (i-1, j) is slot j of the previous diagonal and (i, j-1) slot j - 1,
a shift by one. Each step is then one matmul of the previous diagonal's h with both recurrent
weights, (B * S, H) @ (H, 10H), and the gate arithmetic. The slots run along the shorter side of the
grid (the grid is transposed when W > H, the two recurrent weights and forget gates swapping roles),
so a step holds min(H, W) slots (on a square grid half of all slots are outside it: the price of a
fixed-shape scan). The input projection is done for every cell before the scan, as
`jax_lstm.rnn.cells` does for timesteps. All directions run in the same scan (`jax.vmap` over them).

The backward pass (``implementation="fused"``, the default) is written by hand (`jax.custom_vjp`):
the forward scan saves h, c and the activated gates of each diagonal (with ``remat=True`` only h and
c, the gates then recomputed diagonal by diagonal); the backward scan runs the diagonals in reverse,
one matmul per diagonal for the gradient passed back to the previous one plus the weight gradients'
terms, summed in the loop. ``implementation="scan"`` differentiates the same forward scan with JAX
(``remat=True``: `jax.checkpoint` of each step). Memory and speed of each: benchmarks/NOTES.md.

The order of the floating-point operations is fixed (`_gates`: ``(x W_ih^T + b_ih) + (h_h W_hh_h^T +
h_w W_hh_w^T) + b_hh``, the sum of the two recurrent terms symmetric in them, so the transposed layout
rounds the same) and shared with the cell-by-cell reference `mdlstm2d_reference`, which the wavefront
equals bit for bit in its forward pass.

`lengths` (B,) marks right-padded grids along H (a series as a (time, channel) grid): cells with
i >= lengths[b] are outside the grid (h = c = 0, and their input is zeroed first, so whatever the
padding holds changes no valid output and no gradient).

Shape letters: B batch, H_g x W_g the grid (written H, W where no confusion with the hidden size
arises), C channels, H hidden size, D directions, K = H_g + W_g - 1 diagonals, S slots per diagonal.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jax_lstm.nn.init import torch_uniform
from jax_lstm.rnn.checks import as_array, check_input_dtype, check_lengths
from jax_lstm.rnn.spec import check_layout

__all__ = [
    "DIRECTIONS",
    "GATES",
    "IMPLEMENTATIONS",
    "MDLSTM2d",
    "MDLSTMWeights",
    "check_directions",
    "check_hidden_size",
    "check_implementation",
    "direction_suffix",
    "mdlstm2d",
    "mdlstm2d_reference",
    "param_shapes",
    "skew",
    "spec_from_params",
    "unskew",
    "valid_cells",
]

Array = jax.Array

GATES = 5  # i, f_h, f_w, g, o
DIRECTIONS = (1, 4)  # the direction counts a layer may have
NAMES = ("weight_ih", "weight_hh_h", "weight_hh_w", "bias_ih", "bias_hh")
# The grid axes (of (B, H, W, C)) each direction flips: 0 top-left, 1 top-right, 2 bottom-left,
# 3 bottom-right.
_FLIPS: tuple[tuple[int, ...], ...] = ((), (2,), (1,), (1, 2))


class MDLSTMWeights(NamedTuple):
    """One direction's arrays, in torch's layout; rows in the gate order i, f_h, f_w, g, o."""

    w_ih: Any  # (5H, C)
    w_hh_h: Any  # (5H, H): from the neighbour along H, (i-1, j)
    w_hh_w: Any  # (5H, H): from the neighbour along W, (i, j-1)
    b_ih: Any  # (5H,)
    b_hh: Any  # (5H,)


def direction_suffix(direction: int) -> str:
    return "" if direction == 0 else f"_dir{direction}"


def check_directions(directions: Any) -> int:
    if isinstance(directions, bool) or directions not in DIRECTIONS:
        raise ValueError(
            f"MDLSTM2d: directions must be 1 (one scan from the top-left corner) or 4 (one from each "
            f"corner), got {directions!r}"
        )
    return int(directions)


def check_hidden_size(hidden_size: Any) -> int:
    if isinstance(hidden_size, bool) or not isinstance(hidden_size, int):
        raise TypeError(f"MDLSTM2d: hidden_size should be of type int, got: {type(hidden_size).__name__}")
    if hidden_size < 1:
        raise ValueError(
            f"MDLSTM2d: hidden_size must be at least 1 (the width of h and c in each direction), "
            f"got {hidden_size}"
        )
    return hidden_size


def param_shapes(input_size: int, hidden_size: int, directions: int = 1) -> dict[str, tuple[int, ...]]:
    """Every parameter of an MDLSTM2d, in the torch twin's state-dict order, with its shape."""
    rows = GATES * hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    for d in range(directions):
        sfx = direction_suffix(d)
        shapes[f"weight_ih{sfx}"] = (rows, input_size)
        shapes[f"weight_hh_h{sfx}"] = (rows, hidden_size)
        shapes[f"weight_hh_w{sfx}"] = (rows, hidden_size)
        shapes[f"bias_ih{sfx}"] = (rows,)
        shapes[f"bias_hh{sfx}"] = (rows,)
    return shapes


def spec_from_params(params: Mapping[str, Any], prefix: str = "") -> tuple[int, int, int]:
    """(input_size, hidden_size, directions) of an MDLSTM2d parameter set, every shape checked.

    Raises:
      KeyError: a parameter is missing or unexpected (named, with its expected shape).
      ValueError: a shape does not fit the others (the key, expected and actual shape).
    """
    w_hh = params.get("weight_hh_h")
    w_ih = params.get("weight_ih")
    if w_hh is None or w_ih is None:
        raise KeyError(
            f"not an MDLSTM2d parameter set: missing {prefix}weight_ih / {prefix}weight_hh_h "
            f"(got keys {sorted(params)[:8]})"
        )
    if len(w_hh.shape) != 2 or w_hh.shape[1] < 1 or w_hh.shape[0] != GATES * w_hh.shape[1]:
        raise ValueError(
            f"{prefix}weight_hh_h: expected shape (5*hidden_size, hidden_size), got "
            f"{tuple(int(s) for s in w_hh.shape)}"
        )
    if len(w_ih.shape) != 2:
        raise ValueError(
            f"{prefix}weight_ih: expected shape (5*hidden_size, channels), got "
            f"{tuple(int(s) for s in w_ih.shape)}"
        )
    hidden_size, input_size = int(w_hh.shape[1]), int(w_ih.shape[1])
    directions = 4 if any(k.endswith(("_dir1", "_dir2", "_dir3")) for k in params) else 1
    what = f"MDLSTM2d(hidden_size={hidden_size}, directions={directions}) on {input_size} channels"
    check_layout(
        params,
        param_shapes(input_size, hidden_size, directions),
        f"the parameters do not match {what}",
        prefix,
        f" (for {what})",
    )
    return input_size, hidden_size, directions


def direction_weights(params: Mapping[str, Any], direction: int) -> MDLSTMWeights:
    sfx = direction_suffix(direction)
    return MDLSTMWeights(*(params[f"{name}{sfx}"] for name in NAMES))


# --- input checks ------------------------------------------------------------------------------


def check_grid(x: Any, name: str = "MDLSTM2d") -> Array:
    """A (B, H, W, C) floating-point array with no empty axis, or a message saying what to pass."""
    if x is None:
        raise TypeError(f"{name}: the input is None; pass an array of shape (batch, height, width, channels)")
    x = as_array(x, name)
    if x.ndim != 4:
        hint = ""
        if x.ndim == 3:
            hint = (
                ": add a batch axis with x[None] for one (H, W, C) grid, or a channel axis with "
                "x[..., None] for a batch of one-channel (B, H, W) grids"
            )
        elif x.ndim == 2:
            hint = ": reshape one (H, W) grid with x[None, :, :, None]"
        raise ValueError(
            f"{name}: expected input of shape (batch, height, width, channels), got {x.ndim}D shape "
            f"{tuple(x.shape)}{hint}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{name}: expected a floating-point input, got dtype {x.dtype}; cast it first, e.g. "
            "x.astype(jnp.float32)"
        )
    if 0 in x.shape:
        raise ValueError(
            f"{name}: the input has an empty axis (shape {tuple(x.shape)} as (batch, height, width, "
            "channels)); every axis needs at least one entry"
        )
    return x


def _check_channels(x: Array, w_ih: Any, name: str) -> None:
    channels, expected = int(x.shape[-1]), int(w_ih.shape[1])
    if channels != expected:
        raise ValueError(
            f"{name}: the input has {channels} channels (last axis of shape {tuple(x.shape)}) but weight_ih "
            f"{tuple(int(s) for s in w_ih.shape)} expects {expected}; pass (batch, height, width, "
            f"{expected}) grids, or weights made for {channels} channels"
        )


def _check_lengths(lengths: Any, x: Array, name: str) -> Array:
    try:
        # The batch as it is: symbolic in a jax.export program of any batch size.
        return check_lengths(lengths, x.shape[0], int(x.shape[1]))
    except (ValueError, TypeError) as err:
        raise type(err)(
            f"{name}: {err} (lengths are each grid's valid rows along H, axis 1 of the (batch, height, "
            f"width, channels) input of shape {tuple(x.shape)})"
        ) from None


def _checked(
    params: Mapping[str, Any], x: Any, directions: int, lengths: Any, name: str
) -> tuple[Array, Array | None, int]:
    """The checks shared by the wavefront and the reference, before any work: (x, lengths, hidden)."""
    directions = check_directions(directions)
    x = check_grid(x, name)
    if not isinstance(params, Mapping):
        raise TypeError(f"{name}: params must be the flat mapping of torch-named arrays, got {type(params)}")
    _, hidden, found = spec_from_params(params)
    if found != directions:
        raise ValueError(
            f"{name}: the parameters hold {found} direction(s) but directions={directions} was "
            f"passed; pass directions={found}"
        )
    _check_channels(x, params["weight_ih"], name)
    check_input_dtype(x, params["weight_ih"], name)
    if lengths is not None:
        lengths = _check_lengths(lengths, x, name)
    return x, lengths, hidden


def valid_cells(lengths: Array | None, batch: int, height: int, width: int) -> Array:
    """(B,) valid rows along H, or None -> (B, H, W) bool: the cells inside each grid."""
    if lengths is None:
        return jnp.ones((batch, height, width), bool)
    rows = jnp.arange(height)[None, :] < lengths[:, None]  # (B, H)
    return jnp.broadcast_to(rows[:, :, None], (batch, height, width))


# --- the skewed layout ---------------------------------------------------------------------------


def skew(a: Array) -> Array:
    """(..., S, R) -> (..., S, R + S - 1): row s shifted right by s, zeros elsewhere.

    ``out[..., s, k] = a[..., s, k - s]`` for 0 <= k - s < R: the cell (row r, slot s) lands on
    diagonal k = r + s. Done as a pad and two reshapes: padding each row with S zeros and reading the
    flat buffer with rows one shorter shifts row s by s.
    """
    *lead, slots, rows = a.shape
    diagonals = rows + slots - 1
    padded = jnp.pad(a, [(0, 0)] * len(lead) + [(0, 0), (0, slots)])  # (..., S, R + S)
    flat = padded.reshape(*lead, slots * (rows + slots))[..., : slots * diagonals]
    return flat.reshape(*lead, slots, diagonals)


def unskew(a: Array, rows: int) -> Array:
    """The inverse of `skew`: (..., S, K) -> (..., S, R) with ``out[..., s, r] = a[..., s, r + s]``."""
    *lead, slots, diagonals = a.shape
    flat = a.reshape(*lead, slots * diagonals)
    flat = jnp.pad(flat, [(0, 0)] * len(lead) + [(0, slots)])  # (..., S * (K + 1))
    return flat.reshape(*lead, slots, diagonals + 1)[..., :rows]


# --- the shared arithmetic -----------------------------------------------------------------------


def _project(x: Array, w_ih: Array, b_ih: Array) -> Array:
    """(..., C) -> (..., 5H): ``x W_ih^T + b_ih``, for every cell at once."""
    xw = jnp.einsum("...c,gc->...g", x, w_ih)
    return xw + jnp.expand_dims(b_ih, tuple(range(xw.ndim - 1)))


def _gates(xw: Array, from_h: Array, from_w: Array, b_hh: Array) -> Array:
    """The pre-activations (..., 5H) from the projected input and the two recurrent products.

    ``from_h + from_w`` is evaluated first: addition commutes exactly, so the transposed layout,
    which computes the same two products under swapped names, rounds identically.
    """
    return (xw + (from_h + from_w)) + jnp.expand_dims(b_hh, tuple(range(xw.ndim - 1)))


def _activations(a: Array) -> Array:
    """(..., 5H) pre-activations i, f_h, f_w, g, o -> sigmoid, sigmoid, sigmoid, tanh, sigmoid."""
    hidden = a.shape[-1] // GATES
    return jnp.concatenate(
        [jax.nn.sigmoid(a[..., : 3 * hidden]), jnp.tanh(a[..., 3 * hidden : 4 * hidden]),
         jax.nn.sigmoid(a[..., 4 * hidden :])],
        axis=-1,
    )  # fmt: skip


def _cell(act: Array, c_h: Array, c_w: Array) -> tuple[Array, Array]:
    """(h, c) of a cell from its activated gates (..., 5H) and its neighbours' c (..., H)."""
    i, f_h, f_w, g, o = jnp.split(act, GATES, axis=-1)
    c = (f_h * c_h + f_w * c_w) + i * g
    return o * jnp.tanh(c), c


def _flip(a: Array, direction: int) -> Array:
    """Scan coordinates of `direction` for a (B, H, W, ...) array; its own inverse."""
    axes = _FLIPS[direction]
    return jnp.flip(a, axes) if axes else a


# --- the wavefront -------------------------------------------------------------------------------


def _shift(a: Array) -> Array:
    """(..., S, F): slot s gets slot s - 1's values, slot 0 zeros (the neighbour before the first slot
    is outside the grid)."""
    pad = [(0, 0)] * (a.ndim - 2) + [(1, 0), (0, 0)]
    return jnp.pad(a[..., :-1, :], pad)


def _unshift(a: Array) -> Array:
    """The transpose of `_shift`: slot s gets slot s + 1's values, the last slot zeros."""
    pad = [(0, 0)] * (a.ndim - 2) + [(0, 1), (0, 0)]
    return jnp.pad(a[..., 1:, :], pad)


def _step(w_rec: Array, b_hh: Array, transposed: bool):
    """One diagonal: (h, c (B, S, H) of the previous one, its projected input (B, S, 5H), which slots
    are cells (B, S)) -> (h, c, activated gates (B, S, 5H)). `w_rec` (10H, H) stacks the weight from
    the neighbour in the previous diagonal's same slot over the one from the slot before."""
    rows = w_rec.shape[0] // 2

    def step(h: Array, c: Array, xw_k: Array, valid_k: Array) -> tuple[Array, Array, Array]:
        p = jnp.einsum("bsk,gk->bsg", h, w_rec)  # (B, S, 10H): both recurrent products at once
        from_up, from_left = p[..., :rows], _shift(p[..., rows:])
        act = _activations(_gates(xw_k, from_up, from_left, b_hh))
        c_up, c_left = c, _shift(c)
        # Transposed, the neighbour along H is the slot before and the one along W the same slot.
        h_new, c_new = _cell(act, c_left, c_up) if transposed else _cell(act, c_up, c_left)
        keep = valid_k[..., None]
        zero = jnp.zeros((), h_new.dtype)
        return jnp.where(keep, h_new, zero), jnp.where(keep, c_new, zero), act

    return step


# The recurrence over the skewed grid, one direction: (x (K, B, S, C), valid (K, B, S), w_ih (5H, C),
# b_ih (5H,), w_rec (10H, H), b_hh (5H,), transposed, remat) -> h (K, B, S, H).


def _scan_recurrence(x, valid, w_ih, b_ih, w_rec, b_hh, transposed: bool, remat: bool) -> Array:
    """The recurrence as a `lax.scan` differentiated by JAX (``implementation="scan"``); with `remat`,
    each step is a `jax.checkpoint`, so only its inputs are saved and the rest is recomputed."""
    xw = _project(x, w_ih, b_ih)  # (K, B, S, 5H)
    step = _step(w_rec, b_hh, transposed)

    def body(carry: tuple[Array, Array], inputs: tuple[Array, Array]) -> tuple[tuple[Array, Array], Array]:
        h, c, _ = step(*carry, *inputs)
        return (h, c), h

    if remat:
        body = jax.checkpoint(body, prevent_cse=False)
    zeros = jnp.zeros((*x.shape[1:3], w_rec.shape[1]), xw.dtype)
    _, hs = lax.scan(body, (zeros, zeros), (xw, valid))
    return hs


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def _fused_recurrence(x, valid, w_ih, b_ih, w_rec, b_hh, transposed: bool, remat: bool) -> Array:
    """The recurrence with a hand-written backward pass (``implementation="fused"``): the same forward
    computation as `_scan_recurrence`, which it is without a gradient."""
    return _scan_recurrence(x, valid, w_ih, b_ih, w_rec, b_hh, transposed, False)


def _fused_forward(x, valid, w_ih, b_ih, w_rec, b_hh, transposed, remat):
    # Saved per diagonal: h and c, and unless `remat` the activated gates (which `remat` recomputes
    # in the backward pass from the input and the previous h: one more matmul per diagonal).
    xw = _project(x, w_ih, b_ih)
    step = _step(w_rec, b_hh, transposed)

    def body(carry, inputs):
        h, c, act = step(*carry, *inputs)
        return (h, c), ((h, c) if remat else (h, c, act))

    zeros = jnp.zeros((*x.shape[1:3], w_rec.shape[1]), xw.dtype)
    _, saved = lax.scan(body, (zeros, zeros), (xw, valid))
    return saved[0], (x, valid, w_ih, b_ih, w_rec, b_hh, saved)


def _fused_backward(transposed, remat, residuals, grad_h):
    x, valid, w_ih, b_ih, w_rec, b_hh, saved = residuals
    hs, cs = saved[0], saved[1]  # (K, B, S, H)
    h_prev = jnp.concatenate([jnp.zeros_like(hs[:1]), hs[:-1]])  # each diagonal's predecessor's h
    c_prev = jnp.concatenate([jnp.zeros_like(cs[:1]), cs[:-1]])
    step = _step(w_rec, b_hh, transposed)
    zero = jnp.zeros((), hs.dtype)

    def gate_grads(dh_next, dc_next, g_k, valid_k, c_k, c_before, act):
        """The pre-activations' gradient (B, S, 5H) on one diagonal, and the gradient its h and c
        pass to the previous diagonal (through the next diagonal: dh_next, dc_next)."""
        i, f_h, f_w, g, o = jnp.split(act, GATES, axis=-1)
        keep = valid_k[..., None]
        dh = jnp.where(keep, g_k + dh_next, zero)
        tanh_c = jnp.tanh(c_k)
        dc = jnp.where(keep, dc_next + dh * o * (1 - tanh_c * tanh_c), zero)
        c_up, c_left = c_before, _shift(c_before)
        c_h, c_w = (c_left, c_up) if transposed else (c_up, c_left)
        da = jnp.concatenate(
            [dc * g * i * (1 - i), dc * c_h * f_h * (1 - f_h), dc * c_w * f_w * (1 - f_w),
             dc * i * (1 - g * g), dh * tanh_c * o * (1 - o)],
            axis=-1,
        )  # fmt: skip
        f_up, f_left = (f_w, f_h) if transposed else (f_h, f_w)
        # To the previous diagonal: its slot s fed this slot s (weights w_rec[:5H]) and slot s + 1.
        da_both = jnp.concatenate([da, _unshift(da)], axis=-1)  # (B, S, 10H)
        dh_before = jnp.einsum("bsg,gk->bsk", da_both, w_rec)
        dc_before = dc * f_up + _unshift(dc * f_left)
        return da, da_both, dh_before, dc_before

    # The weight gradients are summed diagonal by diagonal inside the loop: holding the gradient of
    # every pre-activation (5H per cell) for one matmul afterwards measured slower on the CPU (its
    # buffer is as large as the saved gates, benchmarks/NOTES.md).
    def body(carry, inputs):
        dh_next, dc_next, d_rec, d_ih, d_bias = carry
        g_k, valid_k, c_k, c_before, x_k, h_before, saved_act = inputs
        if remat:
            act = step(h_before, c_before, _project(x_k, w_ih, b_ih), valid_k)[2]
        else:
            act = saved_act
        da, da_both, dh_before, dc_before = gate_grads(dh_next, dc_next, g_k, valid_k, c_k, c_before, act)
        d_rec = d_rec + jnp.einsum("bsg,bsh->gh", da_both, h_before)
        d_ih = d_ih + jnp.einsum("bsg,bsc->gc", da, x_k)
        d_bias = d_bias + jnp.sum(da, axis=(0, 1))
        return (dh_before, dc_before, d_rec, d_ih, d_bias), jnp.einsum("bsg,gc->bsc", da, w_ih)

    zeros = jnp.zeros_like(hs[0])
    start = (zeros, zeros, jnp.zeros_like(w_rec), jnp.zeros_like(w_ih), jnp.zeros_like(b_hh))
    xs = (grad_h, valid, cs, c_prev, x, h_prev, None if remat else saved[2])
    (_, _, d_rec, d_ih, d_bias), d_x = lax.scan(body, start, xs, reverse=True)
    return d_x, None, d_ih, d_bias, d_rec, d_bias


_fused_recurrence.defvjp(_fused_forward, _fused_backward)

IMPLEMENTATIONS = ("fused", "scan")
_RECURRENCES = {"fused": _fused_recurrence, "scan": _scan_recurrence}


def check_implementation(implementation: Any) -> str:
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"MDLSTM2d: implementation must be 'fused' (the hand-written backward pass, the default) or "
            f"'scan' (lax.scan differentiated by JAX), got {implementation!r}"
        )
    return implementation


def _wavefront(x: Array, valid: Array, w: MDLSTMWeights, implementation: str, remat: bool) -> Array:
    """One direction in its scan coordinates: x (B, H, W, C), valid (B, H, W) -> h (B, H, W, hidden)."""
    rows_g, cols_g = int(x.shape[1]), int(x.shape[2])
    # Slots along the shorter side: with W > H the grid is transposed, its rows running along W, so
    # the slot neighbour (before in the same diagonal) is the one along H.
    transposed = cols_g > rows_g
    if transposed:
        x, valid = jnp.swapaxes(x, 1, 2), jnp.swapaxes(valid, 1, 2)
        w_up, w_left = w.w_hh_w, w.w_hh_h
    else:
        w_up, w_left = w.w_hh_h, w.w_hh_w
    rows = int(x.shape[1])
    x = jnp.where(valid[..., None], x, jnp.zeros((), x.dtype))  # padding: whatever it held, zero
    # Skew the (small) input rather than its projection: (B, R, S, C) -> (K, B, S, C).
    x_skew = jnp.transpose(skew(jnp.transpose(x, (3, 0, 2, 1))), (3, 1, 2, 0))
    valid_skew = jnp.transpose(skew(jnp.swapaxes(valid, 1, 2)), (2, 0, 1))  # (K, B, S), False outside
    w_rec = jnp.concatenate([w_up, w_left], axis=0)  # (10H, H)
    recurrence = _RECURRENCES[implementation]
    hs = recurrence(x_skew, valid_skew, w.w_ih, w.b_ih, w_rec, w.b_hh, transposed, remat)  # (K, B, S, H)
    out = unskew(jnp.transpose(hs, (1, 3, 2, 0)), rows)  # (B, H, S, R)
    out = jnp.transpose(out, (0, 3, 2, 1))  # (B, R, S, H)
    return jnp.swapaxes(out, 1, 2) if transposed else out


def mdlstm2d(
    params: Mapping[str, Any],
    x: Array,
    directions: int = 1,
    lengths: Array | None = None,
    remat: bool = False,
    implementation: str = "fused",
) -> Array:
    """The 2-D MDLSTM over a batch of grids, as one wavefront scan over the anti-diagonals.

    Args:
      params: the flat mapping of torch-named arrays (module docstring), e.g. ``variables["params"]``
        of `MDLSTM2d` or `jax_lstm.from_torch(twin.state_dict())["params"]`.
      x: (B, H, W, C) grids.
      directions: 1 (from the top-left corner) or 4 (from every corner); must match `params`.
      lengths: optional (B,) valid rows along H of right-padded grids; cells below are outside.
      remat: save only h and c of each diagonal for the backward pass and recompute the gates there
        (one more matmul per diagonal): less memory, more work (benchmarks/NOTES.md).
      implementation: "fused" (a hand-written backward pass: one matmul per diagonal, the weight
        gradients one matmul over all cells afterwards) or "scan" (`lax.scan` differentiated by JAX;
        `remat` then checkpoints each step with `jax.checkpoint`). The forward pass is the same.

    Returns:
      (B, H, W, D * hidden_size): each direction's h, flipped back to the input's coordinates,
      concatenated in the order 0, 1, 2, 3; zero on cells outside the grid.

    Raises:
      ValueError / TypeError / KeyError: a wrong rank, dtype, channel count, empty axis, direction
      count, parameter set, implementation or lengths, each named with its fix, before any work.
    """
    check_implementation(implementation)
    x, lengths, _ = _checked(params, x, directions, lengths, "mdlstm2d")
    batch, height, width, _ = x.shape
    valid = valid_cells(lengths, batch, height, width)
    weights = [direction_weights(params, d) for d in range(directions)]
    if directions == 1:
        return _wavefront(x, valid, weights[0], implementation, remat)
    stacked = MDLSTMWeights(*(jnp.stack(arrays) for arrays in zip(*weights, strict=True)))
    xs = jnp.stack([_flip(x, d) for d in range(directions)])  # (D, B, H, W, C)
    vs = jnp.stack([_flip(valid, d) for d in range(directions)])  # (D, B, H, W)
    hs = jax.vmap(lambda xd, vd, wd: _wavefront(xd, vd, wd, implementation, remat))(xs, vs, stacked)
    return jnp.concatenate([_flip(hs[d], d) for d in range(directions)], axis=-1)  # (B, H, W, D * hidden)


# --- the reference -------------------------------------------------------------------------------


def _cell_by_cell(x: Array, valid: Array, w: MDLSTMWeights) -> Array:
    """One direction in its scan coordinates, one cell after another in row-major order: a scan over
    rows carrying the previous row's states, inside it a scan over the row's cells carrying the
    left neighbour's. x (B, H, W, C), valid (B, H, W) -> h (B, H, W, hidden)."""
    batch, _, width, _ = x.shape
    hidden = int(w.w_hh_h.shape[1])
    x = jnp.where(valid[..., None], x, jnp.zeros((), x.dtype))
    xw = _project(x, w.w_ih, w.b_ih)  # (B, H, W, 5H)
    zero = jnp.zeros((), x.dtype)

    def cell(left, inputs):
        h_left, c_left = left  # (B, H): the cell (i, j-1)
        xw_ij, h_up, c_up, valid_ij = inputs  # (B, 5H), (B, H), (B, H), (B,)
        a = _gates(xw_ij, h_up @ w.w_hh_h.T, h_left @ w.w_hh_w.T, w.b_hh)
        h, c = _cell(_activations(a), c_up, c_left)
        keep = valid_ij[:, None]
        h, c = jnp.where(keep, h, zero), jnp.where(keep, c, zero)
        return (h, c), (h, c)

    def row(above, inputs):
        h_above, c_above = above  # (W, B, H): the row i-1
        xw_i, valid_i = inputs  # (W, B, 5H), (W, B)
        start = (jnp.zeros((batch, hidden), x.dtype),) * 2
        _, (h, c) = lax.scan(cell, start, (xw_i, h_above, c_above, valid_i))
        return (h, c), h

    first = (jnp.zeros((width, batch, hidden), x.dtype),) * 2
    xs = (jnp.transpose(xw, (1, 2, 0, 3)), jnp.transpose(valid, (1, 2, 0)))  # (H, W, B, 5H), (H, W, B)
    _, hs = lax.scan(row, first, xs)  # (H, W, B, hidden)
    return jnp.transpose(hs, (2, 0, 1, 3))


def mdlstm2d_reference(
    params: Mapping[str, Any], x: Array, directions: int = 1, lengths: Array | None = None
) -> Array:
    """`mdlstm2d` computed cell by cell (H * W sequential steps per direction): the reference the
    wavefront is tested against, with the same arguments, checks and result."""
    x, lengths, _ = _checked(params, x, directions, lengths, "mdlstm2d_reference")
    batch, height, width, _ = x.shape
    valid = valid_cells(lengths, batch, height, width)
    outs = []
    for d in range(directions):
        h = _cell_by_cell(_flip(x, d), _flip(valid, d), direction_weights(params, d))
        outs.append(_flip(h, d))
    return jnp.concatenate(outs, axis=-1)


# --- the Flax module -----------------------------------------------------------------------------


class MDLSTM2d(nn.Module):
    """A 2-D multi-dimensional LSTM layer over (B, H, W, C) grids (module docstring).

    Call::

        out = MDLSTM2d(32, directions=4).apply(variables, x, lengths=None)   # (B, H, W, 4 * 32)

    The channel count is read from the input at `init`. Parameters carry the torch twin's names
    (`torch_ref.mdlstm.MDLSTM2d`), so `jax_lstm.from_torch` / `to_torch` move them bit-exactly.
    """

    hidden_size: int
    directions: int = 1
    param_dtype: Any = jnp.float32
    remat: bool = False  # recompute the gates in the backward pass instead of saving them
    implementation: str = "fused"  # the backward pass: "fused" (hand-written) or "scan" (autodiff)

    def __post_init__(self) -> None:
        check_hidden_size(self.hidden_size)
        check_directions(self.directions)
        check_implementation(self.implementation)
        if not isinstance(self.remat, bool):
            raise TypeError(f"MDLSTM2d: remat should be of type bool, got: {type(self.remat).__name__}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: Array, lengths: Array | None = None) -> Array:
        """(B, H, W, C), optional lengths (B,) -> (B, H, W, directions * hidden_size)."""
        name = type(self).__name__
        x = check_grid(x, name)
        if self.is_initializing():
            input_size = int(x.shape[-1])
            # The sample input only gives shapes (init with jnp.ones under x64 is float64).
            x = x.astype(self.param_dtype)
        else:
            if not self.has_variable("params", "weight_ih"):
                raise KeyError(
                    f"{name} parameters not found: pass the variables returned by init() or "
                    "jax_lstm.from_torch() to apply()"
                )
            input_size, hidden, directions = spec_from_params(self.variables["params"])
            if (hidden, directions) != (self.hidden_size, self.directions):
                raise ValueError(
                    f"{name}: the parameters are those of MDLSTM2d(hidden_size={hidden}, "
                    f"directions={directions}), not of this MDLSTM2d(hidden_size={self.hidden_size}, "
                    f"directions={self.directions}); build the module to match them"
                )
        init = torch_uniform(1.0 / math.sqrt(self.hidden_size))
        params = {
            key: self.param(key, init, shape, self.param_dtype)
            for key, shape in param_shapes(input_size, self.hidden_size, self.directions).items()
        }
        return mdlstm2d(params, x, self.directions, lengths, self.remat, self.implementation)
