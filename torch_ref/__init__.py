"""The PyTorch reference: the article's models and training loop as written, its extensions
(LSTM-FCN, MLSTM-FCN, attention) and the forecaster's twin, for parity checks."""

from torch_ref.forecaster import LSTMForecaster
from torch_ref.hybrid import LSTMFCN, MLSTMFCN, AttentionLSTM
from torch_ref.mdlstm import MDLSTM2d, MDLSTMClassifier
from torch_ref.models import BN_LSTM, MultiDimLSTM

__all__ = [
    "BN_LSTM",
    "LSTMFCN",
    "MLSTMFCN",
    "AttentionLSTM",
    "LSTMForecaster",
    "MDLSTM2d",
    "MDLSTMClassifier",
    "MultiDimLSTM",
]
