"""The PyTorch reference: the article's models and training loop as written, for parity checks."""

from torch_ref.models import BN_LSTM, MultiDimLSTM

__all__ = ["BN_LSTM", "MultiDimLSTM"]
