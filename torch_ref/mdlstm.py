"""The 2-D multi-dimensional LSTM (Graves, Fernandez and Schmidhuber 2007) and its classifier in
PyTorch, written as one would in torch: a Python loop over the grid's cells. The twins of
`jax_lstm.rnn.mdlstm.MDLSTM2d` and `jax_lstm.models.mdlstm.MDLSTMClassifier`, with the same parameter
names (``weight_ih``, ``weight_hh_h``, ``weight_hh_w``, ``bias_ih``, ``bias_hh``, suffix ``_dir{d}``
for directions 1-3; the classifier's under ``mdlstm.`` and ``fc.``).

Cell (i, j) in scan coordinates sees (i-1, j) and (i, j-1), zero outside the grid; gates i, f_h, f_w,
g, o. Direction 0 scans from the top-left corner, 1 from the top-right (flipped along W), 2 from the
bottom-left (flipped along H), 3 from the bottom-right. With `lengths` (B,), cells with i >=
lengths[b] are outside the grid: their input is zeroed and their h and c are 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 - torch's convention

from torch_ref.models import patch_steps

__all__ = ["MDLSTM2d", "MDLSTMClassifier"]

_NAMES = ("weight_ih", "weight_hh_h", "weight_hh_w", "bias_ih", "bias_hh")
_FLIPS = ((), (2,), (1,), (1, 2))  # the (B, H, W, C) axes each direction flips


def _suffix(direction: int) -> str:
    return "" if direction == 0 else f"_dir{direction}"


def _valid(
    lengths: torch.Tensor | None, batch: int, height: int, width: int, device: torch.device
) -> torch.Tensor:
    """(B,) valid rows along H -> (B, H, W) bool, on the input's device."""
    if lengths is None:
        return torch.ones(batch, height, width, dtype=torch.bool, device=device)
    rows = torch.arange(height, device=device)[None, :] < lengths.to(device, torch.int64)[:, None]
    return rows[:, :, None].expand(batch, height, width)


def _flip(t: torch.Tensor, direction: int) -> torch.Tensor:
    return torch.flip(t, _FLIPS[direction]) if _FLIPS[direction] else t


class MDLSTM2d(nn.Module):
    """(B, H, W, C) grids -> (B, H, W, directions * hidden_size)."""

    def __init__(self, input_size: int, hidden_size: int, directions: int = 1):
        super().__init__()
        if directions not in (1, 4):
            raise ValueError(f"directions must be 1 or 4, got {directions}")
        self.input_size, self.hidden_size, self.directions = input_size, hidden_size, directions
        rows = 5 * hidden_size
        for d in range(directions):
            sfx = _suffix(d)
            self.register_parameter(f"weight_ih{sfx}", nn.Parameter(torch.empty(rows, input_size)))
            self.register_parameter(f"weight_hh_h{sfx}", nn.Parameter(torch.empty(rows, hidden_size)))
            self.register_parameter(f"weight_hh_w{sfx}", nn.Parameter(torch.empty(rows, hidden_size)))
            self.register_parameter(f"bias_ih{sfx}", nn.Parameter(torch.empty(rows)))
            self.register_parameter(f"bias_hh{sfx}", nn.Parameter(torch.empty(rows)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.LSTM's initialisation: every tensor U(-1/sqrt(H), 1/sqrt(H)).
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def _direction(self, x: torch.Tensor, valid: torch.Tensor, direction: int) -> torch.Tensor:
        """One direction in its scan coordinates: (B, H, W, C), (B, H, W) -> (B, H, W, hidden)."""
        w_ih, w_hh_h, w_hh_w, b_ih, b_hh = (getattr(self, n + _suffix(direction)) for n in _NAMES)
        batch, height, width, _ = x.shape
        x = torch.where(valid[..., None], x, torch.zeros((), dtype=x.dtype))  # padding never enters
        xw = F.linear(x, w_ih, b_ih)  # (B, H, W, 5H): every cell's input projection at once
        zero = x.new_zeros(batch, self.hidden_size)
        h = [[zero] * width for _ in range(height)]
        c = [[zero] * width for _ in range(height)]
        for i in range(height):
            for j in range(width):
                h_up, c_up = (h[i - 1][j], c[i - 1][j]) if i > 0 else (zero, zero)
                h_left, c_left = (h[i][j - 1], c[i][j - 1]) if j > 0 else (zero, zero)
                a = xw[:, i, j] + (h_up @ w_hh_h.T + h_left @ w_hh_w.T) + b_hh
                gi, gf_h, gf_w, gg, go = a.chunk(5, dim=-1)
                cell = torch.sigmoid(gf_h) * c_up + torch.sigmoid(gf_w) * c_left
                cell = cell + torch.sigmoid(gi) * torch.tanh(gg)
                out = torch.sigmoid(go) * torch.tanh(cell)
                keep = valid[:, i, j, None]
                h[i][j] = torch.where(keep, out, zero)
                c[i][j] = torch.where(keep, cell, zero)
        return torch.stack([torch.stack(row, dim=1) for row in h], dim=1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H, W, C), optional lengths (B,) valid rows along H -> (B, H, W, D * hidden)."""
        batch, height, width, _ = x.shape
        valid = _valid(lengths, batch, height, width, x.device)
        outs = [_flip(self._direction(_flip(x, d), _flip(valid, d), d), d) for d in range(self.directions)]
        return torch.cat(outs, dim=-1)


class MDLSTMClassifier(nn.Module):
    """A (B, T, F) batch read as (T, F) grids of one channel -> MDLSTM2d (4 directions) -> the mean
    over the valid cells -> Linear(4H, num_classes).

    The twin of registry model ``mdlstm``, built by name as the registry builds every twin
    (`jax_lstm.models.registry.torch_kwargs`): ``hidden_size``, ``num_classes`` and ``input_size``,
    the series' channels F. `input_size` is accepted and unused: each cell of the grid sees one
    value, so no parameter depends on F (nor on T).
    """

    def __init__(self, hidden_size: int, num_classes: int, input_size: int | None = None, patch: int = 1):
        super().__init__()
        del input_size  # no parameter depends on the grid's width
        self.patch = patch  # consecutive steps read as one row (`torch_ref.models.patch_steps`)
        self.mdlstm = MDLSTM2d(1, hidden_size, directions=4)
        self.fc = nn.Linear(4 * hidden_size, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, F), optional lengths (B,) -> logits (B, num_classes)."""
        x, lengths = patch_steps(x, lengths, self.patch)
        batch, steps, features = x.shape
        out = self.mdlstm(x[..., None], lengths)  # (B, T, F, 4H), zero outside each grid
        valid = _valid(lengths, batch, steps, features, x.device).to(out.dtype)
        pooled = (out * valid[..., None]).sum(dim=(1, 2)) / valid.sum(dim=(1, 2))[:, None]
        return self.fc(pooled)
