"""`LSTMForecaster` against its torch twin: forecasts, gradients, and a lockstep training run."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import jax_lstm
from jax_lstm.data import batch_order
from jax_lstm.forecasting import LSTMForecaster, Table, prepare
from jax_lstm.testing import TOLERANCES, assert_all_close
from torch_ref.cases import ModelCase
from torch_ref.forecaster import LSTMForecaster as TorchForecaster
from torch_ref.parity import model_parity


@pytest.mark.parametrize(
    "case",
    [
        ModelCase("two_layers", "lstm-forecaster", hidden_size=12, num_layers=2, output_shape=(3, 2)),
        ModelCase(
            "univariate_one_step",
            "lstm-forecaster",
            hidden_size=12,
            num_layers=1,
            output_shape=(1, 1),
            input_size=1,
            seq_len=1,
            batch=1,
        ),
        ModelCase("gru", "lstm-forecaster", hidden_size=7, cell="gru", output_shape=(2, 3), seq_len=4),
    ],
    ids=lambda c: c.name,
)
def test_forecasts_and_gradients_match_torch(dtype, case):
    case = dataclasses.replace(case, num_outputs=int(np.prod(case.output_shape)))
    pairs = model_parity(case, dtype, seed=3)
    assert {"forecast", "loss", "grad/input", "grad/fc.weight", "grad/lstm.weight_hh_l0"} <= set(pairs)
    assert len([k for k in pairs if k.startswith("grad/")]) == 4 * case.num_layers + 2 + 1
    batch, (horizon, targets) = case.batch, case.output_shape
    assert pairs["forecast"][0].shape == (batch, horizon, targets)
    assert pairs["forecast"][0].dtype == np.dtype(dtype)
    assert np.abs(pairs["grad/input"][1]).max() > 0  # a real gradient, not a vacuous comparison
    assert_all_close(pairs, TOLERANCES[dtype])


def test_parameter_tree_has_torch_names_and_layouts():
    model = LSTMForecaster(hidden_size=8, num_layers=2, horizon=3, num_targets=2)
    x = np.random.default_rng(0).standard_normal((3, 5, 4)).astype(np.float32)
    variables = jax.jit(model.init)(jax.random.key(0), x)
    shapes = jax.tree.map(jnp.shape, variables["params"])
    assert shapes["fc"] == {"weight": (6, 8), "bias": (6,)}
    assert shapes["lstm"]["weight_ih_l0"] == (32, 4) and shapes["lstm"]["weight_hh_l1"] == (32, 8)
    torch_model = TorchForecaster(4, 8, 2, 3, 2)
    torch_model.load_state_dict(jax_lstm.to_torch(variables), strict=True)
    # fc bound 1/sqrt(hidden), as torch's nn.Linear
    assert float(jnp.abs(variables["params"]["fc"]["weight"]).max()) <= 1 / np.sqrt(8)
    ours = np.asarray(jax.jit(model.apply)(variables, x))
    theirs = torch_model(torch.tensor(x)).detach().numpy()
    assert ours.shape == (3, 3, 2)
    assert_all_close({"forecast": (ours, theirs)}, TOLERANCES["float32"])


def test_bad_configuration_and_input():
    with pytest.raises(ValueError, match="horizon must be a positive integer, got 0"):
        LSTMForecaster(8, 1, horizon=0, num_targets=1)
    with pytest.raises(ValueError, match="num_targets must be a positive integer"):
        LSTMForecaster(8, 1, horizon=2, num_targets=-1)
    model = LSTMForecaster(8, 1, horizon=2, num_targets=1)
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, seq_len, features\).*x\[None\]"):
        model.init(jax.random.key(0), jnp.zeros((5, 4)))


def test_lockstep_training_float64(x64):
    """A few epochs of Adam on MSE from the same weights and batches: the losses agree to 1e-10."""
    rng = np.random.default_rng(0)
    values = np.cumsum(rng.standard_normal((90, 3)), axis=0)
    data = prepare(Table(("a", "b", "c"), values, ("a", "c")), lookback=6, horizon=2, test_size=10)
    x, y = data.train.inputs, data.train.targets  # (B, 6, 3), (B, 2, 2) float64
    epochs, batch_size, lr = 4, 16, 1e-2

    torch.manual_seed(0)
    torch_model = TorchForecaster(3, 10, 2, horizon=2, num_targets=2).double()
    variables = jax_lstm.from_torch(torch_model.state_dict())
    torch_opt = torch.optim.Adam(torch_model.parameters(), lr=lr)

    model = LSTMForecaster(10, 2, horizon=2, num_targets=2, param_dtype=jnp.float64)
    optimizer = jax_lstm.adam(lr)
    params = variables["params"]
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, xb, yb):
        def loss_fn(p):
            return jnp.mean(jnp.square(model.apply({"params": p}, xb) - yb))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    jax_losses, torch_losses = [], []
    for epoch in range(epochs):
        for idx in batch_order(len(x), batch_size, seed=0, epoch=epoch):
            params, opt_state, loss = step(params, opt_state, jnp.asarray(x[idx]), jnp.asarray(y[idx]))
            jax_losses.append(float(loss))
            torch_opt.zero_grad()
            tloss = torch.nn.functional.mse_loss(torch_model(torch.tensor(x[idx])), torch.tensor(y[idx]))
            tloss.backward()
            torch_opt.step()
            torch_losses.append(tloss.item())
    jax_losses, torch_losses = np.asarray(jax_losses), np.asarray(torch_losses)
    assert len(jax_losses) == epochs * int(np.ceil(len(x) / batch_size))
    assert jax_losses[-1] < 0.8 * jax_losses[0]  # it trained
    np.testing.assert_allclose(jax_losses, torch_losses, rtol=1e-10, atol=0)
    final = jax_lstm.interop.flatten_variables({"params": params})
    for name, tensor in torch_model.state_dict().items():
        np.testing.assert_allclose(
            np.asarray(final[name]), tensor.numpy(), rtol=1e-10, atol=1e-12, err_msg=name
        )
