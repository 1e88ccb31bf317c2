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
    "CLASSIFIER_CASES",
    "LSTM_CASES",
    "LSTMCase",
    "classifier_parity",
    "lstm_parity",
    "make_jax_classifier",
]

Pairs = dict[str, tuple[np.ndarray, np.ndarray]]

_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclasses.dataclass(frozen=True)
class LSTMCase:
    """One `nn.LSTM` configuration and input. ``batch=None`` means unbatched (T, I) input."""

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

    def module_kwargs(self) -> dict[str, Any]:
        return dict(
            num_layers=self.num_layers,
            bias=self.bias,
            batch_first=self.batch_first,
            dropout=self.dropout,
            bidirectional=self.bidirectional,
            proj_size=self.proj_size,
        )


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


def _torch_dtype(dtype: str) -> torch.dtype:
    if dtype not in _TORCH_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_TORCH_DTYPES)}, got {dtype!r}")
    return _TORCH_DTYPES[dtype]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _device(device: str | None) -> torch.device:
    return torch.device(device or "cpu")


def lstm_parity(
    case: LSTMCase,
    dtype: str = "float32",
    seed: int = 0,
    device: str | None = None,
    implementation: str = "fused",
) -> Pairs:
    """Outputs, final states and gradients of one `nn.LSTM` configuration on both sides.

    The loss is a fixed random linear function of output, h_n and c_n, so every element of each
    gradient is exercised. Gradients are taken with respect to every parameter, the input, and the
    initial states when the case passes them.
    """
    tdtype = _torch_dtype(dtype)
    dev = _device(device)
    torch.manual_seed(seed)
    module = nn.LSTM(case.input_size, case.hidden_size, **case.module_kwargs()).to(dev, tdtype)
    module.eval()  # dropout off: torch and JAX draw different masks
    rng = np.random.default_rng(seed)
    num_states = case.num_layers * (2 if case.bidirectional else 1)
    h_out = case.proj_size or case.hidden_size
    d = 2 if case.bidirectional else 1
    if case.batch is None:
        x_shape: tuple[int, ...] = (case.seq_len, case.input_size)
        h_shape: tuple[int, ...] = (num_states, h_out)
        c_shape: tuple[int, ...] = (num_states, case.hidden_size)
    else:
        x_shape = (
            (case.batch, case.seq_len, case.input_size)
            if case.batch_first
            else (case.seq_len, case.batch, case.input_size)
        )
        h_shape = (num_states, case.batch, h_out)
        c_shape = (num_states, case.batch, case.hidden_size)
    x = rng.standard_normal(x_shape).astype(dtype)
    states = None
    if case.initial_state:
        states = (
            rng.standard_normal(h_shape).astype(dtype),
            rng.standard_normal(c_shape).astype(dtype),
        )
    out_shape = (*x_shape[:-1], d * h_out)
    r_out = rng.standard_normal(out_shape).astype(dtype)
    r_h = rng.standard_normal(h_shape).astype(dtype)
    r_c = rng.standard_normal(c_shape).astype(dtype)
    lengths = None if case.lengths is None else np.asarray(case.lengths, np.int32)

    # torch side
    tx = torch.tensor(x, device=dev, requires_grad=True)
    tstates = None
    if states is not None:
        tstates = tuple(torch.tensor(s, device=dev, requires_grad=True) for s in states)
    if lengths is None:
        tout, (th, tc) = module(tx, tstates)
    else:
        packed = pack_padded_sequence(
            tx,
            torch.as_tensor(lengths, dtype=torch.int64),
            batch_first=case.batch_first,
            enforce_sorted=False,
        )
        tout_packed, (th, tc) = module(packed, tstates)
        tout, _ = pad_packed_sequence(tout_packed, batch_first=case.batch_first, total_length=case.seq_len)
    loss = (
        (tout * torch.tensor(r_out, device=dev)).sum()
        + (th * torch.tensor(r_h, device=dev)).sum()
        + (tc * torch.tensor(r_c, device=dev)).sum()
    )
    loss.backward()

    # JAX side, from the same weights
    variables = jax_lstm.from_torch(module.state_dict())
    layer = jax_lstm.LSTM(case.hidden_size, **case.module_kwargs(), implementation=implementation)
    jlengths = None if lengths is None else jnp.asarray(lengths)

    def run(params, xs, init):
        return layer.apply({"params": params}, xs, init, lengths=jlengths)

    def loss_fn(params, xs, init):
        out, (h, c) = run(params, xs, init)
        return jnp.sum(out * r_out) + jnp.sum(h * r_h) + jnp.sum(c * r_c)

    jstates = None if states is None else tuple(jnp.asarray(s) for s in states)
    jout, (jh, jc) = jax.jit(run)(variables["params"], jnp.asarray(x), jstates)
    gparams, gx, gstates = jax.jit(jax.grad(loss_fn, argnums=(0, 1, 2)))(
        variables["params"], jnp.asarray(x), jstates
    )

    pairs: Pairs = {
        "output": (np.asarray(jout), _np(tout)),
        "h_n": (np.asarray(jh), _np(th)),
        "c_n": (np.asarray(jc), _np(tc)),
    }
    for name, param in module.named_parameters():
        pairs[f"grad/{name}"] = (np.asarray(gparams[name]), _np(param.grad))
    pairs["grad/input"] = (np.asarray(gx), _np(tx.grad))
    if tstates is not None:
        pairs["grad/h_0"] = (np.asarray(gstates[0]), _np(tstates[0].grad))
        pairs["grad/c_0"] = (np.asarray(gstates[1]), _np(tstates[1].grad))
    return pairs


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


def make_jax_classifier(
    model: str, hidden_size: int, num_layers: int, num_classes: int, implementation: str = "fused"
):
    """The registry's Flax class of `model` with the case's sizes (float32 parameters; the parity
    cases load torch's weights into it, whose dtype wins)."""
    cls = registry.get(model).flax_class
    return cls(hidden_size, num_layers, num_classes, implementation=implementation)


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
    tdtype = _torch_dtype(dtype)
    dev = _device(device)
    torch.manual_seed(seed)
    arch = {"hidden_size": case.hidden_size, "num_layers": case.num_layers}
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
        case.model, case.hidden_size, case.num_layers, case.num_classes, implementation
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
