"""The models: the article's classifiers, its extensions (LSTM-FCN, MLSTM-FCN, attention), the
forecaster, the 2-D MDLSTM classifier, and the registry that knows each of them.

A model is one module (its Flax class and its `ModelEntry`) plus its torch twin in `torch_ref`, and
one registration line here; the order of the lines is the order of ``--model``'s choices.
"""

from jax_lstm.models import registry
from jax_lstm.models.attention import ATTENTION_LSTM_ENTRY, AttentionLSTMClassifier
from jax_lstm.models.classifiers import BN_LSTM_ENTRY, LSTM_ENTRY, BNLSTMClassifier, LSTMClassifier
from jax_lstm.models.fcn import LSTM_FCN_ENTRY, MLSTM_FCN_ENTRY, LSTMFCNClassifier, MLSTMFCNClassifier
from jax_lstm.models.forecaster import FORECASTER_ENTRY, LSTMForecaster
from jax_lstm.models.mdlstm import MDLSTM_ENTRY, MDLSTMClassifier

registry.register(LSTM_ENTRY)
registry.register(BN_LSTM_ENTRY)
registry.register(FORECASTER_ENTRY)
registry.register(LSTM_FCN_ENTRY)
registry.register(MLSTM_FCN_ENTRY)
registry.register(ATTENTION_LSTM_ENTRY)
registry.register(MDLSTM_ENTRY)

__all__ = [
    "AttentionLSTMClassifier",
    "BNLSTMClassifier",
    "LSTMClassifier",
    "LSTMFCNClassifier",
    "LSTMForecaster",
    "MDLSTMClassifier",
    "MLSTMFCNClassifier",
    "registry",
]
