"""torch-exact building blocks in Flax: torch's parameter names, layouts, initialisation and numbers."""

from jax_lstm.nn.conv import Conv1d, conv1d, same_padding
from jax_lstm.nn.init import torch_uniform
from jax_lstm.nn.linear import Linear
from jax_lstm.nn.norm import BatchNorm1d
from jax_lstm.nn.pool import global_average_pool, time_mask

__all__ = [
    "BatchNorm1d",
    "Conv1d",
    "Linear",
    "conv1d",
    "global_average_pool",
    "same_padding",
    "time_mask",
    "torch_uniform",
]
