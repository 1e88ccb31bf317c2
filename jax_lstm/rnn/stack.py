"""The stack over layers x directions, written once for every cell, as pure functions over
torch-named arrays.

Nothing here knows about Flax: `lstm(params, x)` takes the same flat mapping of arrays that
`torch.nn.LSTM.state_dict()` holds (``weight_ih_l0`` (4H, in), ``weight_hh_l0`` (4H, H_out),
``bias_ih_l0`` (4H,), ``bias_hh_l0`` (4H,), ``weight_hr_l0`` (proj, H), ``_reverse`` for the reverse
direction) and returns what `nn.LSTM.forward` returns, with the same shapes. `run` does the same for
any `Cell` (`jax_lstm.rnn.cells`); `gru` and `rnn` are `nn.GRU`'s and `nn.RNN`'s forward.

Shape letters: T time, B batch, I input features, H hidden_size, P = H_out (proj_size or H),
L num_layers, D directions (1 or 2), S the cell's number of state arrays (2 for the LSTM, else 1).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from jax_lstm.rnn import cudnn
from jax_lstm.rnn.cells import CELLS, GRU_CELL, LSTM_CELL, Cell, rnn_mode
from jax_lstm.rnn.checks import check_input, check_input_dtype, check_lengths, check_state
from jax_lstm.rnn.masks import reverse_within_lengths, valid_steps
from jax_lstm.rnn.spec import LayerWeights, RNNSpec, check_family, layer_weights, spec_from_params

IMPLEMENTATIONS = ("fused", "scan", "cudnn")
LAYER_IMPLEMENTATIONS = tuple(i for i in IMPLEMENTATIONS if i != "cudnn")  # cuDNN: whole stacks only

__all__ = [
    "IMPLEMENTATIONS",
    "LAYER_IMPLEMENTATIONS",
    "dropout",
    "gru",
    "lstm",
    "lstm_layer",
    "rnn",
    "rnn_layer",
    "run",
]

Array = jax.Array
State = tuple[Array, ...]


def rnn_layer(
    cell: Cell,
    x: Array,
    state0: State,
    weights: LayerWeights,
    *,
    reverse: bool = False,
    lengths: Array | None = None,
    implementation: str = "fused",
) -> tuple[Array, State]:
    """One layer of `cell` in one direction over a time-major sequence.

    Args:
      cell: the recurrent cell (`jax_lstm.rnn.cells`).
      x: (T, B, I) time-major input.
      state0: the initial state, one (B, ·) array per `cell.state_names`.
      weights: the layer's arrays in torch's layout.
      reverse: run from the last step to the first (torch's ``_reverse`` direction). Outputs stay
        aligned to the original time index.
      lengths: optional (B,) integer valid lengths of right-padded sequences. Each sequence then runs
        only its first ``lengths[b]`` steps (the reverse direction starts at its own last element),
        its final state is taken at its own last step, and padded outputs are 0, as torch's
        PackedSequence path does.
      implementation: one of `cell.implementations` ("fused" falls back to "scan" for a cell with
        no fused kernel).

    Returns:
      (outputs (T, B, P), final state).
    """
    num_steps = x.shape[0]
    reorder = reverse and lengths is not None
    if reorder:
        order = reverse_within_lengths(num_steps, lengths)  # (T, B)
        x = jnp.take_along_axis(x, order[:, :, None], axis=0)
        reverse = False  # the sequences are already reversed inside their lengths
    valid = None if lengths is None else valid_steps(lengths, num_steps)  # (T, B)
    if implementation not in cell.implementations:
        implementation = cell.implementations[-1]
    out, state = cell.layer(x, state0, weights, valid, reverse, implementation)
    if reorder:
        out = jnp.take_along_axis(out, order[:, :, None], axis=0)
    return out, state


def lstm_layer(
    x: Array,
    h0: Array,
    c0: Array,
    weights: LayerWeights,
    *,
    reverse: bool = False,
    lengths: Array | None = None,
    implementation: str = "fused",
) -> tuple[Array, Array, Array]:
    """One LSTM layer in one direction: `rnn_layer` with the LSTM cell.

    Args:
      x: (T, B, I) time-major input.
      h0: (B, P) initial hidden state.
      c0: (B, H) initial cell state.
      weights: the layer's arrays in torch's layout.
      reverse, lengths: as `rnn_layer`.
      implementation: "fused" (default: `jax_lstm.rnn.fused.recurrence`, a hand-written backward pass
        and an inference-specific forward) or "scan" (the reference: a plain `lax.scan`
        differentiated by JAX). Both compute the same function; the parity suite runs both.

    Returns:
      (outputs (T, B, P), h_n (B, P), c_n (B, H)).
    """
    if implementation not in LAYER_IMPLEMENTATIONS:
        hint = ""
        if implementation == "cudnn":
            hint = " (cuDNN runs whole stacks: use lstm(..., implementation='cudnn'))"
        raise ValueError(
            f"lstm_layer's implementation must be one of {LAYER_IMPLEMENTATIONS}, "
            f"got {implementation!r}{hint}"
        )
    out, (h_n, c_n) = rnn_layer(
        LSTM_CELL, x, (h0, c0), weights, reverse=reverse, lengths=lengths, implementation=implementation
    )
    return out, h_n, c_n


def dropout(x: Array, rate: float, key: Array) -> Array:
    """Inverted dropout as torch applies it between layers: zero with probability `rate`, scale the rest.

    ``rate == 1`` gives zeros (torch multiplies by 0 instead of dividing by 0).
    """
    if rate >= 1.0:
        return jnp.zeros_like(x)
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def _layer_runs(num_layers: int, together: bool) -> list[range]:
    """The layers run by one call each: all of them at once (cuDNN without dropout), else one by one."""
    return [range(num_layers)] if together else [range(k, k + 1) for k in range(num_layers)]


def _run_layer(
    cell: Cell,
    params: Mapping[str, Array],
    spec: RNNSpec,
    layer: int,
    x: Array,
    state0: State,
    lengths: Array | None,
    implementation: str,
) -> tuple[Array, State]:
    """One layer, both directions: (outputs (T, B, D*P), final states, each (D, B, ·))."""
    outputs, finals = [], []
    for direction in range(spec.num_directions):
        out, state = rnn_layer(
            cell,
            x,
            tuple(s[direction] for s in state0),
            layer_weights(params, layer, direction),
            reverse=direction == 1,
            lengths=lengths,
            implementation=implementation,
        )
        outputs.append(out)
        finals.append(state)
    out = outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, axis=-1)
    return out, tuple(jnp.stack(parts) for parts in zip(*finals, strict=True))


def _state_label(cell: Cell, index: int) -> str:
    """torch's name for an initial state in its messages: ``hidden[0]`` / ``hidden[1]``, or ``hidden``."""
    return f"hidden[{index}]" if cell.has_cell_state else "hidden"


def run(
    cell: Cell,
    params: Mapping[str, Array],
    x: Array,
    initial_state: State | None = None,
    *,
    batch_first: bool = False,
    dropout_rate: float = 0.0,
    dropout_key: Array | None = None,
    lengths: Array | None = None,
    implementation: str = "fused",
) -> tuple[Array, State]:
    """A stacked (bi)directional recurrent layer of `cell`, exactly torch's forward.

    The architecture (layers, directions, bias, projection, input size) is read off the keys and
    shapes of `params`, which are checked first. Arguments as `lstm`; `initial_state` is a tuple of
    one array per `cell.state_names`. Returns ``output, final_state`` (a tuple of the same form).
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    if implementation == "cudnn" and cell is not LSTM_CELL:
        raise ValueError(
            f"implementation='cudnn' runs nn.LSTM stacks only, not {cell.torch_name}; "
            "use implementation='fused'"
        )
    name = cell.torch_name.removeprefix("nn.")
    if not isinstance(params, Mapping):
        raise TypeError(
            f"params must be a mapping of torch-named arrays ({cell.torch_name}.state_dict()'s names, "
            f"e.g. variables['params'] of a jax_lstm layer), got {type(params).__name__}"
        )
    if "params" in params and "weight_ih_l0" not in params:
        raise TypeError("got Flax variables ({'params': ...}); pass variables['params']")
    check_family(params, cell.mode, cls=name)
    spec = spec_from_params(params, mode=cell.mode)
    x = check_input(x, spec, name)
    check_input_dtype(x, params["weight_ih_l0"], "RNN")
    batched = x.ndim == 3
    if x.shape[1 if (batched and batch_first) else 0] == 0:
        raise ValueError("Expected sequence length to be larger than 0 in RNN")
    if not batched:
        x = x[:, None, :]  # (T, 1, I)
    elif batch_first:
        x = jnp.swapaxes(x, 0, 1)  # (B, T, I) -> (T, B, I)
    num_steps, batch = x.shape[0], x.shape[1]
    num_states = spec.num_layers * spec.num_directions
    dtype = jnp.result_type(x.dtype, params["weight_ih_l0"].dtype)
    x = x.astype(dtype)
    kernel = cudnn.resolve_kernel(spec, dtype) if implementation == "cudnn" else None

    if lengths is not None:
        if not batched:
            raise ValueError("lengths needs batched input (a length per sequence); got 2-D input")
        lengths = check_lengths(lengths, batch, num_steps)

    # h has the output width (proj_size or H), c the hidden width.
    widths = (spec.output_size, spec.hidden_size)[: len(cell.state_names)]
    if initial_state is None:
        state0 = tuple(jnp.zeros((num_states, batch, w), dtype) for w in widths)
    else:
        state0 = tuple(
            check_state(
                s, (num_states, batch, w) if batched else (num_states, w), _state_label(cell, i)
            ).astype(dtype)
            for i, (s, w) in enumerate(zip(initial_state, widths, strict=True))
        )
        if not batched:
            state0 = tuple(s[:, None, :] for s in state0)

    dropping = dropout_key is not None and dropout_rate > 0
    layer_input = x
    finals: list[State] = []  # per run of k layers: each (k*D, B, ·)
    key = dropout_key
    for layers in _layer_runs(spec.num_layers, implementation == "cudnn" and not dropping):
        states = slice(layers.start * spec.num_directions, layers.stop * spec.num_directions)
        run_state0 = tuple(s[states] for s in state0)
        if implementation == "cudnn":
            layer_input, h, c = cudnn.run_layers(
                params, spec, layers, layer_input, *run_state0, lengths, kernel
            )
            final: State = (h, c)
        else:
            layer_input, final = _run_layer(
                cell, params, spec, layers.start, layer_input, run_state0, lengths, implementation
            )
        finals.append(final)
        if dropping and layers.stop < spec.num_layers:
            key, sub = jax.random.split(key)
            layer_input = dropout(layer_input, dropout_rate, sub)

    output = layer_input  # (T, B, D*P)
    final_state = tuple(jnp.concatenate(parts) for parts in zip(*finals, strict=True))  # (L*D, B, ·)
    if not batched:
        return output[:, 0], tuple(s[:, 0] for s in final_state)
    if batch_first:
        output = jnp.swapaxes(output, 0, 1)
    return output, final_state


def lstm(
    params: Mapping[str, Array],
    x: Array,
    initial_state: tuple[Array, Array] | None = None,
    *,
    batch_first: bool = False,
    dropout_rate: float = 0.0,
    dropout_key: Array | None = None,
    lengths: Array | None = None,
    implementation: str = "fused",
) -> tuple[Array, tuple[Array, Array]]:
    """A stacked (bi)directional LSTM, exactly `torch.nn.LSTM.forward`.

    The architecture (layers, directions, bias, projection, input size) is read off the keys and
    shapes of `params`, which are checked first.

    Args:
      params: torch-named arrays, as in `nn.LSTM.state_dict()`.
      x: (T, B, I), or (B, T, I) with ``batch_first=True``, or unbatched (T, I).
      initial_state: optional ``(h_0, c_0)``: (L*D, B, P) and (L*D, B, H), or (L*D, P) and (L*D, H)
        for unbatched input. Zeros when omitted.
      batch_first: whether `x` and the output are batch-major. The states never are.
      dropout_rate: inter-layer dropout probability; applied only when `dropout_key` is given
        (train mode), to the outputs of every layer but the last, never to h_n/c_n.
      dropout_key: PRNG key for dropout; None means eval mode.
      lengths: optional (B,) valid lengths of right-padded sequences (PackedSequence semantics).
      implementation: "fused" (default) or "scan" (the reference), see `lstm_layer`; "fused" (and
        "cudnn") define their own backward pass, so they support reverse mode (`jax.grad`, `vjp`,
        grad of grad) but not forward mode (`jax.jvp`, `jacfwd`, `hessian`): use "scan" there. Or "cudnn":
        the whole stack as cuDNN's fused LSTM on a CUDA GPU (float32, no projections; see
        `jax_lstm.rnn.cudnn`).

    Returns:
      ``output, (h_n, c_n)``: output (T, B, D*P) (or batch-first / unbatched like `x`),
      h_n (L*D, B, P), c_n (L*D, B, H) (2-D for unbatched input); h_n is indexed ``layer*D + direction``.
    """
    if initial_state is not None and (not isinstance(initial_state, tuple | list) or len(initial_state) != 2):
        raise TypeError("initial_state must be a pair (h_0, c_0)")
    output, (h_n, c_n) = run(
        LSTM_CELL,
        params,
        x,
        None if initial_state is None else tuple(initial_state),
        batch_first=batch_first,
        dropout_rate=dropout_rate,
        dropout_key=dropout_key,
        lengths=lengths,
        implementation=implementation,
    )
    return output, (h_n, c_n)


def _single_state(
    cell: Cell,
    params: Mapping[str, Array],
    x: Array,
    h0: Array | None,
    batch_first: bool,
    dropout_rate: float,
    dropout_key: Array | None,
    lengths: Array | None,
) -> tuple[Array, Array]:
    if isinstance(h0, tuple | list):
        raise TypeError(
            f"{cell.torch_name}'s initial state is one array h_0 of shape (L*D, B, H), not a "
            f"{type(h0).__name__}; only nn.LSTM takes a pair (h_0, c_0)"
        )
    output, (h_n,) = run(
        cell,
        params,
        x,
        None if h0 is None else (h0,),
        batch_first=batch_first,
        dropout_rate=dropout_rate,
        dropout_key=dropout_key,
        lengths=lengths,
        implementation="scan",
    )
    return output, h_n


def gru(
    params: Mapping[str, Array],
    x: Array,
    h0: Array | None = None,
    *,
    batch_first: bool = False,
    dropout_rate: float = 0.0,
    dropout_key: Array | None = None,
    lengths: Array | None = None,
) -> tuple[Array, Array]:
    """A stacked (bi)directional GRU, exactly `torch.nn.GRU.forward`.

    Args:
      params: torch-named arrays, as in `nn.GRU.state_dict()`: ``weight_ih_l{k}`` (3H, in),
        ``weight_hh_l{k}`` (3H, H), ``bias_ih_l{k}`` / ``bias_hh_l{k}`` (3H,), rows r | z | n.
      x: (T, B, I), or (B, T, I) with ``batch_first=True``, or unbatched (T, I).
      h0: optional (L*D, B, H), or (L*D, H) for unbatched input; zeros when omitted.
      batch_first, dropout_rate, dropout_key, lengths: as `lstm`.

    Returns:
      ``output, h_n``: output (T, B, D*H) (or batch-first / unbatched like `x`), h_n (L*D, B, H).
    """
    return _single_state(GRU_CELL, params, x, h0, batch_first, dropout_rate, dropout_key, lengths)


def rnn(
    params: Mapping[str, Array],
    x: Array,
    h0: Array | None = None,
    nonlinearity: str = "tanh",
    *,
    batch_first: bool = False,
    dropout_rate: float = 0.0,
    dropout_key: Array | None = None,
    lengths: Array | None = None,
) -> tuple[Array, Array]:
    """A stacked (bi)directional Elman RNN, exactly `torch.nn.RNN.forward`.

    Args:
      params: torch-named arrays, as in `nn.RNN.state_dict()` (G = 1: ``weight_ih_l{k}`` (H, in), ...).
      x, h0, batch_first, dropout_rate, dropout_key, lengths: as `gru`.
      nonlinearity: "tanh" or "relu" (torch's `nonlinearity`; the weights do not record it).

    Returns:
      ``output, h_n`` with `gru`'s shapes.
    """
    cell = CELLS[rnn_mode(nonlinearity)]
    return _single_state(cell, params, x, h0, batch_first, dropout_rate, dropout_key, lengths)
