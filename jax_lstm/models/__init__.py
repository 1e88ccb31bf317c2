"""The models: the article's classifiers, the forecaster, and the registry that knows each of them."""

from jax_lstm.models import registry
from jax_lstm.models.classifiers import BNLSTMClassifier, LSTMClassifier
from jax_lstm.models.forecaster import LSTMForecaster

__all__ = ["BNLSTMClassifier", "LSTMClassifier", "LSTMForecaster", "registry"]
