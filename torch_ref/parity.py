"""Parity runners: identical weights and inputs on both sides, and every quantity computed by both.

Each ``*_parity`` function takes a case of `torch_ref.cases`, builds the torch module from a seed,
moves its weights into JAX with `jax_lstm.from_torch`, runs the same input through both,
differentiates the same loss on both, and returns ``{name: (jax_value, torch_value)}`` as numpy
arrays. The parity tests assert on these pairs; ``jax-lstm parity`` prints them as a table (its
rows: `PARITY_TABLE`). Forward quantities are named plainly (``output``, ``h_n``, ``logits``,
``bn1.running_var``, ...), gradients ``grad/<parameter>`` and ``grad/input``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import jax_lstm
from jax_lstm.data import Dims
from jax_lstm.models import registry
from jax_lstm.training import TrainConfig, cross_entropy
from torch_ref.cases import (
    CELL_CASES,
    GRU_RNN_CASES,
    LSTM_CASES,
    MODEL_CASES,
    CellCase,
    LayerCase,
    ModelCase,
)
from torch_ref.twins import make_torch_model

__all__ = [
    "PARITY_TABLE",
    "Pairs",
    "cell_parity",
    "layer_parity",
    "lstm_parity",
    "model_parity",
    "torch_dtype",
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


def _batchnorms(module: nn.Module) -> list[tuple[str, nn.BatchNorm1d]]:
    return [(name, m) for name, m in module.named_modules() if isinstance(m, nn.BatchNorm1d)]


def model_parity(
    case: ModelCase,
    dtype: str = "float32",
    seed: int = 0,
    device: str | None = None,
    implementation: str = "fused",
) -> Pairs:
    """A registered model's outputs, loss (its task's: cross-entropy or MSE) and gradients with
    respect to every parameter and the input; in train mode every BatchNorm's running statistics.

    Both sides are built through the registry: the twin by `torch_ref.twins.make_torch_model`, the
    Flax module by `registry.build` from the same config and `Dims`. Every BatchNorm gets
    non-trivial weights and, when it trains, running statistics moved off their initial values
    first (two earlier train-mode batches), so the comparison covers the update rule and not only
    the initial state. Padding (with `lengths`) holds garbage, which must not leak into anything.
    """
    tdtype = torch_dtype(dtype)
    dev = _device(device)
    entry = registry.get(case.model)
    labelled = entry.task == "classification"
    config = TrainConfig(model=case.model, dtype=dtype, implementation=implementation, **case.settings())
    dims = Dims(case.input_size, case.num_outputs, case.output_shape, case.seq_len)
    torch.manual_seed(seed)
    module = make_torch_model(case.model, dims, entry.arch(config)).to(dev, tdtype)
    rng = np.random.default_rng(seed)
    shape = (case.batch, case.seq_len, case.input_size)
    scales = rng.uniform(0.5, 3.0, case.input_size)
    x = (rng.standard_normal(shape) * scales + case.offset).astype(dtype)
    lengths = None if case.lengths is None else np.asarray(case.lengths, np.int32)
    tlengths = None if lengths is None else torch.as_tensor(lengths, dtype=torch.int64)
    if lengths is not None:
        x = np.where(np.arange(case.seq_len)[None, :, None] < lengths[:, None, None], x, 1e3).astype(dtype)

    def forward(model, inputs):
        return model(inputs) if tlengths is None else model(inputs, tlengths)

    if _batchnorms(module):
        with torch.no_grad():
            for _, bn in _batchnorms(module):
                bn.weight.copy_(torch.tensor(rng.uniform(0.5, 2.0, bn.num_features)))
                bn.bias.copy_(torch.tensor(rng.standard_normal(bn.num_features)))
            if case.train:
                module.train()
                for _ in range(2):
                    warm = (rng.standard_normal(shape) * scales + case.offset).astype(dtype)
                    forward(module, torch.tensor(warm, device=dev))
    module.train(case.train)
    variables = jax_lstm.from_torch(module.state_dict(), model=case.model)
    if labelled:
        y = rng.integers(0, case.num_outputs, case.batch)
        target = torch.tensor(y, device=dev)
    else:
        y = rng.standard_normal((case.batch, *case.output_shape)).astype(dtype)
        target = torch.tensor(y, device=dev)

    tx = torch.tensor(x, device=dev, requires_grad=True)
    toutputs = forward(module, tx)
    loss = (
        nn.functional.cross_entropy(toutputs, target)
        if labelled
        else nn.functional.mse_loss(toutputs, target)
    )
    loss.backward()

    model = registry.build(entry, config, dims)
    others = {k: v for k, v in variables.items() if k != "params"}
    mutable = ["batch_stats"] if case.train and "batch_stats" in variables else False

    def loss_fn(params, xs):
        result = model.apply(
            {"params": params, **others}, xs, train=case.train, lengths=lengths, mutable=mutable
        )
        outputs, updates = result if mutable else (result, {})
        # The library's training losses, so parity covers what `fit` minimises.
        value = (
            cross_entropy(outputs, jnp.asarray(y, jnp.int32))
            if labelled
            else jnp.mean(jnp.square(outputs - y))
        )
        return value, (outputs, updates)

    (jloss, (joutputs, updates)), (gparams, gx) = jax.jit(
        jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)
    )(variables["params"], jnp.asarray(x))

    name = "logits" if labelled else "forecast"
    pairs: Pairs = {name: (np.asarray(joutputs), _np(toutputs)), "loss": (np.asarray(jloss), _np(loss))}
    if updates:
        stats = registry.flatten({"params": {}, "batch_stats": updates["batch_stats"]})
        for prefix, bn in _batchnorms(module):
            for stat in ("running_mean", "running_var", "num_batches_tracked"):
                jvalue = np.asarray(stats[f"{prefix}.{stat}"])
                if stat == "num_batches_tracked":
                    jvalue = jvalue.astype(np.int64)
                pairs[f"{prefix}.{stat}"] = (jvalue, _np(getattr(bn, stat)))
    grads = registry.flatten({"params": gparams})
    for pname, param in module.named_parameters():
        pairs[f"grad/{pname}"] = (np.asarray(grads[pname]), _np(param.grad))
    pairs["grad/input"] = (np.asarray(gx), _np(tx.grad))
    return pairs


# The rows of ``jax-lstm parity``: (kind, case, runner), every layer of the family, every cell and
# every registered model.
PARITY_TABLE: tuple[tuple[str, Any, Any], ...] = (
    *(("layer", c, layer_parity) for c in (*LSTM_CASES, *GRU_RNN_CASES)),
    *(("cell", c, cell_parity) for c in CELL_CASES),
    *(("model", c, model_parity) for c in MODEL_CASES),
)
