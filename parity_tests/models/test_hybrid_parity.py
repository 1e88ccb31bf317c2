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
from jax_lstm.models import registry
from jax_lstm.models.attention import AttentionLSTMClassifier
from jax_lstm.models.fcn import LSTMFCNClassifier, MLSTMFCNClassifier, SqueezeExcite
from jax_lstm.nn import Conv1d, global_average_pool
from jax_lstm.nn.conv import same_padding
from jax_lstm.testing import TOLERANCES, Tolerance, assert_all_close
from parity_tests.runs import assert_runs_agree
from torch_ref import hybrid
from torch_ref.train import torch_twin, train_torch

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


@pytest.mark.parametrize("padding", ["same", "valid", 2])
@pytest.mark.parametrize("kernel", [8, 5, 3, 1])
def test_conv1d_matches_torch(kernel: int, padding, dtype: str):
    rng = np.random.default_rng(kernel)
    x = rng.standard_normal((B, T, C)).astype(dtype)
    conv = Conv1d(4, kernel, padding=padding, param_dtype=jnp.dtype(dtype))
    params = conv.init(jax.random.key(kernel), jnp.asarray(x))["params"]
    twin = torch.nn.Conv1d(C, 4, kernel, padding=padding).to(_torch_dtype(dtype))
    assert {k: tuple(v.shape) for k, v in params.items()} == {
        k: tuple(v.shape) for k, v in twin.state_dict().items()
    }
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in params.items()}, strict=True)

    out, vjp = jax.vjp(lambda p, xs: conv.apply({"params": p}, xs), params, jnp.asarray(x))
    steps = {"same": T, "valid": T - kernel + 1, 2: T + 4 - kernel + 1}[padding]
    assert out.shape == (B, steps, 4) and out.dtype == np.dtype(dtype)
    cotangent = rng.standard_normal(out.shape).astype(dtype)
    grad_params, grad_x = vjp(jnp.asarray(cotangent))

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

    pooled, vjp = jax.vjp(global_average_pool, jnp.asarray(x))
    (grad_x,) = vjp(jnp.asarray(cotangent))
    xt = torch.tensor(x, requires_grad=True)
    tpooled = torch.nn.AdaptiveAvgPool1d(1)(xt.transpose(1, 2)).squeeze(-1)
    tpooled.backward(torch.from_numpy(cotangent))
    assert_all_close({"pooled": (pooled, tpooled), "grad/input": (grad_x, xt.grad)}, tol)

    # With lengths: the mean of each series' valid steps, whatever the padding holds.
    garbage = np.where(_valid(LENGTHS)[:, :, None], x, 1e3 * rng.standard_normal(x.shape)).astype(dtype)
    lengths = jnp.asarray(LENGTHS)
    pooled, vjp = jax.vjp(lambda xs: global_average_pool(xs, lengths), jnp.asarray(garbage))
    (grad_x,) = vjp(jnp.asarray(cotangent))
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
    params = block.init(jax.random.key(0), jnp.asarray(y))["params"]
    twin = hybrid.SqueezeExcite(channels, reduction).to(_torch_dtype(dtype))
    state = {k: torch.from_numpy(np.array(v)) for k, v in registry.flatten({"params": params}).items()}
    twin.load_state_dict(state, strict=True)
    assert twin.fc1.weight.shape == (max(1, channels // reduction), channels)

    out, vjp = jax.vjp(lambda p, ys: block.apply({"params": p}, ys, lengths), params, jnp.asarray(y))
    grad_params, grad_y = vjp(jnp.asarray(cotangent))
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


def _models(name: str, dtype: str, cell: str = "lstm", seed: int = 0):
    """The Flax model, its variables (BatchNorm's affine parameters and running statistics moved off
    their initial values, so that eval mode and the updates are not trivial) and the torch twin
    holding them."""
    param_dtype = jnp.dtype(dtype)
    if name == "attention-lstm":
        model = AttentionLSTMClassifier(
            HIDDEN, 1, K, attention_size=ATTENTION, param_dtype=param_dtype, cell=cell
        )
        twin = hybrid.AttentionLSTM(C, HIDDEN, 1, K, attention_size=ATTENTION, cell=cell)
    else:
        flax_cls, torch_cls = {
            "lstm-fcn": (LSTMFCNClassifier, hybrid.LSTMFCN),
            "mlstm-fcn": (MLSTMFCNClassifier, hybrid.MLSTMFCN),
        }[name]
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
        twin = torch_cls(C, T, K, HIDDEN, 1, 0.0, FILTERS, KERNELS, REDUCTION, cell)
    variables = model.init(jax.random.key(seed), jnp.zeros((2, T, C), param_dtype))
    if "batch_stats" in variables:
        rng = np.random.default_rng(seed + 100)
        params, stats = dict(variables["params"]), dict(variables["batch_stats"])
        for bn in [key for key in params if key.startswith("bn")]:
            n = params[bn]["weight"].shape[0]
            params[bn] = {
                "weight": jnp.asarray(rng.uniform(0.5, 1.5, n), param_dtype),
                "bias": jnp.asarray(rng.uniform(-0.5, 0.5, n), param_dtype),
            }
            stats[bn] = {
                "running_mean": jnp.asarray(rng.normal(0, 0.3, n), param_dtype),
                "running_var": jnp.asarray(rng.uniform(0.5, 2.0, n), param_dtype),
                "num_batches_tracked": jnp.asarray(3, jnp.int32),
            }
        variables = {"params": params, "batch_stats": stats}
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


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_model_matches_twin(name: str, train: bool, with_lengths: bool, dtype: str):
    """Logits, every parameter's and the input's gradient, the running statistics after a train
    step (from non-trivial ones), and the attention weights, with dropout 0 (masks differ by design)."""
    _check_model_against_twin(name, dtype, "lstm", train, with_lengths)


@pytest.mark.parametrize("name", ["lstm-fcn", "attention-lstm"])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_gru_variant_matches_twin(name: str, train: bool, dtype: str):
    _, variables, twin = _models(name, dtype, "gru")
    assert isinstance(twin.lstm, torch.nn.GRU)
    input_size = T if name != "attention-lstm" else C
    assert variables["params"]["lstm"]["weight_ih_l0"].shape == (3 * HIDDEN, input_size)
    _check_model_against_twin(name, dtype, "gru", train, with_lengths=True)


# --------------------------------------------------------------------------------------------------
# Padding invariance.


@pytest.mark.parametrize("name", MODELS)
def test_padding_changes_nothing(name: str):
    """Garbage in the padded steps changes no logit, gradient or batch statistic (bit for bit), the
    input's gradient is exactly 0 there, and a series alone (unpadded) gives its logits in the batch."""
    model, variables, _ = _models(name, "float32", seed=3)
    rng = np.random.default_rng(9)
    x = _padded(rng.standard_normal((B, T, C)).astype("float32"), LENGTHS)
    garbage = np.where(_valid(LENGTHS)[:, :, None], x, 1e3 * rng.standard_normal(x.shape)).astype("float32")
    assert not np.array_equal(x, garbage)
    cotangent = jnp.asarray(rng.standard_normal((B, K)).astype("float32"))
    lengths = jnp.asarray(LENGTHS)
    for train in (False, True):
        clean = _jax_step(model, variables, x, lengths, train, cotangent)
        dirty = _jax_step(model, variables, garbage, lengths, train, cotangent)
        assert (len(dirty[2]) > 0) == (train and name != "attention-lstm")
        for a, b in zip(jax.tree.leaves(clean), jax.tree.leaves(dirty), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert np.all(np.asarray(dirty[4])[~_valid(LENGTHS)] == 0)

    batched = model.apply(variables, garbage, lengths=lengths)
    for i, length in enumerate(LENGTHS):
        alone = model.apply(variables, jnp.asarray(x[i : i + 1, :length]))
        assert_all_close({f"series {i} alone": (alone[0], batched[i])}, TOLERANCES["float32"])


@pytest.mark.parametrize("name", ["lstm-fcn", "mlstm-fcn"])
def test_fcn_fits_shorter_series_to_seq_len_and_refuses_longer(name: str):
    """The LSTM's input size is seq_len: a shorter batch is zero-padded up to it (with its length),
    as the twin does; a longer one is refused before any work."""
    model, variables, twin = _models(name, "float32", seed=4)
    twin.eval()
    rng = np.random.default_rng(2)
    short = rng.standard_normal((B, 12, C)).astype("float32")
    logits = model.apply(variables, jnp.asarray(short))
    padded = np.concatenate([short, np.zeros((B, T - 12, C), "float32")], axis=1)
    full_length = jnp.full((B,), 12, jnp.int32)
    np.testing.assert_array_equal(logits, model.apply(variables, jnp.asarray(padded), lengths=full_length))
    with torch.no_grad():
        tlogits = twin(torch.from_numpy(short))
    assert_all_close({"logits": (logits, tlogits)}, TOLERANCES["float32"])

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
    torch.manual_seed(0)
    _, _, twin = _models(name, "float32")
    torch.manual_seed(1)
    fresh = type(twin)(*_twin_args(name))  # torch's own initialisation
    with torch.no_grad():
        fresh.train()(torch.randn(B, T, C))  # running statistics off their initial values
    state = fresh.state_dict()
    assert [entry.name for entry in registry.find_by_keys(state)] == [name]
    variables = jax_lstm.from_torch(state)
    flat = registry.flatten(variables)
    assert list(flat) == list(state)  # every key, nothing more (se1/se2 for mlstm-fcn only)
    assert any(key.startswith("se1.") for key in flat) == (name == "mlstm-fcn")
    if name != "attention-lstm":
        assert int(variables["batch_stats"]["bn1"]["num_batches_tracked"]) == 1
    back = jax_lstm.to_torch(variables)
    assert list(back) == list(state)
    for key, value in state.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value), key
    twin.load_state_dict(back, strict=True)

    # The detected variables run in the Flax model as the state dict does in torch.
    model, _, _ = _models(name, "float32")
    x = np.random.default_rng(0).standard_normal((B, T, C)).astype("float32")
    fresh.eval()
    with torch.no_grad():
        expected = fresh(torch.from_numpy(x), torch.from_numpy(LENGTHS))
    got = model.apply(variables, jnp.asarray(_padded(x, LENGTHS)), lengths=jnp.asarray(LENGTHS))
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
    config = training.TrainConfig(model=name, hidden_size=HIDDEN, num_layers=1, dtype=dtype)
    variables = training.initial_variables(config, C, K, seq_len=T)
    reference = training.make_model(config, C, K, seq_len=T).init(
        jax.random.key(0), jnp.zeros((1, T, C), jnp.dtype(dtype))
    )
    assert jax.tree.structure(variables) == jax.tree.structure(reference)
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(reference), strict=True):
        assert (a.shape, a.dtype) == (b.shape, b.dtype)
    assert jax.tree.leaves(variables)[0].dtype == np.dtype(dtype)
    if name != "attention-lstm":  # the registry's full-size convolutional branch
        shapes = [variables["params"][f"conv{i}"]["weight"].shape for i in (1, 2, 3)]
        assert shapes == [(128, C, 8), (256, 128, 5), (128, 256, 3)]


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
    variables = training.initial_variables(
        config, dataset.num_features, dataset.num_classes, seq_len=dataset.seq_len
    )
    twin = torch_twin(config, dataset, variables)
    jax_result = training.fit(config, dataset, variables=variables, log=None)
    torch_result = train_torch(config, dataset, model=twin, log=None)
    return variables, jax_result, torch_result


@pytest.mark.parametrize(
    ("name", "unequal"), [("lstm-fcn", True), ("mlstm-fcn", False), ("attention-lstm", True)]
)
def test_training_follows_torch_in_float64(name: str, unequal: bool, x64):
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
    config = training.TrainConfig(
        model="mlstm-fcn", hidden_size=HIDDEN, num_layers=1, epochs=3, batch_size=8, lr=0.01, log_every=0
    )
    _, jax_result, torch_result = _run_both(config, _tiny_dataset("float32", unequal=True))
    assert_runs_agree(jax_result, torch_result, "float32", check_params=False)
