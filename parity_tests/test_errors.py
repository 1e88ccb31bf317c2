"""Bad input gets a clear error before any work starts, in torch's wording where torch has one.

Each case runs the same mistake through torch and through jax_lstm and checks that both refuse it
with the same key phrase, so our messages stay recognisable to people coming from torch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_lstm
from jax_lstm import functional
from jax_lstm.data import Dims


def _jax_lstm(x, state=None, **kwargs):
    layer = jax_lstm.LSTM(4, num_layers=2, **kwargs)
    variables = layer.init(jax.random.key(0), jnp.ones((3, 2, 3)))
    return layer.apply(variables, x, state)


def _torch_lstm(x, state=None, **kwargs):
    layer = torch.nn.LSTM(3, 4, num_layers=2, **kwargs)
    return layer(torch.as_tensor(x), state and tuple(torch.as_tensor(s) for s in state))


ZEROS = np.zeros
CALL_CASES = {
    # name: (input, initial state, constructor kwargs, phrase both libraries use)
    "4d_input": (ZEROS((2, 3, 4, 3), np.float32), None, {}, "Expected input to be 2D or 3D, got 4D"),
    "1d_input": (ZEROS((3,), np.float32), None, {}, "Expected input to be 2D or 3D, got 1D"),
    "wrong_feature_count": (
        ZEROS((3, 2, 5), np.float32),
        None,
        {},
        "input.size(-1) must be equal to input_size. Expected 3, got 5",
    ),
    "h0_wrong_batch": (
        ZEROS((3, 2, 3), np.float32),
        (ZEROS((2, 3, 4), np.float32), ZEROS((2, 2, 4), np.float32)),
        {},
        r"Expected hidden[0] size (2, 2, 4), got [2, 3, 4]",
    ),
    "c0_wrong_size": (
        ZEROS((3, 2, 3), np.float32),
        (ZEROS((2, 2, 4), np.float32), ZEROS((2, 2, 5), np.float32)),
        {},
        r"Expected hidden[1] size (2, 2, 4), got [2, 2, 5]",
    ),
    "h0_for_batch_first": (
        ZEROS((2, 3, 3), np.float32),
        (ZEROS((2, 3, 4), np.float32), ZEROS((2, 3, 4), np.float32)),
        {"batch_first": True},
        r"Expected hidden[0] size (2, 2, 4), got [2, 3, 4]",
    ),
    "zero_length": (
        ZEROS((0, 2, 3), np.float32),
        None,
        {},
        "Expected sequence length to be larger than 0 in RNN",
    ),
}


@pytest.mark.parametrize("name", CALL_CASES)
def test_bad_call_is_refused_like_torch(name):
    x, state, kwargs, phrase = CALL_CASES[name]
    with pytest.raises((ValueError, RuntimeError)) as torch_error:
        _torch_lstm(x, state, **kwargs)
    assert phrase in str(torch_error.value), f"torch now says: {torch_error.value}"
    with pytest.raises(ValueError) as ours:
        _jax_lstm(x, state, **kwargs)
    assert phrase in str(ours.value)


def test_zero_length_batch_first_and_unbatched():
    for x, kwargs in ((ZEROS((2, 0, 3), np.float32), {"batch_first": True}), (ZEROS((0, 3), np.float32), {})):
        with pytest.raises(ValueError, match="Expected sequence length to be larger than 0"):
            _jax_lstm(x, **kwargs)


def test_unbatched_state_shapes_are_checked():
    x = ZEROS((5, 3), np.float32)
    with pytest.raises(ValueError, match=r"Expected hidden\[0\] size \(2, 4\), got \[2, 1, 4\]"):
        _jax_lstm(x, (ZEROS((2, 1, 4), np.float32), ZEROS((2, 4), np.float32)))


def test_integer_input_is_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"floating-point input, got dtype int32.*astype"):
        _jax_lstm(np.zeros((3, 2, 3), np.int32))
    with pytest.raises(TypeError, match="hidden\\[0\\] must be floating-point"):
        _jax_lstm(ZEROS((3, 2, 3), np.float32), (ZEROS((2, 2, 4), np.int32), ZEROS((2, 2, 4), np.float32)))


CONFIG_CASES = {
    "proj_equal_hidden": ({"proj_size": 4}, "proj_size has to be smaller than hidden_size"),
    "proj_negative": ({"proj_size": -1}, "proj_size should be a positive integer or zero"),
    "dropout_above_1": ({"dropout": 1.5}, "dropout should be a number in range [0, 1]"),
    "dropout_negative": ({"dropout": -0.1}, "dropout should be a number in range [0, 1]"),
    "dropout_bool": ({"dropout": True}, "dropout should be a number in range [0, 1]"),
    "zero_layers": ({"num_layers": 0}, "num_layers must be greater than zero"),
    "bias_not_bool": ({"bias": 1}, "bias should be of type bool"),
    "batch_first_not_bool": ({"batch_first": "yes"}, "batch_first should be of type bool"),
    "hidden_size_float": ({"hidden_size": 4.0}, "hidden_size should be of type int"),
    "hidden_size_zero": ({"hidden_size": 0}, "hidden_size must be greater than zero"),
}


@pytest.mark.parametrize("name", CONFIG_CASES)
def test_bad_constructor_argument_is_refused_like_torch(name):
    kwargs, phrase = CONFIG_CASES[name]
    torch_kwargs = {"hidden_size": 4, "num_layers": 2, **kwargs}
    with pytest.raises((ValueError, TypeError)) as torch_error:
        torch.nn.LSTM(3, **torch_kwargs)
    assert phrase in str(torch_error.value), f"torch now says: {torch_error.value}"
    with pytest.raises((ValueError, TypeError)) as ours:
        jax_lstm.LSTM(**torch_kwargs)
    assert phrase in str(ours.value)
    assert type(ours.value) is type(torch_error.value)


def test_a_non_bool_bidirectional_is_refused_where_torch_fails_only_in_forward():
    module = torch.nn.LSTM(3, 4, bidirectional=1)  # torch builds it...
    with pytest.raises(TypeError, match="invalid combination of arguments"):
        module(torch.zeros(5, 2, 3))  # ...and fails when it runs
    with pytest.raises(TypeError, match="bidirectional should be of type bool, got: int"):
        jax_lstm.LSTM(4, bidirectional=1)


def test_errors_are_raised_at_trace_time_under_jit():
    """Shapes are static, so the checks run while tracing: the user sees our error, no XLA trace."""
    layer = jax_lstm.LSTM(4)
    variables = layer.init(jax.random.key(0), jnp.ones((3, 2, 3)))
    with pytest.raises(ValueError, match="Expected 3, got 5"):
        jax.jit(layer.apply)(variables, jnp.ones((3, 2, 5)))


def test_functional_api_checks_too():
    params = jax_lstm.from_torch(torch.nn.LSTM(3, 4).state_dict())["params"]
    with pytest.raises(ValueError, match="Expected 3, got 2"):
        functional.lstm(params, jnp.ones((5, 2)))
    with pytest.raises(TypeError, match=r"initial_state must be a pair \(h_0, c_0\)"):
        functional.lstm(params, jnp.ones((5, 3)), jnp.zeros((1, 4)))


def test_classifier_wants_a_batch_axis():
    model = jax_lstm.LSTMClassifier(8, 1, 2)
    with pytest.raises(ValueError, match=r"\(batch, seq_len, features\), got shape \(20, 5\).*x\[None\]"):
        model.init(jax.random.key(0), jnp.ones((20, 5)))


def test_classifier_feature_count_against_its_parameters():
    model = jax_lstm.BNLSTMClassifier(8, 1, 2)
    variables = model.init(jax.random.key(0), jnp.ones((2, 4, 5)))
    with pytest.raises(ValueError, match="BatchNorm1d: expected 5 features"):
        model.apply(variables, jnp.ones((2, 4, 3)))
    plain = jax_lstm.LSTMClassifier(8, 1, 2)
    variables = plain.init(jax.random.key(0), jnp.ones((2, 4, 5)))
    with pytest.raises(ValueError, match="Expected 5, got 3"):
        plain.apply(variables, jnp.ones((2, 4, 3)))


def test_batchnorm_needs_more_than_one_value_per_channel_in_training():
    torch_bn = torch.nn.BatchNorm1d(5).train()
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        torch_bn(torch.zeros(1, 5))
    model = jax_lstm.BNLSTMClassifier(8, 1, 2)
    variables = model.init(jax.random.key(0), jnp.ones((1, 1, 5)))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        model.apply(variables, jnp.ones((1, 1, 5)), train=True, mutable=["batch_stats"])


def test_apply_without_parameters_says_what_to_pass():
    with pytest.raises(KeyError, match=r"init\(\) or jax_lstm.from_torch\(\)"):
        jax_lstm.LSTM(4).apply({"params": {}}, jnp.ones((3, 2, 3)))


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_train_config_refuses_a_seed_numpy_cannot_take(seed):
    """Refused by `validate`, before `fit` builds anything (numpy's own error came from deep inside)."""
    from jax_lstm import data, training

    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\)"):
        training.TrainConfig(seed=seed).validate()
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\)"):
        training.fit(training.TrainConfig(seed=seed, epochs=1), data.synthetic(num_samples=8), log=None)


def test_the_largest_seed_gives_a_train_state():
    from jax_lstm import training

    config = training.TrainConfig(seed=2**64 - 1, hidden_size=4, num_layers=1).validate()
    key = training.create_train_state(config, Dims(3, 2)).key
    np.testing.assert_array_equal(np.asarray(key), [2**32 - 1, 2**32 - 1])
