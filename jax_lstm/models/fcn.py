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

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_lstm.data.dims import Dims
from jax_lstm.models.classifiers import check_batch
from jax_lstm.models.registry import (
    Layout,
    ModelEntry,
    batchnorm_layout,
    conv_layout,
    linear_layout,
    read_recurrent,
    recurrent_layout,
    required,
)
from jax_lstm.nn import BatchNorm1d, Conv1d, Linear, global_average_pool, time_mask
from jax_lstm.rnn.checks import check_lengths
from jax_lstm.rnn.layer import model_layer

__all__ = [
    "FCN_RECIPE",
    "LSTM_FCN_ENTRY",
    "MLSTM_FCN_ENTRY",
    "LSTMFCNClassifier",
    "MLSTMFCNClassifier",
    "SqueezeExcite",
    "fit_to_length",
]


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
        layer = model_layer(self, dropout=0.0)  # the dropout is on its output, below
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


# ---------------------------------------------------------------------------------------------
# Registry entries (registered in jax_lstm.models).

# The papers' convolutional branch: the registry builds it at this size (the Flax classes and the
# torch twins take others, and `read_state_dict` reads any back).
FCN_FIXED = {"filters": (128, 256, 128), "kernel_sizes": (8, 5, 3), "reduction": 16}

# Karim et al.'s model settings (Adam 1e-3, their LSTM size and dropout, no gradient clipping) with
# the reference protocol's selection and a schedule whose last epochs settle: torch's cosine
# annealing over the run, and the weights of the epoch with the lowest training loss (InceptionTime's
# and dl-4-tsc's FCN/ResNet protocol; no test data). The plateau settings are kept for
# ``--schedule plateau``. The measurements behind it: benchmarks/NOTES.md, "The FCN recipe".
FCN_RECIPE = {
    "hidden_size": 8,
    "num_layers": 1,
    "dropout": 0.8,
    "clip": None,
    "lr": 1e-3,
    "schedule": "cosine",
    "select": "train-loss",
    "factor": 1 / 2 ** (1 / 3),
    "patience": 5,
    "min_lr": 1e-4,
    "epochs": 40,
    # About ten batches an epoch, of 8 to 16 series: a training set under 160 series gets smaller
    # batches, so more updates for the same work (on a CPU an epoch of batches of 10 costs what one
    # of batches of 16 does; measured in benchmarks/NOTES.md, "ACSF1: more updates").
    "batch_size": 16,
    "batches_per_epoch": 10,
    "min_batch_size": 8,
    # Small training sets get more epochs, so that a run makes at least `min_steps` updates (40
    # epochs of a 40-series set would be 200), as long as the epochs' work (series x padded steps x
    # epochs) stays within `max_work`, which bounds a default run's time (`recipe_epochs`).
    "min_steps": 1500,
    "max_work": 22_000_000,
}


def _dims_args(dims: Dims) -> dict[str, Any]:
    if dims.seq_len < 1:
        raise ValueError("the FCN models need the series length (Dims.seq_len) for their LSTM's input size")
    return {"seq_len": dims.seq_len, "num_classes": dims.num_outputs}


def _layout(dims: Dims, arch: Mapping[str, Any], squeeze_excite: bool) -> Layout:
    _dims_args(dims)
    out: Layout = recurrent_layout("lstm", dims.seq_len, arch)
    filters, kernels = tuple(arch["filters"]), tuple(arch["kernel_sizes"])
    channels = (dims.num_features, *filters)
    for i, kernel in enumerate(kernels, start=1):
        out.update(conv_layout(f"conv{i}", channels[i - 1], channels[i], kernel))
        out.update(batchnorm_layout(f"bn{i}", channels[i]))
        if squeeze_excite and i < len(kernels):
            hidden = max(1, channels[i] // arch["reduction"])
            out.update(linear_layout(f"se{i}.fc1", channels[i], hidden, bias=False))
            out.update(linear_layout(f"se{i}.fc2", hidden, channels[i], bias=False))
    out.update(linear_layout("fc", arch["hidden_size"] + filters[-1], dims.num_outputs))
    return out


def _read(flat: Mapping[str, Any]) -> tuple[dict[str, Any], Dims]:
    cell, spec = read_recurrent(flat)
    filters, kernels, index = [], [], 1
    while f"conv{index}.weight" in flat:
        shape = flat[f"conv{index}.weight"].shape
        filters.append(int(shape[0]))
        kernels.append(int(shape[2]))
        index += 1
    first = required(flat, "conv1.weight", "the first Conv1d")
    reduction = FCN_FIXED["reduction"]
    if "se1.fc1.weight" in flat:
        reduction = max(1, filters[0] // int(flat["se1.fc1.weight"].shape[0]))
    arch = {
        "hidden_size": spec.hidden_size,
        "num_layers": spec.num_layers,
        "cell": cell,
        "dropout": FCN_RECIPE["dropout"],  # not in a state dict: the recipe's
        "filters": tuple(filters),
        "kernel_sizes": tuple(kernels),
        "reduction": reduction,
    }
    num_classes = int(required(flat, "fc.weight", "the classifier's nn.Linear").shape[0])
    return arch, Dims(int(first.shape[1]), num_classes, seq_len=spec.input_size)


def _entry(name: str, cls: type[LSTMFCNClassifier], twin: str, summary: str) -> ModelEntry:
    squeeze = cls.squeeze_excite
    modules = {"lstm", "fc"} | {f"{kind}{i}" for kind in ("conv", "bn") for i in range(1, 4)}
    return ModelEntry(
        name=name,
        flax_class=cls,
        torch_twin=twin,
        summary=summary,
        layout=lambda dims, arch: _layout(dims, arch, squeeze),
        read_state_dict=_read,
        modules=frozenset(modules | ({"se1", "se2"} if squeeze else set())),
        dims_args=_dims_args,
        fixed=FCN_FIXED,
        batch_stats=True,
        recipe=FCN_RECIPE,
    )


LSTM_FCN_ENTRY = _entry(
    "lstm-fcn",
    LSTMFCNClassifier,
    "torch_ref.hybrid:LSTMFCN",
    "LSTM-FCN (Karim et al. 2018): three Conv1d blocks beside an LSTM over the variables",
)
MLSTM_FCN_ENTRY = _entry(
    "mlstm-fcn",
    MLSTMFCNClassifier,
    "torch_ref.hybrid:MLSTMFCN",
    "MLSTM-FCN (Karim et al. 2019): LSTM-FCN with squeeze-and-excite blocks",
)
