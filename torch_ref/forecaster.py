"""The PyTorch twin of `jax_lstm.forecasting.LSTMForecaster` (its parity cases: `torch_ref.cases`)."""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["LSTMForecaster"]


class LSTMForecaster(nn.Module):
    """Batch-first LSTM (or GRU / tanh RNN: `cell`, under the same name) from zero state, the last
    step's output, then Linear to horizon * num_targets."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        horizon: int,
        num_targets: int,
        dropout: float = 0.0,
        cell: str = "lstm",
    ):
        super().__init__()
        self.horizon = horizon
        self.num_targets = num_targets
        layers = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
        if cell not in layers:
            raise ValueError(f"cell must be one of {tuple(layers)}, got {cell!r}")
        self.lstm = layers[cell](input_size, hidden_size, num_layers, batch_first=True, dropout=dropout)
        self.fc = nn.Linear(hidden_size, horizon * num_targets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, F) -> (B, H, T)."""
        out, _ = self.lstm(x)  # zero initial state
        return self.fc(out[:, -1, :]).view(x.size(0), self.horizon, self.num_targets)
