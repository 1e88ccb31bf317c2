"""The article's extensions against their torch twins (`torch_ref.hybrid`): Conv1d, the masked global
average, squeeze-and-excite, LSTM-FCN, MLSTM-FCN and attention-LSTM with identical weights (outputs,
every gradient, BatchNorm's running statistics, attention weights), their padding invariance, interop,
and whole training runs in lockstep with torch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_lstm
from jax_lstm import data, training
from jax_lstm.data import Dims
from jax_lstm.models import registry
from jax_lstm.models.attention import AttentionLSTMClassifier
from jax_lstm.models.fcn import LSTMFCNClassifier, MLSTMFCNClassifier, SqueezeExcite
from jax_lstm.nn import Conv1d, global_average_pool
from jax_lstm.nn.conv import same_padding
from jax_lstm.testing import TOLERANCES, Tolerance, assert_all_close
from parity_tests.runs import assert_runs_agree
from torch_ref import hybrid
from torch_ref.train import torch_twin, train_torch
from torch_ref.twins import make_torch_model, twin_class

# torch's note that an even kernel with padding="same" pads a copy of the input (kernel 8 here).
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")

B, T, C, K = 6, 20, 3, 4  # batch, steps, channels, classes
HIDDEN, ATTENTION = 5, 7
FILTERS, KERNELS, REDUCTION = (8, 16, 8), (8, 5, 3), 4
# Unsorted, with a length-1 series and full-length ones.
LENGTHS = np.array([20, 7, 13, 1, 20, 16])
MODELS = ("lstm-fcn", "mlstm-fcn", "attention-lstm")


def _torch_dtype(dtype: str) -> torch.dtype:
    return getattr(torch, dtype)


def _valid(lengths: np.ndarray, steps: int = T) -> np.ndarray:
    return np.arange(steps)[None, :] < lengths[:, None]


def _padded(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """`x` with zeros after each series' length, as the library's datasets hold it."""
    return x * _valid(lengths, x.shape[1])[:, :, None].astype(x.dtype)


# --------------------------------------------------------------------------------------------------
# The building blocks.


def _value_and_grads(fn, args: tuple, cotangent):
    """fn(*args) and the gradients of sum(fn(*args) * cotangent) with respect to every argument, in
    one compiled program (cheaper than op by op for a new shape)."""

    @jax.jit
    def run(args, cotangent):
        out, vjp = jax.vjp(fn, *args)
        return out, vjp(cotangent)

    return run(args, jnp.asarray(cotangent))


def _torch_params(module: torch.nn.Module) -> dict:
    return {key: jnp.asarray(value.detach().numpy()) for key, value in module.state_dict().items()}


def _shapes(tree) -> dict:
    return {key: (tuple(v.shape), np.dtype(v.dtype)) for key, v in registry.flatten({"params": tree}).items()}


@pytest.mark.parametrize("padding", ["same", "valid", 2])
@pytest.mark.parametrize("kernel", [8, 5, 3, 1])
def test_conv1d_matches_torch(kernel: int, padding, dtype: str):
    """Output, input, weight and bias gradients; torch's weights (out, in, k) in our layout."""
    rng = np.random.default_rng(kernel)
    x = rng.standard_normal((B, T, C)).astype(dtype)
    conv = Conv1d(4, kernel, padding=padding, param_dtype=jnp.dtype(dtype))
    torch.manual_seed(kernel)
    twin = torch.nn.Conv1d(C, 4, kernel, padding=padding).to(_torch_dtype(dtype))
    params = _torch_params(twin)
    assert _shapes(jax.eval_shape(conv.init, jax.random.key(0), x)["params"]) == _shapes(params)
    steps = {"same": T, "valid": T - kernel + 1, 2: T + 4 - kernel + 1}[padding]
    cotangent = rng.standard_normal((B, steps, 4)).astype(dtype)

    out, (grad_params, grad_x) = _value_and_grads(
        lambda p, xs: conv.apply({"params": p}, xs), (params, jnp.asarray(x)), cotangent
    )
    assert out.shape == (B, steps, 4) and out.dtype == np.dtype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    tout = twin(xt.transpose(1, 2)).transpose(1, 2)  # torch's Conv1d runs on (B, C, T)
    tout.backward(torch.from_numpy(cotangent))
    pairs = {
        "output": (out, tout),
        "grad/input": (grad_x, xt.grad),
        "grad/weight": (grad_params["weight"], twin.weight.grad),
        "grad/bias": (grad_params["bias"], twin.bias.grad),
    }
    assert_all_close(pairs, TOLERANCES[dtype])

    if padding == "same":
        # torch's "same" puts the odd zero of an even kernel on the right: 3 left, 4 right for 8.
        left, right = same_padding(kernel)
        assert (left, right) == ((kernel - 1) // 2, kernel // 2)
        with torch.no_grad():
            explicit = torch.nn.functional.conv1d(
                torch.nn.functional.pad(xt.transpose(1, 2), (left, right)), twin.weight, twin.bias
            )
        torch.testing.assert_close(explicit.transpose(1, 2), tout.detach(), rtol=0, atol=0)


def test_global_average_pool_matches_torch_and_the_valid_mean(dtype: str):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, C)).astype(dtype)
    cotangent = rng.standard_normal((B, C)).astype(dtype)
    tol = TOLERANCES[dtype]

    pooled, (grad_x,) = _value_and_grads(global_average_pool, (jnp.asarray(x),), cotangent)
    xt = torch.tensor(x, requires_grad=True)
    tpooled = torch.nn.AdaptiveAvgPool1d(1)(xt.transpose(1, 2)).squeeze(-1)
    tpooled.backward(torch.from_numpy(cotangent))
    assert_all_close({"pooled": (pooled, tpooled), "grad/input": (grad_x, xt.grad)}, tol)

    # With lengths: the mean of each series' valid steps, whatever the padding holds.
    garbage = np.where(_valid(LENGTHS)[:, :, None], x, 1e3 * rng.standard_normal(x.shape)).astype(dtype)
    lengths = jnp.asarray(LENGTHS)
    pooled, (grad_x,) = _value_and_grads(
        lambda xs: global_average_pool(xs, lengths), (jnp.asarray(garbage),), cotangent
    )
    expected = np.stack([x[i, :length].mean(axis=0) for i, length in enumerate(LENGTHS)])
    expected_grad = np.where(
        _valid(LENGTHS)[:, :, None], cotangent[:, None, :] / LENGTHS[:, None, None].astype(dtype), 0
    ).astype(dtype)
    assert pooled.dtype == np.dtype(dtype)
    assert_all_close({"pooled": (pooled, expected), "grad/input": (grad_x, expected_grad)}, tol)
    assert np.all(np.asarray(grad_x)[~_valid(LENGTHS)] == 0)
    np.testing.assert_array_equal(pooled, global_average_pool(jnp.asarray(_padded(x, LENGTHS)), lengths))


