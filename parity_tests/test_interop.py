"""Weights move between torch and JAX by renaming plus shape checks, bit-exactly both ways."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_lstm
from torch_ref import BN_LSTM, MultiDimLSTM
from torch_ref.cases import LSTM_CASES


def _assert_state_dicts_identical(actual, expected):
    assert list(actual) == list(expected), "keys or their order differ"
    for key in expected:
        assert actual[key].dtype == expected[key].dtype, key
        assert actual[key].shape == expected[key].shape, key
        assert torch.equal(actual[key], expected[key]), f"{key} changed in the round trip"


def _trained_bn_lstm(dtype=torch.float32) -> BN_LSTM:
    """A BN_LSTM whose buffers moved off their initial values (num_batches_tracked = 3)."""
    torch.manual_seed(0)
    model = BN_LSTM(5, 12, 2, 3).to(dtype).train()
    for _ in range(3):
        model(torch.randn(4, 6, 5, dtype=dtype) * 2 + 1)
    return model


@pytest.mark.parametrize("case", LSTM_CASES, ids=lambda c: c.name)
def test_nn_lstm_round_trip_is_bit_exact(case):
    torch.manual_seed(0)
    module = torch.nn.LSTM(case.input_size, case.hidden_size, **case.module_kwargs())
    state = module.state_dict()
    variables = jax_lstm.from_torch(state)
    assert set(variables) == {"params"}
    back = jax_lstm.to_torch(variables)
    _assert_state_dicts_identical(back, state)
    fresh = torch.nn.LSTM(case.input_size, case.hidden_size, **case.module_kwargs())
    fresh.load_state_dict(back, strict=True)


@pytest.mark.parametrize("model_cls", [MultiDimLSTM, BN_LSTM])
def test_article_models_round_trip_is_bit_exact(model_cls):
    model = _trained_bn_lstm() if model_cls is BN_LSTM else MultiDimLSTM(5, 12, 2, 3)
    state = model.state_dict()
    variables = jax_lstm.from_torch(state)
    back = jax_lstm.to_torch(variables)
    _assert_state_dicts_identical(back, state)
    model_cls(5, 12, 2, 3).load_state_dict(back, strict=True)
    if model_cls is BN_LSTM:
        assert int(variables["batch_stats"]["bn"]["num_batches_tracked"]) == 3
        assert back["bn.num_batches_tracked"].dtype == torch.int64


def test_float64_round_trip_is_bit_exact(x64):
    model = _trained_bn_lstm(torch.float64)
    state = model.state_dict()
    variables = jax_lstm.from_torch(state)
    assert variables["params"]["lstm"]["weight_ih_l0"].dtype == jnp.float64
    _assert_state_dicts_identical(jax_lstm.to_torch(variables), state)


@pytest.mark.parametrize(
    "model, input_shape",
    [
        (jax_lstm.LSTM(7, num_layers=2, bidirectional=True, proj_size=3), (4, 2, 5)),
        (jax_lstm.LSTMClassifier(9, 2, 4), (2, 4, 5)),
        (jax_lstm.BNLSTMClassifier(9, 2, 4), (2, 4, 5)),
    ],
    ids=["lstm", "classifier", "bn_classifier"],
)
def test_jax_to_torch_to_jax_is_bit_exact(model, input_shape):
    variables = model.init(jax.random.key(0), jnp.ones(input_shape))
    back = jax_lstm.from_torch(jax_lstm.to_torch(variables))
    assert jax.tree.structure(back) == jax.tree.structure(variables)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(variables), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_jax_initialised_weights_load_into_torch_and_agree():
    model = jax_lstm.BNLSTMClassifier(9, 2, 4)
    x = np.random.default_rng(0).standard_normal((3, 6, 5)).astype(np.float32)
    variables = model.init(jax.random.key(0), x)
    torch_model = BN_LSTM(5, 9, 2, 4).eval()
    torch_model.load_state_dict(jax_lstm.to_torch(variables), strict=True)
    np.testing.assert_allclose(
        np.asarray(model.apply(variables, x)),
        torch_model(torch.from_numpy(x)).detach().numpy(),
        atol=5e-6,
    )


def test_shape_mismatch_names_key_expected_and_actual_shape():
    state = torch.nn.LSTM(5, 8, num_layers=2).state_dict()
    state["weight_hh_l1"] = torch.zeros(32, 7)
    with pytest.raises(ValueError, match=r"weight_hh_l1: expected shape \(32, 8\), got \(32, 7\)"):
        jax_lstm.from_torch(state)

    state = MultiDimLSTM(5, 8, 1, 3).state_dict()
    state["fc.weight"] = torch.zeros(3, 9)
    with pytest.raises(ValueError, match=r"fc.weight: expected shape \(3, 8\), got \(3, 9\)"):
        jax_lstm.from_torch(state)

    state = _trained_bn_lstm().state_dict()
    state["bn.running_var"] = torch.ones(4)
    with pytest.raises(ValueError, match=r"bn.running_var: expected shape \(5,\), got \(4,\)"):
        jax_lstm.from_torch(state)


def test_key_mismatch_names_the_key():
    state = torch.nn.LSTM(5, 8).state_dict()
    del state["bias_hh_l0"]
    with pytest.raises(KeyError, match=r"missing bias_hh_l0 \(32,\)"):
        jax_lstm.from_torch(state)

    state = MultiDimLSTM(5, 8, 1, 3).state_dict()
    state["head.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match=r"unexpected key 'head\.weight'"):
        jax_lstm.from_torch(state)

    state = _trained_bn_lstm().state_dict()
    del state["bn.num_batches_tracked"]
    with pytest.raises(KeyError, match=r"bn\.num_batches_tracked"):
        jax_lstm.from_torch(state)

    with pytest.raises(KeyError, match=r"not an nn\.LSTM parameter set: missing weight_ih_l0"):
        jax_lstm.from_torch({"weight": torch.zeros(3)})


def test_to_torch_checks_shapes_too():
    variables = jax_lstm.from_torch(torch.nn.LSTM(5, 8, num_layers=2).state_dict())
    variables["params"]["bias_ih_l1"] = jnp.zeros(31)
    with pytest.raises(ValueError, match=r"bias_ih_l1: expected shape \(32,\), got \(31,\)"):
        jax_lstm.to_torch(variables)
    with pytest.raises(KeyError, match="'params'"):
        jax_lstm.to_torch({"weights": {}})


def test_float64_weights_without_x64_are_refused_not_silently_cast():
    state = torch.nn.LSTM(3, 4).double().state_dict()
    with pytest.raises(TypeError, match="jax_enable_x64"):
        jax_lstm.from_torch(state)


def test_module_refuses_variables_of_another_architecture():
    variables = jax_lstm.from_torch(torch.nn.LSTM(5, 8, num_layers=2).state_dict())
    x = jnp.ones((3, 2, 5))
    with pytest.raises(KeyError, match="unexpected weight_ih_l1"):
        jax_lstm.LSTM(8, num_layers=1).apply(variables, x)
    with pytest.raises(ValueError, match=r"weight_ih_l0: expected shape \(64, 5\), got \(32, 5\)"):
        jax_lstm.LSTM(16, num_layers=2).apply(variables, x)
    with pytest.raises(KeyError, match="missing weight_ih_l0_reverse"):
        jax_lstm.LSTM(8, num_layers=2, bidirectional=True).apply(variables, x)


def test_loaded_weights_are_used_as_is():
    """from_torch copies values without transposing or re-initialising anything."""
    module = torch.nn.LSTM(3, 4, proj_size=2)
    variables = jax_lstm.from_torch(module.state_dict())
    for name, tensor in module.state_dict().items():
        np.testing.assert_array_equal(np.asarray(variables["params"][name]), tensor.numpy())
