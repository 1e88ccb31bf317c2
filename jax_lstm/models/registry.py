"""The model registry: the one place that knows each model.

An entry names a model (the CLI's ``--model``, `TrainConfig.model`, the estimator's ``model=``) and
holds everything the rest of the library asks about it: its Flax class and how to build it from a
config, its torch twin (by import path: `jax_lstm` never imports `torch_ref`), its parameter layout
in torch's state-dict order (interop, checkpoints and the torch-style initialiser all read it), how
to read its hyperparameters back off a torch state dict, and whether it keeps batch statistics.
Adding a model is one module with its Flax class plus one `register` call here; nothing else
switches on model names.

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

from jax_lstm.models.attention import AttentionLSTMClassifier
from jax_lstm.models.classifiers import BNLSTMClassifier, LSTMClassifier
from jax_lstm.models.fcn import LSTMFCNClassifier, MLSTMFCNClassifier
from jax_lstm.models.forecaster import LSTMForecaster
from jax_lstm.rnn.layer import CELL_MODES
from jax_lstm.rnn.spec import LSTMSpec, RNNSpec, family_from_shapes, param_shapes, spec_from_params

__all__ = [
    "Dims",
    "Layout",
    "ModelEntry",
    "Param",
    "entries",
    "find_by_keys",
    "flatten",
    "get",
    "initial_variables",
    "names",
    "nest",
    "recipe",
    "recipe_epochs",
    "register",
    "resolve_recipe",
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


@dataclasses.dataclass(frozen=True)
class Dims:
    """The sizes a model takes from its data rather than its config.

    ``num_outputs`` is the width of the model's last layer: the classes of a classifier, H * T for a
    forecaster of H steps of T targets, whose ``output_shape`` (H, T) says how the width folds into
    one sample's output. A state dict holds only the width, so dims read off one have no shape.
    """

    num_features: int  # F: input channels
    num_outputs: int  # classes (classifiers), horizon * targets (forecasters)
    output_shape: tuple[int, ...] | None = None  # one sample's output, e.g. (H, T); None: (num_outputs,)
    # T: the series' (padded) length, for models whose parameters depend on it (the FCN models'
    # LSTM steps over the variables, each step a whole series); 0 where no parameter does.
    seq_len: int = 0

    def __post_init__(self) -> None:
        if self.output_shape is not None and math.prod(self.output_shape) != self.num_outputs:
            raise ValueError(
                f"output_shape {self.output_shape} does not hold num_outputs {self.num_outputs} values"
            )


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """Everything the library knows about one model."""

    name: str
    flax_class: type[nn.Module]
    torch_twin: str  # "module:Class" in torch_ref
    summary: str  # one line for help texts
    # config -> the hyperparameters that fix the parameter shapes (and the twin's constructor)
    arch: Callable[[Any], dict[str, Any]]
    layout: Callable[[Dims, Mapping[str, Any]], Layout]
    # a torch state dict's arrays -> (arch, dims) its shapes describe; shapes are checked afterwards
    read_state_dict: Callable[[Mapping[str, Any]], tuple[dict[str, Any], Dims]]
    build: Callable[[Any, Dims], nn.Module]  # config, dims -> the Flax module
    torch_args: Callable[[Dims, Mapping[str, Any]], tuple]  # the twin's constructor arguments
    modules: frozenset[str]  # the state dict's top-level module names, exactly (detection)
    batch_stats: bool = False  # keeps BatchNorm running statistics (train mode updates them)
    # what it is trained for: a key of jax_lstm.training.tasks.TASKS (its loss and evaluation)
    task: str = "classification"
    # The model's default training recipe: TrainConfig fields that `jax-lstm train` (and the
    # estimator) use where no flag or argument sets them; printed in the run's header line.
    recipe: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # Its apply takes ``return_attention=True`` and then returns (logits, weights (B, T)).
    attention: bool = False

    @property
    def torch_class_name(self) -> str:
        return self.torch_twin.rpartition(":")[2]


_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} is registered twice")
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
# Layout pieces shared by several models.


def lstm_layout(prefix: str, spec: LSTMSpec) -> Layout:
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


# ---------------------------------------------------------------------------------------------
# The article's classifiers (models/classifiers.py).


def _article_arch(config: Any) -> dict[str, Any]:
    return {"hidden_size": config.hidden_size, "num_layers": config.num_layers, "cell": config.cell}


def _article_layout(with_bn: bool) -> Callable[[Dims, Mapping[str, Any]], Layout]:
    def layout(dims: Dims, arch: Mapping[str, Any]) -> Layout:
        mode = CELL_MODES[arch.get("cell", "lstm")]
        spec = RNNSpec(dims.num_features, arch["hidden_size"], arch["num_layers"], mode=mode)
        out: Layout = batchnorm_layout("bn", dims.num_features) if with_bn else {}
        out.update(lstm_layout("lstm", spec))
        # nn.Linear(hidden_size, num_classes): its bound 1/sqrt(in_features) is 1/sqrt(H) as well.
        out.update(linear_layout("fc", arch["hidden_size"], dims.num_outputs))
        return out

    return layout


def _article_read(flat: Mapping[str, Any]) -> tuple[dict[str, Any], Dims]:
    layer = group(flat, "lstm")
    # The recurrent layer's kind from its shapes (a tanh and a relu RNN look alike: "rnn" is tanh).
    cell = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn"}.get(family_from_shapes(layer) or "LSTM", "lstm")
    spec = spec_from_params(layer, prefix="lstm.", mode=CELL_MODES[cell])
    num_classes = int(required(flat, "fc.weight", "the classifier's nn.Linear").shape[0])
    arch = {"hidden_size": spec.hidden_size, "num_layers": spec.num_layers, "cell": cell}
    return arch, Dims(spec.input_size, num_classes)


def _article_build(cls: type[nn.Module]) -> Callable[[Any, Dims], nn.Module]:
    def build(config: Any, dims: Dims) -> nn.Module:
        return cls(
            config.hidden_size,
            config.num_layers,
            dims.num_outputs,
            dropout=config.dropout,
            param_dtype=jnp.dtype(config.dtype),
            implementation=config.implementation,
            cell=config.cell,
        )

    return build


def _article_torch_args(dims: Dims, arch: Mapping[str, Any]) -> tuple:
    cell = arch.get("cell", "lstm")
    return (dims.num_features, arch["hidden_size"], arch["num_layers"], dims.num_outputs, cell)


register(
    ModelEntry(
        name="lstm",
        flax_class=LSTMClassifier,
        torch_twin="torch_ref.models:MultiDimLSTM",
        summary="the article's MultiDimLSTM: LSTM, last step, Linear",
        arch=_article_arch,
        layout=_article_layout(with_bn=False),
        read_state_dict=_article_read,
        build=_article_build(LSTMClassifier),
        torch_args=_article_torch_args,
        modules=frozenset({"lstm", "fc"}),
    )
)
register(
    ModelEntry(
        name="bn-lstm",
        flax_class=BNLSTMClassifier,
        torch_twin="torch_ref.models:BN_LSTM",
        summary="the article's BN_LSTM: BatchNorm1d over features, then as lstm",
        arch=_article_arch,
        layout=_article_layout(with_bn=True),
        read_state_dict=_article_read,
        build=_article_build(BNLSTMClassifier),
        torch_args=_article_torch_args,
        modules=frozenset({"bn", "lstm", "fc"}),
        batch_stats=True,
    )
)


# ---------------------------------------------------------------------------------------------
# The forecaster (models/forecaster.py): the article's layout, its head H * T wide.


def _forecaster_shape(dims: Dims) -> tuple[int, int]:
    """(H, T) of a forecaster's dims; a bare width (read off a state dict) counts as H * T steps of
    one target, which has the same parameters."""
    if dims.output_shape is None:
        return dims.num_outputs, 1
    if len(dims.output_shape) != 2:
        raise ValueError(f"a forecaster's output_shape is (horizon, targets), got {dims.output_shape}")
    return dims.output_shape[0], dims.output_shape[1]


def _forecaster_build(config: Any, dims: Dims) -> nn.Module:
    horizon, targets = _forecaster_shape(dims)
    return LSTMForecaster(
        config.hidden_size,
        config.num_layers,
        horizon,
        targets,
        dropout=config.dropout,
        param_dtype=jnp.dtype(config.dtype),
        implementation=config.implementation,
    )


def _forecaster_torch_args(dims: Dims, arch: Mapping[str, Any]) -> tuple:
    return (dims.num_features, arch["hidden_size"], arch["num_layers"], *_forecaster_shape(dims))


register(
    ModelEntry(
        name="lstm-forecaster",
        flax_class=LSTMForecaster,
        torch_twin="torch_ref.forecaster:LSTMForecaster",
        summary="direct multi-step forecaster: LSTM, last step, Linear to horizon x targets",
        arch=_article_arch,
        layout=_article_layout(with_bn=False),
        read_state_dict=_article_read,
        build=_forecaster_build,
        torch_args=_forecaster_torch_args,
        modules=frozenset({"lstm", "fc"}),
        task="forecasting",
    )
)


# ---------------------------------------------------------------------------------------------
# The article's extensions: LSTM-FCN, MLSTM-FCN (models/fcn.py) and attention (models/attention.py).

# The papers' convolutional branch; the registry builds it at this size (the Flax classes and the
# torch twins take others, and `read_state_dict` reads any back).
FCN_FILTERS = (128, 256, 128)
FCN_KERNELS = (8, 5, 3)
SE_REDUCTION = 16
# Karim et al.'s recipe (Adam 1e-3; the plateau factor, floor and LSTM size of their code) with the
# plateau's patience scaled to the run's length, and no gradient clipping (they use none).
FCN_RECIPE = {
    "hidden_size": 8,
    "num_layers": 1,
    "dropout": 0.8,
    "clip": None,
    "lr": 1e-3,
    "factor": 1 / 2 ** (1 / 3),
    "patience": 5,
    "min_lr": 1e-4,
    "epochs": 40,
    "batch_size": 16,
    # Small training sets get more epochs, so that a run makes at least `min_steps` updates (40
    # epochs of a 40-series set would be 120), as long as the epochs' work (series x padded steps x
    # epochs) stays within `max_work`, which bounds a default run's time (`recipe_epochs`).
    "min_steps": 1500,
    "max_work": 4_000_000,
}


# The article's settings: what a setting means where a model's recipe is silent.
ARTICLE_RECIPE = {
    "hidden_size": 128,
    "num_layers": 2,
    "lr": 1e-3,
    "clip": 1.0,
    "patience": 2,
    "factor": 0.1,
    "min_lr": 0.0,
    "dropout": 0.0,
}


def recipe(name: str, epochs: int, batch_size: int) -> dict[str, Any]:
    """Model `name`'s default training settings (TrainConfig fields, plus ``min_steps``): its
    entry's recipe over `epochs` and `batch_size` (the data's defaults) over the article's."""
    return {**ARTICLE_RECIPE, "epochs": epochs, "batch_size": batch_size, **get(name).recipe}


