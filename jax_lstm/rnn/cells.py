"""Recurrent cells: what the stack (`jax_lstm.rnn.stack`) needs to know of each member of torch's family.

A `Cell` names torch's mode, its gate count, its state (``("h", "c")`` for the LSTM, ``("h",)``
otherwise) and how one layer runs in one direction over a whole sequence. The stack handles
everything around that once for every cell: layers, directions, packed lengths, inter-layer dropout,
initial states, shapes and checks. A cell with nothing faster gets a plain `lax.scan` over its
one-step update (`scan_layer`); the LSTM brings its fused kernel (`jax_lstm.rnn.fused`) and, at the
stack level, cuDNN. The GRU and the Elman RNNs (tanh or relu) are plain scans whose input projection
``x_t @ W_ih^T + b_ih`` is computed for every timestep as one matmul before the scan, as torch does
on CPU.

Shape letters: T time, B batch, I input features, H hidden size, P = H_out (proj_size or H).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from jax_lstm.rnn import fused
from jax_lstm.rnn.checks import check_cell_inputs
from jax_lstm.rnn.spec import LayerWeights

__all__ = [
    "CELLS",
    "GRU_CELL",
    "LSTM_CELL",
    "RNN_RELU_CELL",
    "RNN_TANH_CELL",
    "Cell",
    "gru_cell",
    "lstm_cell",
    "masked_state",
    "rnn_cell",
    "rnn_mode",
    "scan_layer",
]

Array = jax.Array
State = tuple[Array, ...]
# One layer, one direction: (x (T, B, I), initial state, weights, valid (T, B) or None, reverse,
# implementation) -> (outputs (T, B, P), final state). `valid` comes only with reverse=False: the
# stack reverses padded sequences inside their lengths itself.
LayerFn = Callable[[Array, State, LayerWeights, Array | None, bool, str], tuple[Array, State]]
# One step: (x_t (B, I), state, weights) -> (output (B, P), new state).
StepFn = Callable[[Array, State, LayerWeights], tuple[Array, State]]


@dataclasses.dataclass(frozen=True)
class Cell:
    """A member of torch's recurrent family, as the generic stack sees it."""

    mode: str  # torch's RNNBase.mode: "LSTM", "GRU", "RNN_TANH", "RNN_RELU"
    torch_name: str  # "nn.LSTM": for messages
    state_names: tuple[str, ...]  # ("h", "c") or ("h",)
    step: StepFn
    layer: LayerFn
    implementations: tuple[str, ...]  # what `layer` accepts; "cudnn" is handled by the stack

    @property
    def has_cell_state(self) -> bool:
        return len(self.state_names) == 2


def masked_state(keep: Array | None, new: State, old: State, out: Array) -> tuple[State, Array]:
    """After one step of right-padded sequences: ``keep`` (B,) marks the sequences still running;
    the others keep their state and output zeros, as torch's packed path."""
    if keep is None:
        return new, out
    keep = keep[:, None]
    state = tuple(jnp.where(keep, n, o) for n, o in zip(new, old, strict=True))
    return state, jnp.where(keep, out, jnp.zeros_like(out))


# Every timestep's input projection at once: (x (T, B, I), weights) -> (T, B, G*H).
ProjectFn = Callable[[Array, LayerWeights], Array]


def scan_layer(step: StepFn, project: ProjectFn | None = None) -> LayerFn:
    """A layer function from a one-step update: `lax.scan`, differentiated by JAX.

    With `project`, the input is first projected for all timesteps (one matmul instead of T), and
    `step` receives the projected input ``(B, G*H)`` in place of ``x_t``.
    """

    def layer(x, state0, weights, valid, reverse, implementation):
        del implementation  # one implementation: the scan
        if project is not None:
            x = project(x, weights)

        def body(state, inputs):
            x_t, keep = inputs if valid is not None else (inputs, None)
            out, new = step(x_t, state, weights)
            state, out = masked_state(keep, new, state, out)
            return state, out

        xs = x if valid is None else (x, valid)
        state, out = lax.scan(body, tuple(state0), xs, reverse=reverse)
        return out, state

    return layer