@pytest.mark.parametrize(("channels", "reduction"), [(16, 4), (3, 16)], ids=["16_by_4", "3_by_16_to_1"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_squeeze_excite_matches_torch(channels: int, reduction: int, with_lengths: bool, dtype: str):
    rng = np.random.default_rng(channels)
    y = rng.standard_normal((B, T, channels)).astype(dtype)
    cotangent = rng.standard_normal(y.shape).astype(dtype)
    lengths = jnp.asarray(LENGTHS) if with_lengths else None
    block = SqueezeExcite(reduction, param_dtype=jnp.dtype(dtype))
    torch.manual_seed(channels)
    twin = hybrid.SqueezeExcite(channels, reduction).to(_torch_dtype(dtype))
    assert twin.fc1.weight.shape == (max(1, channels // reduction), channels)
    flat = _torch_params(twin)  # {"fc1.weight": ..., "fc2.weight": ...}
    params = {name: {"weight": flat[f"{name}.weight"]} for name in ("fc1", "fc2")}
    assert _shapes(jax.eval_shape(block.init, jax.random.key(0), y)["params"]) == _shapes(params)

    out, (grad_params, grad_y) = _value_and_grads(
        lambda p, ys: block.apply({"params": p}, ys, lengths), (params, jnp.asarray(y)), cotangent
    )
    yt = torch.tensor(y, requires_grad=True)
    valid = torch.from_numpy(_valid(LENGTHS)) if with_lengths else None
    tout = twin(yt.transpose(1, 2), valid).transpose(1, 2)
    tout.backward(torch.from_numpy(cotangent))
    pairs = {"output": (out, tout), "grad/input": (grad_y, yt.grad)}
    for name, grad in registry.flatten({"params": grad_params}).items():
        pairs[f"grad/{name}"] = (grad, twin.get_parameter(name).grad)
    assert len(pairs) == 4
    assert_all_close(pairs, TOLERANCES[dtype])


# --------------------------------------------------------------------------------------------------
# The models, with identical weights.


def _arch(name: str, cell: str = "lstm") -> dict:
    if name == "attention-lstm":
        return {"hidden_size": HIDDEN, "num_layers": 1, "cell": cell, "attention_size": ATTENTION}
    return {
        "hidden_size": HIDDEN,
        "num_layers": 1,
        "cell": cell,
        "dropout": 0.0,
        "filters": FILTERS,
        "kernel_sizes": KERNELS,
        "reduction": REDUCTION,
    }


def _models(name: str, dtype: str, cell: str = "lstm", seed: int = 0):
    """The Flax model, its variables and the torch twin holding them (``to_torch``, strict).

    The variables are drawn with numpy from the model's registry layout at these small sizes, torch's
    bounds, with BatchNorm's affine parameters and running statistics moved off their initial values
    so that eval mode and the statistics' update are not trivial (`model.init` would trace and
    compile the whole model each time; the layout's tree is `model.init`'s, tested below).
    """
    param_dtype = jnp.dtype(dtype)
    if name == "attention-lstm":
        model = AttentionLSTMClassifier(
            HIDDEN, 1, K, attention_size=ATTENTION, param_dtype=param_dtype, cell=cell
        )
    else:
        flax_cls = MLSTMFCNClassifier if name == "mlstm-fcn" else LSTMFCNClassifier
        model = flax_cls(
            T,
            K,
            hidden_size=HIDDEN,
            dropout=0.0,
            filters=FILTERS,
            kernel_sizes=KERNELS,
            reduction=REDUCTION,
            param_dtype=param_dtype,
            cell=cell,
        )
    layout = registry.get(name).layout(registry.Dims(C, K, seq_len=T), _arch(name, cell))
    rng = np.random.default_rng(seed)
    flat = {}
    for key, param in layout.items():
        leaf = key.rpartition(".")[2]
        if param.init == "uniform":
            value = rng.uniform(-param.bound, param.bound, param.shape)
        elif leaf == "num_batches_tracked":
            value = np.array(3, np.int32)
        elif leaf == "running_var":
            value = rng.uniform(0.5, 2.0, param.shape)
        elif leaf == "weight":  # BatchNorm's scale
            value = rng.uniform(0.5, 1.5, param.shape)
        else:  # BatchNorm's shift and running mean
            value = rng.uniform(-0.5, 0.5, param.shape)
        flat[key] = jnp.asarray(value, np.int32 if leaf == "num_batches_tracked" else param_dtype)
    variables = registry.nest(flat, layout)
    entry = registry.get(name)
    twin = twin_class(name)(**registry.torch_kwargs(entry, registry.Dims(C, K, seq_len=T), _arch(name, cell)))
    twin = twin.to(_torch_dtype(dtype))
    twin.load_state_dict(jax_lstm.to_torch(variables, model=name), strict=True)
    return model, variables, twin


def _jax_step(model, variables, x, lengths, train: bool, cotangent):
    """Logits, attention weights (or None), updated batch statistics ({} when none), and the
    gradients of sum(logits * cotangent) with respect to every parameter and the input."""
    attention = isinstance(model, AttentionLSTMClassifier)
    updating = train and "batch_stats" in variables

    def loss(params, xs):
        kwargs = {"train": train, "lengths": lengths, "rngs": {"dropout": jax.random.key(0)}}
        if attention:
            kwargs["return_attention"] = True
        v = {**variables, "params": params}
        if updating:
            out, updates = model.apply(v, xs, mutable=["batch_stats"], **kwargs)
        else:
            out, updates = model.apply(v, xs, **kwargs), {}
        logits, weights = out if attention else (out, None)
        return jnp.sum(logits * cotangent), (logits, weights, updates)

    (_, (logits, weights, updates)), (grad_params, grad_x) = jax.value_and_grad(
        loss, argnums=(0, 1), has_aux=True
    )(variables["params"], jnp.asarray(x))
    return logits, weights, dict(updates), grad_params, grad_x


def _torch_step(twin, x, lengths, train: bool, cotangent):
    twin.train(train)
    twin.zero_grad()
    xt = torch.tensor(x, requires_grad=True)
    lt = None if lengths is None else torch.from_numpy(lengths)
    if isinstance(twin, hybrid.AttentionLSTM):
        logits, weights = twin(xt, lt, return_attention=True)
    else:
        logits, weights = twin(xt, lt), None
    (logits * torch.from_numpy(cotangent)).sum().backward()
    return logits, weights, xt


def _check_model_against_twin(name: str, dtype: str, cell: str, train: bool, with_lengths: bool) -> None:
    model, variables, twin = _models(name, dtype, cell)
    rng = np.random.default_rng(5)
    lengths = LENGTHS if with_lengths else None
    x = rng.standard_normal((B, T, C)).astype(dtype)
    if with_lengths:
        x = _padded(x, LENGTHS)
    cotangent = rng.standard_normal((B, K)).astype(dtype)
    tol = TOLERANCES[dtype]

    logits, weights, updates, grad_params, grad_x = _jax_step(
        model, variables, x, None if lengths is None else jnp.asarray(lengths), train, jnp.asarray(cotangent)
    )
    tlogits, tweights, xt = _torch_step(twin, x, lengths, train, cotangent)
    assert logits.dtype == grad_x.dtype == np.dtype(dtype)

    pairs = {"logits": (logits, tlogits), "grad/input": (grad_x, xt.grad)}
    flat_grads = registry.flatten({"params": grad_params})
    torch_grads = {key: p.grad for key, p in twin.named_parameters()}
    assert set(flat_grads) == set(torch_grads)
    # Train-mode BatchNorm subtracts the batch mean, so the bias of the Conv1d feeding it has a
    # gradient of exactly 0 in exact arithmetic: both sides return rounding noise (~1e-7 of the
    # largest gradient in float32, ~1e-16 in float64), which is compared with an absolute bound of
    # the grad tolerance scaled by the largest gradient of the model, not relative to itself.
    scale = max(float(g.abs().max()) for g in torch_grads.values())
    noise = Tolerance(rtol=0.0, atol=tol["grad"].atol + tol["grad"].rtol * scale)
    noise_pairs = {}
    for key, grad in flat_grads.items():
        if train and key.startswith("conv") and key.endswith(".bias"):
            noise_pairs[f"grad/{key}"] = (grad, torch_grads[key])
            noise_pairs[f"grad/{key} (torch, vs 0)"] = (torch_grads[key], torch.zeros_like(torch_grads[key]))
        else:
            pairs[f"grad/{key}"] = (grad, torch_grads[key])
    if name != "attention-lstm":
        assert len(noise_pairs) == (2 * len(FILTERS) if train else 0)

    if weights is not None:
        pairs["attention"] = (weights, tweights)
        w = np.asarray(weights)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=0, atol=tol["forward"].atol)
        assert (w >= 0).all()
        if with_lengths:
            padding = ~_valid(LENGTHS)
            assert np.all(w[padding] == 0) and np.all(tweights.detach().numpy()[padding] == 0)
            assert w[3, 0] == 1.0  # the length-1 series attends to its one step

    state = twin.state_dict()
    if updates:
        stats = registry.flatten({"params": {}, "batch_stats": updates["batch_stats"]})
        assert {k for k in state if ".running_" in k or "num_batches" in k} == set(stats)
        for key, value in stats.items():
            if key.endswith("num_batches_tracked"):
                assert int(value) == int(state[key]) == 4  # 3 before the step
            else:
                pairs[key] = (value, state[key])
                before = registry.flatten(variables)[key]
                assert not np.allclose(value, before)  # the step moved them
    elif train:
        assert "batch_stats" not in variables
    else:  # eval mode leaves torch's statistics where they were
        for key, value in registry.flatten(variables).items():
            if ".running_" in key:
                np.testing.assert_array_equal(state[key].numpy(), np.asarray(value))
    assert_all_close(pairs, tol)
    assert_all_close(noise_pairs, noise)


# Every mode and padding in float64; in float32 (the users' precision) two corners that run every
# code path between them (eval with lengths, train without), to keep the suite short.
MODEL_CASES = [
    pytest.param(train, with_lengths, dtype, id=f"{dtype}-{mode}-{padding}")
    for dtype in ("float32", "float64")
    for train, mode in ((False, "eval"), (True, "train"))
    for with_lengths, padding in ((False, "full"), (True, "lengths"))
    if dtype == "float64" or train != with_lengths
]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(("train", "with_lengths", "dtype"), MODEL_CASES, indirect=["dtype"])
def test_model_matches_twin(name: str, train: bool, with_lengths: bool, dtype: str):
    """Logits, every parameter's and the input's gradient, the running statistics after a train
    step (from non-trivial ones), and the attention weights, with dropout 0 (masks differ by design)."""
    _check_model_against_twin(name, dtype, "lstm", train, with_lengths)


@pytest.mark.parametrize("name", ["lstm-fcn", "attention-lstm"])
def test_gru_variant_matches_twin(name: str, dtype: str):
    """cell="gru": the recurrent branch is an nn.GRU on both sides; train mode, with lengths."""
    _, variables, twin = _models(name, dtype, "gru")
    assert isinstance(twin.lstm, torch.nn.GRU)
    input_size = T if name != "attention-lstm" else C
    assert variables["params"]["lstm"]["weight_ih_l0"].shape == (3 * HIDDEN, input_size)
    _check_model_against_twin(name, dtype, "gru", train=True, with_lengths=True)


# --------------------------------------------------------------------------------------------------
# Padding invariance.


@pytest.mark.parametrize("name", MODELS)
def test_padding_changes_nothing(name: str, x64):
    """Garbage in the padded steps changes no logit (eval and train mode), gradient or batch
    statistic, bit for bit; the input's gradient is exactly 0 there; and a series alone, unpadded,
    gives the logits it has in the padded batch (eval mode)."""
    model, variables, _ = _models(name, "float64", seed=3)
    rng = np.random.default_rng(9)
    x = _padded(rng.standard_normal((B, T, C)).astype("float64"), LENGTHS)
    padding = ~_valid(LENGTHS)
    garbage = np.where(padding[:, :, None], 1e3 * rng.standard_normal(x.shape), x).astype("float64")
    assert np.abs(garbage[padding]).min() > 0
    lengths = jnp.asarray(LENGTHS)

    batched = model.apply(variables, jnp.asarray(garbage), lengths=lengths)
    np.testing.assert_array_equal(batched, model.apply(variables, jnp.asarray(x), lengths=lengths))

    cotangent = jnp.asarray(rng.standard_normal((B, K)).astype("float64"))
    clean = _jax_step(model, variables, x, lengths, True, cotangent)
    dirty = _jax_step(model, variables, garbage, lengths, True, cotangent)
    assert bool(dirty[2]) == (name != "attention-lstm")  # the updated batch statistics
    for a, b in zip(jax.tree.leaves(clean), jax.tree.leaves(dirty), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.all(np.asarray(dirty[4])[padding] == 0)

    for i in (1, 3):  # lengths 7 and 1
        alone = model.apply(variables, jnp.asarray(x[i : i + 1, : LENGTHS[i]]))
        assert_all_close({f"series {i} alone": (alone[0], batched[i])}, TOLERANCES["float64"])


@pytest.mark.parametrize("name", ["lstm-fcn", "mlstm-fcn"])
def test_fcn_fits_shorter_series_to_seq_len_and_refuses_longer(name: str, x64):
    """The LSTM's input size is seq_len: a shorter batch is zero-padded up to it (with its length),
    as the twin does; a longer one is refused before any work."""
    model, variables, twin = _models(name, "float64", seed=4)
    twin.eval()
    rng = np.random.default_rng(2)
    short = rng.standard_normal((B, 12, C)).astype("float64")
    logits = model.apply(variables, jnp.asarray(short))
    padded = np.concatenate([short, np.zeros((B, T - 12, C), "float64")], axis=1)
    full_length = jnp.full((B,), 12, jnp.int32)
    np.testing.assert_array_equal(logits, model.apply(variables, jnp.asarray(padded), lengths=full_length))
    with torch.no_grad():
        tlogits = twin(torch.from_numpy(short))
    assert_all_close({"logits": (logits, tlogits)}, TOLERANCES["float64"])

    short_lengths = np.array([12, 3, 9, 1, 12, 5])
    short = _padded(short, short_lengths)
    padded = _padded(padded, short_lengths)
    np.testing.assert_array_equal(
        model.apply(variables, jnp.asarray(short), lengths=jnp.asarray(short_lengths)),
        model.apply(variables, jnp.asarray(padded), lengths=jnp.asarray(short_lengths)),
    )

    longer = jnp.zeros((B, T + 1, C))
    cls = type(model).__name__
    with pytest.raises(
        ValueError, match=rf"{cls} was built for series of at most {T} steps .* got series of {T + 1}"
    ):
        model.apply(variables, longer)


# --------------------------------------------------------------------------------------------------
# Interop.


@pytest.mark.parametrize("name", MODELS)
def test_from_torch_detects_the_model_and_round_trips_bit_exactly(name: str):
    torch.manual_seed(1)
    twin = twin_class(name)(*_twin_args(name))  # torch's own initialisation
    with torch.no_grad():
        twin.train()(torch.randn(B, T, C))  # running statistics off their initial values
    state = twin.state_dict()
    assert [entry.name for entry in registry.find_by_keys(state)] == [name]
    variables = jax_lstm.from_torch(state)  # no model named: recognised from the keys
    flat = registry.flatten(variables)
    assert sorted(flat) == sorted(state)  # every key, nothing more (se1/se2 for mlstm-fcn only)
    assert any(key.startswith("se1.") for key in flat) == (name == "mlstm-fcn")
    for key, value in state.items():
        np.testing.assert_array_equal(np.asarray(flat[key]), value.numpy(), err_msg=key)
    if name != "attention-lstm":
        assert int(variables["batch_stats"]["bn1"]["num_batches_tracked"]) == 1
    back = jax_lstm.to_torch(jax_lstm.from_torch(state))
    assert list(back) == list(state)  # torch's order
    for key, value in state.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value), key
    twin_class(name)(*_twin_args(name)).load_state_dict(back, strict=True)

    # The detected variables run in the Flax model as the state dict does in torch.
    model, _, _ = _models(name, "float32")
    x = _padded(np.random.default_rng(0).standard_normal((B, T, C)).astype("float32"), LENGTHS)
    twin.eval()
    with torch.no_grad():
        expected = twin(torch.from_numpy(x), torch.from_numpy(LENGTHS))
    got = model.apply(variables, jnp.asarray(x), lengths=jnp.asarray(LENGTHS))
    assert_all_close({"logits": (got, expected)}, TOLERANCES["float32"])


def _twin_args(name: str) -> tuple:
    if name == "attention-lstm":
        return (C, HIDDEN, 1, K, ATTENTION, "lstm")
    return (C, T, K, HIDDEN, 1, 0.0, FILTERS, KERNELS, REDUCTION, "lstm")


def test_mlstm_state_dict_is_not_taken_for_lstm_fcn():
    torch.manual_seed(0)
    state = hybrid.MLSTMFCN(*_twin_args("mlstm-fcn")).state_dict()
    with pytest.raises((KeyError, ValueError), match="se1"):
        jax_lstm.from_torch(state, model="lstm-fcn")
    lstm_fcn = hybrid.LSTMFCN(*_twin_args("lstm-fcn")).state_dict()
    with pytest.raises((KeyError, ValueError), match="se1"):
        jax_lstm.from_torch(lstm_fcn, model="mlstm-fcn")


@pytest.mark.parametrize("name", MODELS)
def test_initial_variables_have_the_structure_of_model_init(name: str, dtype: str):
    """The registry's numpy-drawn variables are exactly `model.init`'s tree (shapes and dtypes
    included; `jax.eval_shape` traces `init` without compiling it), at the registry's full-size
    convolutional branch, and load into the full-size twin."""
    config = training.TrainConfig(model=name, hidden_size=HIDDEN, num_layers=1, dtype=dtype)
    variables = training.initial_variables(config, Dims(C, K, seq_len=T))
    model = training.make_model(config, Dims(C, K, seq_len=T))
    reference = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, T, C), jnp.dtype(dtype)))
    assert jax.tree.structure(variables) == jax.tree.structure(reference)
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(reference), strict=True):
        assert (a.shape, a.dtype) == (b.shape, b.dtype)
    assert variables["params"]["fc"]["weight"].dtype == np.dtype(dtype)
    if name != "attention-lstm":
        shapes = [variables["params"][f"conv{i}"]["weight"].shape for i in (1, 2, 3)]
        assert shapes == [(128, C, 8), (256, 128, 5), (128, 256, 3)]
        assert variables["batch_stats"]["bn2"]["num_batches_tracked"].dtype == np.int32
    dims = registry.Dims(C, K, seq_len=T)
    twin = make_torch_model(name, dims, registry.get(name).arch(config)).to(_torch_dtype(dtype))
    twin.load_state_dict(jax_lstm.to_torch(variables, model=name), strict=True)

    # The small models of the parity tests above, drawn from the same layouts: model.init's tree too.
    for cell in ("lstm", "gru"):
        small, drawn, _ = _models(name, dtype, cell)
        reference = jax.eval_shape(small.init, jax.random.key(0), jnp.zeros((2, T, C), jnp.dtype(dtype)))
        assert jax.tree.structure(drawn) == jax.tree.structure(reference)
        for a, b in zip(jax.tree.leaves(drawn), jax.tree.leaves(reference), strict=True):
            assert (a.shape, a.dtype) == (b.shape, b.dtype)


