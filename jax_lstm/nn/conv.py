"""`torch.nn.Conv1d` in Flax: torch's weight layout (out, in, kernel), initialisation and padding."""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_lstm.nn.init import torch_uniform

__all__ = ["Conv1d", "same_padding"]


def same_padding(kernel_size: int, dilation: int = 1) -> tuple[int, int]:
    """torch's ``padding="same"`` for one axis: (left, right) zeros, the extra one on the right when
    the total is odd (an even kernel), as torch's `_conv_forward` and Keras' "same" both pad."""
    total = dilation * (kernel_size - 1)
    return total // 2, total - total // 2


class Conv1d(nn.Module):
    """`torch.nn.Conv1d(in, out, kernel_size, padding=...)` on channels-last input.

    Weight (out, in, kernel) and bias (out,), both U(-1/sqrt(in * kernel), 1/sqrt(in * kernel)) as
    torch's ``reset_parameters``. Input and output are (B, T, C), the layout of the library's
    series; torch's Conv1d takes (B, C, T), so its twin transposes (the numbers are the same).
    ``padding`` is "same" (torch's rule, `same_padding`), "valid", or an int of zeros on each side.
    Cross-correlation, as torch (no kernel flip).
    """

    features: int  # out_channels
    kernel_size: int
    padding: str | int = "same"
    use_bias: bool = True
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """(B, T, C_in) -> (B, T', C_out); T' = T with "same" padding."""
        if x.ndim != 3:
            raise ValueError(f"Conv1d expects input of shape (batch, time, channels), got {tuple(x.shape)}")
        in_channels = int(x.shape[-1])
        bound = 1.0 / math.sqrt(in_channels * self.kernel_size)
        weight = self.param(
            "weight", torch_uniform(bound), (self.features, in_channels, self.kernel_size), self.param_dtype
        )
        if self.padding == "same":
            pad = [same_padding(self.kernel_size)]
        elif self.padding == "valid":
            pad = [(0, 0)]
        elif isinstance(self.padding, int) and not isinstance(self.padding, bool) and self.padding >= 0:
            pad = [(self.padding, self.padding)]
        else:
            raise ValueError(f"Conv1d padding must be 'same', 'valid' or an int >= 0, got {self.padding!r}")
        y = jax.lax.conv_general_dilated(
            x,
            weight,
            window_strides=(1,),
            padding=pad,
            dimension_numbers=("NWC", "OIW", "NWC"),
            precision=jax.lax.Precision.HIGHEST,
        )
        if self.use_bias:
            bias = self.param("bias", torch_uniform(bound), (self.features,), self.param_dtype)
            y = y + bias[None, None, :]
        return y