# The recipe fields a user may set (flags, estimator parameters); None there means "the recipe's".
RECIPE_FIELDS = (
    "hidden_size",
    "num_layers",
    "epochs",
    "batch_size",
    "lr",
    "clip",
    "patience",
    "factor",
    "min_lr",
    "dropout",
)


def resolve_recipe(
    name: str,
    given: Mapping[str, Any],
    epochs: int,
    batch_size: int,
    num_train: int = 0,
    seq_len: int = 0,
) -> dict[str, Any]:
    """The TrainConfig fields of `RECIPE_FIELDS` for a run of model `name`: each value in `given`
    that is not None, else the model's recipe over `epochs` and `batch_size` (`recipe`).

    ``clip`` follows the flag's convention: 0 disables clipping (None in the config). Recipe epochs
    are raised for small training sets of `num_train` series of `seq_len` steps (`recipe_epochs`);
    epochs that were given stand.
    """
    base = recipe(name, epochs, batch_size)
    out = {field: base[field] if given.get(field) is None else given[field] for field in RECIPE_FIELDS}
    if given.get("clip") is not None and given["clip"] <= 0:
        out["clip"] = None
    if given.get("epochs") is None:
        out["epochs"] = recipe_epochs(base, num_train, out["batch_size"], out["epochs"], seq_len)
    return out


