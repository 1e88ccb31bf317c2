"""Input checks shared by every recurrent layer, with torch's wording, before any work starts.

The checks run on static shapes, so they fire while tracing under `jit` too; values of traced
`lengths` cannot be inspected there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jax_lstm.rnn.spec import RNNSpec

__all__ = [
    "as_array",
    "check_cell_inputs",
    "check_input",
    "check_input_dtype",
    "check_lengths",
    "check_rank_and_dtype",
    "check_state",
]

Array = jax.Array


def as_array(x, name: str = "LSTM") -> Array:
    """`jnp.asarray`, except that a list of sequences of different lengths gets a message on padding
    (and one naming the series that is not (time, features), or is empty)."""
    if x is None:
        raise TypeError(f"{name}: the input is None; pass an array of shape (T, B, I), (B, T, I) or (T, I)")
    if isinstance(x, list | tuple) and len({np.shape(item) for item in x}) > 1:
        for i, item in enumerate(x):
            if np.ndim(item) != 2:
                raise ValueError(
                    f"{name}: series {i} of the list has shape {np.shape(item)}; every series must be "
                    "(time, features): reshape a univariate one with s[:, None]"
                )
            if np.shape(item)[0] == 0:
                raise ValueError(f"{name}: series {i} of the list has length 0; every series needs a step")
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


def check_input(x: Array, spec: RNNSpec, name: str = "LSTM") -> Array:
    """Validates an input (T, I), (T, B, I) or (B, T, I) against `spec`, with torch's wording."""
    x = check_rank_and_dtype(x, name)
    if x.shape[-1] != spec.input_size:
        raise ValueError(
            f"input.size(-1) must be equal to input_size. Expected {spec.input_size}, got {x.shape[-1]}"
        )
    return x


def check_input_dtype(x: Array, weight: Array, name: str = "RNN") -> None:
    """Refuses an input whose dtype differs from the weights' (float16 or float64 input into float32
    weights), as torch does, instead of silently computing in another precision."""
    if x.dtype != weight.dtype:
        raise ValueError(
            f"{name} input dtype ({x.dtype}) does not match weight dtype ({weight.dtype}). Convert input: "
            f"x.astype(jnp.{weight.dtype}), or build the model with param_dtype=jnp.{x.dtype}"
        )


def check_cell_inputs(x: Array, h: Array, c: Array, input_size: int, sizes: tuple[int, int]) -> None:
    """torch's LSTMCell checks: ranks, the input width, the batch of each state and its width
    (`sizes`: (P, H), the widths of h and c)."""
    if x.ndim not in (1, 2):
        raise ValueError(f"LSTMCell: Expected input to be 1D or 2D, got {x.ndim}D instead")
    for i, s in enumerate((h, c)):
        if s.ndim not in (1, 2):
            raise ValueError(f"LSTMCell: Expected hx[{i}] to be 1D or 2D, got {s.ndim}D instead")
        if s.ndim != x.ndim:
            raise ValueError(
                f"LSTMCell: Expected hx[{i}] to be {x.ndim}D like the input (batched and unbatched do "
                f"not mix), got {s.ndim}D instead"
            )
    if x.shape[-1] != input_size:
        raise ValueError(f"input has inconsistent input_size: got {x.shape[-1]} expected {input_size}")
    for i, (s, size) in enumerate(zip((h, c), sizes, strict=True)):
        if x.ndim == 2 and s.shape[0] != x.shape[0]:
            raise ValueError(f"Input batch size {x.shape[0]} doesn't match hidden{i} batch size {s.shape[0]}")
        if s.shape[-1] != size:
            raise ValueError(f"hidden{i} has inconsistent hidden_size: got {s.shape[-1]}, expected {size}")


def check_state(state: Array, expected: tuple[int, ...], label: str) -> Array:
    """An initial state of torch's shape `expected`; `label` is torch's name for it (``hidden[0]``)."""
    state = jnp.asarray(state) if not isinstance(state, jax.Array) else state
    if tuple(state.shape) != expected:
        raise ValueError(f"Expected {label} size {expected}, got {list(state.shape)}")
    if not jnp.issubdtype(state.dtype, jnp.floating):
        raise TypeError(f"{label} must be floating-point, got dtype {state.dtype}")
    return state


def check_lengths(lengths: Array, batch: int, num_steps: int) -> Array:
    """Validates per-sequence lengths: (B,) integers in [1, T]. Values are checked when concrete."""
    # Concrete values (lists, numpy, device arrays, constants closed over by a jitted function) are
    # checked with numpy on the host, so the check creates no traced operation and numpy input
    # makes no round trip through the device. Traced lengths cannot be inspected.
    concrete = None if isinstance(lengths, jax.core.Tracer) else np.asarray(lengths)
    shape, dtype = (lengths.shape, lengths.dtype) if concrete is None else (concrete.shape, concrete.dtype)
    if batch == 0:
        raise ValueError(
            "lengths were given for an empty batch (0 sequences); pass at least one sequence, or no lengths"
        )
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
