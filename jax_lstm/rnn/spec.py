"""The structure of torch's recurrent-layer parameters: names, shapes, and the checks every entry
point shares.

torch stores one set of tensors per layer ``k`` and direction (suffix ``_reverse`` for the reverse
direction), in this order (torch/nn/modules/rnn.py, ``RNNBase.__init__``), with G gates per hidden
unit (LSTM 4: i, f, g, o; GRU 3: r, z, n; RNN 1)::

    weight_ih_l{k}  (G*H, in_k)    in_0 = input_size, in_k = D * H_out for k > 0
    weight_hh_l{k}  (G*H, H_out)   H_out = proj_size or hidden_size
    bias_ih_l{k}    (G*H,)         only when bias=True
    bias_hh_l{k}    (G*H,)         only when bias=True
    weight_hr_l{k}  (proj, H)      only when proj_size > 0 (LSTM only)

Everything here is plain Python on shapes, so the same checks run in the Flax modules, the pure
functions and the torch interop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = [
    "GATES",
    "LSTMSpec",
    "LayerWeights",
    "RNNSpec",
    "cell_param_shapes",
    "cell_spec_from_params",
    "check_config",
    "check_family",
    "check_layout",
    "check_params",
    "family_from_shapes",
    "layer_weights",
    "param_shapes",
    "spec_from_params",
]


# Gate rows per hidden unit, by torch's RNNBase `mode`.
GATES: dict[str, int] = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


@dataclasses.dataclass(frozen=True)
class RNNSpec:
    """Hyperparameters that fix the parameter shapes of a torch recurrent layer (`mode` as torch's
    `RNNBase.mode`: "LSTM", "GRU", "RNN_TANH" or "RNN_RELU")."""

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    bidirectional: bool = False
    proj_size: int = 0
    mode: str = "LSTM"

    @property
    def gates(self) -> int:
        return GATES[self.mode]

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """H_out: the size of h (and of each direction's output features)."""
        return self.proj_size if self.proj_size > 0 else self.hidden_size


LSTMSpec = RNNSpec  # an `nn.LSTM`'s shapes: RNNSpec's default mode


def direction_suffix(direction: int) -> str:
    return "_reverse" if direction == 1 else ""


def param_shapes(spec: RNNSpec) -> dict[str, tuple[int, ...]]:
    """Every parameter name of the layer described by `spec`, in torch's order, with its shape."""
    h, h_out, d, g = spec.hidden_size, spec.output_size, spec.num_directions, spec.gates
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(spec.num_layers):
        layer_input = spec.input_size if layer == 0 else d * h_out
        for direction in range(d):
            sfx = f"_l{layer}{direction_suffix(direction)}"
            shapes[f"weight_ih{sfx}"] = (g * h, layer_input)
            shapes[f"weight_hh{sfx}"] = (g * h, h_out)
            if spec.bias:
                shapes[f"bias_ih{sfx}"] = (g * h,)
                shapes[f"bias_hh{sfx}"] = (g * h,)
            if spec.proj_size > 0:
                shapes[f"weight_hr{sfx}"] = (spec.proj_size, h)
    return shapes


class LayerWeights(NamedTuple):
    """The arrays of one layer and direction, in torch's layout."""

    w_ih: Any  # (G*H, I)
    w_hh: Any  # (G*H, P)
    b_ih: Any | None  # (G*H,) or None when bias=False
    b_hh: Any | None  # (G*H,) or None when bias=False
    w_hr: Any | None  # (P, H) or None when proj_size=0


def layer_weights(params: Mapping[str, Any], layer: int, direction: int) -> LayerWeights:
    """Picks layer `layer`, direction `direction` (0 forward, 1 reverse) out of a torch-named mapping."""
    sfx = f"_l{layer}{direction_suffix(direction)}"
    return LayerWeights(
        params[f"weight_ih{sfx}"],
        params[f"weight_hh{sfx}"],
        params.get(f"bias_ih{sfx}"),
        params.get(f"bias_hh{sfx}"),
        params.get(f"weight_hr{sfx}"),
    )


def check_config(
    hidden_size: int,
    num_layers: int,
    dropout: float,
    proj_size: int,
    bias: bool,
    batch_first: bool,
    bidirectional: bool,
) -> None:
    """Rejects constructor arguments that torch's `nn.LSTM` rejects, with torch's wording and
    exception type. torch builds a module with a non-bool `bidirectional` and fails in its forward
    (``lstm() received an invalid combination of arguments``); it is refused here up front."""
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout <= 1:
        raise ValueError(
            "dropout should be a number in range [0, 1] representing the probability of an "
            f"element being zeroed, got {dropout!r}"
        )
    for name, value in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
    if not isinstance(hidden_size, int):
        raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
    if hidden_size <= 0:
        raise ValueError(f"hidden_size must be greater than zero, got {hidden_size!r}")
    if not isinstance(num_layers, int):
        raise TypeError(f"num_layers should be of type int, got: {type(num_layers).__name__}")
    if num_layers <= 0:
        raise ValueError(f"num_layers must be greater than zero, got {num_layers!r}")
    if not isinstance(proj_size, int) or proj_size < 0:
        raise ValueError(
            f"proj_size should be a positive integer or zero to disable projections, got {proj_size!r}"
        )
    if proj_size >= hidden_size:
        raise ValueError(
            f"proj_size has to be smaller than hidden_size, got proj_size={proj_size} and "
            f"hidden_size={hidden_size}"
        )


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in value.shape)


