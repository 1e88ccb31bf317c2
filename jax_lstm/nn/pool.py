"""Pooling over time: `torch.nn.AdaptiveAvgPool1d(1)` (the global average), over valid steps only
when the series are right-padded."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["global_average_pool", "time_mask"]


def time_mask(lengths: jax.Array | None, num_steps: int, dtype) -> jax.Array | None:
    """(B,) lengths -> (B, T, 1) ones on the valid steps, zeros on the padding; None for None."""
    if lengths is None:
        return None
    return (jnp.arange(num_steps)[None, :] < lengths[:, None]).astype(dtype)[:, :, None]


def global_average_pool(x: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """(B, T, C) -> (B, C): the mean over time, `AdaptiveAvgPool1d(1)` on torch's (B, C, T).

    With `lengths` (B,), the mean of each series' valid steps: padding neither adds to the sum nor
    counts in the divisor, so a series pools to the same value however far it is padded.
    """
    if lengths is None:
        return jnp.mean(x, axis=1)
    mask = time_mask(lengths, x.shape[1], x.dtype)
    return jnp.sum(x * mask, axis=1) / lengths.astype(x.dtype)[:, None]
