"""The parity cases: the configurations and inputs on which JAX and torch are compared, apart from
the runners that compare them (`torch_ref.parity`). ``jax-lstm parity`` runs every case; the parity
tests run them as tables.

- `LayerCase`: one `nn.LSTM` / `nn.GRU` / `nn.RNN` configuration (every constructor argument,
  unbatched input, initial states, T=1, B=1, packed batches).
- `CellCase`: one step of `nn.LSTMCell` / `nn.GRUCell` / `nn.RNNCell`.
- `ModelCase`: one registered model (`jax_lstm.models.registry`) with one input batch, in eval or
  train mode (BatchNorm statistics), padded or not; `MODEL_CASES` covers every registered model.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = [
    "CELL_CASES",
    "GRU_RNN_CASES",
    "LSTM_CASES",
    "MODEL_CASES",
    "CellCase",
    "LSTMCase",
    "LayerCase",
    "ModelCase",
    "nonlinearity",
]


def nonlinearity(mode: str) -> dict[str, str]:
    """The `nonlinearity` argument of an RNN mode ("RNN_RELU" -> relu); nothing for the others."""
    return {"nonlinearity": mode.removeprefix("RNN_").lower()} if mode.startswith("RNN") else {}


@dataclasses.dataclass(frozen=True)
class LayerCase:
    """One `nn.LSTM` / `nn.GRU` / `nn.RNN` configuration (`mode`, torch's RNNBase mode) and input.
    ``batch=None`` means unbatched (T, I) input."""

    name: str
    input_size: int = 5
    hidden_size: int = 8
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    bidirectional: bool = False
    proj_size: int = 0
    batch: int | None = 3
    seq_len: int = 6
    initial_state: bool = False
    dropout: float = 0.0  # compared in eval mode, where torch applies none
    lengths: tuple[int, ...] | None = None  # right-padded sequences, torch's packed path
    mode: str = "LSTM"

    def module_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(
            num_layers=self.num_layers,
            bias=self.bias,
            batch_first=self.batch_first,
            dropout=self.dropout,
            bidirectional=self.bidirectional,
        )
        if self.mode == "LSTM":
            kwargs["proj_size"] = self.proj_size
        return {**kwargs, **nonlinearity(self.mode)}


LSTMCase = LayerCase  # the name of the LSTM-only days


# Covers every constructor argument, unbatched input, given initial states, T=1 and B=1.
LSTM_CASES: tuple[LSTMCase, ...] = (
    LSTMCase("default"),
    LSTMCase("two_layers", num_layers=2),
    LSTMCase("three_layers", num_layers=3, hidden_size=6),
    LSTMCase("no_bias", bias=False, num_layers=2),
    LSTMCase("batch_first", batch_first=True, num_layers=2),
    LSTMCase("bidirectional", bidirectional=True),
    LSTMCase("bidirectional_3_layers_batch_first", bidirectional=True, num_layers=3, batch_first=True),
    LSTMCase("proj", proj_size=3),
    LSTMCase("proj_bidirectional_2_layers", proj_size=4, bidirectional=True, num_layers=2),
    LSTMCase("unbatched", batch=None, num_layers=2),
    LSTMCase("unbatched_bidirectional_proj", batch=None, bidirectional=True, proj_size=3),
    LSTMCase("initial_state", initial_state=True, num_layers=2),
    LSTMCase(
        "initial_state_bidirectional_proj",
        initial_state=True,
        bidirectional=True,
        proj_size=5,
        num_layers=2,
        batch_first=True,
    ),
    LSTMCase("initial_state_unbatched", initial_state=True, batch=None, bidirectional=True),
    LSTMCase("seq_len_1", seq_len=1, num_layers=2, bidirectional=True),
    LSTMCase("batch_1", batch=1, num_layers=2, batch_first=True),
    LSTMCase("dropout_eval", dropout=0.5, num_layers=3),
    LSTMCase(
        "article_layer",
        input_size=5,
        hidden_size=128,
        num_layers=2,
        batch=32,
        seq_len=20,
        batch_first=True,
    ),
    LSTMCase("long_sequence", input_size=3, hidden_size=16, seq_len=120, batch=2),
    LSTMCase("no_bias_bidirectional_proj", bias=False, bidirectional=True, proj_size=2, batch=2),
    # Right-padded batches with per-sequence lengths against torch's PackedSequence path
    # (pack_padded_sequence(enforce_sorted=False) / pad_packed_sequence): unsorted lengths,
    # length 1, a full-length sequence, both directions, several layers, given states.
    LSTMCase("packed", lengths=(4, 6, 2)),
    LSTMCase("packed_batch_first_2_layers", batch_first=True, num_layers=2, batch=4, lengths=(3, 6, 1, 5)),
    LSTMCase("packed_bidirectional", bidirectional=True, batch=4, lengths=(2, 6, 1, 4)),
    LSTMCase(
        "packed_bidirectional_3_layers_proj_state",
        bidirectional=True,
        num_layers=3,
        proj_size=3,
        initial_state=True,
        batch_first=True,
        batch=5,
        seq_len=7,
        lengths=(7, 1, 4, 7, 2),
    ),
    LSTMCase("packed_all_length_1", bidirectional=True, num_layers=2, batch=3, lengths=(1, 1, 1)),
)


def _family_cases(mode: str, tag: str) -> tuple[LayerCase, ...]:
    """Every constructor argument, initial states, unbatched input, T=1, B=1 and packed batches."""
    return (
        LayerCase(f"{tag}_default", mode=mode),
        LayerCase(f"{tag}_three_layers", mode=mode, num_layers=3, hidden_size=6),
        LayerCase(f"{tag}_no_bias", mode=mode, bias=False, num_layers=2),
        LayerCase(f"{tag}_batch_first_bidirectional", mode=mode, batch_first=True, bidirectional=True),
        LayerCase(
            f"{tag}_initial_state_2_layers_bi",
            mode=mode,
            initial_state=True,
            num_layers=2,
            bidirectional=True,
        ),
        LayerCase(f"{tag}_unbatched_state", mode=mode, batch=None, initial_state=True, num_layers=2),
        LayerCase(f"{tag}_seq_len_1_batch_1", mode=mode, seq_len=1, batch=1, batch_first=True),
        LayerCase(f"{tag}_dropout_eval", mode=mode, dropout=0.5, num_layers=2),
        LayerCase(
            f"{tag}_packed_bi_2_layers_state",
            mode=mode,
            bidirectional=True,
            num_layers=2,
            initial_state=True,
            batch_first=True,
            batch=4,
            seq_len=7,
            lengths=(3, 7, 1, 5),
        ),
    )


# nn.GRU and nn.RNN (tanh and relu): H <= 16, T <= 10, so the whole table runs in seconds.
GRU_RNN_CASES: tuple[LayerCase, ...] = (
    *_family_cases("GRU", "gru"),
    LayerCase("gru_packed", mode="GRU", lengths=(4, 6, 2), hidden_size=16),
    # The Elman RNNs run the same stack with a one-block update: fewer cases, still every argument.
    LayerCase("rnn_tanh_three_layers_no_bias", mode="RNN_TANH", num_layers=3, bias=False),
    LayerCase("rnn_tanh_batch_first_bidirectional", mode="RNN_TANH", batch_first=True, bidirectional=True),
    LayerCase("rnn_tanh_unbatched_state", mode="RNN_TANH", batch=None, initial_state=True, num_layers=2),
    LayerCase("rnn_tanh_seq_len_1_batch_1", mode="RNN_TANH", seq_len=1, batch=1),
    LayerCase("rnn_tanh_packed", mode="RNN_TANH", batch_first=True, batch=4, lengths=(3, 6, 1, 5)),
    LayerCase(
        "rnn_relu_bi_2_layers_state", mode="RNN_RELU", bidirectional=True, num_layers=2, initial_state=True
    ),
    LayerCase("rnn_relu_packed_no_bias", mode="RNN_RELU", bias=False, batch=4, lengths=(2, 6, 1, 4)),
    LayerCase("rnn_relu_unbatched", mode="RNN_RELU", batch=None),
)


@dataclasses.dataclass(frozen=True)
class CellCase:
    """One `nn.LSTMCell` / `nn.GRUCell` / `nn.RNNCell` step. ``batch=None``: unbatched (I,) input."""

    name: str
    mode: str = "GRU"
    input_size: int = 5
    hidden_size: int = 8
    bias: bool = True
    batch: int | None = 3
    state: bool = True  # pass an initial state (else torch's zeros)

    def module_kwargs(self) -> dict[str, Any]:
        return {"bias": self.bias, **nonlinearity(self.mode)}


CELL_CASES: tuple[CellCase, ...] = tuple(
    CellCase(f"{tag}_cell{suffix}", mode=mode, **kwargs)
    for mode, tag in (("LSTM", "lstm"), ("GRU", "gru"), ("RNN_TANH", "rnn_tanh"), ("RNN_RELU", "rnn_relu"))
    for suffix, kwargs in (
        ("", {}),
        ("_zero_state_no_bias", {"state": False, "bias": False}),
        ("_unbatched", {"batch": None}),
        ("_unbatched_zero_state", {"batch": None, "state": False, "hidden_size": 16}),
    )
)


@dataclasses.dataclass(frozen=True)
class ModelCase:
    """One registered model (`model`, a registry name) with one input batch.

    The model's options are `TrainConfig` fields (``hidden_size``, ``num_layers``, ``cell``,
    ``dropout``); its data sizes a `Dims` (``input_size`` features, ``seq_len`` steps, outputs: a
    classifier's ``num_outputs`` classes, a forecaster's ``output_shape`` (H, T)). In train mode
    BatchNorm uses batch statistics and updates its running ones; dropout must be 0 there (the two
    sides draw different masks).
    """

    name: str
    model: str = "lstm"
    train: bool = False
    input_size: int = 5
    hidden_size: int = 16
    num_layers: int = 2
    num_outputs: int = 3  # classes; a forecaster's H * T
    output_shape: tuple[int, ...] | None = None  # a forecaster's (H, T)
    batch: int = 8
    seq_len: int = 10
    offset: float = 0.0  # shifts the features: BatchNorm's variance must survive large offsets
    lengths: tuple[int, ...] | None = None  # right-padded batch: torch's packed path
    cell: str = "lstm"  # the recurrent layer: "lstm", "gru" or "rnn"
    dropout: float = 0.0
    patch: int = 1  # consecutive steps read as one (the article's models, attention-LSTM)

    def settings(self) -> dict[str, Any]:
        """The TrainConfig fields of the model's options."""
        return {
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "cell": self.cell,
            "dropout": self.dropout,
            "patch": self.patch,
        }


