"""`LSTMForecaster`: a batch-first LSTM from zero state, its last step, a linear layer to H x T values.

The torch twin is `torch_ref.forecaster.LSTMForecaster`; the parameter trees correspond one to one
(``{"lstm": {torch's LSTM names}, "fc": {"weight", "bias"}}``), so `jax_lstm.from_torch` and
`jax_lstm.to_torch` move weights between them. ``cell`` ("lstm", "gru" or "rnn") puts another member
of the family in the LSTM's place, under the same name, as the article's classifiers do. Registered
as ``"lstm-forecaster"`` (task ``"forecasting"``; `FORECASTER_ENTRY`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_lstm.data.dims import Dims
from jax_lstm.models.classifiers import LSTM_ENTRY, check_batch
from jax_lstm.models.registry import RECURRENT_OPTIONS
from jax_lstm.nn import Linear
from jax_lstm.rnn.layer import model_layer

__all__ = ["FORECASTER_ENTRY", "LSTMForecaster"]


class LSTMForecaster(nn.Module):
    """Direct multi-step forecaster: (B, L, F) scaled inputs -> (B, H, T) scaled forecasts.

    All H steps come out of one linear layer on the last hidden output (no feeding back of
    forecasts). Called as ``model.apply(variables, x, train=False)``; with ``train=True`` and
    ``dropout > 0`` (and ``num_layers > 1``), inter-layer dropout draws from the ``"dropout"`` RNG.
    """

    hidden_size: int
    num_layers: int
    horizon: int
    num_targets: int
    dropout: float = 0.0
    param_dtype: Any = jnp.float32
    implementation: str = "fused"  # the LSTM's recurrence: "fused", "scan" or "cudnn" (see LSTM)
    cell: str = "lstm"  # the recurrent layer: "lstm", "gru" or "rnn"

    def __post_init__(self) -> None:
        for name in ("horizon", "num_targets"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, lengths: jax.Array | None = None) -> jax.Array:
        """(B, L, F) -> (B, H, T). Every window spans all L steps: `lengths` (the training loop's
        argument for padded series) must be None."""
        x = check_batch(x, type(self).__name__)
        if lengths is not None:
            raise ValueError(
                f"{type(self).__name__} takes full-length windows (B, L, F); it has no lengths "
                "(cut windows of equal length with jax_lstm.forecasting.prepare)"
            )
        layer = model_layer(self)
        out, _ = layer(x, deterministic=not train)
        flat = Linear(self.horizon * self.num_targets, param_dtype=self.param_dtype, name="fc")(out[:, -1, :])
        return flat.reshape(x.shape[0], self.horizon, self.num_targets)


def forecast_shape(dims: Dims) -> tuple[int, int]:
    """(H, T) of a forecaster's dims; a bare width (read off a state dict) counts as H * T steps of
    one target, which has the same parameters."""
    if dims.output_shape is None:
        return dims.num_outputs, 1
    if len(dims.output_shape) != 2:
        raise ValueError(f"a forecaster's output_shape is (horizon, targets), got {dims.output_shape}")
    return dims.output_shape[0], dims.output_shape[1]


def _dims_args(dims: Dims) -> dict[str, Any]:
    horizon, targets = forecast_shape(dims)
    return {"horizon": horizon, "num_targets": targets}


# The article's model (its layout, state dict and options) with a head of H x T values.
FORECASTER_ENTRY = dataclasses.replace(
    LSTM_ENTRY,
    name="lstm-forecaster",
    flax_class=LSTMForecaster,
    torch_twin="torch_ref.forecaster:LSTMForecaster",
    summary="direct multi-step forecaster: LSTM, last step, Linear to horizon x targets",
    dims_args=_dims_args,
    task="forecasting",
    options=RECURRENT_OPTIONS,  # the article's, but no patches
    # Small and short: about 640 optimizer steps (20 to 200 epochs), so that the default `jax-lstm
    # forecast` (Seattle weather) trains in well under a minute on two cores including compilation
    # (benchmarks/results/forecast.json has the times).
    recipe={"hidden_size": 32, "num_layers": 1, "target_steps": 640, "min_epochs": 20, "max_epochs": 200},
)