# --------------------------------------------------------------------------------------------------
# Training in lockstep with torch.


def _tiny_dataset(dtype: str, unequal: bool) -> data.Dataset:
    """24 train / 12 test series of 12 steps and 3 channels, 3 classes told apart by frequency."""
    rng = np.random.default_rng(11)
    n, steps = 36, 12
    y = rng.integers(0, 3, n)
    t = np.arange(steps)[None, :, None]
    x = np.sin(0.5 * (y[:, None, None] + 1) * t + rng.uniform(0, 6, (n, 1, C))) + 0.3 * rng.standard_normal(
        (n, steps, C)
    )
    lengths = rng.integers(3, steps + 1, n) if unequal else None
    if unequal:
        lengths[:2] = steps
        x = _padded(x, lengths)
    x = x.astype(dtype)
    return data.Dataset(
        name="tiny",
        x_train=x[:24],
        y_train=y[:24],
        x_test=x[24:],
        y_test=y[24:],
        classes=("a", "b", "c"),
        lengths_train=None if lengths is None else lengths[:24],
        lengths_test=None if lengths is None else lengths[24:],
    ).validate()


def _run_both(config: training.TrainConfig, dataset: data.Dataset):
    variables = training.initial_variables(config, dataset.dims)
    twin = torch_twin(config, dataset, variables)
    jax_result = training.fit(config, dataset, variables=variables, log=None)
    torch_result = train_torch(config, dataset, model=twin, log=None)
    return variables, jax_result, torch_result


