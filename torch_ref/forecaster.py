"""The PyTorch twin of `jax_lstm.forecasting.LSTMForecaster`, and the parity pairs between the two.

`forecaster_parity` builds the torch model from a seed, moves its weights with `jax_lstm.from_torch`,
and returns ``{name: (jax_value, torch_value)}`` for the forecasts, the MSE loss and its gradients
with respect to every parameter and the input (the naming of `torch_ref.parity`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn as nn

import jax_lstm
from jax_lstm.models.forecaster import LSTMForecaster as JaxForecaster

__all__ = ["LSTMForecaster", "forecaster_parity"]

_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class LSTMForecaster(nn.Module):
    """Batch-first LSTM (or GRU / tanh RNN: `cell`, under the same name) from zero state, the last
    step's output, then Linear to horizon * num_targets."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        horizon: int,
        num_targets: int,
        dropout: float = 0.0,
        cell: str = "lstm",
    ):
        super().__init__()
        self.horizon = horizon
        self.num_targets = num_targets
        layers = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
        if cell not in layers:
            raise ValueError(f"cell must be one of {tuple(layers)}, got {cell!r}")
        self.lstm = layers[cell](input_size, hidden_size, num_layers, batch_first=True, dropout=dropout)
        self.fc = nn.Linear(hidden_size, horizon * num_targets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, F) -> (B, H, T)."""
        out, _ = self.lstm(x)  # zero initial state
        return self.fc(out[:, -1, :]).view(x.size(0), self.horizon, self.num_targets)


def forecaster_parity(
    dtype: str = "float32",
    seed: int = 0,
    input_size: int = 4,
    hidden_size: int = 12,
    num_layers: int = 2,
    horizon: int = 3,
    num_targets: int = 2,
    batch: int = 6,
    lookback: int = 9,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Forecasts, MSE loss and its gradients (every parameter, the input) on both sides."""
    tdtype = _TORCH_DTYPES[dtype]
    torch.manual_seed(seed)
    module = LSTMForecaster(input_size, hidden_size, num_layers, horizon, num_targets).to(tdtype)
    module.eval()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, lookback, input_size)).astype(dtype)
    y = rng.standard_normal((batch, horizon, num_targets)).astype(dtype)

    tx = torch.tensor(x, requires_grad=True)
    tforecast = module(tx)
    tloss = nn.functional.mse_loss(tforecast, torch.tensor(y))
    tloss.backward()

    variables = jax_lstm.from_torch(module.state_dict())
    model = JaxForecaster(hidden_size, num_layers, horizon, num_targets, param_dtype=jnp.dtype(dtype))

    def loss_fn(params, xs):
        forecast = model.apply({"params": params}, xs)
        return jnp.mean(jnp.square(forecast - y)), forecast

    (jloss, jforecast), (gparams, gx) = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True))(
        variables["params"], jnp.asarray(x)
    )
    pairs = {
        "forecast": (np.asarray(jforecast), tforecast.detach().numpy()),
        "loss": (np.asarray(jloss), tloss.detach().numpy()),
    }
    grads = jax_lstm.interop.flatten_variables({"params": gparams})
    for name, param in module.named_parameters():
        pairs[f"grad/{name}"] = (np.asarray(grads[name]), param.grad.numpy())
    pairs["grad/input"] = (np.asarray(gx), tx.grad.numpy())
    return pairs
