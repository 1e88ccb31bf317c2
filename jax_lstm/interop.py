"""Moving weights between torch and JAX: renaming plus shape checks, exact in both directions.

A torch state dict ``{"lstm.weight_ih_l0": t, "fc.weight": t, "bn.running_mean": t, ...}`` maps to
Flax variables ``{"params": {"lstm": {"weight_ih_l0": a}, "fc": {...}, "bn": {"weight", "bias"}},
"batch_stats": {"bn": {"running_mean", "running_var", "num_batches_tracked"}}}``; a bare `nn.LSTM`
state dict maps to ``{"params": {"weight_ih_l0": a, ...}}``. No array is transposed or cast (except
torch's int64 batch counter, held as int32), so the round trip is bit-exact.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_lstm.spec import check_layout, param_shapes, spec_from_params

__all__ = ["flatten_variables", "from_torch", "to_torch"]

_BN_PARAMS = ("weight", "bias")
_BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


def _as_numpy(key: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor; torch itself is not imported here
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            raise TypeError(f"{key}: bfloat16 tensors are not supported; convert with .float() first")
        return value.numpy()
    return np.asarray(value)


def _expected_layout(flat: Mapping[str, Any]) -> OrderedDict[str, tuple[int, ...]]:
    """Checks a flat torch-named mapping and returns every key in torch's order with its shape.

    Accepts the state dict of an `nn.LSTM`, the article's `MultiDimLSTM` (``lstm.*``, ``fc.*``) or
    `BN_LSTM` (``bn.*`` too). Raises KeyError / ValueError naming the key, expected and actual shape.
    """
    if "weight_ih_l0" in flat:
        spec = spec_from_params(flat)
        return OrderedDict(param_shapes(spec))
    if "lstm.weight_ih_l0" not in flat:
        raise KeyError(
            "not a state dict of nn.LSTM, MultiDimLSTM or BN_LSTM: expected 'weight_ih_l0' or "
            f"'lstm.weight_ih_l0', got keys {sorted(flat)[:8]}"
        )
    groups: dict[str, dict[str, Any]] = {"bn": {}, "lstm": {}, "fc": {}}
    for key, value in flat.items():
        prefix, _, name = key.partition(".")
        if prefix not in groups or not name:
            raise KeyError(f"unexpected key {key!r}: expected keys under 'bn.', 'lstm.' or 'fc.'")
        groups[prefix][name] = value
    spec = spec_from_params(groups["lstm"], prefix="lstm.")
    layout: OrderedDict[str, tuple[int, ...]] = OrderedDict()
    if groups["bn"]:
        features = spec.input_size
        for name in (*_BN_PARAMS, *_BN_STATS):
            layout[f"bn.{name}"] = () if name == "num_batches_tracked" else (features,)
    for name, shape in param_shapes(spec).items():
        layout[f"lstm.{name}"] = shape
    if "fc.weight" not in flat:
        raise KeyError("missing key 'fc.weight' (the classifier's nn.Linear)")
    num_classes = int(flat["fc.weight"].shape[0])
    layout["fc.weight"] = (num_classes, spec.num_directions * spec.output_size)
    layout["fc.bias"] = (num_classes,)
    check_layout(flat, layout, "state dict does not match the classifier")
    return layout


def _to_jax(key: str, value: np.ndarray) -> jax.Array:
    if key.endswith("num_batches_tracked"):
        return jnp.asarray(value, dtype=jnp.int32)
    if not np.issubdtype(value.dtype, np.floating):
        raise TypeError(f"{key}: expected a floating-point tensor, got {value.dtype}")
    if value.dtype == np.float64 and not jax.config.read("jax_enable_x64"):
        raise TypeError(
            f"{key} is float64 but JAX's 64-bit mode is off, so it would silently become float32; "
            "call jax.config.update('jax_enable_x64', True) first, or convert the torch model "
            "with .float()"
        )
    return jnp.asarray(value)


def from_torch(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Flax variables from the state dict of an `nn.LSTM`, `MultiDimLSTM` or `BN_LSTM`.

    Args:
      state_dict: ``module.state_dict()`` (torch tensors; numpy arrays work too).

    Returns:
      ``{"params": ...}`` (and ``"batch_stats"`` for BN_LSTM), ready for `LSTM.apply`,
      `LSTMClassifier.apply` or `BNLSTMClassifier.apply`.

    Raises:
      KeyError: a key is missing or unexpected. ValueError: a shape does not fit the architecture
      the other tensors describe (the message names the key, expected and actual shape).
    """
    flat = {key: _as_numpy(key, value) for key, value in state_dict.items()}
    layout = _expected_layout(flat)
    variables: dict[str, Any] = {"params": {}}
    for key in layout:
        value = _to_jax(key, flat[key])
        if "." not in key:
            variables["params"][key] = value
            continue
        module, name = key.split(".", 1)
        collection = "batch_stats" if name in _BN_STATS else "params"
        variables.setdefault(collection, {}).setdefault(module, {})[name] = value
    return variables


def flatten_variables(variables: Mapping[str, Any]) -> dict[str, Any]:
    """Flax variables -> ``{"lstm.weight_ih_l0": array, "bn.running_mean": array, ...}`` (torch names)."""
    if "params" not in variables:
        raise KeyError("expected Flax variables with a 'params' collection, e.g. from init()")
    flat: dict[str, Any] = {}
    for collection in ("params", "batch_stats"):
        for key, value in variables.get(collection, {}).items():
            if isinstance(value, Mapping):
                for name, leaf in value.items():
                    flat[f"{key}.{name}"] = leaf
            else:
                flat[key] = value
    return flat


def to_torch(variables: Mapping[str, Any]) -> OrderedDict[str, Any]:
    """A torch state dict from Flax variables of `LSTM`, `LSTMClassifier` or `BNLSTMClassifier`.

    The result loads into the matching torch module with ``load_state_dict(sd, strict=True)``
    (``num_batches_tracked`` included, as int64). Needs torch.
    """
    try:
        import torch
    except ImportError as err:  # pragma: no cover - exercised only without torch
        raise ImportError("jax_lstm.to_torch needs PyTorch: pip install 'jax-lstm[torch]'") from err
    flat = {key: np.asarray(value) for key, value in flatten_variables(variables).items()}
    layout = _expected_layout(flat)
    state: OrderedDict[str, Any] = OrderedDict()
    for key in layout:
        value = np.array(flat[key])  # a writable copy that torch may own
        if key.endswith("num_batches_tracked"):
            value = value.astype(np.int64)
        state[key] = torch.from_numpy(value)
    return state
