"""Input checks shared by every recurrent layer, with torch's wording, before any work starts.

The checks run on static shapes, so they fire while tracing under `jit` too; values of traced
`lengths` cannot be inspected there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jax_lstm.rnn.spec import RNNSpec

__all__ = ["as_array", "check_input", "check_lengths", "check_rank_and_dtype", "check_state"]

Array = jax.Array


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


def check_input(x: Array, spec: RNNSpec, name: str = "LSTM") -> Array:
    """Validates an input (T, I), (T, B, I) or (B, T, I) against `spec`, with torch's wording."""
    x = check_rank_and_dtype(x, name)
    if x.shape[-1] != spec.input_size:
        raise ValueError(
            f"input.size(-1) must be equal to input_size. Expected {spec.input_size}, got {x.shape[-1]}"
        )
    return x


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
