"""The models: the article's classifiers, and the registry that knows each of them."""

from jax_lstm.models import registry
from jax_lstm.models.classifiers import BNLSTMClassifier, LSTMClassifier

__all__ = ["BNLSTMClassifier", "LSTMClassifier", "registry"]
