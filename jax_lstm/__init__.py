"""jax-lstm: a JAX/Flax LSTM that behaves exactly like `torch.nn.LSTM`, and the article's classifiers.

`import jax_lstm` never imports torch; only `to_torch` needs it, and imports it when called.
"""

from jax_lstm import functional
from jax_lstm.interop import from_torch, to_torch
from jax_lstm.layer import LSTM
from jax_lstm.models import BatchNorm1d, BNLSTMClassifier, Linear, LSTMClassifier
from jax_lstm.spec import LSTMSpec

__version__ = "0.1.0"

__all__ = [
    "LSTM",
    "BNLSTMClassifier",
    "BatchNorm1d",
    "LSTMClassifier",
    "LSTMSpec",
    "Linear",
    "from_torch",
    "functional",
    "to_torch",
]
