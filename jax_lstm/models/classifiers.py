"""The article's classifiers in Flax.

`LSTMClassifier` is the article's `MultiDimLSTM` (section 2.1): a batch-first stacked LSTM from a zero
initial state, the output of the last timestep, then a linear layer. `BNLSTMClassifier` is its `BN_LSTM`
(section 4.3): BatchNorm over the feature axis with statistics over batch*time first, then the same.

Both take ``cell`` ("lstm", the article's and the default; "gru"; "rnn", torch's tanh `nn.RNN`): the
recurrent layer's kind, with everything else unchanged; and ``patch`` (1, the article's, by default):
the recurrent layer reads each run of ``patch`` consecutive steps as one step of ``patch * F``
features (`jax_lstm.rnn.masks.patch_steps`; BN-LSTM normalises the F features first), so that a long
series is a short sequence whose last step still depends on its start. Whatever the cell, the
layer's parameters sit under the name ``"lstm"`` (as the torch twins' ``self.lstm``), so existing
checkpoints and torch state dicts keep their keys and `from_torch` tells the cell from the shapes.

Parameter trees mirror the torch state dicts: ``{"lstm": {...}, "fc": {"weight", "bias"}}`` and, for
the BN model, ``{"bn": {"weight", "bias"}}`` plus ``batch_stats`` ``{"bn": {"running_mean",
"running_var", "num_batches_tracked"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_lstm.data.dims import Dims
from jax_lstm.models.registry import (
    RECURRENT_OPTIONS,
    Layout,
    ModelEntry,
    batchnorm_layout,
    linear_layout,
    read_recurrent,
    recurrent_layout,
    required,
)
from jax_lstm.nn import BatchNorm1d, Linear
from jax_lstm.rnn.checks import as_array, check_lengths
from jax_lstm.rnn.layer import model_layer
from jax_lstm.rnn.masks import patch_steps, valid_steps

__all__ = [
    "BN_LSTM_ENTRY",
    "LSTM_ENTRY",
    "BNLSTMClassifier",
    "LSTMClassifier",
    "article_layout",
    "article_read",
    "check_batch",
    "check_patch",
    "last_step",
]


def check_batch(x: jax.Array, name: str) -> jax.Array:
    x = as_array(x, name)
    if x.ndim != 3:
        hint = " (add a batch axis with x[None])" if x.ndim == 2 else ""
        raise ValueError(
            f"{name} expects input of shape (batch, seq_len, features), got shape {tuple(x.shape)}{hint}"
        )
    return x


def check_patch(patch: Any, name: str) -> None:
    """A clear error for a ``patch`` (steps read as one) that is not an int of at least 1."""
    if isinstance(patch, bool) or not isinstance(patch, int):
        raise TypeError(f"{name}: patch should be of type int, got: {type(patch).__name__}")
    if patch < 1:
        raise ValueError(f"{name}: patch must be at least 1 (1: every step its own), got {patch}")


def last_step(out: jax.Array, lengths: jax.Array | None) -> jax.Array:
    """out (B, T, P) -> (B, P): the last timestep, or each sequence's last valid one."""
    if lengths is None:
        return out[:, -1, :]
    return jnp.take_along_axis(out, (lengths - 1)[:, None, None], axis=1)[:, 0, :]


class LSTMClassifier(nn.Module):
    """The article's `MultiDimLSTM`: batch-first LSTM (or GRU / RNN: `cell`) from zero state, last
    step -> Linear.

    Called as ``logits = model.apply(variables, x, train=False)`` with x (B, T, F); logits (B, C).
    """

    hidden_size: int
    num_layers: int
    num_classes: int
    dropout: float = 0.0
    param_dtype: Any = jnp.float32
    # A mapped axis the batch is split over (data parallelism): BatchNorm then reduces its batch
    # statistics across it. Unused by the plain LSTM model, whose samples are independent.
    axis_name: str | None = None
    implementation: str = "fused"  # the LSTM's recurrence: "fused", "scan" or "cudnn" (see LSTM)
    cell: str = "lstm"  # the recurrent layer: "lstm", "gru" or "rnn" (see the module docstring)
    patch: int = 1  # consecutive steps read as one step (see the module docstring)

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_patch(self.patch, name)
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int):
            kind = type(self.num_classes).__name__
            raise TypeError(f"{name}: num_classes should be of type int, got: {kind}")
        if self.num_classes < 1:
            raise ValueError(
                f"{name}: num_classes must be at least 1 (the width of the output layer), "
                f"got {self.num_classes}"
            )
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, lengths: jax.Array | None = None) -> jax.Array:
        """(B, T, F) -> logits (B, C). `lengths` (B,) reads each sequence's last valid step."""
        x = check_batch(x, type(self).__name__)
        if lengths is not None:
            lengths = check_lengths(lengths, x.shape[0], x.shape[1])
        return self._head(x, train, lengths)

    def _head(self, x: jax.Array, train: bool, lengths: jax.Array | None) -> jax.Array:
        x, lengths = patch_steps(x, lengths, self.patch)
        # The article passes explicit zero h0/c0; the layer's default initial state is exactly that.
        layer = model_layer(self)
        out, _ = layer(x, deterministic=not train, lengths=lengths)
        return Linear(self.num_classes, param_dtype=self.param_dtype, name="fc")(last_step(out, lengths))