def lstm_cell(x_t: Array, h: Array, c: Array, weights: LayerWeights) -> tuple[Array, Array]:
    """One timestep of one LSTM layer, exactly torch's update (`torch.nn.LSTMCell`, with its checks).

    Args:
      x_t: (B, I) input at this step, or unbatched (I,).
      h: (B, P) previous hidden state ((P,) unbatched).
      c: (B, H) previous cell state ((H,) unbatched).
      weights: the layer's arrays.

    Returns:
      (h, c): (B, P) and (B, H) ((P,) and (H,) unbatched).

    Raises:
      ValueError: with torch's wording, for a state whose batch or width does not fit (no
      broadcasting of a batch-1 state), or a rank other than 1 or 2.
    """
    x_t, h, c = (jnp.asarray(a) for a in (x_t, h, c))
    hidden = int(weights.w_hh.shape[0]) // 4
    check_cell_inputs(x_t, h, c, int(weights.w_ih.shape[-1]), (int(weights.w_hh.shape[-1]), hidden))
    if x_t.ndim == 1:
        h_next, c_next = _lstm_cell(x_t[None], h[None], c[None], weights)
        return h_next[0], c_next[0]
    return _lstm_cell(x_t, h, c, weights)


def _lstm_cell(x_t: Array, h: Array, c: Array, weights: LayerWeights) -> tuple[Array, Array]:
    """`lstm_cell` without the checks: shapes (B, I), (B, P), (B, H), already consistent."""
    gates = x_t @ weights.w_ih.T + h @ weights.w_hh.T  # (B, 4H)
    if weights.b_ih is not None:
        gates = gates + weights.b_ih[None, :] + weights.b_hh[None, :]
    return fused.cell_update(fused.activations(gates), c, weights.w_hr)


def _lstm_step(x_t: Array, state: State, weights: LayerWeights) -> tuple[Array, State]:
    h, c = _lstm_cell(x_t, *state, weights)
    return h, (h, c)


def _lstm_layer(
    x: Array, state0: State, weights: LayerWeights, valid: Array | None, reverse: bool, implementation: str
) -> tuple[Array, State]:
    h0, c0 = state0
    # The two biases enter the gates only as their sum; their gradients are both that sum's.
    bias = None if weights.b_ih is None else weights.b_ih + weights.b_hh
    if implementation == "fused":
        try:
            out, h_n, c_n = fused.recurrence(
                x, h0, c0, weights.w_ih, weights.w_hh, bias, weights.w_hr, valid, reverse
            )
        except TypeError as err:
            if "forward-mode" not in str(err):
                raise
            raise TypeError(
                "the default implementation='fused' defines its own backward pass, so it supports "
                "reverse mode (jax.grad, vjp) but not forward-mode differentiation (jax.jvp, jacfwd, "
                "hessian): use "
                "implementation='scan' (LSTM(..., implementation='scan') or lstm(..., "
                "implementation='scan')) for forward-mode derivatives"
            ) from None
    else:
        # The reference: the same forward computation, differentiated by JAX itself.
        xw = fused.input_projection(x, weights.w_ih, bias)
        out, h_n, c_n, _, _ = fused.projected_scan(xw, h0, c0, weights.w_hh, weights.w_hr, valid, reverse)
    return out, (h_n, c_n)


LSTM_CELL = Cell(
    mode="LSTM",
    torch_name="nn.LSTM",
    state_names=("h", "c"),
    step=_lstm_step,
    layer=_lstm_layer,
    implementations=("fused", "scan"),
)


def _project_input(x: Array, weights: LayerWeights) -> Array:
    """(..., I) -> (..., G*H): ``x @ W_ih^T + b_ih``; b_ih stays apart from b_hh, as in torch."""
    xw = jnp.einsum("...i,gi->...g", x, weights.w_ih)
    if weights.b_ih is None:
        return xw
    return xw + jnp.expand_dims(weights.b_ih, tuple(range(xw.ndim - 1)))


