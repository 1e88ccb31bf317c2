"""torch-exact building blocks in Flax: torch's parameter names, layouts, initialisation and numbers."""

from jax_lstm.nn.init import torch_uniform
from jax_lstm.nn.linear import Linear
from jax_lstm.nn.norm import BatchNorm1d

__all__ = ["BatchNorm1d", "Linear", "torch_uniform"]