@pytest.mark.parametrize(
    ("name", "unequal"), [("lstm-fcn", True), ("mlstm-fcn", False), ("attention-lstm", True)]
)
def test_training_follows_torch_in_float64(name: str, unequal: bool, x64):
    """`fit` (each batch split over the suite's two devices, BatchNorm's statistics reduced across
    them) and `train_torch` from the same weights and batches: per-epoch losses and every final
    parameter, running statistics included, within ARTICLE_RUN_RTOL. Measured: losses 4e-15
    (train) and 1.2e-11 (test), parameters 1.4e-9 of their scale, on a conv bias (Adam turns its
    zero gradient's 1e-16 noise into steps of ~lr * 1e-8, see the float32 run below)."""
    config = training.TrainConfig(
        model=name,
        hidden_size=HIDDEN,
        num_layers=1,
        epochs=3,
        batch_size=8,
        lr=0.01,
        dropout=0.0,
        dtype="float64",
        log_every=0,
    )
    dataset = _tiny_dataset("float64", unequal)
    start, jax_result, torch_result = _run_both(config, dataset)
    assert len(jax_result.history) == len(torch_result.history) == 3
    assert_runs_agree(jax_result, torch_result, "float64", check_params=True)
    moved = registry.flatten(jax_result.variables())["fc.weight"]
    assert not np.allclose(moved, registry.flatten(start)["fc.weight"])  # it trained
    if name != "attention-lstm":
        assert int(jax_result.state.batch_stats["bn1"]["num_batches_tracked"]) == 9