def spec_from_params(params: Mapping[str, Any], prefix: str = "", mode: str = "LSTM") -> RNNSpec:
    """Reads the layer's hyperparameters off a flat mapping of torch-named arrays and checks every shape.

    Args:
      params: ``{"weight_ih_l0": (G*H, in), ...}``: arrays or tensors with torch's names.
      prefix: prepended to key names in error messages (e.g. ``"lstm."``).
      mode: torch's RNNBase mode the parameters belong to ("LSTM", "GRU", "RNN_TANH", "RNN_RELU").

    Raises:
      KeyError: a parameter is missing or unexpected (the message names it).
      ValueError: a parameter has the wrong shape (the message names it, the expected and actual shape).
    """
    gates = GATES[mode]
    if "weight_ih_l0" not in params or "weight_hh_l0" not in params:
        raise KeyError(
            f"not an {_TORCH_NAMES[mode]} parameter set: missing {prefix}weight_ih_l0 / "
            f"{prefix}weight_hh_l0 (got keys {sorted(params)[:8]})"
        )
    w_ih = params["weight_ih_l0"]
    if len(w_ih.shape) != 2 or w_ih.shape[0] % gates != 0:
        raise ValueError(
            f"{prefix}weight_ih_l0: expected shape ({gates}*hidden_size, input_size), got {_shape(w_ih)}"
        )
    hidden_size = int(w_ih.shape[0]) // gates
    proj_size = int(params["weight_hr_l0"].shape[0]) if "weight_hr_l0" in params else 0
    num_layers = 0
    while f"weight_ih_l{num_layers}" in params:
        num_layers += 1
    spec = RNNSpec(
        input_size=int(w_ih.shape[1]),
        hidden_size=hidden_size,
        num_layers=num_layers,
        # Either bias key means a biased layer, so a missing one is reported by name, not the other.
        bias="bias_ih_l0" in params or "bias_hh_l0" in params,
        bidirectional="weight_ih_l0_reverse" in params,
        proj_size=proj_size,
        mode=mode,
    )
    check_params(params, spec, prefix)
    return spec


def check_params(params: Mapping[str, Any], spec: RNNSpec, prefix: str = "") -> None:
    """Checks that `params` holds exactly the parameters of `spec`, with torch's shapes.

    The error names the key, the expected and the actual shape.
    """
    what = _describe(spec)
    check_layout(
        params, param_shapes(spec), f"{spec.mode} parameters do not match {what}", prefix, f" (for {what})"
    )


def check_layout(
    params: Mapping[str, Any],
    expected: Mapping[str, tuple[int, ...]],
    what: str,
    prefix: str = "",
    context: str = "",
) -> None:
    """Checks that `params` has exactly the keys of `expected`, each with its shape.

    Raises:
      KeyError: ``"{what}: missing k (shape), ...; unexpected k, ..."``.
      ValueError: ``"{prefix}{key}: expected shape (..), got (..){context}"`` for the first mismatch.
    """
    missing = [k for k in expected if k not in params]
    unexpected = [k for k in params if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(f"{prefix}{k} {expected[k]}" for k in missing))
        if unexpected:
            parts.append("unexpected " + ", ".join(f"{prefix}{k}" for k in unexpected))
        raise KeyError(f"{what}: " + "; ".join(parts))
    for name, shape in expected.items():
        actual = _shape(params[name])
        if actual != shape:
            raise ValueError(f"{prefix}{name}: expected shape {shape}, got {actual}{context}")


