"""The Flax modules of torch's recurrent family, constructed like torch's: `LSTM`, `GRU` and `RNN`
(shells over `jax_lstm.rnn.stack.run`), and the single-step cells `LSTMCell`, `GRUCell`, `RNNCell`.

The layers share one base (`_RecurrentLayer`: constructor checks, parameter creation and checks,
dropout, the call into the generic stack); each names its cell and the form of its state. The cells
share `_RecurrentCell` likewise.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_lstm.nn.init import torch_uniform
from jax_lstm.rnn import cudnn, stack
from jax_lstm.rnn.cells import CELLS, LSTM_CELL, Cell, gru_cell, lstm_cell, rnn_cell, rnn_mode
from jax_lstm.rnn.checks import as_array, check_rank_and_dtype
from jax_lstm.rnn.spec import (
    LayerWeights,
    RNNSpec,
    cell_param_shapes,
    check_config,
    check_family,
    check_layout,
    check_params,
    param_shapes,
)

__all__ = [
    "CELL_MODES",
    "DEFAULT_CELL",
    "GRU",
    "LSTM",
    "RNN",
    "GRUCell",
    "LSTMCell",
    "RNNCell",
    "check_cell",
    "describe_cell",
    "make_layer",
    "model_layer",
]


class _RecurrentLayer(nn.Module):
    """What `LSTM`, `GRU` and `RNN` share: torch's `RNNBase` arguments and the call into the stack.

    Subclasses say which cell they run (`_cell`) and add their own fields (``proj_size``,
    ``nonlinearity``, ``param_dtype``, ``implementation``).
    """

    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False

    def _cell(self) -> Cell:
        raise NotImplementedError

    @property
    def _proj_size(self) -> int:
        return getattr(self, "proj_size", 0)

    @property
    def _implementation(self) -> str:
        return getattr(self, "implementation", "scan")

    def __post_init__(self) -> None:
        check_config(
            self.hidden_size,
            self.num_layers,
            self.dropout,
            self._proj_size,
            self.bias,
            self.batch_first,
            self.bidirectional,
        )
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                f"expects num_layers greater than 1, but got dropout={self.dropout} and "
                f"num_layers={self.num_layers}",
                stacklevel=3,
            )
        super().__post_init__()

    def spec(self, input_size: int) -> RNNSpec:
        return RNNSpec(
            input_size=input_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bias=self.bias,
            bidirectional=self.bidirectional,
            proj_size=self._proj_size,
            mode=self._cell().mode,
        )

    def _params(self, x: jax.Array) -> dict[str, jax.Array]:
        """torch-named parameters: made at `init` (U(-1/sqrt(H), 1/sqrt(H)), torch's), checked at `apply`."""
        name = type(self).__name__
        if self.has_variable("params", "weight_ih_l0"):
            # Parameters already exist (apply): they must be this family member's and fit this
            # module's configuration (the input is checked against them in the stack, with torch's
            # wording).
            check_family(self.variables["params"], self._cell().mode, cls=name)
            input_size = int(self.get_variable("params", "weight_ih_l0").shape[-1])
            spec = self.spec(input_size)
            check_params(self.variables["params"], spec)
        else:
            if not self.is_initializing():
                raise KeyError(
                    f"{name} parameters not found: pass the variables returned by init() or "
                    "jax_lstm.from_torch() to apply()"
                )
            if x.shape[-1] == 0:
                raise ValueError(
                    f"input_size must be greater than zero: the input has 0 features (shape "
                    f"{tuple(x.shape)}); the {name} needs at least one input feature"
                )
            spec = self.spec(int(x.shape[-1]))
        init = torch_uniform(1.0 / math.sqrt(self.hidden_size))
        return {
            key: self.param(key, init, shape, self.param_dtype) for key, shape in param_shapes(spec).items()
        }

    def _run(
        self, x: jax.Array, initial_state: tuple[jax.Array, ...] | None, deterministic: bool, lengths: Any
    ) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        x = check_rank_and_dtype(x, type(self).__name__)
        params = self._params(x)
        if self.is_initializing():
            # The sample input only gives shapes: init with jnp.ones(...) (float64 under x64) must
            # not trip the stack's check that the input dtype matches the weights'.
            x = x.astype(self.param_dtype)
        dropout_key = None
        if not deterministic and self.dropout > 0 and self.num_layers > 1:
            dropout_key = self.make_rng("dropout")
        return stack.run(
            self._cell(),
            params,
            x,
            initial_state,
            batch_first=self.batch_first,
            dropout_rate=self.dropout,
            dropout_key=dropout_key,
            lengths=lengths,
            implementation=self._implementation,
        )


class _SingleStateLayer(_RecurrentLayer):
    """`GRU` and `RNN`: the state is h_n alone, passed and returned as one array."""

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        initial_state: jax.Array | None = None,
        deterministic: bool = True,
        lengths: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array]:
        """Runs the layer.

        Args:
          x: (T, B, I), (B, T, I) with ``batch_first=True``, or unbatched (T, I).
          initial_state: optional h_0, (L*D, B, H), or (L*D, H) for unbatched input.
          deterministic: False is torch's train mode (inter-layer dropout on).
          lengths: optional (B,) valid lengths of right-padded sequences (PackedSequence semantics).

        Returns:
          ``output, h_n``: (T, B, D*H) (batch-first / unbatched like `x`) and (L*D, B, H).
        """
        if isinstance(initial_state, tuple | list):
            raise TypeError(
                f"{type(self).__name__}'s initial_state is one array h_0 of shape (L*D, B, H), not a "
                f"{type(initial_state).__name__}; only LSTM takes a pair (h_0, c_0)"
            )
        state = None if initial_state is None else (initial_state,)
        output, (h_n,) = self._run(x, state, deterministic, lengths)
        return output, h_n