def recipe_epochs(
    recipe: Mapping[str, Any], num_train: int, batch_size: int, epochs: int, seq_len: int = 0
) -> int:
    """`epochs`, raised where the recipe asks for ``min_steps`` updates and `num_train` series in
    batches of `batch_size` would make fewer; the raise stops where the run's work, `num_train` x
    `seq_len` x epochs, would pass the recipe's ``max_work`` (never below `epochs`)."""
    min_steps = int(recipe.get("min_steps", 0))
    if not min_steps or num_train < 1:
        return epochs
    steps_per_epoch = math.ceil(num_train / batch_size)
    wanted = max(epochs, math.ceil(min_steps / steps_per_epoch))
    max_work = int(recipe.get("max_work", 0))
    if max_work and seq_len > 0:
        wanted = min(wanted, max(epochs, max_work // (num_train * seq_len)))
    return wanted


def _conv_layout(prefix: str, in_channels: int, out_channels: int, kernel: int) -> Layout:
    """An `nn.Conv1d`: weight (out, in, k) and bias (out,), both U(-1/sqrt(in k), 1/sqrt(in k))."""
    bound = 1.0 / math.sqrt(in_channels * kernel)
    return {
        f"{prefix}.weight": Param((out_channels, in_channels, kernel), "uniform", bound),
        f"{prefix}.bias": Param((out_channels,), "uniform", bound),
    }


def _require_seq_len(dims: Dims) -> None:
    if dims.seq_len < 1:
        raise ValueError("the FCN models need the series length (Dims.seq_len) for their LSTM's input size")


def _fcn_arch(config: Any) -> dict[str, Any]:
    return {
        "hidden_size": config.hidden_size,
        "num_layers": config.num_layers,
        "cell": config.cell,
        "dropout": config.dropout,  # no parameters, but the twin's constructor takes it
        "filters": FCN_FILTERS,
        "kernel_sizes": FCN_KERNELS,
        "reduction": SE_REDUCTION,
    }


def _fcn_layout(squeeze_excite: bool) -> Callable[[Dims, Mapping[str, Any]], Layout]:
    def layout(dims: Dims, arch: Mapping[str, Any]) -> Layout:
        _require_seq_len(dims)
        mode = CELL_MODES[arch.get("cell", "lstm")]
        spec = RNNSpec(dims.seq_len, arch["hidden_size"], arch["num_layers"], mode=mode)
        out: Layout = lstm_layout("lstm", spec)
        filters, kernels = tuple(arch["filters"]), tuple(arch["kernel_sizes"])
        channels = (dims.num_features, *filters)
        for i, kernel in enumerate(kernels, start=1):
            out.update(_conv_layout(f"conv{i}", channels[i - 1], channels[i], kernel))
            out.update(batchnorm_layout(f"bn{i}", channels[i]))
            if squeeze_excite and i < len(kernels):
                hidden = max(1, channels[i] // arch["reduction"])
                out.update(linear_layout(f"se{i}.fc1", channels[i], hidden, bias=False))
                out.update(linear_layout(f"se{i}.fc2", hidden, channels[i], bias=False))
        out.update(linear_layout("fc", arch["hidden_size"] + filters[-1], dims.num_outputs))
        return out

    return layout


def _recurrent_read(flat: Mapping[str, Any]) -> tuple[str, Any]:
    """The cell and spec of the recurrent layer under ``lstm.`` (its kind from its shapes)."""
    layer = group(flat, "lstm")
    cell = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn"}.get(family_from_shapes(layer) or "LSTM", "lstm")
    return cell, spec_from_params(layer, prefix="lstm.", mode=CELL_MODES[cell])


def _fcn_read(flat: Mapping[str, Any]) -> tuple[dict[str, Any], Dims]:
    cell, spec = _recurrent_read(flat)
    filters, kernels, index = [], [], 1
    while f"conv{index}.weight" in flat:
        shape = flat[f"conv{index}.weight"].shape
        filters.append(int(shape[0]))
        kernels.append(int(shape[2]))
        index += 1
    first = required(flat, "conv1.weight", "the first Conv1d")
    reduction = SE_REDUCTION
    if "se1.fc1.weight" in flat:
        reduction = max(1, filters[0] // int(flat["se1.fc1.weight"].shape[0]))
    arch = {
        "hidden_size": spec.hidden_size,
        "num_layers": spec.num_layers,
        "cell": cell,
        "dropout": FCN_RECIPE["dropout"],  # not in a state dict: the recipe's
        "filters": tuple(filters),
        "kernel_sizes": tuple(kernels),
        "reduction": reduction,
    }
    num_classes = int(required(flat, "fc.weight", "the classifier's nn.Linear").shape[0])
    return arch, Dims(int(first.shape[1]), num_classes, seq_len=spec.input_size)


def _fcn_build(cls: type[nn.Module]) -> Callable[[Any, Dims], nn.Module]:
    def build(config: Any, dims: Dims) -> nn.Module:
        _require_seq_len(dims)
        arch = _fcn_arch(config)
        return cls(
            dims.seq_len,
            dims.num_outputs,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout,
            filters=arch["filters"],
            kernel_sizes=arch["kernel_sizes"],
            reduction=arch["reduction"],
            param_dtype=jnp.dtype(config.dtype),
            implementation=config.implementation,
            cell=config.cell,
        )

    return build


def _fcn_torch_args(dims: Dims, arch: Mapping[str, Any]) -> tuple:
    return (
        dims.num_features,
        dims.seq_len,
        dims.num_outputs,
        arch["hidden_size"],
        arch["num_layers"],
        arch.get("dropout", FCN_RECIPE["dropout"]),
        tuple(arch["filters"]),
        tuple(arch["kernel_sizes"]),
        arch.get("reduction", SE_REDUCTION),
        arch.get("cell", "lstm"),
    )


def _fcn_modules(squeeze_excite: bool) -> frozenset[str]:
    names_ = {"lstm", "fc"} | {f"{kind}{i}" for kind in ("conv", "bn") for i in range(1, 4)}
    return frozenset(names_ | ({"se1", "se2"} if squeeze_excite else set()))


for _name, _cls, _summary in (
    (
        "lstm-fcn",
        LSTMFCNClassifier,
        "LSTM-FCN (Karim et al. 2018): three Conv1d blocks beside an LSTM over the variables",
    ),
    (
        "mlstm-fcn",
        MLSTMFCNClassifier,
        "MLSTM-FCN (Karim et al. 2019): LSTM-FCN with squeeze-and-excite blocks",
    ),
):
    _squeeze = _cls.squeeze_excite
    register(
        ModelEntry(
            name=_name,
            flax_class=_cls,
            torch_twin=f"torch_ref.hybrid:{'MLSTMFCN' if _squeeze else 'LSTMFCN'}",
            summary=_summary,
            arch=_fcn_arch,
            layout=_fcn_layout(squeeze_excite=_squeeze),
            read_state_dict=_fcn_read,
            build=_fcn_build(_cls),
            torch_args=_fcn_torch_args,
            modules=_fcn_modules(_squeeze),
            batch_stats=True,
            recipe=FCN_RECIPE,
        )
    )


def _attention_arch(config: Any) -> dict[str, Any]:
    return {**_article_arch(config), "bidirectional": True}


def _attention_layout(dims: Dims, arch: Mapping[str, Any]) -> Layout:
    mode = CELL_MODES[arch.get("cell", "lstm")]
    hidden = arch["hidden_size"]
    size = arch.get("attention_size") or hidden
    bidirectional = arch.get("bidirectional", True)
    spec = RNNSpec(dims.num_features, hidden, arch["num_layers"], bidirectional=bidirectional, mode=mode)
    width = hidden * (2 if bidirectional else 1)
    out: Layout = lstm_layout("lstm", spec)
    out.update(linear_layout("attn", width, size))
    out.update(linear_layout("v", size, 1, bias=False))
    out.update(linear_layout("fc", width, dims.num_outputs))
    return out


def _attention_read(flat: Mapping[str, Any]) -> tuple[dict[str, Any], Dims]:
    cell, spec = _recurrent_read(flat)
    size = int(required(flat, "attn.weight", "the attention's nn.Linear").shape[0])
    num_classes = int(required(flat, "fc.weight", "the classifier's nn.Linear").shape[0])
    arch = {
        "hidden_size": spec.hidden_size,
        "num_layers": spec.num_layers,
        "cell": cell,
        "attention_size": size,
        "bidirectional": spec.bidirectional,
    }
    return arch, Dims(spec.input_size, num_classes)


def _attention_build(config: Any, dims: Dims) -> nn.Module:
    return AttentionLSTMClassifier(
        config.hidden_size,
        config.num_layers,
        dims.num_outputs,
        dropout=config.dropout,
        param_dtype=jnp.dtype(config.dtype),
        implementation=config.implementation,
        cell=config.cell,
        bidirectional=True,
    )


def _attention_torch_args(dims: Dims, arch: Mapping[str, Any]) -> tuple:
    return (
        dims.num_features,
        arch["hidden_size"],
        arch["num_layers"],
        dims.num_outputs,
        arch.get("attention_size") or arch["hidden_size"],
        arch.get("cell", "lstm"),
        arch.get("bidirectional", True),
    )


register(
    ModelEntry(
        name="attention-lstm",
        flax_class=AttentionLSTMClassifier,
        torch_twin="torch_ref.hybrid:AttentionLSTM",
        summary="bidirectional LSTM with additive attention pooling over its outputs, then Linear",
        arch=_attention_arch,
        layout=_attention_layout,
        read_state_dict=_attention_read,
        build=_attention_build,
        torch_args=_attention_torch_args,
        modules=frozenset({"lstm", "attn", "v", "fc"}),
        attention=True,
    )
)
