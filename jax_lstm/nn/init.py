"""torch's parameter initialisers, for Flax modules and for the registry's numpy initialiser."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["torch_uniform"]


def torch_uniform(bound: float) -> Callable[..., jax.Array]:
    """Initializer for U(-bound, bound), torch's `init.uniform_(-bound, bound)`.

    (`jax.nn.initializers.uniform(s)` samples [0, s), which is not this.)
    """

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init
