"""The article's classifiers in Flax, with torch's `nn.Linear` and `nn.BatchNorm1d` rebuilt exactly.

`LSTMClassifier` is the article's `MultiDimLSTM` (section 2.1): a batch-first stacked LSTM from a zero
initial state, the output of the last timestep, then a linear layer. `BNLSTMClassifier` is its `BN_LSTM`
(section 4.3): BatchNorm over the feature axis with statistics over batch*time first, then the same.

Parameter trees mirror the torch state dicts: ``{"lstm": {...}, "fc": {"weight", "bias"}}`` and, for
the BN model, ``{"bn": {"weight", "bias"}}`` plus ``batch_stats`` ``{"bn": {"running_mean",
"running_var", "num_batches_tracked"}}``.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_lstm import fused
from jax_lstm.functional import as_array, check_lengths
from jax_lstm.layer import LSTM, torch_uniform

__all__ = ["BNLSTMClassifier", "BatchNorm1d", "LSTMClassifier", "Linear"]


class Linear(nn.Module):
    """`torch.nn.Linear`: weight (out, in), bias (out,), both U(-1/sqrt(in), 1/sqrt(in)).

    (Flax's Dense stores the kernel as (in, out) = W^T with lecun-normal init and zero bias.)
    """

    features: int
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """(..., in) -> (..., features)."""
        in_features = int(x.shape[-1])
        # torch: kaiming_uniform_(a=sqrt(5)) on the weight gives the bound 1/sqrt(fan_in), and the
        # bias uses the same bound (torch/nn/modules/linear.py, reset_parameters).
        init = torch_uniform(1.0 / math.sqrt(in_features))
        weight = self.param("weight", init, (self.features, in_features), self.param_dtype)
        bias = self.param("bias", init, (self.features,), self.param_dtype)
        return x @ weight.T + bias


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
                var = jnp.mean(jnp.square(x - mean), axis=0)
            else:
                # Sums over the rows that count, across all shards of the batch when the batch
                # is split over devices (axis_name): the statistics of the whole batch, as torch.
                if mask is None:
                    weights = jnp.ones((x.shape[0], 1), x.dtype)
                else:
                    weights = mask.astype(x.dtype)[:, None]  # (N, 1)
                n = self._all(jnp.sum(weights))  # in x's dtype, so n / (n - 1) does not promote
                mean = self._all(jnp.sum(x * weights, axis=0)) / n
                var = self._all(jnp.sum(jnp.square(x - mean) * weights, axis=0)) / n
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
        return x * alpha + beta


def _check_batch(x: jax.Array, name: str) -> jax.Array:
    x = as_array(x, name)
    if x.ndim != 3:
        hint = " (add a batch axis with x[None])" if x.ndim == 2 else ""
        raise ValueError(
            f"{name} expects input of shape (batch, seq_len, features), got shape {tuple(x.shape)}{hint}"
        )
    return x


def _last_step(out: jax.Array, lengths: jax.Array | None) -> jax.Array:
    """out (B, T, P) -> (B, P): the last timestep, or each sequence's last valid one."""
    if lengths is None:
        return out[:, -1, :]
    return jnp.take_along_axis(out, (lengths - 1)[:, None, None], axis=1)[:, 0, :]


class LSTMClassifier(nn.Module):
    """The article's `MultiDimLSTM`: batch-first LSTM from zero state, last step -> Linear.

    Called as ``logits = model.apply(variables, x, train=False)`` with x (B, T, F); logits (B, C).
    """

    hidden_size: int
    num_layers: int
    num_classes: int
    dropout: float = 0.0
    param_dtype: Any = jnp.float32
    # A mapped axis the batch is split over (data parallelism): BatchNorm then reduces its batch
    # statistics across it. Unused by the plain LSTM model, whose samples are independent.
    axis_name: str | None = None
    implementation: str = "fused"  # the LSTM's recurrence: "fused", "scan" or "cudnn" (see LSTM)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, lengths: jax.Array | None = None) -> jax.Array:
        """(B, T, F) -> logits (B, C). `lengths` (B,) reads each sequence's last valid step."""
        x = _check_batch(x, type(self).__name__)
        if lengths is not None:
            lengths = check_lengths(lengths, x.shape[0], x.shape[1])
        return self._head(x, train, lengths)

    def _head(self, x: jax.Array, train: bool, lengths: jax.Array | None) -> jax.Array:
        # The article passes explicit zero h0/c0; the layer's default initial state is exactly that.
        out, _ = LSTM(
            self.hidden_size,
            self.num_layers,
            batch_first=True,
            dropout=self.dropout,
            param_dtype=self.param_dtype,
            implementation=self.implementation,
            name="lstm",
        )(x, deterministic=not train, lengths=lengths)
        return Linear(self.num_classes, param_dtype=self.param_dtype, name="fc")(_last_step(out, lengths))


class BNLSTMClassifier(LSTMClassifier):
    """The article's `BN_LSTM`: BatchNorm1d over features (statistics over batch*time), then the LSTM.

    With ``train=True`` BatchNorm uses batch statistics and updates ``batch_stats``::

        logits, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])

    With `lengths`, padded steps are left out of the batch statistics (they are not data) and the
    padded positions of the normalised input are ignored by the LSTM.
    """

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, lengths: jax.Array | None = None) -> jax.Array:
        """(B, T, F) -> logits (B, C)."""
        x = _check_batch(x, type(self).__name__)
        batch, steps, features = x.shape
        valid = None  # (B*T,): the rows that count towards the batch statistics (all, unpadded)
        if lengths is not None:
            lengths = check_lengths(lengths, batch, steps)
            valid = fused.valid_steps(lengths, steps).T.reshape(batch * steps)
        bn = BatchNorm1d(param_dtype=self.param_dtype, axis_name=self.axis_name, name="bn")
        # The article's reshape to (B*T, F): statistics over batch and time.
        x = bn(x.reshape(batch * steps, features), train=train, mask=valid)
        return self._head(x.reshape(batch, steps, features), train, lengths)