class LSTM(_RecurrentLayer):
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

    proj_size: int = 0
    param_dtype: Any = jnp.float32
    # "fused" (everywhere), "scan" (the reference recurrence: same function, slower) or "cudnn"
    # (cuDNN's fused LSTM on a CUDA GPU; float32, no projections): see `functional.lstm`.
    implementation: str = "fused"

    def _cell(self) -> Cell:
        return LSTM_CELL

    def __post_init__(self) -> None:
        if self.implementation not in stack.IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {stack.IMPLEMENTATIONS}, got {self.implementation!r}"
            )
        if self.implementation == "cudnn":
            cudnn.check_projection(self.proj_size)
        super().__post_init__()

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
        if initial_state is not None and (
            not isinstance(initial_state, tuple | list) or len(initial_state) != 2
        ):
            raise TypeError("initial_state must be a pair (h_0, c_0)")
        state = None if initial_state is None else tuple(initial_state)
        output, (h_n, c_n) = self._run(x, state, deterministic, lengths)
        return output, (h_n, c_n)


class GRU(_SingleStateLayer):
    """A multi-layer GRU with `torch.nn.GRU`'s constructor, parameters, shapes and numerics.

    Parameters as `LSTM`'s with 3 gate blocks, rows r | z | n (``weight_ih_l0`` (3H, in),
    ``weight_hh_l0`` (3H, H), ``bias_ih_l0`` / ``bias_hh_l0`` (3H,); b_hn stays inside the reset
    gate's product, as in torch). Call::

        output, h_n = GRU(64).apply(variables, x, initial_state=None, deterministic=True, lengths=None)
    """

    param_dtype: Any = jnp.float32

    def _cell(self) -> Cell:
        return CELLS["GRU"]


class RNN(_SingleStateLayer):
    """A multi-layer Elman RNN with `torch.nn.RNN`'s constructor, parameters, shapes and numerics:
    ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``, act ``tanh`` or ``relu`` (`nonlinearity`).

    Parameters as `GRU`'s with one gate block (``weight_ih_l0`` (H, in), ...). Pass the arguments
    after `hidden_size` by keyword (torch's `nonlinearity` comes third positionally; here it follows
    the shared ones). Called as `GRU`.
    """

    nonlinearity: str = "tanh"
    param_dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        rnn_mode(self.nonlinearity)  # torch's constructor error for anything but tanh / relu
        super().__post_init__()

    def _cell(self) -> Cell:
        return CELLS[rnn_mode(self.nonlinearity)]