def cell_param_shapes(mode: str, input_size: int, hidden_size: int, bias: bool) -> dict[str, tuple[int, ...]]:
    """A torch cell's parameters (`nn.LSTMCell`, `nn.GRUCell`, `nn.RNNCell`), in torch's order:
    ``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H), and ``bias_ih``, ``bias_hh`` (G*H,) when `bias`."""
    rows = GATES[mode] * hidden_size
    shapes: dict[str, tuple[int, ...]] = {"weight_ih": (rows, input_size), "weight_hh": (rows, hidden_size)}
    if bias:
        shapes.update(bias_ih=(rows,), bias_hh=(rows,))
    return shapes


def cell_spec_from_params(params: Mapping[str, Any]) -> tuple[str, int, int, bool]:
    """(family, input_size, hidden_size, bias) of a torch cell's state dict, every shape checked.

    The family ("LSTM", "GRU" or "RNN") is read off ``weight_hh``'s rows over its columns.
    """
    family = family_from_shapes(params, suffix="")
    if "weight_ih" not in params or family is None:
        shape = _shape(params["weight_hh"]) if "weight_hh" in params else None
        raise ValueError(
            f"not a torch cell's state dict: weight_hh must be (G*hidden_size, hidden_size) with G = 4 "
            f"(LSTMCell), 3 (GRUCell) or 1 (RNNCell), got {shape} (keys {sorted(params)[:8]})"
        )
    mode = "RNN_TANH" if family == "RNN" else family
    hidden_size = _shape(params["weight_hh"])[1]
    input_size = _shape(params["weight_ih"])[-1]
    bias = "bias_ih" in params
    check_layout(
        params,
        cell_param_shapes(mode, input_size, hidden_size, bias),
        f"not an nn.{family}Cell state dict",
        context=f" (for nn.{family}Cell({input_size}, {hidden_size}, bias={bias}))",
    )
    return family, input_size, hidden_size, bias


def family_from_shapes(params: Mapping[str, Any], suffix: str = "_l0") -> str | None:
    """Which member of torch's family a parameter set belongs to, read off its shapes: "LSTM",
    "GRU" or "RNN" (tanh and relu RNNs have identical parameters), or None when unclear.

    ``weight_hh{suffix}`` is (G*H, H) without a projection, so its rows over its columns are the gate
    count G (LSTM 4, GRU 3, RNN 1); ``weight_hr{suffix}`` exists for projected LSTMs only.
    """
    if f"weight_hr{suffix}" in params:
        return "LSTM"
    w_hh = params.get(f"weight_hh{suffix}")
    if w_hh is None or len(w_hh.shape) != 2 or w_hh.shape[1] == 0 or w_hh.shape[0] % w_hh.shape[1]:
        return None
    return {4: "LSTM", 3: "GRU", 1: "RNN"}.get(int(w_hh.shape[0]) // int(w_hh.shape[1]))


def check_family(params: Mapping[str, Any], mode: str, suffix: str = "_l0", cls: str = "") -> None:
    """Refuses, before any shape error, parameters of another family member than `mode` expects:
    GRU weights given to an LSTM module say so and name the module to use.

    `cls` is the module's name for the hint (``"LSTM"``, ``"GRUCell"``, ...): its cell-ness is kept.
    """
    found = family_from_shapes(params, suffix)
    expected = "RNN" if mode.startswith("RNN") else mode
    if found is None or found == expected:
        return
    module = cls.replace(expected, found, 1) if cls else found
    shape = tuple(int(s) for s in params[f"weight_hh{suffix}"].shape)
    raise ValueError(
        f"this looks like an nn.{module} state dict (weight_hh{suffix} {shape} is "
        f"{GATES_BY_FAMILY[found]}*hidden_size rows), not an nn.{cls or expected} one; use jax_lstm.{module}"
    )


GATES_BY_FAMILY = {"LSTM": 4, "GRU": 3, "RNN": 1}

_TORCH_NAMES = {"LSTM": "nn.LSTM", "GRU": "nn.GRU", "RNN_TANH": "nn.RNN", "RNN_RELU": "nn.RNN"}


def _describe(spec: RNNSpec) -> str:
    proj = f", proj_size={spec.proj_size}" if spec.mode == "LSTM" else ""
    name = "RNN" if spec.mode.startswith("RNN") else spec.mode
    return (
        f"{name}(input_size={spec.input_size}, hidden_size={spec.hidden_size}, "
        f"num_layers={spec.num_layers}, bias={spec.bias}, bidirectional={spec.bidirectional}{proj})"
    )
