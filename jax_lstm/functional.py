"""The LSTM recurrence as pure functions over torch-named arrays.

Nothing here knows about Flax: `lstm(params, x)` takes the same flat mapping of arrays that
`torch.nn.LSTM.state_dict()` holds (``weight_ih_l0`` (4H, in), ``weight_hh_l0`` (4H, H_out),
``bias_ih_l0`` (4H,), ``bias_hh_l0`` (4H,), ``weight_hr_l0`` (proj, H), ``_reverse`` for the reverse
direction) and returns what `nn.LSTM.forward` returns, with the same shapes.

Shape letters: T time, B batch, I input features, H hidden_size, P = H_out (proj_size or H),
L num_layers, D directions (1 or 2).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jax_lstm import cudnn, fused
from jax_lstm.spec import LayerWeights, LSTMSpec, layer_weights, spec_from_params

IMPLEMENTATIONS = ("fused", "scan", "cudnn")
LAYER_IMPLEMENTATIONS = tuple(i for i in IMPLEMENTATIONS if i != "cudnn")  # cuDNN: whole stacks only

__all__ = [
    "LayerWeights",
    "as_array",
    "check_input",
    "check_lengths",
    "check_rank_and_dtype",
    "dropout",
    "layer_weights",
    "lstm",
    "lstm_cell",
    "lstm_layer",
]

Array = jax.Array


def lstm_cell(x_t: Array, h: Array, c: Array, weights: LayerWeights) -> tuple[Array, Array]:
    """One timestep of one layer, exactly torch's update.

    Args:
      x_t: (B, I) input at this step.
      h: (B, P) previous hidden state.
      c: (B, H) previous cell state.
      weights: the layer's arrays.

    Returns:
      (h, c): (B, P) and (B, H).
    """
    gates = x_t @ weights.w_ih.T + h @ weights.w_hh.T  # (B, 4H)
    if weights.b_ih is not None:
        gates = gates + weights.b_ih + weights.b_hh
    return fused.cell_update(fused.activations(gates), c, weights.w_hr)


def _reverse_within_lengths(num_steps: int, lengths: Array) -> Array:
    """(T, B) time indices that reverse each sequence inside its own length and leave padding alone.

    The permutation is its own inverse, so the same gather maps the outputs back.
    """
    t = jnp.arange(num_steps)[:, None]  # (T, 1)
    return jnp.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)


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
    """Runs one layer in one direction over a time-major sequence with `lax.scan`.

    Args:
      x: (T, B, I) time-major input.
      h0: (B, P) initial hidden state.
      c0: (B, H) initial cell state.
      weights: the layer's arrays in torch's layout.
      reverse: run from the last step to the first (torch's ``_reverse`` direction). Outputs stay
        aligned to the original time index.
      lengths: optional (B,) integer valid lengths of right-padded sequences. Each sequence then runs
        only its first ``lengths[b]`` steps (the reverse direction starts at its own last element),
        its final state is taken at its own last step, and padded outputs are 0, as torch's
        PackedSequence path does.
      implementation: "fused" (default: `jax_lstm.fused.recurrence`, a hand-written backward pass
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
    num_steps = x.shape[0]
    reorder = reverse and lengths is not None
    if reorder:
        order = _reverse_within_lengths(num_steps, lengths)  # (T, B)
        x = jnp.take_along_axis(x, order[:, :, None], axis=0)
        reverse = False  # the sequences are already reversed inside their lengths
    valid = None if lengths is None else fused.valid_steps(lengths, num_steps)  # (T, B)
    bias = None if weights.b_ih is None else weights.b_ih + weights.b_hh

    if implementation == "fused":
        out, h_n, c_n = fused.recurrence(
            x, h0, c0, weights.w_ih, weights.w_hh, bias, weights.w_hr, valid, reverse
        )
    else:
        # The reference: the same forward computation, differentiated by JAX itself.
        xw = fused.input_projection(x, weights.w_ih, bias)
        out, h_n, c_n, _, _ = fused.projected_scan(xw, h0, c0, weights.w_hh, weights.w_hr, valid, reverse)
    if reorder:
        out = jnp.take_along_axis(out, order[:, :, None], axis=0)
    return out, h_n, c_n


def dropout(x: Array, rate: float, key: Array) -> Array:
    """Inverted dropout as torch applies it between layers: zero with probability `rate`, scale the rest.

    ``rate == 1`` gives zeros (torch multiplies by 0 instead of dividing by 0).
    """
    if rate >= 1.0:
        return jnp.zeros_like(x)
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def as_array(x, name: str = "LSTM") -> Array:
    """`jnp.asarray`, except that a list of sequences of different lengths gets a message on padding."""
    if isinstance(x, list | tuple) and len({np.shape(item) for item in x}) > 1:
        lengths = [np.shape(item)[0] if np.ndim(item) else 0 for item in x]
        raise ValueError(
            f"{name}: got ragged input (a list of {len(x)} sequences of lengths {lengths[:8]}); pad "
            "them to one (batch, time, features) array and pass the valid lengths: "
            "x, lengths = jax_lstm.data.pad_series(sequences); apply(variables, x, lengths=lengths)"
        )
    return jnp.asarray(x) if not isinstance(x, jax.Array) else x


def check_rank_and_dtype(x: Array, name: str = "LSTM") -> Array:
    """Rejects inputs that are not 2-D or 3-D floating-point arrays, with torch's wording."""
    x = as_array(x, name)
    if x.ndim not in (2, 3):
        raise ValueError(
            f"{name}: Expected input to be 2D or 3D, got {x.ndim}D instead (shape {tuple(x.shape)}); "
            "pass (seq_len, features), (seq_len, batch, features), or (batch, seq_len, features) "
            "with batch_first=True"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{name}: expected a floating-point input, got dtype {x.dtype}; "
            "cast it first, e.g. x.astype(jnp.float32)"
        )
    return x


def check_input(x: Array, spec: LSTMSpec, name: str = "LSTM") -> Array:
    """Validates an LSTM input (T, I), (T, B, I) or (B, T, I) against `spec`, with torch's wording."""
    x = check_rank_and_dtype(x, name)
    if x.shape[-1] != spec.input_size:
        raise ValueError(
            f"input.size(-1) must be equal to input_size. Expected {spec.input_size}, got {x.shape[-1]}"
        )
    return x


def _check_state(state: Array, expected: tuple[int, ...], index: int) -> Array:
    state = jnp.asarray(state) if not isinstance(state, jax.Array) else state
    if tuple(state.shape) != expected:
        raise ValueError(f"Expected hidden[{index}] size {expected}, got {list(state.shape)}")
    if not jnp.issubdtype(state.dtype, jnp.floating):
        raise TypeError(f"hidden[{index}] must be floating-point, got dtype {state.dtype}")
    return state


def check_lengths(lengths: Array, batch: int, num_steps: int) -> Array:
    """Validates per-sequence lengths: (B,) integers in [1, T]. Values are checked when concrete."""
    # Concrete values (lists, numpy, device arrays, constants closed over by a jitted function) are
    # checked with numpy on the host, so the check creates no traced operation and numpy input
    # makes no round trip through the device. Traced lengths cannot be inspected.
    concrete = None if isinstance(lengths, jax.core.Tracer) else np.asarray(lengths)
    shape, dtype = (lengths.shape, lengths.dtype) if concrete is None else (concrete.shape, concrete.dtype)
    if shape != (batch,):
        raise ValueError(f"lengths must have shape (batch,) = ({batch},), got {tuple(shape)}")
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"lengths must be integers, got dtype {dtype}")
    if concrete is not None:
        lo, hi = int(concrete.min()), int(concrete.max())
        if lo < 1:
            raise ValueError(
                f"lengths must be at least 1 (torch: 'Length of all samples has to be greater than "
                f"0'), got a length of {lo}"
            )
        if hi > num_steps:
            raise ValueError(f"lengths must not exceed the padded sequence length {num_steps}, got {hi}")
    return lengths if isinstance(lengths, jax.Array) else jnp.asarray(lengths)


def _layer_runs(num_layers: int, together: bool) -> list[range]:
    """The layers run by one call each: all of them at once (cuDNN without dropout), else one by one."""
    return [range(num_layers)] if together else [range(k, k + 1) for k in range(num_layers)]


def _run_layer(
    params: Mapping[str, Array],
    spec: LSTMSpec,
    layer: int,
    x: Array,
    h0: Array,
    c0: Array,
    lengths: Array | None,
    implementation: str,
) -> tuple[Array, Array, Array]:
    """One layer, both directions: (outputs (T, B, D*P), h_n (D, B, P), c_n (D, B, H))."""
    outputs, h_n, c_n = [], [], []
    for direction in range(spec.num_directions):
        out, h, c = lstm_layer(
            x,
            h0[direction],
            c0[direction],
            layer_weights(params, layer, direction),
            reverse=direction == 1,
            lengths=lengths,
            implementation=implementation,
        )
        outputs.append(out)
        h_n.append(h)
        c_n.append(c)
    out = outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, axis=-1)
    return out, jnp.stack(h_n), jnp.stack(c_n)


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
        `jax_lstm.cudnn`).

    Returns:
      ``output, (h_n, c_n)``: output (T, B, D*P) (or batch-first / unbatched like `x`),
      h_n (L*D, B, P), c_n (L*D, B, H) (2-D for unbatched input); h_n is indexed ``layer*D + direction``.
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    spec = spec_from_params(params)
    x = check_input(x, spec)
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

    h_shape = (num_states, batch, spec.output_size) if batched else (num_states, spec.output_size)
    c_shape = (num_states, batch, spec.hidden_size) if batched else (num_states, spec.hidden_size)
    if initial_state is None:
        h0 = jnp.zeros((num_states, batch, spec.output_size), dtype)
        c0 = jnp.zeros((num_states, batch, spec.hidden_size), dtype)
    else:
        if not isinstance(initial_state, tuple | list) or len(initial_state) != 2:
            raise TypeError("initial_state must be a pair (h_0, c_0)")
        h0 = _check_state(initial_state[0], h_shape, 0).astype(dtype)
        c0 = _check_state(initial_state[1], c_shape, 1).astype(dtype)
        if not batched:
            h0, c0 = h0[:, None, :], c0[:, None, :]

    dropping = dropout_key is not None and dropout_rate > 0
    layer_input = x
    h_n, c_n = [], []  # (k*D, B, P) and (k*D, B, H) per run of k layers
    key = dropout_key
    for layers in _layer_runs(spec.num_layers, implementation == "cudnn" and not dropping):
        states = slice(layers.start * spec.num_directions, layers.stop * spec.num_directions)
        if implementation == "cudnn":
            layer_input, h, c = cudnn.run_layers(
                params, spec, layers, layer_input, h0[states], c0[states], lengths, kernel
            )
        else:
            layer_input, h, c = _run_layer(
                params, spec, layers.start, layer_input, h0[states], c0[states], lengths, implementation
            )
        h_n.append(h)
        c_n.append(c)
        if dropping and layers.stop < spec.num_layers:
            key, sub = jax.random.split(key)
            layer_input = dropout(layer_input, dropout_rate, sub)

    output = layer_input  # (T, B, D*P)
    h_n, c_n = jnp.concatenate(h_n), jnp.concatenate(c_n)  # (L*D, B, P), (L*D, B, H)
    if not batched:
        return output[:, 0], (h_n[:, 0], c_n[:, 0])
    if batch_first:
        output = jnp.swapaxes(output, 0, 1)
    return output, (h_n, c_n)
