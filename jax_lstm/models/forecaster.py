"""`LSTMForecaster`: a batch-first LSTM from zero state, its last step, a linear layer to H x T values.

The torch twin is `torch_ref.forecaster.LSTMForecaster`; the parameter trees correspond one to one
(``{"lstm": {torch's LSTM names}, "fc": {"weight", "bias"}}``), so `jax_lstm.from_torch` and
`jax_lstm.to_torch` move weights between them. Registered as ``"lstm-forecaster"`` (task
``"forecasting"``) in `jax_lstm.models.registry`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_lstm.models.classifiers import check_batch
from jax_lstm.nn import Linear
from jax_lstm.rnn.layer import LSTM

__all__ = ["LSTMForecaster"]


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
        out, _ = LSTM(
            self.hidden_size,
            self.num_layers,
            batch_first=True,
            dropout=self.dropout,
            param_dtype=self.param_dtype,
            implementation=self.implementation,
            name="lstm",
        )(x, deterministic=not train)
        flat = Linear(self.horizon * self.num_targets, param_dtype=self.param_dtype, name="fc")(out[:, -1, :])
        return flat.reshape(x.shape[0], self.horizon, self.num_targets)
