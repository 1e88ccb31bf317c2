"""Recurrent cells: what the stack (`jax_lstm.rnn.stack`) needs to know of each member of torch's family.

A `Cell` names torch's mode, its gate count, its state (``("h", "c")`` for the LSTM, ``("h",)``
otherwise) and how one layer runs in one direction over a whole sequence. The stack handles
everything around that once for every cell: layers, directions, packed lengths, inter-layer dropout,
initial states, shapes and checks. A cell with nothing faster gets a plain `lax.scan` over its
one-step update (`scan_layer`); the LSTM brings its fused kernel (`jax_lstm.rnn.fused`) and, at the
stack level, cuDNN.

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

__all__ = ["LSTM_CELL", "Cell", "lstm_cell", "masked_state", "scan_layer"]

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


def scan_layer(step: StepFn) -> LayerFn:
    """A layer function from a one-step update: `lax.scan`, differentiated by JAX."""

    def layer(x, state0, weights, valid, reverse, implementation):
        del implementation  # one implementation: the scan

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
