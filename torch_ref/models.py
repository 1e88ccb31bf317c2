"""The article's two PyTorch models, written from its sections 2.1 and 4.3.

The article's code lost its line breaks; restored here with its behaviour unchanged (explicit zero
h0/c0 on every forward, the last timestep into the linear layer). One fix: the article's `BN_LSTM`
never sets `self.hidden_size` and `self.num_layers`, which its `forward` reads, so as printed it
raises AttributeError on the first call; they are set here exactly as in `MultiDimLSTM`.

One extension, off by default: ``forward(x, lengths)`` accepts the valid lengths of right-padded
sequences and then runs torch's packed path (`pack_padded_sequence`), reads each sequence's last
valid step, and (BN_LSTM) normalises with statistics over the valid steps only. Without `lengths`
the forward pass is the article's, line for line, but for one addition: h0/c0 are created with
``dtype=x.dtype`` (the article's `torch.zeros(...)` takes the default float32), so that the models
also run in float64 for the parity checks; in float32 nothing changes.

The registry (`jax_lstm.models.registry`) names these classes as the twins of "lstm" and "bn-lstm";
`torch_ref.twins.make_torch_model` builds them by that name.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["BN_LSTM", "MultiDimLSTM"]


class MultiDimLSTM(nn.Module):
    """Section 2.1: stacked batch-first LSTM, zero initial state, last timestep -> Linear."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, num_classes: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.lstm = nn.LSTM(
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            batch_first=True,  # input and output are (batch, seq, features)
        )
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, F) -> logits (B, C); `lengths` (B,) for right-padded batches."""
        # initialise the hidden and cell states
        h0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size, dtype=x.dtype).to(x.device)
        c0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size, dtype=x.dtype).to(x.device)
        if lengths is not None:
            return self.fc(_packed_last_step(self.lstm, x, (h0, c0), lengths))
        out, _ = self.lstm(x, (h0, c0))  # out: (batch_size, seq_length, hidden_size)
        out = out[:, -1, :]  # the output of the last timestep
        return self.fc(out)


class BN_LSTM(nn.Module):  # noqa: N801 - the article's name
    """Section 4.3: BatchNorm1d over the features (statistics over batch*time), then as MultiDimLSTM."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, num_classes: int):
        super().__init__()
        self.hidden_size = hidden_size  # missing in the article, read by forward
        self.num_layers = num_layers  # missing in the article, read by forward
        self.bn = nn.BatchNorm1d(input_size)  # normalise over the feature dimension
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, F) -> logits (B, C); `lengths` (B,) for right-padded batches."""
        if lengths is not None:
            # BatchNorm over the valid steps only (the packed data), padding left at zero.
            valid = torch.arange(x.size(1), device=x.device)[None, :] < lengths.to(x.device)[:, None]
            normalized = torch.zeros_like(x)
            normalized[valid] = self.bn(x[valid])
            h0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size, dtype=x.dtype).to(x.device)
            c0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size, dtype=x.dtype).to(x.device)
            return self.fc(_packed_last_step(self.lstm, normalized, (h0, c0), lengths))
        # reshape to (batch_size * seq_length, input_size) for BatchNorm1d
        x_reshaped = x.reshape(-1, x.size(2))
        x_normalized = self.bn(x_reshaped)
        x = x_normalized.reshape(x.size(0), x.size(1), -1)
        h0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size, dtype=x.dtype).to(x.device)
        c0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size, dtype=x.dtype).to(x.device)
        out, _ = self.lstm(x, (h0, c0))
        out = out[:, -1, :]
        return self.fc(out)


def _packed_last_step(lstm: nn.LSTM, x: torch.Tensor, state, lengths: torch.Tensor) -> torch.Tensor:
    """Runs a batch-first LSTM on right-padded x through torch's packed path; (B, H) at each last step."""
    lengths = lengths.to("cpu", torch.int64)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, _ = lstm(packed, state)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
    last = (lengths - 1).to(x.device)
    return out[torch.arange(x.size(0), device=x.device), last]
