"""A classifier over a 2-D multi-dimensional LSTM (Graves and Schmidhuber, NIPS 2009), in Flax.

``MDLSTMClassifier`` reads the training loop's batches x (B, T, F) as (T, F) grids of one channel (so
scikit-learn's 8x8 digits, 8 steps of 8 features, are 8x8 images, and a multivariate series is a
(time, channel) grid), runs `jax_lstm.rnn.mdlstm.MDLSTM2d` with 4 directions (one scan from each
corner, so every cell's output has seen the whole grid), averages the outputs over the valid cells
and classifies with a linear layer::

    out = MDLSTM2d(H, directions=4)(x[..., None], lengths)   (B, T, F, 4H), zero outside the grid
    logits = fc(mean of out over the valid cells)             fc: Linear(4H, num_classes)

With `lengths` (B,) the grids are right-padded along T: padded rows are outside the grid, so they
change neither the outputs nor the mean. Parameters: ``mdlstm.<weight_ih, weight_hh_h, weight_hh_w,
bias_ih, bias_hh>`` (suffix ``_dir1``-``_dir3``), ``fc.weight``, ``fc.bias``, as the torch twin
`torch_ref.mdlstm.MDLSTMClassifier`.

Registered as model ``mdlstm`` (`MDLSTM_ENTRY`): ``jax-lstm train --model mdlstm --dataset digits``.
No parameter depends on the grid's size (each cell sees one channel), so a state dict says nothing
of the series' length or channel count.

With ``patch`` P > 1 each run of P consecutive steps is one row (`jax_lstm.rnn.masks.patch_steps`):
the grid is (ceil(T/P), P*F), a long univariate series folded into rows of P steps, so that any two
steps are at most ceil(T/P) + P cells apart instead of T; the last row is completed with zeros,
which are cells of the grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_lstm.data.dims import Dims
from jax_lstm.models.classifiers import check_batch, check_patch
from jax_lstm.models.registry import Layout, ModelEntry, Param, group, linear_layout, required
from jax_lstm.nn import Linear
from jax_lstm.rnn import mdlstm
from jax_lstm.rnn.checks import check_lengths
from jax_lstm.rnn.masks import patch_steps
from jax_lstm.rnn.mdlstm import MDLSTM2d, valid_cells

__all__ = ["MDLSTM_ENTRY", "MDLSTM_RECIPE", "MDLSTMClassifier", "mean_over_cells"]

DIRECTIONS = 4  # one scan from each corner: every cell's output has seen the whole grid


def mean_over_cells(out: jax.Array, valid: jax.Array) -> jax.Array:
    """out (B, H, W, F), valid (B, H, W) bool -> (B, F): the mean over each grid's valid cells."""
    weights = valid.astype(out.dtype)[..., None]  # (B, H, W, 1)
    return jnp.sum(out * weights, axis=(1, 2)) / jnp.sum(weights, axis=(1, 2))


class MDLSTMClassifier(nn.Module):
    """MDLSTM2d (4 directions) over (T, F) grids -> mean over the valid cells -> Linear.

    Called as ``logits = model.apply(variables, x, train=False, lengths=None)`` with x (B, T, F);
    logits (B, num_classes).
    """

    hidden_size: int
    num_classes: int
    param_dtype: Any = jnp.float32
    # The training loop's data-parallel axis; unused: the samples are independent.
    axis_name: str | None = None
    # MDLSTM2d's backward pass: "fused" (hand-written) or "scan" (JAX's autodiff of the scan), as the
    # LSTM's values of the same name; there is no cuDNN kernel for it.
    implementation: str = "fused"
    # MDLSTM2d's: save only h and c for the backward pass and recompute the gates there. Less memory,
    # and on the CPU also faster at the digits' shape (benchmarks/NOTES.md, "The 2-D MDLSTM").
    remat: bool = True
    patch: int = 1  # consecutive steps read as one row of the grid (see the module docstring)

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_patch(self.patch, name)
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int):
            raise TypeError(
                f"{name}: num_classes should be of type int, got: {type(self.num_classes).__name__}"
            )
        if self.num_classes < 1:
            raise ValueError(
                f"{name}: num_classes must be at least 1 (the width of the output layer), "
                f"got {self.num_classes}"
            )
        if self.implementation not in mdlstm.IMPLEMENTATIONS:
            raise ValueError(
                f"{name}: implementation must be one of {mdlstm.IMPLEMENTATIONS} (the 2-D MDLSTM's "
                f"backward pass: hand-written or JAX's autodiff; it has no cuDNN kernel), got "
                f"{self.implementation!r}"
            )
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, lengths: jax.Array | None = None) -> jax.Array:
        """(B, T, F), optional lengths (B,) -> logits (B, num_classes). `train` changes nothing (no
        dropout, no batch statistics)."""
        del train
        x = check_batch(x, type(self).__name__)
        if lengths is not None:
            lengths = check_lengths(lengths, x.shape[0], x.shape[1])
        x, lengths = patch_steps(x, lengths, self.patch)
        batch, steps, features = x.shape
        layer = MDLSTM2d(
            self.hidden_size,
            directions=DIRECTIONS,
            param_dtype=self.param_dtype,
            remat=self.remat,
            implementation=self.implementation,
            name="mdlstm",
        )
        out = layer(x[..., None], lengths)  # (B, T, F, 4H)
        pooled = mean_over_cells(out, valid_cells(lengths, batch, steps, features))
        return Linear(self.num_classes, param_dtype=self.param_dtype, name="fc")(pooled)