def test_mlstm_fcn_training_follows_torch_in_float32():
    """In float32 the conv biases' gradients (exactly 0 under train-mode BatchNorm, see above) are
    rounding noise of ~1e-7, far above Adam's eps of 1e-8, so without weight decay Adam moves each
    conv bias by about +-lr per step in a direction set by rounding, differently on each side (in
    torch as here). Train-mode losses ignore the biases, but eval mode sees them through the running
    means: measured at lr 0.01, 3 epochs, the conv biases end 0.42 of their scale apart and the test
    losses 9e-4 to 5e-3 relative (4e-5 at lr 1e-3), while the train losses agree to 2e-6. An L2
    term (weight_decay 0.01: a gradient of 1e-2 * bias, far above the noise) makes their updates
    the same on both sides; then both losses agree to 3.4e-6 (train) and 2.4e-6 (test). Other
    parameters differ by up to 4e-3 of their scale (Adam normalises each component's step, so a
    component whose gradient is near 0 moves by about lr either way), so only the losses are
    compared, as for the article's float32 runs."""
    config = training.TrainConfig(
        model="mlstm-fcn",
        hidden_size=HIDDEN,
        num_layers=1,
        epochs=3,
        batch_size=8,
        lr=0.01,
        weight_decay=0.01,
        log_every=0,
    )
    start, jax_result, torch_result = _run_both(config, _tiny_dataset("float32", unequal=True))
    assert_runs_agree(jax_result, torch_result, "float32", check_params=False)
    moved = registry.flatten(jax_result.variables())["fc.weight"]
    assert not np.allclose(moved, registry.flatten(start)["fc.weight"])  # it trained