# The article's models, their cells, and every extension: eval and train mode, BatchNorm statistics
# moved off their initial values, padded batches with garbage in the padding.
MODEL_CASES: tuple[ModelCase, ...] = (
    ModelCase("multidim_lstm"),
    ModelCase("multidim_lstm_article", hidden_size=128, num_outputs=2, batch=32, seq_len=20),
    ModelCase("bn_lstm_eval", model="bn-lstm"),
    ModelCase("bn_lstm_train", model="bn-lstm", train=True),
    ModelCase("bn_lstm_train_offset_features", model="bn-lstm", train=True, offset=300.0),
    ModelCase("bn_lstm_train_batch_1", model="bn-lstm", train=True, batch=1, seq_len=4),
    ModelCase("multidim_lstm_packed", batch=4, seq_len=7, lengths=(7, 2, 5, 1)),
    ModelCase("bn_lstm_eval_packed", model="bn-lstm", batch=4, seq_len=7, lengths=(3, 7, 1, 6)),
    ModelCase(
        "bn_lstm_train_packed",
        model="bn-lstm",
        train=True,
        batch=5,
        seq_len=6,
        lengths=(6, 2, 4, 1, 5),
        offset=50.0,
    ),
    ModelCase("multidim_gru", cell="gru"),
    ModelCase("multidim_rnn_packed", cell="rnn", batch=4, seq_len=7, lengths=(7, 2, 5, 1)),
    ModelCase(
        "bn_gru_train_packed",
        model="bn-lstm",
        cell="gru",
        train=True,
        batch=4,
        seq_len=6,
        lengths=(6, 2, 4, 1),
    ),
    # Patches of steps: a last patch completed with zeros (10 = 3 + 3 + 3 + 1), padded series whose
    # patches must not see the garbage in their padding, BatchNorm before the patches.
    ModelCase("multidim_lstm_patch_3", patch=3),
    ModelCase("multidim_gru_patch_packed", cell="gru", patch=3, batch=4, seq_len=7, lengths=(7, 2, 5, 1)),
    ModelCase("bn_lstm_eval_patch_4", model="bn-lstm", patch=4, seq_len=9),
    ModelCase(
        "bn_lstm_train_patch_packed",
        model="bn-lstm",
        train=True,
        patch=2,
        batch=5,
        seq_len=7,
        lengths=(7, 2, 4, 1, 5),
        offset=20.0,
    ),
    ModelCase("forecaster", model="lstm-forecaster", hidden_size=12, num_outputs=6, output_shape=(3, 2)),
    ModelCase(
        "forecaster_gru_univariate",
        model="lstm-forecaster",
        cell="gru",
        input_size=1,
        num_layers=1,
        num_outputs=1,
        output_shape=(1, 1),
        batch=1,
        seq_len=3,
    ),
    ModelCase("lstm_fcn_eval", model="lstm-fcn", hidden_size=8, num_layers=1, seq_len=12, dropout=0.8),
    ModelCase("lstm_fcn_train", model="lstm-fcn", hidden_size=8, num_layers=1, seq_len=12, train=True),
    ModelCase(
        "lstm_fcn_train_packed_gru",
        model="lstm-fcn",
        cell="gru",
        hidden_size=6,
        num_layers=1,
        train=True,
        batch=4,
        seq_len=9,
        lengths=(9, 3, 6, 1),
    ),
    ModelCase("mlstm_fcn_eval", model="mlstm-fcn", hidden_size=8, num_layers=1, seq_len=12, dropout=0.8),
    ModelCase(
        "mlstm_fcn_train_packed",
        model="mlstm-fcn",
        hidden_size=8,
        num_layers=1,
        train=True,
        batch=5,
        seq_len=11,
        lengths=(11, 4, 8, 1, 11),
        offset=20.0,
    ),
    ModelCase("attention_lstm", model="attention-lstm", hidden_size=12, num_layers=1),
    ModelCase(
        "attention_lstm_packed_2_layers",
        model="attention-lstm",
        hidden_size=8,
        batch=4,
        seq_len=7,
        lengths=(7, 2, 5, 1),
    ),
    ModelCase(
        "attention_lstm_patch_packed",
        model="attention-lstm",
        hidden_size=8,
        num_layers=1,
        patch=3,
        batch=4,
        seq_len=8,
        lengths=(8, 2, 6, 1),
    ),
    # The 2-D MDLSTM reads each series as a (seq_len, input_size) grid: a tall one, a wide one (the
    # wavefront's slots then run along the other axis), padded rows, and a single grid.
    ModelCase("mdlstm", model="mdlstm", hidden_size=4, input_size=3, seq_len=5, batch=4),
    ModelCase("mdlstm_wide", model="mdlstm", hidden_size=4, input_size=5, seq_len=3, batch=3),
    ModelCase(
        "mdlstm_packed", model="mdlstm", hidden_size=4, input_size=3, seq_len=5, batch=4, lengths=(5, 2, 4, 1)
    ),
    ModelCase("mdlstm_batch_1", model="mdlstm", hidden_size=4, input_size=3, seq_len=5, batch=1),
    ModelCase(
        "mdlstm_patch_packed",
        model="mdlstm",
        hidden_size=4,
        input_size=2,
        seq_len=7,
        batch=4,
        patch=3,
        lengths=(7, 2, 5, 1),
    ),
)