# ---------------------------------------------------------------------------------------------
# Registry entry (registered in jax_lstm.models).


def _layout(dims: Dims, arch: Mapping[str, Any]) -> Layout:
    """MDLSTM2d(1 channel, H, 4 directions), every tensor U(-1/sqrt(H), 1/sqrt(H)), then
    nn.Linear(4H, outputs). The grid's size (``dims.num_features``, ``dims.seq_len``) is in none."""
    hidden = arch["hidden_size"]
    bound = 1.0 / math.sqrt(hidden)
    shapes = mdlstm.param_shapes(1, hidden, DIRECTIONS)
    out: Layout = {f"mdlstm.{key}": Param(shape, "uniform", bound) for key, shape in shapes.items()}
    out.update(linear_layout("fc", DIRECTIONS * hidden, dims.num_outputs))
    return out


def _read(flat: Mapping[str, Any]) -> tuple[dict[str, Any], Dims]:
    """(arch, dims) of the twin's state dict: the hidden size off ``mdlstm.weight_hh_h``, the classes
    off ``fc.weight``. The channels per cell, the directions and every other shape are checked
    against the layout afterwards. The series' channels (the grid's width) size no parameter, so
    the dims' ``num_features`` is 0: not known, as ``seq_len`` is for the models that ignore it."""
    _, hidden, _ = mdlstm.spec_from_params(group(flat, "mdlstm"), prefix="mdlstm.")
    num_classes = int(required(flat, "fc.weight", "the classifier's nn.Linear").shape[0])
    return {"hidden_size": hidden}, Dims(0, num_classes)


# Measured on digits (README, "The 2-D MDLSTM"): a larger rate than the article's suits this small
# model. Annealed to zero over the run, the last epochs take small steps; the article's plateau
# schedule, which the training loss never triggered there, kept the full rate to the end, so the
# reported last epoch was a noisier draw. On long series, rows of patches of steps (a grid at most
# `max_steps` rows tall) and at least the updates the digits' 20 epochs make (`min_steps`; 20 epochs
# of a 28-series set would be 20 updates): benchmarks/NOTES.md, "The article's models on long series".
MDLSTM_RECIPE: dict[str, Any] = {
    "hidden_size": 32,
    "lr": 1e-2,
    "epochs": 20,
    "batch_size": 32,
    "schedule": "cosine",
    "min_steps": 900,
    "max_steps": 32,
}

MDLSTM_ENTRY = ModelEntry(
    name="mdlstm",
    flax_class=MDLSTMClassifier,
    torch_twin="torch_ref.mdlstm:MDLSTMClassifier",
    summary="2-D MDLSTM (Graves and Schmidhuber 2009) over (time, feature) grids, 4 directions, "
    "mean over cells, Linear",
    layout=_layout,
    read_state_dict=_read,
    modules=frozenset({"mdlstm", "fc"}),
    dims_args=lambda dims: {"num_classes": dims.num_outputs},
    options=("hidden_size", "implementation", "patch"),
    recipe=MDLSTM_RECIPE,
    symbolic_length=False,
)