def _project_hidden(h: Array, weights: LayerWeights) -> Array:
    """(B, H) -> (B, G*H): ``h @ W_hh^T + b_hh``."""
    hw = h @ weights.w_hh.T
    return hw if weights.b_hh is None else hw + weights.b_hh[None, :]


def _gru_update(xw: Array, h: Array, weights: LayerWeights) -> Array:
    """torch's GRU update from the projected input (B, 3H) and h (B, H): rows r | z | n."""
    hw = _project_hidden(h, weights)
    hidden = h.shape[-1]
    x_r, x_z, x_n = xw[:, :hidden], xw[:, hidden : 2 * hidden], xw[:, 2 * hidden :]
    h_r, h_z, h_n = hw[:, :hidden], hw[:, hidden : 2 * hidden], hw[:, 2 * hidden :]
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    # b_hn sits inside the reset gate's product: r * (W_hn h + b_hn), never summed with b_in.
    n = jnp.tanh(x_n + r * h_n)
    # (1 - z) * n + z * h, in torch's order of operations (ATen's GRUCell: n + z * (h - n)).
    return n + z * (h - n)


def gru_cell(x_t: Array, h: Array, weights: LayerWeights) -> Array:
    """One timestep of one GRU layer, exactly torch's update.

    Args:
      x_t: (B, I) input at this step.
      h: (B, H) previous hidden state.
      weights: the layer's arrays, rows r | z | n: w_ih (3H, I), w_hh (3H, H), biases (3H,) or None.

    Returns:
      h: (B, H).
    """
    return _gru_update(_project_input(x_t, weights), h, weights)


_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {"RNN_TANH": jnp.tanh, "RNN_RELU": jax.nn.relu}


def _rnn_update(mode: str) -> Callable[[Array, Array, LayerWeights], Array]:
    activation = _ACTIVATIONS[mode]

    def update(xw: Array, h: Array, weights: LayerWeights) -> Array:
        return activation(xw + _project_hidden(h, weights))

    return update


def rnn_cell(x_t: Array, h: Array, weights: LayerWeights, nonlinearity: str = "tanh") -> Array:
    """One timestep of one Elman RNN layer: ``act(W_ih x + b_ih + W_hh h + b_hh)``, torch's update.

    Args:
      x_t: (B, I); h: (B, H); weights: w_ih (H, I), w_hh (H, H), biases (H,) or None.
      nonlinearity: "tanh" or "relu".

    Returns:
      h: (B, H).
    """
    return _rnn_update(rnn_mode(nonlinearity))(_project_input(x_t, weights), h, weights)


def rnn_mode(nonlinearity: str) -> str:
    """torch's mode for an `nn.RNN` nonlinearity, with its constructor's error for anything else."""
    modes = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}
    if nonlinearity not in modes:
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    return modes[nonlinearity]


def _single_state_cell(
    mode: str, torch_name: str, update: Callable[[Array, Array, LayerWeights], Array]
) -> Cell:
    """A cell whose state is h alone and whose output is h: the GRU and the Elman RNNs."""

    def step(x_t: Array, state: State, weights: LayerWeights) -> tuple[Array, State]:
        h = update(_project_input(x_t, weights), state[0], weights)
        return h, (h,)

    def projected_step(xw_t: Array, state: State, weights: LayerWeights) -> tuple[Array, State]:
        h = update(xw_t, state[0], weights)
        return h, (h,)

    return Cell(
        mode=mode,
        torch_name=torch_name,
        state_names=("h",),
        step=step,
        layer=scan_layer(projected_step, _project_input),
        implementations=("scan",),
    )


GRU_CELL = _single_state_cell("GRU", "nn.GRU", _gru_update)
RNN_TANH_CELL = _single_state_cell("RNN_TANH", "nn.RNN", _rnn_update("RNN_TANH"))
RNN_RELU_CELL = _single_state_cell("RNN_RELU", "nn.RNN", _rnn_update("RNN_RELU"))

CELLS: dict[str, Cell] = {c.mode: c for c in (LSTM_CELL, GRU_CELL, RNN_TANH_CELL, RNN_RELU_CELL)}
"""Every cell by torch's mode."""
