"""Moving weights between torch and JAX: renaming plus shape checks, exact in both directions.

A torch state dict ``{"lstm.weight_ih_l0": t, "fc.weight": t, "bn.running_mean": t, ...}`` maps to
Flax variables ``{"params": {"lstm": {"weight_ih_l0": a}, "fc": {...}, "bn": {"weight", "bias"}},
"batch_stats": {"bn": {"running_mean", "running_var", "num_batches_tracked"}}}``; a bare layer's
state dict (`nn.LSTM`, `nn.GRU`, `nn.RNN`) maps to ``{"params": {"weight_ih_l0": a, ...}}``, a cell's
(`nn.LSTMCell`, `nn.GRUCell`, `nn.RNNCell`) to ``{"params": {"weight_ih": a, ...}}``, and so does a
bare `torch_ref.mdlstm.MDLSTM2d`'s (told apart by its ``weight_hh_h``). Which model a
state dict belongs to, and what it must hold, comes from the model registry
(`jax_lstm.models.registry`); a bare layer's or cell's layout from `jax_lstm.rnn.spec`, its family
from its shapes (``weight_hh`` has G*H rows for H columns: LSTM 4, GRU 3, RNN 1, unless an LSTM's
``weight_hr`` is there). A tanh and a relu `nn.RNN` have identical parameters, which do not record
the nonlinearity: both map to the same variables, and the module they are applied to
(``jax_lstm.RNN(H, nonlinearity=...)``) says which it is. No array is transposed or cast (except
torch's int64 batch counter, held as int32), so the round trip is bit-exact.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_lstm.models import registry
from jax_lstm.rnn import mdlstm
from jax_lstm.rnn.spec import (
    cell_param_shapes,
    cell_spec_from_params,
    check_layout,
    family_from_shapes,
    param_shapes,
    spec_from_params,
)

__all__ = ["flatten_variables", "from_torch", "to_torch"]

flatten_variables = registry.flatten


def _as_numpy(key: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor; torch itself is not imported here
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            raise TypeError(f"{key}: bfloat16 tensors are not supported; convert with .float() first")
        return value.numpy()
    return np.asarray(value)


def _check_mapping(value: Any, function: str, what: str) -> None:
    """A clear TypeError for what is not a mapping: a torch module itself, None, an array."""
    if isinstance(value, Mapping):
        return
    if hasattr(value, "state_dict") and hasattr(value, "parameters"):
        raise TypeError(
            f"{function} takes a state dict, not the {type(value).__name__} module itself: pass "
            "module.state_dict()"
        )
    raise TypeError(f"{function} takes {what}, got {type(value).__name__}")


def _shapes(entry: registry.ModelEntry, flat: Mapping[str, Any]) -> dict[str, tuple] | None:
    """The layout (shapes and collections) `entry` reads off `flat`; None when it cannot read it."""
    try:
        arch, dims = entry.read_state_dict(flat)
    except (KeyError, ValueError):
        return None
    return {k: (p.shape, p.collection) for k, p in entry.layout(dims, arch).items()}


def _resolve(flat: Mapping[str, Any], model: str | None) -> tuple[registry.Layout, str]:
    """The layout `flat` must have, in torch's order, and what it is ("nn.GRU", "nn.LSTMCell", ... or
    a model name).

    Raises KeyError / ValueError naming the key, expected and actual shape, or the models that exist.
    """
    if model is None and flat and not any("." in key for key in flat):
        return _bare_layout(flat)
    if model is not None:
        entry = registry.get(model)
    else:
        candidates = registry.find_by_keys(flat)
        if not candidates:
            raise KeyError(_no_model_message(flat))
        # Models with the same layout ("lstm" and "lstm-forecaster": LSTM then Linear) give the
        # same variables and the same state dict, so the first of them serves for all.
        layouts = [_shapes(e, flat) for e in candidates]
        if len(candidates) > 1 and any(layout != layouts[0] for layout in layouts):
            raise ValueError(
                "this state dict fits several models: "
                f"{[e.name for e in candidates]}; pass model=... to say which"
            )
        entry = candidates[0]
    arch, dims = entry.read_state_dict(flat)
    layout = entry.layout(dims, arch)
    expected = {k: p.shape for k, p in layout.items()}
    check_layout(flat, expected, f"state dict does not match the {entry.name} model")
    return layout, entry.name


def _bare_layout(flat: Mapping[str, Any]) -> tuple[registry.Layout, str]:
    """A bare recurrent layer's, cell's or MDLSTM2d's layout, its family read off its shapes."""
    if "weight_hh_h" in flat:  # the 2-D MDLSTM's recurrent weight along H
        shapes = mdlstm.param_shapes(*mdlstm.spec_from_params(flat))
        return {k: registry.Param(shape, "uniform") for k, shape in shapes.items()}, "MDLSTM2d"
    if "weight_ih" in flat or "weight_hh" in flat:
        family, input_size, hidden_size, bias = cell_spec_from_params(flat)
        shapes = cell_param_shapes(_MODES[family], input_size, hidden_size, bias)
        name = f"nn.{family}Cell"
    else:
        family = family_from_shapes(flat) or "LSTM"  # unreadable shapes: nn.LSTM's messages
        shapes = param_shapes(spec_from_params(flat, mode=_MODES[family]))
        name = f"nn.{family}"
    return {k: registry.Param(shape, "uniform") for k, shape in shapes.items()}, name