class BNLSTMClassifier(LSTMClassifier):
    """The article's `BN_LSTM`: BatchNorm1d over features (statistics over batch*time), then the LSTM.

    With ``train=True`` BatchNorm uses batch statistics and updates ``batch_stats``::

        logits, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])

    With `lengths`, padded steps are left out of the batch statistics (they are not data) and the
    padded positions of the normalised input are ignored by the LSTM.
    """

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, lengths: jax.Array | None = None) -> jax.Array:
        """(B, T, F) -> logits (B, C)."""
        x = check_batch(x, type(self).__name__)
        batch, steps, features = x.shape
        valid = None  # (B*T,): the rows that count towards the batch statistics (all, unpadded)
        if lengths is not None:
            lengths = check_lengths(lengths, batch, steps)
            valid = valid_steps(lengths, steps).T.reshape(batch * steps)
        bn = BatchNorm1d(param_dtype=self.param_dtype, axis_name=self.axis_name, name="bn")
        # The article's reshape to (B*T, F): statistics over batch and time.
        x = bn(x.reshape(batch * steps, features), train=train, mask=valid)
        return self._head(x.reshape(batch, steps, features), train, lengths)


# ---------------------------------------------------------------------------------------------
# Registry entries (registered in jax_lstm.models).


def article_layout(dims: Dims, arch: Mapping[str, Any], with_bn: bool = False) -> Layout:
    """BatchNorm1d over the features (`with_bn`), the recurrent layer, then nn.Linear(H, outputs),
    whose bound 1/sqrt(in_features) is 1/sqrt(H) as well."""
    out: Layout = batchnorm_layout("bn", dims.num_features) if with_bn else {}
    out.update(recurrent_layout("lstm", arch.get("patch", 1) * dims.num_features, arch))
    out.update(linear_layout("fc", arch["hidden_size"], dims.num_outputs))
    return out


def article_read(flat: Mapping[str, Any]) -> tuple[dict[str, Any], Dims]:
    """(arch, dims) of a state dict of the article's layout: recurrent layer ``lstm``, head ``fc``
    (BatchNorm ``bn`` first for BN-LSTM). Without the BatchNorm a state dict cannot tell a patch of
    P steps of F features from one step of P*F features, and reads as the latter (the same
    weights); with it, the BatchNorm's width is F and the patch is the layer's input size over it."""
    cell, spec = read_recurrent(flat)
    num_outputs = int(required(flat, "fc.weight", "the model's nn.Linear").shape[0])
    arch = {"hidden_size": spec.hidden_size, "num_layers": spec.num_layers, "cell": cell}
    features = spec.input_size
    if "bn.weight" in flat:
        features = int(flat["bn.weight"].shape[0])
        if features < 1 or spec.input_size % features:
            raise ValueError(
                f"bn.weight has {features} features, so lstm.weight_ih_l0's input size "
                f"{spec.input_size} should be a multiple of it (patches of steps)"
            )
        arch["patch"] = spec.input_size // features
    return arch, Dims(features, num_outputs)


def _classes(dims: Dims) -> dict[str, Any]:
    return {"num_classes": dims.num_outputs}


ARTICLE_OPTIONS = (*RECURRENT_OPTIONS, "patch")

# The article's model settings (hidden 128, 2 layers, Adam 1e-3, clipping at 1.0) with the recipe
# that lets them learn on long univariate series: patches of steps so that the recurrence is at most
# `max_steps` long (a last step that depends on the series' start), at least `min_steps` updates
# (30 epochs of a 28-series set are 60), and the FCN models' schedule and selection (torch's cosine
# annealing, the weights of the lowest training loss): the article's plateau scheduler cuts the rate
# while the loss is still at its starting value. The measurements: benchmarks/NOTES.md, "The article's
# models on long series". ``--patch 1 --schedule plateau --select last`` is the article's recipe.
ARTICLE_MODELS_RECIPE: dict[str, Any] = {
    "schedule": "cosine",
    "select": "train-loss",
    "min_steps": 1500,
    "max_steps": 32,
}

LSTM_ENTRY = ModelEntry(
    name="lstm",
    flax_class=LSTMClassifier,
    torch_twin="torch_ref.models:MultiDimLSTM",
    summary="the article's MultiDimLSTM: LSTM, last step, Linear",
    layout=article_layout,
    read_state_dict=article_read,
    modules=frozenset({"lstm", "fc"}),
    dims_args=_classes,
    options=ARTICLE_OPTIONS,
    recipe=ARTICLE_MODELS_RECIPE,
)
BN_LSTM_ENTRY = ModelEntry(
    name="bn-lstm",
    flax_class=BNLSTMClassifier,
    torch_twin="torch_ref.models:BN_LSTM",
    summary="the article's BN_LSTM: BatchNorm1d over features, then as lstm",
    layout=lambda dims, arch: article_layout(dims, arch, with_bn=True),
    read_state_dict=article_read,
    modules=frozenset({"bn", "lstm", "fc"}),
    dims_args=_classes,
    options=ARTICLE_OPTIONS,
    recipe=ARTICLE_MODELS_RECIPE,
    batch_stats=True,
)
