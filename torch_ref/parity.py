"""Parity cases: identical weights and inputs on both sides, and every quantity computed by both.

Each ``*_parity`` function builds the torch module from a seed, moves its weights into JAX with
`jax_lstm.from_torch`, runs the same input through both, differentiates the same loss on both, and
returns ``{name: (jax_value, torch_value)}`` as numpy arrays. The parity tests assert on these
pairs; ``jax-lstm parity`` prints them as a table. Forward quantities are named plainly
(``output``, ``h_n``, ``logits``, ...), gradients ``grad/<parameter>`` and ``grad/input``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import jax_lstm
from jax_lstm.models import registry
from jax_lstm.training import cross_entropy
from torch_ref.twins import make_torch_model

__all__ = [
    "CELL_CASES",
    "CELL_CLASSIFIER_CASES",
    "CLASSIFIER_CASES",
    "GRU_RNN_CASES",
    "LSTM_CASES",
    "CellCase",
    "LSTMCase",
    "LayerCase",
    "cell_parity",
    "classifier_parity",
    "layer_parity",
    "lstm_parity",
    "make_jax_classifier",
]

Pairs = dict[str, tuple[np.ndarray, np.ndarray]]

_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


# By torch's mode: the layer classes (torch's, jax_lstm's), the cell classes, the number of state arrays.
_FAMILY: dict[str, tuple[type[nn.Module], Any, type[nn.Module], Any, int]] = {
    "LSTM": (nn.LSTM, jax_lstm.LSTM, nn.LSTMCell, jax_lstm.LSTMCell, 2),
    "GRU": (nn.GRU, jax_lstm.GRU, nn.GRUCell, jax_lstm.GRUCell, 1),
    "RNN_TANH": (nn.RNN, jax_lstm.RNN, nn.RNNCell, jax_lstm.RNNCell, 1),
    "RNN_RELU": (nn.RNN, jax_lstm.RNN, nn.RNNCell, jax_lstm.RNNCell, 1),
}


def _nonlinearity(mode: str) -> dict[str, str]:
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
        return {**kwargs, **_nonlinearity(self.mode)}


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


def torch_dtype(dtype: str) -> torch.dtype:
    if dtype not in _TORCH_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_TORCH_DTYPES)}, got {dtype!r}")
    return _TORCH_DTYPES[dtype]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _device(device: str | None) -> torch.device:
    return torch.device(device or "cpu")


def layer_parity(
    case: LayerCase,
    dtype: str = "float32",
    seed: int = 0,
    device: str | None = None,
    implementation: str = "fused",
) -> Pairs:
    """Outputs, final states and gradients of one `nn.LSTM` / `nn.GRU` / `nn.RNN` configuration on
    both sides (`implementation` picks the LSTM's recurrence; the others have one).

    The loss is a fixed random linear function of output, h_n (and c_n), so every element of each
    gradient is exercised. Gradients are taken with respect to every parameter, the input, and the
    initial states when the case passes them.
    """
    tdtype = torch_dtype(dtype)
    dev = _device(device)
    torch_class, jax_class, _, _, num_state_arrays = _FAMILY[case.mode]
    torch.manual_seed(seed)
    module = torch_class(case.input_size, case.hidden_size, **case.module_kwargs()).to(dev, tdtype)
    module.eval()  # dropout off: torch and JAX draw different masks
    rng = np.random.default_rng(seed)
    num_states = case.num_layers * (2 if case.bidirectional else 1)
    h_out = case.proj_size or case.hidden_size
    d = 2 if case.bidirectional else 1
    if case.batch is None:
        x_shape: tuple[int, ...] = (case.seq_len, case.input_size)
        state_shapes: list[tuple[int, ...]] = [(num_states, h_out), (num_states, case.hidden_size)]
    else:
        x_shape = (
            (case.batch, case.seq_len, case.input_size)
            if case.batch_first
            else (case.seq_len, case.batch, case.input_size)
        )
        state_shapes = [(num_states, case.batch, h_out), (num_states, case.batch, case.hidden_size)]
    state_shapes = state_shapes[:num_state_arrays]
    x = rng.standard_normal(x_shape).astype(dtype)
    states = None
    if case.initial_state:
        states = tuple(rng.standard_normal(shape).astype(dtype) for shape in state_shapes)
    out_shape = (*x_shape[:-1], d * h_out)
    r_out = rng.standard_normal(out_shape).astype(dtype)
    r_states = [rng.standard_normal(shape).astype(dtype) for shape in state_shapes]
    lengths = None if case.lengths is None else np.asarray(case.lengths, np.int32)

    def as_torch_state(state):
        return state if num_state_arrays == 2 else state[0]

    # torch side
    tx = torch.tensor(x, device=dev, requires_grad=True)
    tstates = None
    if states is not None:
        tstates = tuple(torch.tensor(s, device=dev, requires_grad=True) for s in states)
    tinit = None if tstates is None else as_torch_state(tstates)
    if lengths is None:
        tout, tfinal = module(tx, tinit)
    else:
        packed = pack_padded_sequence(
            tx,
            torch.as_tensor(lengths, dtype=torch.int64),
            batch_first=case.batch_first,
            enforce_sorted=False,
        )
        tout_packed, tfinal = module(packed, tinit)
        tout, _ = pad_packed_sequence(tout_packed, batch_first=case.batch_first, total_length=case.seq_len)
    tfinal = tuple(tfinal) if num_state_arrays == 2 else (tfinal,)
    loss = (tout * torch.tensor(r_out, device=dev)).sum() + sum(
        (t * torch.tensor(r, device=dev)).sum() for t, r in zip(tfinal, r_states, strict=True)
    )
    loss.backward()

    # JAX side, from the same weights
    variables = jax_lstm.from_torch(module.state_dict())
    extra = {"implementation": implementation} if case.mode == "LSTM" else {}
    layer = jax_class(case.hidden_size, **case.module_kwargs(), **extra)
    jlengths = None if lengths is None else jnp.asarray(lengths)

    def run(params, xs, init):
        out, final = layer.apply(
            {"params": params}, xs, None if init is None else as_torch_state(init), lengths=jlengths
        )
        return out, tuple(final) if num_state_arrays == 2 else (final,)

    def loss_fn(params, xs, init):
        out, final = run(params, xs, init)
        value = jnp.sum(out * r_out) + sum(jnp.sum(f * r) for f, r in zip(final, r_states, strict=True))
        return value, (out, final)

    jstates = None if states is None else tuple(jnp.asarray(s) for s in states)
    (gparams, gx, gstates), (jout, jfinal) = jax.jit(jax.grad(loss_fn, argnums=(0, 1, 2), has_aux=True))(
        variables["params"], jnp.asarray(x), jstates
    )
    if case.mode == "LSTM":
        # The fused LSTM's inference forward is its own code path: outputs come from it, gradients
        # from the backward. The other cells have one forward.
        jout, jfinal = jax.jit(run)(variables["params"], jnp.asarray(x), jstates)

    pairs: Pairs = {"output": (np.asarray(jout), _np(tout))}
    return _state_and_grad_pairs(pairs, "_n", jfinal, tfinal, module, gparams, gx, tx, gstates, tstates)


def _state_and_grad_pairs(
    pairs, suffix, jstates, tstates_out, module, gparams, gx, tx, gstates, tstates
) -> Pairs:
    """Adds the states (``h{suffix}``, ``c{suffix}``), every parameter's gradient, the input's and
    the given initial states' (``grad/h_0``, ``grad/c_0``) to `pairs`."""
    names = ("h", "c")
    for name, j, t in zip(names, jstates, tstates_out, strict=False):
        pairs[f"{name}{suffix}"] = (np.asarray(j), _np(t))
    for name, param in module.named_parameters():
        pairs[f"grad/{name}"] = (np.asarray(gparams[name]), _np(param.grad))
    pairs["grad/input"] = (np.asarray(gx), _np(tx.grad))
    if tstates is not None:
        for name, g, t in zip(names, gstates, tstates, strict=False):
            pairs[f"grad/{name}_0"] = (np.asarray(g), _np(t.grad))
    return pairs


lstm_parity = layer_parity  # the LSTM cases' entry point, by its first name


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
        return {"bias": self.bias, **_nonlinearity(self.mode)}


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


def cell_parity(
    case: CellCase, dtype: str = "float32", seed: int = 0, device: str | None = None, implementation: str = ""
) -> Pairs:
    """One step of a torch cell on both sides: the new state(s), and the gradients of a random linear
    function of it with respect to every parameter, the input and the given state. (`implementation`
    is accepted for the report's uniform call; cells have one.)"""
    del implementation
    tdtype = torch_dtype(dtype)
    dev = _device(device)
    _, _, torch_class, jax_class, num_state_arrays = _FAMILY[case.mode]
    torch.manual_seed(seed)
    module = torch_class(case.input_size, case.hidden_size, **case.module_kwargs()).to(dev, tdtype)
    rng = np.random.default_rng(seed)
    lead = () if case.batch is None else (case.batch,)
    x = rng.standard_normal((*lead, case.input_size)).astype(dtype)
    state_shape = (*lead, case.hidden_size)
    states = None
    if case.state:
        states = tuple(rng.standard_normal(state_shape).astype(dtype) for _ in range(num_state_arrays))
    r = [rng.standard_normal(state_shape).astype(dtype) for _ in range(num_state_arrays)]

    def pack(state):
        return None if state is None else (tuple(state) if num_state_arrays == 2 else state[0])

    def unpack(result):
        return tuple(result) if num_state_arrays == 2 else (result,)

    tx = torch.tensor(x, device=dev, requires_grad=True)
    tstates = (
        None if states is None else tuple(torch.tensor(s, device=dev, requires_grad=True) for s in states)
    )
    tnew = unpack(module(tx, pack(tstates)))
    sum((t * torch.tensor(w, device=dev)).sum() for t, w in zip(tnew, r, strict=True)).backward()

    variables = jax_lstm.from_torch(module.state_dict())
    cell = jax_class(case.hidden_size, **case.module_kwargs())

    def step(params, xs, init):
        return unpack(cell.apply({"params": params}, xs, pack(init)))

    def loss_fn(params, xs, init):
        new = step(params, xs, init)
        return sum(jnp.sum(n * w) for n, w in zip(new, r, strict=True)), new

    jstates = None if states is None else tuple(jnp.asarray(s) for s in states)
    # One compilation for the step and its gradients (eager dispatch of the many small operations
    # is slower than compiling them once).
    (gparams, gx, gstates), jnew = jax.jit(jax.grad(loss_fn, argnums=(0, 1, 2), has_aux=True))(
        variables["params"], jnp.asarray(x), jstates
    )
    return _state_and_grad_pairs({}, "_1", jnew, tnew, module, gparams, gx, tx, gstates, tstates)


@dataclasses.dataclass(frozen=True)
class ClassifierCase:
    """One of the article's models with one input batch."""

    name: str
    model: str = "lstm"  # "lstm" (MultiDimLSTM / LSTMClassifier) or "bn-lstm" (BN_LSTM)
    train: bool = False  # BatchNorm in train mode: batch statistics, running stats updated
    input_size: int = 5
    hidden_size: int = 16
    num_layers: int = 2
    num_classes: int = 3
    batch: int = 8
    seq_len: int = 10
    offset: float = 0.0  # shifts the features: BatchNorm's variance must survive large offsets
    lengths: tuple[int, ...] | None = None  # right-padded batch: torch's packed path
    cell: str = "lstm"  # the recurrent layer: "lstm", "gru" or "rnn"


CLASSIFIER_CASES: tuple[ClassifierCase, ...] = (
    ClassifierCase("multidim_lstm"),
    ClassifierCase("multidim_lstm_article", hidden_size=128, num_classes=2, batch=32, seq_len=20),
    ClassifierCase("bn_lstm_eval", model="bn-lstm"),
    ClassifierCase("bn_lstm_train", model="bn-lstm", train=True),
    ClassifierCase("bn_lstm_train_offset_features", model="bn-lstm", train=True, offset=300.0),
    ClassifierCase("bn_lstm_train_batch_1", model="bn-lstm", train=True, batch=1, seq_len=4),
    ClassifierCase("multidim_lstm_packed", batch=4, seq_len=7, lengths=(7, 2, 5, 1)),
    ClassifierCase("bn_lstm_eval_packed", model="bn-lstm", batch=4, seq_len=7, lengths=(3, 7, 1, 6)),
    ClassifierCase(
        "bn_lstm_train_packed",
        model="bn-lstm",
        train=True,
        batch=5,
        seq_len=6,
        lengths=(6, 2, 4, 1, 5),
        offset=50.0,
    ),
)

# The article's models with the other cells (the layer under the name "lstm" on both sides).
CELL_CLASSIFIER_CASES: tuple[ClassifierCase, ...] = (
    ClassifierCase("multidim_gru", cell="gru"),
    ClassifierCase("multidim_rnn_packed", cell="rnn", batch=4, seq_len=7, lengths=(7, 2, 5, 1)),
    ClassifierCase(
        "bn_gru_train_packed",
        model="bn-lstm",
        cell="gru",
        train=True,
        batch=4,
        seq_len=6,
        lengths=(6, 2, 4, 1),
    ),
)


def make_jax_classifier(
    model: str,
    hidden_size: int,
    num_layers: int,
    num_classes: int,
    implementation: str = "fused",
    cell: str = "lstm",
):
    """The registry's Flax class of `model` with the case's sizes (float32 parameters; the parity
    cases load torch's weights into it, whose dtype wins)."""
    cls = registry.get(model).flax_class
    return cls(hidden_size, num_layers, num_classes, implementation=implementation, cell=cell)


def classifier_parity(
    case: ClassifierCase,
    dtype: str = "float32",
    seed: int = 0,
    device: str | None = None,
    implementation: str = "fused",
) -> Pairs:
    """Logits and cross-entropy gradients of the article's models; running stats in BN train mode.

    In BN train mode the running statistics are first moved off their initial values (two earlier
    train-mode batches), so the comparison covers the update rule and not only the initial state.
    """
    tdtype = torch_dtype(dtype)
    dev = _device(device)
    torch.manual_seed(seed)
    arch = {"hidden_size": case.hidden_size, "num_layers": case.num_layers, "cell": case.cell}
    dims = registry.Dims(case.input_size, case.num_classes)
    module = make_torch_model(case.model, dims, arch).to(dev, tdtype)
    rng = np.random.default_rng(seed)
    shape = (case.batch, case.seq_len, case.input_size)
    scales = rng.uniform(0.5, 3.0, case.input_size)
    x = (rng.standard_normal(shape) * scales + case.offset).astype(dtype)
    y = rng.integers(0, case.num_classes, case.batch)
    lengths = None if case.lengths is None else np.asarray(case.lengths, np.int32)
    tlengths = None if lengths is None else torch.as_tensor(lengths, dtype=torch.int64)
    if lengths is not None:
        # Padding holds garbage, not zeros: it must not leak into anything.
        x = np.where(np.arange(case.seq_len)[None, :, None] < lengths[:, None, None], x, 1e3).astype(dtype)
    if registry.get(case.model).batch_stats:
        # Non-trivial BN parameters and running statistics on both sides.
        with torch.no_grad():
            module.bn.weight.copy_(torch.tensor(rng.uniform(0.5, 2.0, case.input_size)))
            module.bn.bias.copy_(torch.tensor(rng.standard_normal(case.input_size)))
            module.train()
            for _ in range(2):
                warm = (rng.standard_normal(shape) * scales + case.offset).astype(dtype)
                module(torch.tensor(warm, device=dev), tlengths)
    module.train(case.train)
    variables = jax_lstm.from_torch(module.state_dict())

    tx = torch.tensor(x, device=dev, requires_grad=True)
    tlogits = module(tx, tlengths)
    loss = nn.functional.cross_entropy(tlogits, torch.tensor(y, device=dev))
    loss.backward()

    model = make_jax_classifier(
        case.model, case.hidden_size, case.num_layers, case.num_classes, implementation, case.cell
    )
    others = {k: v for k, v in variables.items() if k != "params"}
    mutable = ["batch_stats"] if case.train and "batch_stats" in variables else False

    def loss_fn(params, xs):
        result = model.apply(
            {"params": params, **others}, xs, train=case.train, lengths=lengths, mutable=mutable
        )
        logits, updates = result if mutable else (result, {})
        # The library's training loss, so parity covers what `fit` minimises.
        return cross_entropy(logits, jnp.asarray(y, jnp.int32)), (logits, updates)

    (jloss, (jlogits, updates)), (gparams, gx) = jax.jit(
        jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)
    )(variables["params"], jnp.asarray(x))

    pairs: Pairs = {
        "logits": (np.asarray(jlogits), _np(tlogits)),
        "loss": (np.asarray(jloss), _np(loss)),
    }
    if updates:
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            jvalue = np.asarray(updates["batch_stats"]["bn"][name])
            tvalue = _np(getattr(module.bn, name))
            if name == "num_batches_tracked":
                jvalue = jvalue.astype(np.int64)
            pairs[f"bn.{name}"] = (jvalue, tvalue)
    grads = registry.flatten({"params": gparams})
    for name, param in module.named_parameters():
        pairs[f"grad/{name}"] = (np.asarray(grads[name]), _np(param.grad))
    pairs["grad/input"] = (np.asarray(gx), _np(tx.grad))
    return pairs
