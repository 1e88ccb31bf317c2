"""`torch.nn.BatchNorm1d` in Flax, running statistics included, exactly torch's rule."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["BatchNorm1d"]


class BatchNorm1d(nn.Module):
    """`torch.nn.BatchNorm1d` on (N, C) input, train and eval mode, running statistics included.

    Train mode normalises with the batch mean and the biased (two-pass) batch variance, and updates
    ``running = (1 - momentum) * running + momentum * batch`` with the *unbiased* variance, torch's
    convention (flax.linen.BatchNorm's momentum is 1 - this, it stores the biased variance, and its
    default one-pass variance loses precision on offset features). Eval mode uses the running stats.
    """

    momentum: float = 0.1
    eps: float = 1e-5
    param_dtype: Any = jnp.float32
    axis_name: str | None = None  # a mapped axis the batch is split over (data parallelism)

    def _all(self, value: jax.Array) -> jax.Array:
        return value if self.axis_name is None else jax.lax.psum(value, self.axis_name)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, mask: jax.Array | None = None) -> jax.Array:
        """(N, C) -> (N, C). `mask` (N,) bool: rows that count towards the batch statistics."""
        if self.has_variable("params", "weight"):
            num_features = int(self.get_variable("params", "weight").shape[0])
            if x.shape[-1] != num_features:
                raise ValueError(
                    f"BatchNorm1d: expected {num_features} features (input.size(-1)), got {x.shape[-1]}"
                )
        num_features = int(x.shape[-1])
        weight = self.param("weight", nn.initializers.ones, (num_features,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (num_features,), self.param_dtype)
        running_mean = self.variable(
            "batch_stats", "running_mean", jnp.zeros, (num_features,), self.param_dtype
        )
        running_var = self.variable("batch_stats", "running_var", jnp.ones, (num_features,), self.param_dtype)
        # torch keeps an int64 counter; int32 here (JAX's default integer) converts exactly.
        num_batches_tracked = self.variable("batch_stats", "num_batches_tracked", jnp.zeros, (), jnp.int32)
        if train:
            if mask is None and self.axis_name is None:
                n = x.shape[0]
                mean = jnp.mean(x, axis=0)
                # two-pass, biased: used to normalise
                var = jnp.mean(jnp.square(x - mean[None, :]), axis=0)
            else:
                # Sums over the rows that count, across all shards of the batch when the batch
                # is split over devices (axis_name): the statistics of the whole batch, as torch.
                if mask is None:
                    weights = jnp.ones((x.shape[0], 1), x.dtype)
                else:
                    weights = mask.astype(x.dtype)[:, None]  # (N, 1)
                n = self._all(jnp.sum(weights))  # in x's dtype, so n / (n - 1) does not promote
                mean = self._all(jnp.sum(x * weights, axis=0)) / n
                var = self._all(jnp.sum(jnp.square(x - mean[None, :]) * weights, axis=0)) / n
            if not isinstance(n, jax.core.Tracer) and int(n) <= 1:
                raise ValueError(
                    "Expected more than 1 value per channel when training, got input size "
                    f"{tuple(x.shape)}: BatchNorm needs a batch of at least 2 values per feature"
                )
            if not self.is_initializing():
                m = self.momentum
                unbiased = var * (n / (n - 1))
                running_mean.value = (1 - m) * running_mean.value + m * mean
                running_var.value = (1 - m) * running_var.value + m * unbiased
                num_batches_tracked.value = num_batches_tracked.value + 1
        else:
            mean, var = running_mean.value, running_var.value
        # torch's CPU kernel applies y = x * alpha + beta with alpha = weight / sqrt(var + eps),
        # beta = bias - mean * alpha (aten/src/ATen/native/Normalization.cpp); same order here.
        alpha = weight * jax.lax.rsqrt(var + self.eps)
        beta = bias - mean * alpha
        return x * alpha[None, :] + beta[None, :]
