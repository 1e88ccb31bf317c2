"""The article's extensions in PyTorch: LSTM-FCN and MLSTM-FCN (Karim et al. 2018, 2019) and attention
pooling over an LSTM's outputs. The twins of `jax_lstm.models.fcn` and `jax_lstm.models.attention`,
written as one would in torch, with the same parameter names.

Input is (B, T, C), as every model here; the convolutions run on torch's (B, C, T). With `lengths`
(right-padded series) they do what the JAX side documents: padding zeroed before and after every
block, BatchNorm statistics, squeeze-and-excite means and the final average over valid steps only,
attention softmax over valid steps only.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 - torch's convention

from torch_ref.models import _recurrent_layer, patch_steps

__all__ = ["LSTMFCN", "MLSTMFCN", "AttentionLSTM", "SqueezeExcite"]


def _valid(lengths: torch.Tensor | None, steps: int, device) -> torch.Tensor | None:
    """(B,) lengths -> (B, T) bool, True on valid steps; None for None."""
    if lengths is None:
        return None
    return torch.arange(steps, device=device)[None, :] < lengths.to(device)[:, None]


def _mean_over_time(y: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """(B, C, T) -> (B, C): AdaptiveAvgPool1d(1), or the mean over each series' valid steps."""
    if valid is None:
        return F.adaptive_avg_pool1d(y, 1).squeeze(-1)
    weights = valid.to(y.dtype)[:, None, :]
    return (y * weights).sum(-1) / weights.sum(-1)


class SqueezeExcite(nn.Module):
    """Channel gates from the means over time: Linear(C, C // r, no bias) -> ReLU -> Linear -> sigmoid."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, channels, bias=False)

    def forward(self, y: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, T) -> (B, C, T)."""
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(_mean_over_time(y, valid)))))
        return y * gate[:, :, None]


class LSTMFCN(nn.Module):
    """LSTM-FCN: Conv1d/BatchNorm1d/ReLU x3 -> global average, beside an LSTM over the variables
    (each step one series of `seq_len` values) -> dropout; concatenated -> Linear."""

    squeeze_excite = False

    def __init__(
        self,
        input_size: int,
        seq_len: int,
        num_classes: int,
        hidden_size: int = 8,
        num_layers: int = 1,
        dropout: float = 0.8,
        filters: tuple[int, ...] = (128, 256, 128),
        kernel_sizes: tuple[int, ...] = (8, 5, 3),
        reduction: int = 16,
        cell: str = "lstm",
    ):
        super().__init__()
        self.seq_len = seq_len
        self.lstm = _recurrent_layer(cell, seq_len, hidden_size, num_layers)
        self.dropout = nn.Dropout(dropout)
        channels = [input_size, *filters]
        for i, kernel in enumerate(kernel_sizes, start=1):
            setattr(self, f"conv{i}", nn.Conv1d(channels[i - 1], channels[i], kernel, padding="same"))
            setattr(self, f"bn{i}", nn.BatchNorm1d(channels[i]))
            if self.squeeze_excite and i < len(kernel_sizes):
                setattr(self, f"se{i}", SqueezeExcite(channels[i], reduction))
        self.blocks = len(kernel_sizes)
        self.fc = nn.Linear(hidden_size + filters[-1], num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, C) -> logits (B, num_classes)."""
        if x.size(1) < self.seq_len:  # shorter series: zero-padded up to the LSTM's input size
            if lengths is None:
                lengths = torch.full((x.size(0),), x.size(1), dtype=torch.int64)
            x = F.pad(x, (0, 0, 0, self.seq_len - x.size(1)))
        valid = _valid(lengths, x.size(1), x.device)
        if valid is not None:
            x = x * valid[:, :, None].to(x.dtype)
        # the dimension shuffle: the LSTM steps over the variables
        out, _ = self.lstm(x.transpose(1, 2))
        recurrent = self.dropout(out[:, -1, :])

        y = x.transpose(1, 2)  # (B, C, T)
        for i in range(1, self.blocks + 1):
            y = getattr(self, f"conv{i}")(y)
            bn = getattr(self, f"bn{i}")
            if valid is None:
                y = torch.relu(bn(y))
            else:  # statistics over the valid steps only; padding back to zero
                steps = y.transpose(1, 2)  # (B, T, C)
                normalised = torch.zeros_like(steps)
                normalised[valid] = bn(steps[valid])
                y = torch.relu(normalised).transpose(1, 2) * valid[:, None, :].to(y.dtype)
            if hasattr(self, f"se{i}"):
                y = getattr(self, f"se{i}")(y, valid)
        pooled = _mean_over_time(y, valid)
        return self.fc(torch.cat([recurrent, pooled], dim=-1))


class MLSTMFCN(LSTMFCN):
    """MLSTM-FCN: LSTM-FCN with squeeze-and-excite after the first and second blocks."""

    squeeze_excite = True


class AttentionLSTM(nn.Module):
    """(Bidirectional by default) LSTM -> v . tanh(W h_t + b) scores -> softmax over valid steps ->
    weighted sum of the outputs -> Linear."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        num_classes: int,
        attention_size: int | None = None,
        cell: str = "lstm",
        bidirectional: bool = True,
        dropout: float = 0.0,
        patch: int = 1,
    ):
        super().__init__()
        self.patch = patch  # consecutive steps read as one (`patch_steps`)
        self.lstm = _recurrent_layer(
            cell, patch * input_size, hidden_size, num_layers, bidirectional, dropout
        )
        width = hidden_size * (2 if bidirectional else 1)  # each step's output: both directions
        self.attn = nn.Linear(width, attention_size or hidden_size)
        self.v = nn.Linear(attention_size or hidden_size, 1, bias=False)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None, return_attention: bool = False):
        """(B, T, F) -> logits (B, C) [, weights (B, ceil(T / patch))]."""
        x, lengths = patch_steps(x, lengths, self.patch)
        if lengths is None:
            out, _ = self.lstm(x)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(
                x, lengths.to("cpu", torch.int64), batch_first=True, enforce_sorted=False
            )
            out, _ = self.lstm(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        scores = self.v(torch.tanh(self.attn(out))).squeeze(-1)  # (B, T)
        valid = _valid(lengths, x.size(1), x.device)
        if valid is not None:
            scores = scores.masked_fill(~valid, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        context = torch.bmm(weights.unsqueeze(1), out).squeeze(1)
        logits = self.fc(context)
        return (logits, weights) if return_attention else logits
