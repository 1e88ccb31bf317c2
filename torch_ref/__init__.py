"""The PyTorch reference: the article's models and training loop as written, and the forecaster's
twin, for parity checks."""

from torch_ref.forecaster import LSTMForecaster
from torch_ref.models import BN_LSTM, MultiDimLSTM

__all__ = ["BN_LSTM", "LSTMForecaster", "MultiDimLSTM"]
