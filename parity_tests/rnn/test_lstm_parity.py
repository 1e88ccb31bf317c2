"""nn.LSTM against torch: identical weights, same outputs and gradients (the models:
parity_tests/models/test_model_parity.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_lstm
from jax_lstm.testing import TOLERANCES, assert_all_close
from torch_ref.cases import LSTM_CASES, LSTMCase
from torch_ref.parity import lstm_parity


@pytest.mark.parametrize("implementation", ["fused", "scan"])
@pytest.mark.parametrize("case", LSTM_CASES, ids=lambda c: c.name)
def test_lstm_matches_torch(case: LSTMCase, dtype: str, implementation: str):
    """Both recurrences against torch: "fused" (the default: inference loop, hand-written backward)
    and "scan" (the reference). Outputs come from the inference path, gradients from the backward."""
    pairs = lstm_parity(case, dtype, implementation=implementation)
    # Every torch parameter has its gradient compared, plus the input's (and the states' if given).
    num_params = len(jax_lstm.rnn.spec.param_shapes(_spec(case)))
    assert sum(name.startswith("grad/") for name in pairs) == (
        num_params + 1 + (2 if case.initial_state else 0)
    )
    for name, (actual, _) in pairs.items():
        assert actual.dtype == np.dtype(dtype), f"{name} came out as {actual.dtype}"
    assert_all_close(pairs, TOLERANCES[dtype])


def _spec(case: LSTMCase) -> jax_lstm.LSTMSpec:
    return jax_lstm.LSTMSpec(
        case.input_size,
        case.hidden_size,
        case.num_layers,
        case.bias,
        case.bidirectional,
        case.proj_size,
    )


def test_dropout_one_zeroes_every_layer_output_but_the_last_as_torch_does(dtype: str):
    """p=1 in train mode is deterministic on both sides, so torch can be matched exactly: layers 1
    and 2 see an all-zero input, the last layer's output and every h_n/c_n are left alone."""
    torch.manual_seed(3)
    tdtype = getattr(torch, dtype)
    module = torch.nn.LSTM(4, 6, num_layers=3, dropout=1.0).to(tdtype).train()
    x = np.random.default_rng(0).standard_normal((5, 2, 4)).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    tout, (th, tc) = module(tx)
    (tout.sum() + th.sum() + tc.sum()).backward()

    variables = jax_lstm.from_torch(module.state_dict())
    layer = jax_lstm.LSTM(6, num_layers=3, dropout=1.0)
    rngs = {"dropout": jax.random.key(0)}

    def loss(params, xs):
        out, (h, c) = layer.apply({"params": params}, xs, deterministic=False, rngs=rngs)
        return jnp.sum(out) + jnp.sum(h) + jnp.sum(c), (out, h, c)

    (_, (out, h, c)), (gparams, gx) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        variables["params"], jnp.asarray(x)
    )
    # The last layer's output is never dropped: its input is all zeros, its biases still act.
    assert np.count_nonzero(np.asarray(out)) == out.size
    pairs = {
        "output": (np.asarray(out), tout.detach().numpy()),
        "h_n": (np.asarray(h), th.detach().numpy()),
        "c_n": (np.asarray(c), tc.detach().numpy()),
        "grad/input": (np.asarray(gx), tx.grad.numpy()),
    }
    for name, param in module.named_parameters():
        pairs[f"grad/{name}"] = (np.asarray(gparams[name]), param.grad.numpy())
    assert_all_close(pairs, TOLERANCES[dtype])
    # And it differs from eval mode, where no dropout is applied.
    eval_out, _ = layer.apply(variables, jnp.asarray(x))
    assert not np.allclose(np.asarray(eval_out), np.asarray(out))


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_dropout_keeps_and_scales_as_torch_does(dtype: str, rate: float):
    """The values of inter-layer dropout, which p=1 cannot show: every element is 0 or exactly
    torch's kept value 1/(1-p) (torch.nn.functional.dropout, as nn.LSTM applies it), and about a
    fraction p is dropped."""
    ones = np.ones(20000, dtype)
    ours = np.asarray(jax_lstm.functional.dropout(jnp.asarray(ones), rate, jax.random.key(0)))
    theirs = torch.nn.functional.dropout(torch.tensor(ones), rate, training=True).numpy()
    assert ours.dtype == theirs.dtype == np.dtype(dtype)
    kept_torch = np.unique(theirs[theirs != 0])
    assert kept_torch.size == 1
    np.testing.assert_array_equal(np.unique(ours), [0.0, kept_torch[0]])
    # 20000 draws: the dropped fraction is within 0.02 of p (over 5 standard deviations).
    assert abs(np.mean(ours == 0) - rate) < 0.02


def test_dropout_sits_between_layers_only():
    """p=0.5: train mode draws from the 'dropout' stream; layer 0's states and the last layer's
    output are never dropped; eval mode and a single layer apply no dropout at all."""
    x = jax.random.normal(jax.random.key(1), (7, 16, 3))
    layer = jax_lstm.LSTM(8, num_layers=2, dropout=0.5)
    variables = layer.init(jax.random.key(0), x)
    eval_out, (eval_h, eval_c) = layer.apply(variables, x)

    def train(seed):
        return layer.apply(variables, x, deterministic=False, rngs={"dropout": jax.random.key(seed)})

    out_a, (h_a, c_a) = train(1)
    out_b, _ = train(1)
    out_c, _ = train(2)
    np.testing.assert_array_equal(out_a, out_b)  # same key, same mask
    assert not np.allclose(out_a, out_c)  # another key, another mask
    assert not np.allclose(out_a, eval_out)  # layer 1 saw a dropped input
    np.testing.assert_array_equal(h_a[0], eval_h[0])  # layer 0 is untouched by dropout
    np.testing.assert_array_equal(c_a[0], eval_c[0])
    assert np.count_nonzero(np.asarray(out_a)) == out_a.size  # the last layer is never dropped

    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        single = jax_lstm.LSTM(8, dropout=0.5)
        single_vars = single.init(jax.random.key(0), x)
        np.testing.assert_array_equal(
            single.apply(single_vars, x, deterministic=False, rngs={"dropout": jax.random.key(1)})[0],
            single.apply(single_vars, x)[0],
        )
