"""The model registry: the table of models, its lookups, and the generic helpers their entries use.

An entry names a model (the CLI's ``--model``, `TrainConfig.model`, the estimator's ``model=``) and
holds everything the rest of the library asks about it. Each model's module defines its Flax class
and its `ModelEntry` beside it (its parameter layout in torch's state-dict order, how to read its
sizes back off a state dict, how its constructor takes the data's sizes, its default recipe);
`jax_lstm.models` registers them, one line each. The torch twin takes the same constructor
arguments by the same names (`torch_kwargs`), plus ``input_size``. Nothing
here knows a particular model, and nothing elsewhere switches on model names.

Every model is built the same way (`build`): the entry's `options` are `TrainConfig` fields passed
to the Flax class by name (``hidden_size``, ``cell``, ...), `dims_args` turns the data's `Dims` into
constructor fields (``num_classes``, ``seq_len``, ...) and `fixed` adds constants (the FCN models'
filters). A config that sets an option the model does not take is refused by name (`check_options`).

Layouts are flat: ``{"lstm.weight_ih_l0": Param((4H, F), "uniform", 1/sqrt(H)), "fc.weight": ...,
"bn.running_mean": Param((F,), "zeros", collection="batch_stats"), ...}``, each dot one level of
Flax module nesting, so ``lstm.weight_ih_l0`` is ``variables["params"]["lstm"]["weight_ih_l0"]``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jax_lstm.data.dims import Dims
from jax_lstm.rnn.layer import CELL_MODES
from jax_lstm.rnn.spec import RNNSpec, family_from_shapes, param_shapes, spec_from_params

__all__ = [
    "ARTICLE_RECIPE",
    "OPTION_DEFAULTS",
    "RECURRENT_OPTIONS",
    "Dims",
    "Layout",
    "ModelEntry",
    "Param",
    "batchnorm_layout",
    "build",
    "check_options",
    "conv_layout",
    "entries",
    "find_by_keys",
    "flatten",
    "get",
    "group",
    "initial_variables",
    "linear_layout",
    "lstm_layout",
    "names",
    "nest",
    "read_recurrent",
    "recurrent_layout",
    "register",
    "required",
    "torch_kwargs",
]


@dataclasses.dataclass(frozen=True)
class Param:
    """One tensor of a model: its shape, torch's initialisation, and the Flax collection it lives in."""

    shape: tuple[int, ...]
    init: str  # "uniform" (U(-bound, bound)), "ones" or "zeros"
    bound: float = 0.0
    collection: str = "params"  # or "batch_stats" (BatchNorm's running statistics and counter)
    dtype: str | None = None  # a fixed dtype (BatchNorm's int32 counter); None: the model's dtype


Layout = dict[str, Param]  # flat torch names in torch's state-dict order

# The TrainConfig fields a model may take as constructor options, and their values where a model
# does not take them (a config may leave them there; setting another value is refused by name).
OPTION_DEFAULTS: dict[str, Any] = {
    "hidden_size": 128,
    "num_layers": 2,
    "dropout": 0.0,
    "cell": "lstm",
    "implementation": "fused",
    "patch": 1,
}

# The options of a model around one recurrent layer (the default of `ModelEntry.options`).
RECURRENT_OPTIONS = ("hidden_size", "num_layers", "dropout", "cell", "implementation")

# The article's settings (sections 3.2, 4.1, 4.2): what a setting means where a model's recipe and
# the data are silent.
ARTICLE_RECIPE: dict[str, Any] = {
    "hidden_size": 128,
    "num_layers": 2,
    "lr": 1e-3,
    "clip": 1.0,
    "patience": 2,
    "factor": 0.1,
    "min_lr": 0.0,
    "dropout": 0.0,
}


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """Everything the library knows about one model (defined in the model's own module)."""

    name: str
    flax_class: type[nn.Module]
    torch_twin: str  # "module:Class" in torch_ref
    summary: str  # one line for help texts
    # (dims, arch) -> the layout: every tensor's shape and torch's initialisation, in torch's order
    layout: Callable[[Dims, Mapping[str, Any]], Layout]
    # a torch state dict's arrays -> (arch, dims) its shapes describe; shapes are checked afterwards
    read_state_dict: Callable[[Mapping[str, Any]], tuple[dict[str, Any], Dims]]
    modules: frozenset[str]  # the state dict's top-level module names, exactly (detection)
    # dims -> the Flax class's fields that come from the data (num_classes, seq_len, horizon, ...)
    dims_args: Callable[[Dims], dict[str, Any]]
    # TrainConfig fields (keys of OPTION_DEFAULTS) the Flax class takes under the same names
    options: tuple[str, ...] = RECURRENT_OPTIONS
    # constructor fields fixed for this entry (part of its arch: the FCN models' filters, ...)
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    batch_stats: bool = False  # keeps BatchNorm running statistics (train mode updates them)
    # what it is trained for: a key of jax_lstm.training.tasks.TASKS (its loss and evaluation)
    task: str = "classification"
    # The model's default training recipe: TrainConfig fields a run uses where the caller sets
    # nothing, over the data's defaults and the article's (`jax_lstm.training.resolve_config`), plus
    # the epoch rules of `jax_lstm.training.config.recipe_epochs` (min_steps, max_work, target_steps)
    # and the test split's (`recipe_eval_every`: eval_share, default `EVAL_SHARE`).
    recipe: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # Its apply takes ``return_attention=True`` and then returns (logits, weights (B, T)).
    attention: bool = False
    # Its program can leave the series' length symbolic (`jax.export`); False where its computation's
    # shapes are the length's (the 2-D MDLSTM's wavefront scans the grid's diagonals), so that an
    # exported artefact is compiled for the training length and takes series up to it.
    symbolic_length: bool = True

    @property
    def torch_class_name(self) -> str:
        return self.torch_twin.rpartition(":")[2]

    def arch(self, config: Any) -> dict[str, Any]:
        """The hyperparameters that fix the parameter shapes and the twin's constructor: the
        config's options (but the recurrence's implementation, which changes no parameter) and
        the entry's fixed fields."""
        taken = {o: getattr(config, o) for o in self.options if o != "implementation"}
        return {**taken, **self.fixed}


