"""Right-padded sequences: which steps are real, and the per-sequence reversal of torch's packed path.

Shared by every recurrence, the cuDNN path and the classifiers' BatchNorm.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["patch_steps", "patched_length", "reverse_within_lengths", "valid_steps"]


def valid_steps(lengths: jax.Array, num_steps: int) -> jax.Array:
    """(B,) lengths of right-padded sequences -> (T, B) bool: which steps are real."""
    return jnp.arange(num_steps)[:, None] < lengths[None, :]


def reverse_within_lengths(num_steps: int, lengths: jax.Array) -> jax.Array:
    """(T, B) time indices that reverse each sequence inside its own length and leave padding alone.

    The permutation is its own inverse, so the same gather maps the outputs back.
    """
    t = jnp.arange(num_steps)[:, None]  # (T, 1)
    return jnp.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)


def patched_length(num_steps: int, patch: int) -> int:
    """The number of steps `patch_steps` makes of `num_steps`: ceil(num_steps / patch)."""
    return -(-num_steps // patch)


def patch_steps(x: jax.Array, lengths: jax.Array | None, patch: int) -> tuple[jax.Array, jax.Array | None]:
    """Reads each run of `patch` consecutive steps as one step: x (B, T, F) -> (B, ceil(T/patch),
    patch*F), a patch's steps side by side (its first step's F features first), the last patch
    completed with zeros; lengths (B,) -> ceil(lengths/patch).

    With `lengths`, the padded steps are set to zero first, so that a series' patches do not depend
    on what its padding holds. ``patch=1`` returns x and lengths unchanged.
    """
    if patch == 1:
        return x, lengths
    batch, steps, features = x.shape
    if lengths is not None:
        x = jnp.where(valid_steps(lengths, steps).T[:, :, None], x, jnp.zeros((), x.dtype))
    patched = patched_length(steps, patch)
    x = jnp.pad(x, ((0, 0), (0, patched * patch - steps), (0, 0)))
    x = x.reshape(batch, patched, patch * features)
    return x, None if lengths is None else (lengths + patch - 1) // patch
