"""The article's two PyTorch models, written from its sections 2.1 and 4.3.

The article's code lost its line breaks; restored here with its behaviour unchanged (explicit zero
h0/c0 on every forward, the last timestep into the linear layer). One fix: the article's `BN_LSTM`
never sets `self.hidden_size` and `self.num_layers`, which its `forward` reads, so as printed it
raises AttributeError on the first call; here it is `MultiDimLSTM`'s subclass, which sets them.

One extension, off by default: ``forward(x, lengths)`` accepts the valid lengths of right-padded
sequences and then runs torch's packed path (`pack_padded_sequence`), reads each sequence's last
valid step, and (BN_LSTM) normalises with statistics over the valid steps only. Without `lengths`
the forward pass is the article's, line for line, but for one addition: h0/c0 are created with
``dtype=x.dtype`` (the article's `torch.zeros(...)` takes the default float32), so that the models
also run in float64 for the parity checks; in float32 nothing changes.

A second extension, off by default: ``cell="gru"`` or ``"rnn"`` puts an `nn.GRU` or a (tanh)
`nn.RNN` in the LSTM's place, from a zero h0 (no c0); the attribute stays ``self.lstm`` for every
cell, so the state dict keys are the same ones (``lstm.weight_ih_l0``, ...) and
`jax_lstm.from_torch` tells the cell from their shapes. A third, off by default: ``dropout``
between the recurrent layers (nn.LSTM's own), as the JAX models' `dropout` option. A fourth, off
by default: ``patch=P`` reads each run of P consecutive steps as one step of P*F features
(`patch_steps`; BN_LSTM normalises the F features first), as the JAX models' `patch` option.

The registry (`jax_lstm.models.registry`) names these classes as the twins of "lstm" and "bn-lstm";
`torch_ref.twins.make_torch_model` builds them by that name.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["BN_LSTM", "MultiDimLSTM", "patch_steps"]

_LAYERS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def _recurrent_layer(
    cell: str,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    bidirectional: bool = False,
    dropout: float = 0.0,
) -> nn.Module:
    if cell not in _LAYERS:
        raise ValueError(f"cell must be one of {tuple(_LAYERS)}, got {cell!r}")
    return _LAYERS[cell](
        input_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional, dropout=dropout
    )


def patch_steps(
    x: torch.Tensor, lengths: torch.Tensor | None, patch: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, T, F) -> (B, ceil(T/P), P*F): each run of P = `patch` steps side by side, the last one
    completed with zeros (padded steps zeroed first); lengths -> ceil(lengths/P)."""
    if patch == 1:
        return x, lengths
    batch, steps, features = x.shape
    if lengths is not None:
        valid = torch.arange(steps, device=x.device)[None, :] < lengths.to(x.device)[:, None]
        x = x * valid[:, :, None].to(x.dtype)
    patched = -(-steps // patch)
    x = torch.nn.functional.pad(x, (0, 0, 0, patched * patch - steps))
    x = x.reshape(batch, patched, patch * features)
    return x, None if lengths is None else torch.div(lengths + patch - 1, patch, rounding_mode="floor")


def _zero_state(module: nn.Module, x: torch.Tensor):
    """The article's explicit zero (h0, c0) for the LSTM; h0 alone for the GRU and RNN."""
    h0 = torch.zeros(module.num_layers, x.size(0), module.hidden_size, dtype=x.dtype).to(x.device)
    if not isinstance(module.lstm, nn.LSTM):
        return h0
    c0 = torch.zeros(module.num_layers, x.size(0), module.hidden_size, dtype=x.dtype).to(x.device)
    return (h0, c0)


class MultiDimLSTM(nn.Module):
    """Section 2.1: stacked batch-first LSTM, zero initial state, last timestep -> Linear."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        num_classes: int,
        cell: str = "lstm",
        dropout: float = 0.0,
        patch: int = 1,
    ):
        super().__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.patch = patch
        self._input_layers(input_size)  # BN_LSTM's BatchNorm, first (its state dict's first keys)
        # nn.LSTM(input_size, hidden_size, num_layers, batch_first=True) for the article's cell:
        # input and output are (batch, seq, features)
        self.lstm = _recurrent_layer(cell, patch * input_size, hidden_size, num_layers, dropout=dropout)
        self.fc = nn.Linear(hidden_size, num_classes)

    def _input_layers(self, input_size: int) -> None:
        """Layers before the recurrent one: none here."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, F) -> logits (B, C); `lengths` (B,) for right-padded batches."""
        x, lengths = patch_steps(x, lengths, self.patch)
        # initialise the hidden and cell states
        state = _zero_state(self, x)
        if lengths is not None:
            return self.fc(_packed_last_step(self.lstm, x, state, lengths))
        out, _ = self.lstm(x, state)  # out: (batch_size, seq_length, hidden_size)
        out = out[:, -1, :]  # the output of the last timestep
        return self.fc(out)


class BN_LSTM(MultiDimLSTM):  # noqa: N801 - the article's name
    """Section 4.3: BatchNorm1d over the features (statistics over batch*time), then as MultiDimLSTM.

    The article writes its constructor out again and forgets `hidden_size` and `num_layers` there;
    as MultiDimLSTM's subclass it has them."""

    def _input_layers(self, input_size: int) -> None:
        self.bn = nn.BatchNorm1d(input_size)  # normalise over the feature dimension

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, F) -> logits (B, C); `lengths` (B,) for right-padded batches."""
        if lengths is not None:
            # BatchNorm over the valid steps only (the packed data), padding left at zero.
            valid = torch.arange(x.size(1), device=x.device)[None, :] < lengths.to(x.device)[:, None]
            normalized = torch.zeros_like(x)
            normalized[valid] = self.bn(x[valid])
            normalized, lengths = patch_steps(normalized, lengths, self.patch)
            return self.fc(_packed_last_step(self.lstm, normalized, _zero_state(self, x), lengths))
        # reshape to (batch_size * seq_length, input_size) for BatchNorm1d
        x_reshaped = x.reshape(-1, x.size(2))
        x_normalized = self.bn(x_reshaped)
        x = x_normalized.reshape(x.size(0), x.size(1), -1)
        x, _ = patch_steps(x, None, self.patch)
        out, _ = self.lstm(x, _zero_state(self, x))
        out = out[:, -1, :]
        return self.fc(out)


def _packed_last_step(lstm: nn.Module, x: torch.Tensor, state, lengths: torch.Tensor) -> torch.Tensor:
    """Runs a batch-first recurrent layer on right-padded x through torch's packed path; (B, H) at each
    sequence's last step."""
    lengths = lengths.to("cpu", torch.int64)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, _ = lstm(packed, state)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
    last = (lengths - 1).to(x.device)
    return out[torch.arange(x.size(0), device=x.device), last]
