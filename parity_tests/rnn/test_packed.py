"""Variable-length sequences: padding never leaks, and full lengths equal the unpacked path.

(Parity with torch's packed path is in test_lstm_parity.py: the `packed*` cases.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_lstm

LENGTHS = np.array([5, 1, 8, 3], np.int32)
T = 8


def _batch(pad_value: float, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((4, T, 3)).astype(np.float32)
    padding = np.arange(T)[None, :, None] >= LENGTHS[:, None, None]
    return np.where(padding, pad_value, x).astype(np.float32)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_changes_nothing_in_the_layer(bidirectional):
    layer = jax_lstm.LSTM(6, num_layers=2, bidirectional=bidirectional, batch_first=True, proj_size=4)
    variables = layer.init(jax.random.key(0), jnp.ones((1, T, 3)))

    def loss(params, x):
        out, (h, c) = layer.apply({"params": params}, x, lengths=LENGTHS)
        return jnp.sum(out**2) + jnp.sum(h) + jnp.sum(c**3), (out, h, c)

    results = []
    for pad in (0.0, 1e4, -7.0):
        (_, aux), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
            variables["params"], _batch(pad)
        )
        results.append((aux, grads))
    out = np.asarray(results[0][0][0])
    assert (out[np.arange(T)[None, :] >= LENGTHS[:, None]] == 0).all()  # padded outputs are zero
    for other in results[1:]:
        for a, b in zip(jax.tree.leaves(other), jax.tree.leaves(results[0]), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("model_cls", [jax_lstm.LSTMClassifier, jax_lstm.BNLSTMClassifier])
def test_padding_changes_nothing_in_the_classifiers_train_mode_included(model_cls):
    model = model_cls(6, 2, 3)
    variables = model.init(jax.random.key(0), jnp.ones((1, T, 3)))
    outputs = []
    for pad in (0.0, 123.0):
        logits, updates = model.apply(
            variables, _batch(pad), train=True, lengths=LENGTHS, mutable=["batch_stats"]
        )
        outputs.append((logits, updates))
    for a, b in zip(jax.tree.leaves(outputs[0]), jax.tree.leaves(outputs[1]), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_each_sequence_reads_its_own_last_step():
    """The classifier's input to the head is out[b, lengths[b] - 1]: equal to running that
    sequence alone, unpadded."""
    model = jax_lstm.LSTMClassifier(6, 2, 3)
    variables = model.init(jax.random.key(0), jnp.ones((1, T, 3)))
    x = _batch(0.0)
    batched = model.apply(variables, x, lengths=LENGTHS)
    for b, length in enumerate(LENGTHS):
        alone = model.apply(variables, x[b : b + 1, :length])
        np.testing.assert_allclose(batched[b], alone[0], rtol=1e-5, atol=1e-6)


def test_full_lengths_equal_the_unpacked_path():
    layer = jax_lstm.LSTM(5, num_layers=2, bidirectional=True)
    x = jax.random.normal(jax.random.key(1), (T, 4, 3))
    variables = layer.init(jax.random.key(0), x)
    packed = layer.apply(variables, x, lengths=np.full(4, T, np.int32))
    plain = layer.apply(variables, x)
    for a, b in zip(jax.tree.leaves(packed), jax.tree.leaves(plain), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_bad_lengths_are_refused():
    layer = jax_lstm.LSTM(5, batch_first=True)
    x = jnp.ones((4, T, 3))
    variables = layer.init(jax.random.key(0), x)
    cases = [
        (np.array([5, 0, 8, 3]), ValueError, "lengths must be at least 1.*got a length of 0"),
        (np.array([5, 9, 8, 3]), ValueError, "must not exceed the padded sequence length 8, got 9"),
        (np.array([5, 1, 8]), ValueError, r"lengths must have shape \(batch,\) = \(4,\), got \(3,\)"),
        (np.array([5.0, 1, 8, 3]), TypeError, "lengths must be integers"),
    ]
    for lengths, error, message in cases:
        with pytest.raises(error, match=message):
            layer.apply(variables, x, lengths=lengths)
    with pytest.raises(ValueError, match="lengths needs batched input"):
        layer.apply(variables, jnp.ones((T, 3)), lengths=np.array([3]))


def test_ragged_input_without_padding_says_how_to_pad():
    layer = jax_lstm.LSTM(5)
    variables = layer.init(jax.random.key(0), jnp.ones((3, 1, 3)))
    ragged = [np.ones((4, 3), np.float32), np.ones((2, 3), np.float32)]
    with pytest.raises(ValueError, match=r"ragged.*pad_series.*lengths="):
        layer.apply(variables, ragged)
