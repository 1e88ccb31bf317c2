"""The models: the article's classifiers, its extensions (LSTM-FCN, MLSTM-FCN, attention), the
forecaster, and the registry that knows each of them."""

from jax_lstm.models import registry
from jax_lstm.models.attention import AttentionLSTMClassifier
from jax_lstm.models.classifiers import BNLSTMClassifier, LSTMClassifier
from jax_lstm.models.fcn import LSTMFCNClassifier, MLSTMFCNClassifier
from jax_lstm.models.forecaster import LSTMForecaster

__all__ = [
    "AttentionLSTMClassifier",
    "BNLSTMClassifier",
    "LSTMClassifier",
    "LSTMFCNClassifier",
    "LSTMForecaster",
    "MLSTMFCNClassifier",
    "registry",
]