# A family's mode for its parameter shapes: the RNN's tanh and relu share them.
_MODES = {"LSTM": "LSTM", "GRU": "GRU", "RNN": "RNN_TANH"}


def _no_model_message(flat: Mapping[str, Any]) -> str:
    """Why no model fits: the keys outside the closest model (the one whose modules are all there,
    with the most of them), or the models that exist."""
    modules = {key.partition(".")[0] for key in flat}
    inside = [e for e in registry.entries() if e.modules <= modules]
    if inside:
        closest = max(inside, key=lambda e: len(e.modules))
        extra = sorted(key for key in flat if key.partition(".")[0] not in closest.modules)
        return (
            f"unexpected key {extra[0]!r}"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
            + f": the closest model, {closest.name} ({closest.torch_class_name}), has the modules "
            f"{sorted(closest.modules)} only"
        )
    known = ", ".join(f"{e.name} ({e.torch_class_name}: {sorted(e.modules)})" for e in registry.entries())
    return (
        f"not the state dict of nn.LSTM or of a known model: its top-level modules are {sorted(modules)}; "
        f"the models are {known}"
    )


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


def from_torch(state_dict: Mapping[str, Any], model: str | None = None) -> dict[str, Any]:
    """Flax variables from the state dict of a torch recurrent layer or cell (`nn.LSTM`, `nn.GRU`,
    `nn.RNN`, `nn.LSTMCell`, `nn.GRUCell`, `nn.RNNCell`: told apart by their shapes; a tanh and a relu
    RNN give the same variables) or of a registered model's torch twin.

    Args:
      state_dict: ``module.state_dict()`` (torch tensors; numpy arrays work too).
      model: the registry name (``"lstm"``, ``"bn-lstm"``, ...) when the keys alone are ambiguous;
        by default the model is recognised from the state dict's top-level modules.

    Returns:
      ``{"params": ...}`` (and ``"batch_stats"`` for models with BatchNorm), ready for the matching
      module's ``apply`` (`jax_lstm.LSTM`, `GRU`, `RNN`, `LSTMCell`, ...) or the model's.

    Raises:
      KeyError: a key is missing or unexpected, or no model has these modules. ValueError: a shape
      does not fit the architecture the other tensors describe (the message names the key, expected
      and actual shape).
    """
    _check_mapping(state_dict, "from_torch", "a state dict (module.state_dict())")
    flat = {key: _as_numpy(key, value) for key, value in state_dict.items()}
    layout, _ = _resolve(flat, model)
    return registry.nest({key: _to_jax(key, flat[key]) for key in layout}, layout)


def to_torch(variables: Mapping[str, Any], model: str | None = None) -> OrderedDict[str, Any]:
    """A torch state dict from Flax variables of a recurrent layer or cell (`LSTM`, `GRU`, `RNN`,
    `LSTMCell`, `GRUCell`, `RNNCell`) or of a registered model.

    The result loads into the matching torch module with ``load_state_dict(sd, strict=True)``
    (``num_batches_tracked`` included, as int64). Needs torch.
    """
    try:
        import torch
    except ImportError as err:  # pragma: no cover - exercised only without torch
        raise ImportError("jax_lstm.to_torch needs PyTorch: pip install 'jax-lstm[torch]'") from err
    _check_mapping(
        variables, "to_torch", "Flax variables ({'params': ...}, as returned by init() or from_torch())"
    )
    flat = {key: np.asarray(value) for key, value in flatten_variables(variables).items()}
    layout, _ = _resolve(flat, model)
    state: OrderedDict[str, Any] = OrderedDict()
    for key in layout:
        value = np.array(flat[key])  # a writable copy that torch may own
        if key.endswith("num_batches_tracked"):
            value = value.astype(np.int64)
        state[key] = torch.from_numpy(value)
    return state
