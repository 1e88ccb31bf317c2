"""`torch.nn.Conv1d` in Flax: torch's weight layout (out, in, kernel), initialisation and padding.

Every convolution here, forward and backward, is written in the one form XLA:CPU hands to Eigen's
fast convolution: input (N, W, C), kernel (W, I, O), output (N, W, C). XLA rewrites other forms
into it (its `ConvCanonicalization` pass) only for the convolutions of a program's top level; one
inside a loop body (`lax.map` over K models, `lax.scan`) that is not already in this form falls
back to a generic loop about a hundred times slower (measured in benchmarks/NOTES.md, "Convolutions
inside loops"). So the forward convolution transposes torch's (O, I, K) weight itself, and the
backward pass (`jax.custom_vjp`) states its two convolutions in the same form instead of JAX's
transposition rules, whose kernels are (O, I, W)-like. The numbers are the same as the top-level
autodiff path's, bit for bit: these are the convolutions XLA would have produced there.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_lstm.nn.init import torch_uniform

__all__ = ["Conv1d", "conv1d", "same_padding"]

# The layout of XLA:CPU's Eigen convolution: batch, spatial, feature / spatial, in, out.
_CANONICAL = ("NWC", "WIO", "NWC")


def same_padding(kernel_size: int, dilation: int = 1) -> tuple[int, int]:
    """torch's ``padding="same"`` for one axis: (left, right) zeros, the extra one on the right when
    the total is odd (an even kernel), as torch's `_conv_forward` and Keras' "same" both pad."""
    total = dilation * (kernel_size - 1)
    return total // 2, total - total // 2


def _correlate(x: jax.Array, kernel: jax.Array, padding: tuple[int, int]) -> jax.Array:
    """(N, W, C) cross-correlated with a (K, C, O) kernel, `padding` zeros each side -> (N, W', O)."""
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        window_strides=(1,),
        padding=[padding],
        dimension_numbers=_CANONICAL,
        precision=jax.lax.Precision.HIGHEST,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv1d(x: jax.Array, weight: jax.Array, padding: tuple[int, int]) -> jax.Array:
    """torch's ``F.conv1d`` (stride 1, no dilation, no bias) on channels-last input.

    x (B, T, C_in), weight (C_out, C_in, K) in torch's layout, `padding` (left, right) zeros ->
    (B, T + left + right - K + 1, C_out). Reverse-mode differentiable only (`jax.grad`, `vjp`): its
    backward pass is written out (see the module docstring).
    """
    padded, kernel_size = x.shape[1] + padding[0] + padding[1], weight.shape[-1]
    if padded < kernel_size:  # torch's wording (aten's conv shape check)
        raise ValueError(
            f"Calculated padded input size per channel: ({padded}). Kernel size: ({kernel_size}). "
            "Kernel size can't be greater than actual input size"
        )
    return _correlate(x, jnp.transpose(weight, (2, 1, 0)), padding)  # kernel (K, C_in, C_out)


def _conv1d_fwd(x, weight, padding):
    return conv1d(x, weight, padding), (x, weight)


def _conv1d_bwd(padding, residuals, dy):
    x, weight = residuals
    kernel_size = weight.shape[-1]
    left, right = padding
    # dx: dy (B, T', C_out) correlated with the kernel reversed in time, in and out swapped:
    # (K, C_out, C_in), padded so that the output has x's T steps.
    flipped = jnp.flip(jnp.transpose(weight, (2, 0, 1)), axis=0)
    dx = _correlate(dy, flipped, (kernel_size - 1 - left, kernel_size - 1 - right))
    # dw[k, i, o] = sum over b, t of x_padded[b, t + k, i] dy[b, t, o]: a correlation whose "batch"
    # is C_in, whose features are the B series, and whose kernel is dy over all T' steps.
    dw = _correlate(jnp.transpose(x, (2, 1, 0)), jnp.transpose(dy, (1, 0, 2)), padding)  # (C_in, K, C_out)
    return dx, jnp.transpose(dw, (2, 0, 1))


conv1d.defvjp(_conv1d_fwd, _conv1d_bwd)


class Conv1d(nn.Module):
    """`torch.nn.Conv1d(in, out, kernel_size, padding=...)` on channels-last input.

    Weight (out, in, kernel) and bias (out,), both U(-1/sqrt(in * kernel), 1/sqrt(in * kernel)) as
    torch's ``reset_parameters``. Input and output are (B, T, C), the layout of the library's
    series; torch's Conv1d takes (B, C, T), so its twin transposes (the numbers are the same).
    ``padding`` is "same" (torch's rule, `same_padding`), "valid", or an int of zeros on each side.
    Cross-correlation, as torch (no kernel flip). Differentiable in reverse mode (`conv1d`).
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
            pad = same_padding(self.kernel_size)
        elif self.padding == "valid":
            pad = (0, 0)
        elif isinstance(self.padding, int) and not isinstance(self.padding, bool) and self.padding >= 0:
            pad = (self.padding, self.padding)
        else:
            raise ValueError(f"Conv1d padding must be 'same', 'valid' or an int >= 0, got {self.padding!r}")
        try:
            y = conv1d(x, weight, pad)
        except TypeError as err:
            if "forward-mode" not in str(err):
                raise
            raise TypeError(
                "Conv1d defines its own backward pass, so it supports reverse mode (jax.grad, vjp) "
                "but not forward-mode differentiation (jax.jvp, jacfwd, hessian)"
            ) from None
        if self.use_bias:
            bias = self.param("bias", torch_uniform(bound), (self.features,), self.param_dtype)
            y = y + bias[None, None, :]
        return y
