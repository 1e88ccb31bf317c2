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
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_lstm.models.classifiers import check_batch
from jax_lstm.nn import Linear
from jax_lstm.rnn.checks import check_lengths
from jax_lstm.rnn.mdlstm import MDLSTM2d, valid_cells

__all__ = ["MDLSTMClassifier", "mean_over_cells"]


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
    implementation: str = "wavefront"  # unused: the recurrence has one implementation
    # MDLSTM2d's: save only h and c for the backward pass and recompute the gates there. Less memory,
    # and on the CPU also faster at the digits' shape (benchmarks/NOTES.md, "The 2-D MDLSTM").
    remat: bool = True

    def __post_init__(self) -> None:
        name = type(self).__name__
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int):
            raise TypeError(
                f"{name}: num_classes should be of type int, got: {type(self.num_classes).__name__}"
            )
        if self.num_classes < 1:
            raise ValueError(
                f"{name}: num_classes must be at least 1 (the width of the output layer), "
                f"got {self.num_classes}"
            )
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, lengths: jax.Array | None = None) -> jax.Array:
        """(B, T, F), optional lengths (B,) -> logits (B, num_classes). `train` changes nothing (no
        dropout, no batch statistics)."""
        del train
        x = check_batch(x, type(self).__name__)
        batch, steps, features = x.shape
        if lengths is not None:
            lengths = check_lengths(lengths, batch, steps)
        layer = MDLSTM2d(
            self.hidden_size, directions=4, param_dtype=self.param_dtype, remat=self.remat, name="mdlstm"
        )
        out = layer(x[..., None], lengths)  # (B, T, F, 4H)
        pooled = mean_over_cells(out, valid_cells(lengths, batch, steps, features))
        return Linear(self.num_classes, param_dtype=self.param_dtype, name="fc")(pooled)
