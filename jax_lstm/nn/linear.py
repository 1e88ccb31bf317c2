"""`torch.nn.Linear` in Flax: torch's layout and initialisation."""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_lstm.nn.init import torch_uniform

__all__ = ["Linear"]


class Linear(nn.Module):
    """`torch.nn.Linear`: weight (out, in), bias (out,), both U(-1/sqrt(in), 1/sqrt(in)).

    (Flax's Dense stores the kernel as (in, out) = W^T with lecun-normal init and zero bias.)
    """

    features: int
    param_dtype: Any = jnp.float32
    use_bias: bool = True  # False: torch's nn.Linear(..., bias=False), no bias parameter

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """(..., in) -> (..., features)."""
        in_features = int(x.shape[-1])
        # torch: kaiming_uniform_(a=sqrt(5)) on the weight gives the bound 1/sqrt(fan_in), and the
        # bias uses the same bound (torch/nn/modules/linear.py, reset_parameters).
        init = torch_uniform(1.0 / math.sqrt(in_features))
        weight = self.param("weight", init, (self.features, in_features), self.param_dtype)
        y = x @ weight.T  # (..., out)
        if not self.use_bias:
            return y
        bias = self.param("bias", init, (self.features,), self.param_dtype)
        return y + bias.reshape((1,) * (x.ndim - 1) + bias.shape)