class _RecurrentCell(nn.Module):
    """What `LSTMCell`, `GRUCell` and `RNNCell` share: torch's `RNNCellBase` parameters
    (``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H), ``bias_ih`` and ``bias_hh`` (G*H,) when `bias`,
    all U(-1/sqrt(H), 1/sqrt(H))), and torch's checks of the input and state, in torch's order and
    wording (torch raises RuntimeError for the size checks; ValueError here, as everywhere in jax_lstm).
    """

    hidden_size: int
    bias: bool = True

    def _mode(self) -> str:
        raise NotImplementedError

    def __post_init__(self) -> None:
        check_config(self.hidden_size, 1, 0.0, 0, self.bias, False, False)
        super().__post_init__()

    def _weights(self, input_size: int) -> LayerWeights:
        name = type(self).__name__
        h = self.hidden_size
        shapes = cell_param_shapes(self._mode(), input_size, h, self.bias)
        if not self.is_initializing():
            if not self.has_variable("params", "weight_ih"):
                raise KeyError(
                    f"{name} parameters not found: pass the variables returned by init() or "
                    "jax_lstm.from_torch() to apply()"
                )
            check_family(self.variables["params"], self._mode(), suffix="", cls=name)
            check_layout(self.variables["params"], shapes, f"{name} parameters do not match {name}({h})")
        init = torch_uniform(1.0 / math.sqrt(h))
        p = {key: self.param(key, init, shape, self.param_dtype) for key, shape in shapes.items()}
        return LayerWeights(p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"), None)

    def _checked(
        self, x: jax.Array, hx: tuple[jax.Array, ...] | None, labels: tuple[str, ...]
    ) -> tuple[jax.Array, tuple[jax.Array, ...], LayerWeights, bool]:
        """x as (B, I), the state as (B, H) arrays (zeros when None), the weights, whether x was batched."""
        name = type(self).__name__
        x = as_array(x, name)
        if x.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {x.ndim}D instead")
        if hx is not None:
            hx = tuple(jnp.asarray(s) for s in hx)
            for label, s in zip(labels, hx, strict=True):
                if s.ndim not in (1, 2):
                    raise ValueError(f"{name}: Expected {label} to be 1D or 2D, got {s.ndim}D instead")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(
                f"{name}: expected a floating-point input, got dtype {x.dtype}; "
                "cast it first, e.g. x.astype(jnp.float32)"
            )
        batched = x.ndim == 2
        if not batched:
            x = x[None]
            hx = None if hx is None else tuple(s[None] for s in hx)
        # At apply the weights say the input size, and a wrong input is torch's input error rather
        # than a weight shape error.
        exists = self.has_variable("params", "weight_ih")
        input_size = int(self.get_variable("params", "weight_ih").shape[-1]) if exists else int(x.shape[1])
        if x.shape[1] != input_size:
            raise ValueError(f"input has inconsistent input_size: got {x.shape[1]} expected {input_size}")
        weights = self._weights(input_size)
        dtype = jnp.result_type(x.dtype, weights.w_ih.dtype)
        batch, h = int(x.shape[0]), self.hidden_size
        if hx is None:
            return x.astype(dtype), tuple(jnp.zeros((batch, h), dtype) for _ in labels), weights, batched
        for index, s in enumerate(hx):
            if s.shape[0] != batch:
                raise ValueError(
                    f"Input batch size {batch} doesn't match hidden{index} batch size {s.shape[0]}"
                )
            if s.shape[1] != h:
                raise ValueError(
                    f"hidden{index} has inconsistent hidden_size: got {s.shape[1]}, expected {h}"
                )
            if s.ndim != 2:
                raise ValueError(f"{name}: an unbatched (1D) input needs a 1D state, got shape {s.shape[1:]}")
            if not jnp.issubdtype(s.dtype, jnp.floating):
                raise TypeError(f"{name}: the state must be floating-point, got dtype {s.dtype}")
        return x.astype(dtype), tuple(s.astype(dtype) for s in hx), weights, batched


def _unbatch(batched: bool, h: jax.Array) -> jax.Array:
    return h if batched else h[0]


class LSTMCell(_RecurrentCell):
    """One LSTM step, `torch.nn.LSTMCell`: ``h_1, c_1 = LSTMCell(H).apply(v, x, (h_0, c_0))`` with
    x (B, I) or unbatched (I,), states (B, H) or (H,) (zeros when omitted); gates i, f, g, o."""

    param_dtype: Any = jnp.float32

    def _mode(self) -> str:
        return "LSTM"

    @nn.compact
    def __call__(
        self, x: jax.Array, hx: tuple[jax.Array, jax.Array] | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """(B, I) or (I,), optional ``(h_0, c_0)`` -> ``(h_1, c_1)``, each (B, H) or (H,)."""
        if hx is not None and (not isinstance(hx, tuple | list) or len(hx) != 2):
            raise TypeError("LSTMCell's hx must be a pair (h_0, c_0)")
        x, (h, c), weights, batched = self._checked(x, hx, ("hx[0]", "hx[1]"))
        h, c = lstm_cell(x, h, c, weights)
        return _unbatch(batched, h), _unbatch(batched, c)


class _SingleStateCell(_RecurrentCell):
    def _step(self, x: jax.Array, h: jax.Array, weights: LayerWeights) -> jax.Array:
        raise NotImplementedError

    @nn.compact
    def __call__(self, x: jax.Array, hx: jax.Array | None = None) -> jax.Array:
        """(B, I) or (I,), optional h_0 (B, H) or (H,) -> h_1 with h_0's shape."""
        if isinstance(hx, tuple | list):
            raise TypeError(f"{type(self).__name__}'s hx is one array h_0, not a {type(hx).__name__}")
        x, (h,), weights, batched = self._checked(x, None if hx is None else (hx,), ("hidden",))
        return _unbatch(batched, self._step(x, h, weights))


class GRUCell(_SingleStateCell):
    """One GRU step, `torch.nn.GRUCell`: ``h_1 = GRUCell(H).apply(v, x, h_0)``; rows r | z | n."""

    param_dtype: Any = jnp.float32

    def _mode(self) -> str:
        return "GRU"

    def _step(self, x: jax.Array, h: jax.Array, weights: LayerWeights) -> jax.Array:
        return gru_cell(x, h, weights)


class RNNCell(_SingleStateCell):
    """One Elman RNN step, `torch.nn.RNNCell`: ``h_1 = RNNCell(H).apply(v, x, h_0)``, tanh or relu.

    An unknown `nonlinearity` is refused at construction with `nn.RNN`'s message (torch's cell
    accepts it and fails in its forward).
    """

    nonlinearity: str = "tanh"
    param_dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        rnn_mode(self.nonlinearity)
        super().__post_init__()

    def _mode(self) -> str:
        return rnn_mode(self.nonlinearity)

    def _step(self, x: jax.Array, h: jax.Array, weights: LayerWeights) -> jax.Array:
        return rnn_cell(x, h, weights, self.nonlinearity)


# The `cell` option where a model chooses its recurrent layer (TrainConfig.cell, --cell): torch's
# mode of each. "rnn" is torch's default Elman RNN, tanh.
CELL_MODES: dict[str, str] = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN_TANH"}
DEFAULT_CELL = "lstm"  # the article's


def describe_cell(cell: str) -> str:
    """For run headers: nothing for the article's LSTM, ``", cell gru"`` otherwise."""
    return "" if cell == DEFAULT_CELL else f", cell {cell}"


def check_cell(cell: str) -> str:
    if cell not in CELL_MODES:
        raise ValueError(f"cell must be one of {tuple(CELL_MODES)}, got {cell!r}")
    return cell


def model_layer(model: nn.Module, **kwargs: Any) -> nn.Module:
    """The batch-first recurrent layer named ``"lstm"`` of a model whose fields hold its options
    (`cell`, `hidden_size`, `num_layers`, `implementation`, `param_dtype`, and `dropout` unless
    `kwargs` sets it), the registry's constructor convention; `kwargs` add or override the shared
    constructor arguments (``bidirectional=True``, ``dropout=0.0``)."""
    options = {
        "batch_first": True,
        "dropout": getattr(model, "dropout", 0.0),
        "param_dtype": model.param_dtype,
    }
    options.update(kwargs)
    return make_layer(
        model.cell, model.hidden_size, model.num_layers, model.implementation, **options, name="lstm"
    )


def make_layer(
    cell: str, hidden_size: int, num_layers: int, implementation: str = "fused", **kwargs: Any
) -> nn.Module:
    """The layer module of `cell` ("lstm", "gru", "rnn"); `implementation` is the LSTM's recurrence
    (the others have one, and refuse "cudnn"); `kwargs` are the shared constructor arguments."""
    check_cell(cell)
    if CELL_MODES[cell] == "LSTM":
        return LSTM(hidden_size, num_layers, implementation=implementation, **kwargs)
    if implementation == "cudnn":
        raise ValueError(
            f"implementation 'cudnn' runs the LSTM only, not cell {cell!r}; use implementation 'fused'"
        )
    cls = GRU if cell == "gru" else RNN
    return cls(hidden_size, num_layers, **kwargs)