_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} is registered twice")
    unknown = sorted(set(entry.options) - set(OPTION_DEFAULTS))
    if unknown:
        raise ValueError(f"model {entry.name!r}: options {unknown} are not TrainConfig options")
    _REGISTRY[entry.name] = entry
    return entry


def names(task: str | None = None) -> tuple[str, ...]:
    """Every registered model name (of `task`, e.g. "classification", if given), in registration order."""
    return tuple(name for name, entry in _REGISTRY.items() if task is None or entry.task == task)


def entries() -> tuple[ModelEntry, ...]:
    return tuple(_REGISTRY.values())


def get(name: str) -> ModelEntry:
    """The entry of model `name`; a ValueError listing the models when there is none."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"model must be one of {names()}, got {name!r}") from None


def find_by_keys(keys) -> list[ModelEntry]:
    """The models whose state dicts have exactly these top-level modules (``lstm.weight_ih_l0`` -> lstm)."""
    modules = frozenset(key.partition(".")[0] for key in keys)
    return [entry for entry in _REGISTRY.values() if entry.modules == modules]


def check_options(entry: ModelEntry, settings: Mapping[str, Any]) -> None:
    """Refuses, by name, an option in `settings` (TrainConfig fields) that model `entry` does not
    take and that is set to something other than its neutral value (`OPTION_DEFAULTS`)."""
    for option, neutral in OPTION_DEFAULTS.items():
        value = settings.get(option, neutral)
        if option not in entry.options and value is not None and value != neutral:
            raise ValueError(
                f"model {entry.name!r} has no {option} option (it takes {', '.join(entry.options)}); "
                f"leave {option} at {neutral!r}"
            )


def build(entry: ModelEntry, config: Any, dims: Dims) -> nn.Module:
    """The Flax module of `entry` for a run of `config` on data of `dims`: the one constructor
    convention (options by name, the data's sizes, the fixed fields, the parameters' dtype)."""
    check_options(entry, {o: getattr(config, o) for o in OPTION_DEFAULTS})
    kwargs = {o: getattr(config, o) for o in entry.options}
    return entry.flax_class(
        **kwargs, **entry.dims_args(dims), **entry.fixed, param_dtype=jnp.dtype(config.dtype)
    )


def torch_kwargs(entry: ModelEntry, dims: Dims, arch: Mapping[str, Any]) -> dict[str, Any]:
    """The twin's constructor arguments, by the same names as the Flax class's: ``input_size`` (the
    data's features), the data's sizes (`dims_args`) and the hyperparameters (`arch`)."""
    return {"input_size": dims.num_features, **entry.dims_args(dims), **arch}


def nest(flat: Mapping[str, Any], layout: Layout) -> dict[str, Any]:
    """Flat torch-named arrays -> Flax variables, each key put in its collection, dots as nesting."""
    variables: dict[str, Any] = {"params": {}}
    for key, param in layout.items():
        node = variables.setdefault(param.collection, {})
        *path, leaf = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = flat[key]
    return variables


def flatten(variables: Mapping[str, Any]) -> dict[str, Any]:
    """Flax variables -> ``{"lstm.weight_ih_l0": array, "bn.running_mean": array, ...}`` (torch names)."""
    if not isinstance(variables, Mapping) or "params" not in variables:
        raise KeyError("expected Flax variables with a 'params' collection, e.g. from init()")
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            for name, child in node.items():
                walk(f"{prefix}.{name}" if prefix else str(name), child)
        else:
            flat[prefix] = node

    for collection in ("params", "batch_stats"):
        walk("", variables.get(collection, {}))
    return flat


def initial_variables(entry: ModelEntry, config: Any, dims: Dims) -> dict[str, Any]:
    """The Flax variables a run of `config` starts from: torch's initialisation drawn from its seed.

    Drawn with numpy from the layout, in torch's parameter order, rather than by `model.init`, which
    traces and compiles the whole forward pass (and every `jax.random` draw) only to discard it; the
    tree has exactly the structure, shapes and dtypes of ``model.init`` (tested).
    """
    dtype = np.dtype(config.dtype)
    # A stream of its own: batch orders use default_rng([seed, epoch]).
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(1,)))
    layout = entry.layout(dims, entry.arch(config))
    flat = {}
    for key, param in layout.items():
        param_dtype = np.dtype(param.dtype) if param.dtype else dtype
        if param.init == "uniform":
            value = rng.uniform(-param.bound, param.bound, param.shape).astype(param_dtype)
        elif param.init == "ones":
            value = np.ones(param.shape, param_dtype)
        else:
            value = np.zeros(param.shape, param_dtype)
        flat[key] = jnp.asarray(value)
    return nest(flat, layout)


# ---------------------------------------------------------------------------------------------
# Layout pieces the models' entries are written with: torch's modules and their initialisation.


def lstm_layout(prefix: str, spec: RNNSpec) -> Layout:
    """An `nn.LSTM` (or `nn.GRU` / `nn.RNN`: `spec.mode`) under `prefix`: every tensor
    U(-1/sqrt(H), 1/sqrt(H)), both biases included."""
    bound = 1.0 / math.sqrt(spec.hidden_size)
    return {f"{prefix}.{k}": Param(shape, "uniform", bound) for k, shape in param_shapes(spec).items()}


def linear_layout(prefix: str, in_features: int, out_features: int, bias: bool = True) -> Layout:
    """An `nn.Linear`: weight (out, in) and bias (out,), both U(-1/sqrt(in), 1/sqrt(in))."""
    bound = 1.0 / math.sqrt(in_features)
    layout = {f"{prefix}.weight": Param((out_features, in_features), "uniform", bound)}
    if bias:
        layout[f"{prefix}.bias"] = Param((out_features,), "uniform", bound)
    return layout


def conv_layout(prefix: str, in_channels: int, out_channels: int, kernel: int) -> Layout:
    """An `nn.Conv1d`: weight (out, in, k) and bias (out,), both U(-1/sqrt(in k), 1/sqrt(in k))."""
    bound = 1.0 / math.sqrt(in_channels * kernel)
    return {
        f"{prefix}.weight": Param((out_channels, in_channels, kernel), "uniform", bound),
        f"{prefix}.bias": Param((out_channels,), "uniform", bound),
    }


def batchnorm_layout(prefix: str, features: int) -> Layout:
    """An `nn.BatchNorm1d`: weight 1, bias 0; running mean 0, variance 1, and the batch counter."""
    return {
        f"{prefix}.weight": Param((features,), "ones"),
        f"{prefix}.bias": Param((features,), "zeros"),
        f"{prefix}.running_mean": Param((features,), "zeros", collection="batch_stats"),
        f"{prefix}.running_var": Param((features,), "ones", collection="batch_stats"),
        # torch keeps an int64 counter; int32 here (JAX's default integer) converts exactly.
        f"{prefix}.num_batches_tracked": Param((), "zeros", collection="batch_stats", dtype="int32"),
    }


def group(flat: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The arrays under ``prefix.`` with the prefix removed."""
    start = prefix + "."
    return {key[len(start) :]: value for key, value in flat.items() if key.startswith(start)}


def required(flat: Mapping[str, Any], key: str, what: str) -> Any:
    if key not in flat:
        raise KeyError(f"missing key {key!r} ({what})")
    return flat[key]


def read_recurrent(flat: Mapping[str, Any], prefix: str = "lstm") -> tuple[str, RNNSpec]:
    """The cell ("lstm", "gru", "rnn") and spec of the recurrent layer under ``prefix.``, its kind
    read off its shapes (a tanh and a relu RNN look alike: "rnn" is tanh)."""
    layer = group(flat, prefix)
    family = family_from_shapes(layer) or "LSTM"  # unreadable shapes: nn.LSTM's messages
    cell = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn"}.get(family, "lstm")
    return cell, spec_from_params(layer, prefix=f"{prefix}.", mode=CELL_MODES[cell])


def recurrent_layout(prefix: str, input_size: int, arch: Mapping[str, Any], **spec: Any) -> Layout:
    """The recurrent layer of `arch` (its cell, hidden size and layers; `spec` adds e.g.
    ``bidirectional``) over inputs of `input_size` features."""
    mode = CELL_MODES[arch.get("cell", "lstm")]
    layer = RNNSpec(input_size, arch["hidden_size"], arch["num_layers"], mode=mode, **spec)
    return lstm_layout(prefix, layer)
