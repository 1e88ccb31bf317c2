"""The CNN-LSTM hybrids of Karim et al.: LSTM-FCN (2018) and MLSTM-FCN (2019), in Flax.

Two branches over one batch of series x (B, T, C), concatenated into a linear layer:

- **Convolutional**: three blocks Conv1d ("same" padding) -> BatchNorm1d -> ReLU with 128, 256, 128
  filters of widths 8, 5, 3 (`filters`, `kernel_sizes`), then the global average over time.
  MLSTM-FCN puts a squeeze-and-excite block after the first and second blocks: the channels' means
  over time -> Linear(C, C // 16, no bias) -> ReLU -> Linear(C // 16, C, no bias) -> sigmoid ->
  each channel scaled by its gate.
- **Recurrent**, after the "dimension shuffle": the LSTM steps over the C variables, each step one
  whole series of `seq_len` values (its input size is `seq_len`, fixed when the model is built),
  and its last output goes through dropout (0.8 in the papers).

Variable lengths (right-padded x with `lengths`): padded steps never change the result. The input's
padding is zeroed first, and each block's output is zeroed on the padding again, so every "same"
convolution sees exactly the zeros it would see at the end of an unpadded series; BatchNorm's
batch statistics, the squeeze-and-excite means and the final average are taken over valid steps
only. The shuffled LSTM sees each variable as one step of `seq_len` values: the series followed by
zeros up to `seq_len`, whatever the padding held. Series shorter than `seq_len` (e.g. at predict
time) are zero-padded up to it the same way; longer ones are refused.

Parameter names are the torch twins' (`torch_ref.hybrid`): ``lstm``, ``conv1..3``, ``bn1..3``,
``se1``/``se2`` (``fc1``, ``fc2``) and ``fc``, with BatchNorm's running statistics in
``batch_stats``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_lstm.models.classifiers import check_batch
from jax_lstm.nn import BatchNorm1d, Conv1d, Linear, global_average_pool, time_mask
from jax_lstm.rnn.checks import check_lengths
from jax_lstm.rnn.layer import make_layer

__all__ = ["LSTMFCNClassifier", "MLSTMFCNClassifier", "SqueezeExcite", "fit_to_length"]


def fit_to_length(
    x: jax.Array, lengths: jax.Array | None, seq_len: int, name: str
) -> tuple[jax.Array, jax.Array | None]:
    """(B, T, C) with T <= seq_len -> (B, seq_len, C) zero-padded, and the lengths that say so.

    A model whose recurrent branch steps over the variables has a fixed input size `seq_len`; a
    longer series cannot be fed to it, and that is said before any work.
    """
    steps = int(x.shape[1])
    if steps > seq_len:
        raise ValueError(
            f"{name} was built for series of at most {seq_len} steps (its LSTM steps over the "
            f"variables, each step a whole series of {seq_len} values), got series of {steps} steps; "
            "truncate or resample them, or train on series this long"
        )
    if lengths is not None:
        lengths = check_lengths(lengths, x.shape[0], steps)
    if steps == seq_len:
        return x, lengths
    if lengths is None:
        lengths = jnp.full((x.shape[0],), steps, jnp.int32)
    return jnp.pad(x, ((0, 0), (0, seq_len - steps), (0, 0))), lengths


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite over channels (Hu et al.; MLSTM-FCN's block): (B, T, C) -> (B, T, C).

    ``fc1``: Linear(C, max(1, C // reduction), no bias), ``fc2``: Linear(that, C, no bias), as the
    reference code's two Dense layers without bias.
    """

    reduction: int = 16
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
        channels = int(x.shape[-1])
        squeezed = global_average_pool(x, lengths)  # (B, C), over valid steps
        hidden = max(1, channels // self.reduction)
        gate = jax.nn.relu(Linear(hidden, self.param_dtype, use_bias=False, name="fc1")(squeezed))
        gate = jax.nn.sigmoid(Linear(channels, self.param_dtype, use_bias=False, name="fc2")(gate))
        return x * gate[:, None, :]


class LSTMFCNClassifier(nn.Module):
    """LSTM-FCN: the convolutional branch and the dimension-shuffled LSTM, concatenated -> Linear.

    Called as ``logits = model.apply(variables, x, train=False, lengths=None)`` with x (B, T, C),
    T <= seq_len; logits (B, num_classes). In train mode BatchNorm uses batch statistics and
    updates ``batch_stats`` (``mutable=["batch_stats"]``) and dropout needs a ``"dropout"`` rng.
    """

    seq_len: int  # the LSTM's input size: the longest series (training data's padded length)
    num_classes: int
    hidden_size: int = 8
    num_layers: int = 1
    dropout: float = 0.8  # on the LSTM's last output
    filters: tuple[int, ...] = (128, 256, 128)
    kernel_sizes: tuple[int, ...] = (8, 5, 3)
    squeeze_excite: bool = False  # MLSTM-FCN: after every block but the last
    reduction: int = 16
    param_dtype: Any = jnp.float32
    axis_name: str | None = None  # a mapped axis the batch is split over: BatchNorm reduces across it
    implementation: str = "fused"  # the LSTM's recurrence (see jax_lstm.LSTM)
    cell: str = "lstm"  # the recurrent branch: "lstm" (the papers'), "gru" or "rnn"

    def __post_init__(self) -> None:
        name = type(self).__name__
        if len(self.filters) != len(self.kernel_sizes) or not self.filters:
            raise ValueError(
                f"{name}: filters {self.filters} and kernel_sizes {self.kernel_sizes} need one entry "
                "per block"
            )
        for field in ("seq_len", "num_classes"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {field} must be an int >= 1, got {value!r}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, lengths: jax.Array | None = None) -> jax.Array:
        """(B, T, C) -> logits (B, num_classes); `lengths` (B,) for right-padded series."""
        name = type(self).__name__
        x = check_batch(x, name)
        x, lengths = fit_to_length(x, lengths, self.seq_len, name)
        batch, steps, _ = x.shape
        mask = time_mask(lengths, steps, x.dtype)  # (B, T, 1) or None
        rows = None if mask is None else mask.reshape(batch * steps) > 0  # BatchNorm's valid rows
        if mask is not None:
            x = x * mask

        # The recurrent branch over the variables: (B, C, T), C steps of T values.
        layer = make_layer(
            self.cell,
            self.hidden_size,
            self.num_layers,
            self.implementation,
            batch_first=True,
            param_dtype=self.param_dtype,
            name="lstm",
        )
        out, _ = layer(jnp.swapaxes(x, 1, 2), deterministic=not train)
        recurrent = nn.Dropout(self.dropout, name="dropout")(out[:, -1, :], deterministic=not train)

        y = x
        for i, (features, kernel) in enumerate(zip(self.filters, self.kernel_sizes, strict=True), start=1):
            y = Conv1d(features, kernel, param_dtype=self.param_dtype, name=f"conv{i}")(y)
            bn = BatchNorm1d(param_dtype=self.param_dtype, axis_name=self.axis_name, name=f"bn{i}")
            y = bn(y.reshape(batch * steps, features), train=train, mask=rows).reshape(batch, steps, features)
            y = jax.nn.relu(y)
            if mask is not None:
                y = y * mask
            if self.squeeze_excite and i < len(self.filters):
                y = SqueezeExcite(self.reduction, self.param_dtype, name=f"se{i}")(y, lengths)
        pooled = global_average_pool(y, lengths)
        features = jnp.concatenate([recurrent, pooled], axis=-1)
        return Linear(self.num_classes, param_dtype=self.param_dtype, name="fc")(features)


class MLSTMFCNClassifier(LSTMFCNClassifier):
    """MLSTM-FCN: LSTM-FCN with squeeze-and-excite after the first and second blocks."""

    squeeze_excite: bool = True
