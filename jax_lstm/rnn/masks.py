"""Right-padded sequences: which steps are real, and the per-sequence reversal of torch's packed path.

Shared by every recurrence, the cuDNN path and the classifiers' BatchNorm.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["reverse_within_lengths", "valid_steps"]


def valid_steps(lengths: jax.Array, num_steps: int) -> jax.Array:
    """(B,) lengths of right-padded sequences -> (T, B) bool: which steps are real."""
    return jnp.arange(num_steps)[:, None] < lengths[None, :]


def reverse_within_lengths(num_steps: int, lengths: jax.Array) -> jax.Array:
    """(T, B) time indices that reverse each sequence inside its own length and leave padding alone.

    The permutation is its own inverse, so the same gather maps the outputs back.
    """
    t = jnp.arange(num_steps)[:, None]  # (T, 1)
    return jnp.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
