"""The structure of `torch.nn.LSTM` parameters: names, shapes, and the checks shared by every entry point.

torch stores one set of tensors per layer ``k`` and direction (suffix ``_reverse`` for the reverse
direction), in this order (torch/nn/modules/rnn.py, ``RNNBase.__init__``)::

    weight_ih_l{k}  (4H, in_k)     in_0 = input_size, in_k = D * H_out for k > 0
    weight_hh_l{k}  (4H, H_out)    H_out = proj_size or hidden_size
    bias_ih_l{k}    (4H,)          only when bias=True
    bias_hh_l{k}    (4H,)          only when bias=True
    weight_hr_l{k}  (proj, H)      only when proj_size > 0

Rows are stacked by gate in the order i, f, g, o. Everything here is plain Python on shapes, so the
same checks run in the Flax module, the pure functions and the torch interop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = [
    "LSTMSpec",
    "LayerWeights",
    "check_config",
    "check_layout",
    "check_params",
    "layer_weights",
    "param_shapes",
    "spec_from_params",
]


@dataclasses.dataclass(frozen=True)
class LSTMSpec:
    """Hyperparameters that fix the parameter shapes of an `nn.LSTM`."""

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    bidirectional: bool = False
    proj_size: int = 0

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """H_out: the size of h (and of each direction's output features)."""
        return self.proj_size if self.proj_size > 0 else self.hidden_size


def direction_suffix(direction: int) -> str:
    return "_reverse" if direction == 1 else ""


def param_shapes(spec: LSTMSpec) -> dict[str, tuple[int, ...]]:
    """Every parameter name of the LSTM described by `spec`, in torch's order, with its shape."""
    h, h_out, d = spec.hidden_size, spec.output_size, spec.num_directions
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(spec.num_layers):
        layer_input = spec.input_size if layer == 0 else d * h_out
        for direction in range(d):
            sfx = f"_l{layer}{direction_suffix(direction)}"
            shapes[f"weight_ih{sfx}"] = (4 * h, layer_input)
            shapes[f"weight_hh{sfx}"] = (4 * h, h_out)
            if spec.bias:
                shapes[f"bias_ih{sfx}"] = (4 * h,)
                shapes[f"bias_hh{sfx}"] = (4 * h,)
            if spec.proj_size > 0:
                shapes[f"weight_hr{sfx}"] = (spec.proj_size, h)
    return shapes


class LayerWeights(NamedTuple):
    """The arrays of one layer and direction, in torch's layout."""

    w_ih: Any  # (4H, I)
    w_hh: Any  # (4H, P)
    b_ih: Any | None  # (4H,) or None when bias=False
    b_hh: Any | None  # (4H,) or None when bias=False
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
    if not isinstance(num_layers, int) or num_layers <= 0:
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


def spec_from_params(params: Mapping[str, Any], prefix: str = "") -> LSTMSpec:
    """Reads the LSTM hyperparameters off a flat mapping of torch-named arrays and checks every shape.

    Args:
      params: ``{"weight_ih_l0": (4H, in), ...}``: arrays or tensors with torch's names.
      prefix: prepended to key names in error messages (e.g. ``"lstm."``).

    Raises:
      KeyError: a parameter is missing or unexpected (the message names it).
      ValueError: a parameter has the wrong shape (the message names it, the expected and actual shape).
    """
    if "weight_ih_l0" not in params or "weight_hh_l0" not in params:
        raise KeyError(
            f"not an nn.LSTM parameter set: missing {prefix}weight_ih_l0 / {prefix}weight_hh_l0 "
            f"(got keys {sorted(params)[:8]})"
        )
    w_ih = params["weight_ih_l0"]
    if len(w_ih.shape) != 2 or w_ih.shape[0] % 4 != 0:
        raise ValueError(
            f"{prefix}weight_ih_l0: expected shape (4*hidden_size, input_size), got {_shape(w_ih)}"
        )
    hidden_size = int(w_ih.shape[0]) // 4
    proj_size = int(params["weight_hr_l0"].shape[0]) if "weight_hr_l0" in params else 0
    num_layers = 0
    while f"weight_ih_l{num_layers}" in params:
        num_layers += 1
    spec = LSTMSpec(
        input_size=int(w_ih.shape[1]),
        hidden_size=hidden_size,
        num_layers=num_layers,
        bias="bias_ih_l0" in params,
        bidirectional="weight_ih_l0_reverse" in params,
        proj_size=proj_size,
    )
    check_params(params, spec, prefix)
    return spec


def check_params(params: Mapping[str, Any], spec: LSTMSpec, prefix: str = "") -> None:
    """Checks that `params` holds exactly the parameters of `spec`, with torch's shapes.

    The error names the key, the expected and the actual shape.
    """
    what = _describe(spec)
    check_layout(params, param_shapes(spec), f"LSTM parameters do not match {what}", prefix, f" (for {what})")


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


def _describe(spec: LSTMSpec) -> str:
    return (
        f"LSTM(input_size={spec.input_size}, hidden_size={spec.hidden_size}, "
        f"num_layers={spec.num_layers}, bias={spec.bias}, bidirectional={spec.bidirectional}, "
        f"proj_size={spec.proj_size})"
    )
