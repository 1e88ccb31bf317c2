"""`jax_lstm.LSTM`: a Flax linen shell over `jax_lstm.rnn.stack.lstm`, constructed like `torch.nn.LSTM`."""

from __future__ import annotations

import math
import warnings
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_lstm.nn.init import torch_uniform
from jax_lstm.rnn import cudnn, stack
from jax_lstm.rnn.checks import check_rank_and_dtype
from jax_lstm.rnn.spec import LSTMSpec, check_config, check_params, param_shapes

__all__ = ["LSTM"]


class LSTM(nn.Module):
    """A multi-layer LSTM with `torch.nn.LSTM`'s constructor, parameters, shapes and numerics.

    The input size is inferred from the input at `init`. Parameters carry torch's names and layouts
    (``weight_ih_l0`` (4H, in), ``weight_hh_l0`` (4H, H_out), ``bias_ih_l0``, ``bias_hh_l0``,
    ``weight_hr_l0`` (proj, H), ``_reverse`` for the reverse direction), both biases kept, gates in
    the order i, f, g, o, every tensor initialised U(-1/sqrt(H), 1/sqrt(H)) as torch does.

    Call::

        output, (h_n, c_n) = LSTM(64).apply(variables, x, initial_state=None, deterministic=True)

    with x (T, B, I), (B, T, I) when ``batch_first``, or unbatched (T, I); see
    `jax_lstm.functional.lstm` for every shape. Inter-layer dropout is applied when
    ``deterministic=False`` (torch's train mode) and draws from the ``"dropout"`` RNG stream.
    """

    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    proj_size: int = 0
    param_dtype: Any = jnp.float32
    # "fused" (everywhere), "scan" (the reference recurrence: same function, slower) or "cudnn"
    # (cuDNN's fused LSTM on a CUDA GPU; float32, no projections): see `functional.lstm`.
    implementation: str = "fused"

    def __post_init__(self) -> None:
        check_config(
            self.hidden_size,
            self.num_layers,
            self.dropout,
            self.proj_size,
            self.bias,
            self.batch_first,
            self.bidirectional,
        )
        if self.implementation not in stack.IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {stack.IMPLEMENTATIONS}, got {self.implementation!r}"
            )
        if self.implementation == "cudnn":
            cudnn.check_projection(self.proj_size)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                f"expects num_layers greater than 1, but got dropout={self.dropout} and "
                f"num_layers={self.num_layers}",
                stacklevel=2,
            )
        super().__post_init__()

    def spec(self, input_size: int) -> LSTMSpec:
        return LSTMSpec(
            input_size=input_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bias=self.bias,
            bidirectional=self.bidirectional,
            proj_size=self.proj_size,
        )

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        initial_state: tuple[jax.Array, jax.Array] | None = None,
        deterministic: bool = True,
        lengths: jax.Array | None = None,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """Runs the LSTM.

        Args:
          x: (T, B, I), (B, T, I) with ``batch_first=True``, or unbatched (T, I).
          initial_state: optional ``(h_0, c_0)``, (L*D, B, H_out) and (L*D, B, H) (2-D if unbatched).
          deterministic: False is torch's train mode (inter-layer dropout on).
          lengths: optional (B,) valid lengths of right-padded sequences (PackedSequence semantics).

        Returns:
          ``output, (h_n, c_n)`` with torch's shapes.
        """
        x = check_rank_and_dtype(x)
        if self.has_variable("params", "weight_ih_l0"):
            # Parameters already exist (apply): they must fit this module's configuration (the
            # input is checked against them in functional.lstm, with torch's wording).
            input_size = int(self.get_variable("params", "weight_ih_l0").shape[-1])
            spec = self.spec(input_size)
            check_params(self.variables["params"], spec)
        else:
            if not self.is_initializing():
                raise KeyError(
                    "LSTM parameters not found: pass the variables returned by init() or "
                    "jax_lstm.from_torch() to apply()"
                )
            if x.shape[-1] == 0:
                raise ValueError(
                    f"input_size must be greater than zero: the input has 0 features (shape "
                    f"{tuple(x.shape)}); the LSTM needs at least one input feature"
                )
            spec = self.spec(int(x.shape[-1]))
            # The sample input only gives shapes: init with jnp.ones(...) (float64 under x64) must
            # not trip apply's check that the input dtype matches the weights'.
            x = x.astype(self.param_dtype)
        init = torch_uniform(1.0 / math.sqrt(self.hidden_size))
        params = {
            name: self.param(name, init, shape, self.param_dtype)
            for name, shape in param_shapes(spec).items()
        }
        dropout_key = None
        if not deterministic and self.dropout > 0 and self.num_layers > 1:
            dropout_key = self.make_rng("dropout")
        return stack.lstm(
            params,
            x,
            initial_state,
            batch_first=self.batch_first,
            dropout_rate=self.dropout,
            dropout_key=dropout_key,
            lengths=lengths,
            implementation=self.implementation,
        )
