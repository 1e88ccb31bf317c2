"""Training the article's classifiers: pure functions of a train state, jitted per step.

The loop is the article's (section 3.2 with 4.1 and 4.2): shuffled mini-batches, cross-entropy,
`clip_grad_norm_(max_norm=1.0)`, Adam, and `ReduceLROnPlateau(patience=2)` stepped once per epoch on
the epoch's mean training loss (the article's `scheduler.step(loss)` would see the last batch's
loss; `torch_ref.train` lists every departure). `torch_ref.train` runs the same loop in PyTorch
from the same batches.

A step is jitted rather than a whole epoch: measured on CPU, compiling an epoch into one program
gained nothing (dispatch is small next to a step), while per-step jit keeps the host free to log.
Each step gathers its batch from the device-resident dataset by index, so no data crosses from the
host after the first epoch, and nothing recompiles after it (a full and possibly a shorter last
batch are the only two shapes; a learning rate the scheduler changes keeps its dtype, shape and
placement, on one device or over a mesh).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jax_lstm import cudnn, optim
from jax_lstm.data import Dataset, batch_order, epoch_mean, micro_batch_bounds
from jax_lstm.functional import IMPLEMENTATIONS
from jax_lstm.models import BNLSTMClassifier, LSTMClassifier
from jax_lstm.spec import LSTMSpec, param_shapes

__all__ = [
    "FitResult",
    "TrainConfig",
    "TrainState",
    "TrainingDivergedError",
    "create_train_state",
    "cross_entropy",
    "data_parallel_mesh",
    "evaluate",
    "fit",
    "fit_many",
    "initial_variables",
    "make_eval_step",
    "make_forward",
    "make_model",
    "make_optimizer",
    "make_train_step",
    "mesh_for",
    "train_epoch",
]

MODELS = ("lstm", "bn-lstm")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults are the article's (section 3.2 plus 4.1 and 4.2)."""

    model: str = "lstm"  # "lstm" (MultiDimLSTM) or "bn-lstm" (BN_LSTM)
    hidden_size: int = 128
    num_layers: int = 2
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    clip: float | None = 1.0  # clip_grad_norm_ max_norm; None: no clipping
    patience: int = 2  # ReduceLROnPlateau patience, stepped once per epoch on the train loss
    factor: float = 0.1  # ReduceLROnPlateau factor
    weight_decay: float = 0.0  # torch Adam's L2 term
    accumulate: int = 1  # micro-batches per optimizer step (gradient accumulation)
    dropout: float = 0.0  # inter-layer LSTM dropout
    seed: int = 0  # initial weights and batch order
    dtype: str = "float32"  # "float32" or "float64" (needs jax_enable_x64)
    log_every: int = 10  # a log line every this many steps (0: none)
    eval_batch_size: int = 1024
    implementation: str = "fused"  # the LSTM recurrence: "fused", "scan" or "cudnn" (CUDA GPU only)

    def validate(self) -> TrainConfig:
        checks = [
            (self.model in MODELS, f"model must be one of {MODELS}, got {self.model!r}"),
            (self.hidden_size >= 1, f"hidden_size must be at least 1, got {self.hidden_size}"),
            (self.num_layers >= 1, f"num_layers must be at least 1, got {self.num_layers}"),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be positive, got {self.lr}"),
            (self.clip is None or self.clip > 0, f"clip must be positive (or None), got {self.clip}"),
            (self.patience >= 0, f"patience must be at least 0, got {self.patience}"),
            (0 < self.factor < 1, f"factor must be in (0, 1), got {self.factor}"),
            (self.weight_decay >= 0, f"weight_decay must be at least 0, got {self.weight_decay}"),
            (self.accumulate >= 1, f"accumulate must be at least 1, got {self.accumulate}"),
            (
                self.accumulate <= self.batch_size,
                f"accumulate ({self.accumulate}) cannot exceed batch_size ({self.batch_size})",
            ),
            (0 <= self.dropout <= 1, f"dropout must be in [0, 1], got {self.dropout}"),
            (0 <= self.seed < 2**64, f"seed must be in [0, 2**64) (numpy's seeds), got {self.seed}"),
            (self.dtype in ("float32", "float64"), f"dtype must be float32 or float64, got {self.dtype}"),
            (self.eval_batch_size >= 1, "eval_batch_size must be at least 1"),
            (
                self.implementation in IMPLEMENTATIONS,
                f"implementation must be one of {IMPLEMENTATIONS}, got {self.implementation!r}",
            ),
            (
                self.implementation != "cudnn" or self.dtype == "float32",
                "implementation 'cudnn' runs float32 only; use implementation 'fused' for float64",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.dtype == "float64" and not jax.config.read("jax_enable_x64"):
            raise ValueError(
                "dtype float64 needs JAX's 64-bit mode: call "
                "jax.config.update('jax_enable_x64', True) at startup"
            )
        if self.implementation == "cudnn" and not cudnn.available():
            raise ValueError(
                "implementation 'cudnn' needs a CUDA GPU as JAX's default backend (found "
                f"{jax.default_backend()!r}); use implementation 'fused', which runs everywhere"
            )
        return self


class TrainState(struct.PyTreeNode):
    """Everything a train step reads and writes; all device arrays, so it passes through jit."""

    step: jax.Array  # () int32: optimizer updates so far
    params: Any  # the model's params, torch-named
    batch_stats: Any  # BatchNorm running statistics ({} for the plain LSTM model)
    opt_state: Any  # Adam moments, step count and the injected learning rate
    key: jax.Array  # (2,) uint32 PRNG key, split once per step for dropout

    def variables(self) -> dict[str, Any]:
        """The model's Flax variables (for `apply`, `to_torch`): params, and batch_stats if any."""
        return _variables(self.params, self.batch_stats)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or inf; the last good checkpoint (if any) is left untouched."""


def make_model(config: TrainConfig, num_classes: int) -> nn.Module:
    cls = LSTMClassifier if config.model == "lstm" else BNLSTMClassifier
    return cls(
        config.hidden_size,
        config.num_layers,
        num_classes,
        dropout=config.dropout,
        param_dtype=jnp.dtype(config.dtype),
        implementation=config.implementation,
    )


DATA_AXIS = "data"


def data_parallel_mesh(devices=None) -> Mesh | None:
    """A 1-D mesh over the local devices (None when there is only one).

    On CPU, `jax-lstm` starts JAX with one host device per core (XLA_FLAGS
    ``--xla_force_host_platform_device_count``): XLA runs each program on one thread, and the
    recurrent matmuls of a small batch are too small to be split inside one, so splitting the
    *batch* across host devices is what puts every core to work.
    """
    devices = list(jax.local_devices() if devices is None else devices)
    if len(devices) < 2:
        return None
    return Mesh(np.asarray(devices), (DATA_AXIS,))


# Below this many rows per device, splitting a batch costs more (cross-device reduction, one more
# program) than it saves: measured on 2 host devices, a batch of 8 took 3.7 ms split and 2.9 ms whole,
# a batch of 32 took 7.1 ms split and 7.9 ms whole (benchmarks/NOTES.md).
MIN_ROWS_PER_DEVICE = 16


class _Dispatch:
    """Calls the data-parallel program when the leading size splits evenly over the mesh into
    shards of at least `min_per_shard`, and the single-program version otherwise (e.g. a shorter
    last batch)."""

    def __init__(self, sharded, fallback, shards: int, size_of: Callable[..., int], min_per_shard: int = 1):
        self.sharded, self.fallback, self.shards, self.size_of = sharded, fallback, shards, size_of
        self.min_per_shard = min_per_shard

    def __call__(self, *args):
        size = self.size_of(*args)
        if size % self.shards == 0 and size // self.shards >= self.min_per_shard:
            return self.sharded(*args)
        return self.fallback(*args)

    def _cache_size(self) -> int:
        return self.sharded._cache_size() + self.fallback._cache_size()


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """clip_grad_norm_ then Adam, as in the article; the learning rate is injectable."""
    return optim.adam(config.lr, weight_decay=config.weight_decay, max_grad_norm=config.clip)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """`nn.CrossEntropyLoss()`: mean over the batch. logits (B, C), labels (B,) -> ()."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def _state_key(config: TrainConfig) -> jax.Array:
    """The train state's PRNG key: for seeds below 2**32 exactly `jax.random.PRNGKey(seed)`
    (threefry's raw (2,) uint32 layout; `validate` keeps seeds in [0, 2**64)), built with numpy so
    that no random program is compiled."""
    seed = config.seed
    return jnp.asarray(np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32))


def initial_variables(config: TrainConfig, num_features: int, num_classes: int) -> dict[str, Any]:
    """The Flax variables a run with this config starts from: torch's initialisation, drawn from
    the seed (every LSTM tensor and the head U(-1/sqrt(H), 1/sqrt(H)), BatchNorm weight 1, bias 0,
    running mean 0, variance 1).

    Drawn with numpy from the parameter layout rather than by `model.init`, which traces and
    compiles the whole forward pass (and every `jax.random` draw) only to discard it: measured 1.4 s
    eager or 0.77 s jitted for the article's model, a large part of a 10-epoch run; this takes
    milliseconds. The tree has exactly the structure, shapes and dtypes of ``make_model(...).init``
    (tested).
    """
    dtype = np.dtype(config.dtype)
    # A stream of its own: batch orders use default_rng([seed, epoch]).
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(1,)))
    bound = 1.0 / math.sqrt(config.hidden_size)

    def uniform(shape):
        return jnp.asarray(rng.uniform(-bound, bound, shape).astype(dtype))

    layout = param_shapes(LSTMSpec(num_features, config.hidden_size, config.num_layers))
    # nn.Linear(hidden_size, num_classes): its bound 1/sqrt(in_features) is 1/sqrt(H) as well.
    params: dict[str, Any] = {
        "lstm": {name: uniform(shape) for name, shape in layout.items()},
        "fc": {"weight": uniform((num_classes, config.hidden_size)), "bias": uniform((num_classes,))},
    }
    if config.model == "lstm":
        return {"params": params}
    params["bn"] = {"weight": jnp.ones(num_features, dtype), "bias": jnp.zeros(num_features, dtype)}
    batch_stats = {
        "bn": {
            "num_batches_tracked": jnp.zeros((), jnp.int32),
            "running_mean": jnp.zeros(num_features, dtype),
            "running_var": jnp.ones(num_features, dtype),
        }
    }
    return {"params": params, "batch_stats": batch_stats}


@functools.lru_cache(maxsize=64)
def _optimizer_init(weight_decay: float, clip: float | None) -> Callable:
    """`make_optimizer(config).init`, jitted once per optimizer rather than once per call.

    One small program instead of an eager op per parameter; built anew on every call, it cost a
    compile each time (measured ~70 ms per `create_train_state` for the article's model, paid once
    per seed in `fit_many` and on every checkpoint load). The learning rate only seeds the state's
    injected rate, which `create_train_state` replaces, so it is not part of the key.
    """
    return jax.jit(make_optimizer(TrainConfig(lr=1.0, weight_decay=weight_decay, clip=clip)).init)


def create_train_state(
    config: TrainConfig,
    num_features: int,
    num_classes: int,
    variables: dict[str, Any] | None = None,
) -> TrainState:
    """A fresh train state: weights from `variables` (e.g. `from_torch`) or initialised from the seed."""
    if variables is None:
        variables = initial_variables(config, num_features, num_classes)
    params = variables["params"]
    opt_state = _optimizer_init(config.weight_decay, config.clip)(params)
    # The configured rate, of fixed dtype from the start, so the scheduler's updates never retrace.
    opt_state = optim.set_learning_rate(opt_state, config.lr)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=opt_state,
        key=_state_key(config),
    )


def _variables(params, batch_stats) -> dict[str, Any]:
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def _over_models(fn: Callable, per_model: int | None = None) -> Callable:
    """Applies `fn` to each model of a stack, one model after another, inside one program.

    The first argument (and the last, for a train step's batch indices; or the first `per_model`
    arguments) carry the leading model axis; the rest are shared. `lax.map` rather than `jax.vmap`:
    measured on XLA:CPU, vmapping 8 article-sized models made every recurrent matmul a batched one
    whose weights (8 x 256 KB per layer) no longer stay in cache, 71 ms per step of all 8 against
    47 ms running them one after another (benchmarks/NOTES.md).
    """

    def mapped(*args):
        if per_model is None:
            stacked, shared, last = args[0], args[1:-1], args[-1]

            def one(item):
                return fn(item[0], *shared, item[1])

            return jax.lax.map(one, (stacked, last))
        stacked, shared = args[:per_model], args[per_model:]
        return jax.lax.map(lambda item: fn(*item, *shared), stacked)

    return mapped


def make_train_step(
    model: nn.Module,
    tx: optax.GradientTransformation,
    accumulate: int = 1,
    many: bool = False,
    mesh: Mesh | None = None,
) -> Callable[..., tuple[TrainState, jax.Array]]:
    """A jitted ``step(state, x, y, lengths, idx) -> (state, loss)``.

    x (N, T, F), y (N,), lengths (N,) or None are the whole device-resident training set; idx (B,)
    picks the batch. With ``accumulate = k`` the batch is split into k micro-batches whose gradients
    are summed, weighted by their share of the batch, before one update: the same update as the whole
    batch for the LSTM model (the BN model normalises each micro-batch with its own statistics, as
    torch would).

    With ``many=True`` the step trains K models in one program: every leaf of `state` has a
    leading model axis, idx is (K, B) (each model its own batch), and the loss comes back as (K,).

    With a `mesh` (see `data_parallel_mesh`) the work is split over its devices: the batch (one
    model; gradients and BatchNorm statistics are summed across devices, so the update is the whole
    batch's) or the models (``many``). Sizes that do not split evenly run undivided.
    """

    def build(model: nn.Module, shards: int, axis_name: str | None):
        def loss_fn(params, batch_stats, xb, yb, lb, key):
            variables = _variables(params, batch_stats)
            rngs = {"dropout": key}
            if batch_stats:
                logits, updates = model.apply(
                    variables, xb, train=True, lengths=lb, rngs=rngs, mutable=["batch_stats"]
                )
                batch_stats = updates["batch_stats"]
            else:
                logits = model.apply(variables, xb, train=True, lengths=lb, rngs=rngs)
            return cross_entropy(logits, yb), batch_stats

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        def step(state: TrainState, x, y, lengths, idx):
            xb, yb = x[idx], y[idx]
            lb = None if lengths is None else lengths[idx]
            key, dropout_key = jax.random.split(state.key)
            if axis_name is not None:  # each shard draws its own dropout masks
                dropout_key = jax.random.fold_in(dropout_key, jax.lax.axis_index(axis_name))
            batch = idx.shape[0]
            total = batch * shards  # the whole batch, across shards
            batch_stats = state.batch_stats
            loss = grads = None
            for j, (lo, hi) in enumerate(micro_batch_bounds(batch, accumulate)):
                weight = (hi - lo) / total
                (micro_loss, batch_stats), micro_grads = grad_fn(
                    state.params,
                    batch_stats,
                    xb[lo:hi],
                    yb[lo:hi],
                    None if lb is None else lb[lo:hi],
                    jax.random.fold_in(dropout_key, j),
                )
                micro_grads = jax.tree.map(lambda g, w=weight: g * w, micro_grads)
                grads = micro_grads if grads is None else jax.tree.map(jnp.add, grads, micro_grads)
                loss = micro_loss * weight if loss is None else loss + micro_loss * weight
            if axis_name is not None:
                grads, loss = jax.lax.psum((grads, loss), axis_name)
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
            new_state = state.replace(
                step=state.step + 1,
                params=params,
                batch_stats=batch_stats,
                opt_state=opt_state,
                key=key,
            )
            return new_state, loss

        return step

    single = build(model, 1, None)
    if many:
        single = _over_models(single)
    fallback = jax.jit(single)
    if mesh is None or mesh.size < 2:
        return fallback
    if many:
        # Whole models per device: no communication at all. (check_vma=False: the scan carries
        # start replicated and become per-device, which the type check rejects; the parity
        # tests compare these programs with the single-device ones.)
        specs = (P(DATA_AXIS), P(), P(), P(), P(DATA_AXIS))
        sharded = jax.shard_map(
            single, mesh=mesh, in_specs=specs, out_specs=(P(DATA_AXIS), P(DATA_AXIS)), check_vma=False
        )
    else:
        split_model = model.clone(axis_name=DATA_AXIS) if hasattr(model, "axis_name") else model
        step = build(split_model, mesh.size, DATA_AXIS)
        specs = (P(), P(), P(), P(), P(DATA_AXIS))
        sharded = jax.shard_map(step, mesh=mesh, in_specs=specs, out_specs=(P(), P()), check_vma=False)
    return _Dispatch(
        jax.jit(sharded),
        fallback,
        mesh.size,
        lambda *args: args[-1].shape[0],
        min_per_shard=1 if many else MIN_ROWS_PER_DEVICE,
    )


def make_eval_step(
    model: nn.Module, many: bool = False, mesh: Mesh | None = None
) -> Callable[..., tuple[jax.Array, jax.Array]]:
    """A jitted ``eval(params, batch_stats, x, y, lengths) -> (summed loss, correct count)`` (eval mode).

    With ``many=True``, params and batch_stats carry a leading model axis and both results are (K,).
    With a `mesh`, the chunk of data (one model) or the models (``many``) are split over its devices.
    """

    def eval_step(params, batch_stats, x, y, lengths):
        logits = model.apply(_variables(params, batch_stats), x, train=False, lengths=lengths)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        correct = jnp.sum(jnp.argmax(logits, axis=-1) == y)
        return jnp.sum(losses), correct

    single = _over_models(eval_step, per_model=2) if many else eval_step
    fallback = jax.jit(single)
    if mesh is None or mesh.size < 2:
        return fallback
    if many:
        specs = (P(DATA_AXIS), P(DATA_AXIS), P(), P(), P())
        sharded = jax.shard_map(
            single, mesh=mesh, in_specs=specs, out_specs=(P(DATA_AXIS), P(DATA_AXIS)), check_vma=False
        )
        return _Dispatch(
            jax.jit(sharded), fallback, mesh.size, lambda *args: jax.tree.leaves(args[0])[0].shape[0]
        )

    def split_eval(params, batch_stats, x, y, lengths):
        return jax.lax.psum(eval_step(params, batch_stats, x, y, lengths), DATA_AXIS)

    specs = (P(), P(), P(DATA_AXIS), P(DATA_AXIS), P(DATA_AXIS))
    sharded = jax.shard_map(split_eval, mesh=mesh, in_specs=specs, out_specs=(P(), P()), check_vma=False)
    return _Dispatch(
        jax.jit(sharded), fallback, mesh.size, lambda *args: args[2].shape[0], MIN_ROWS_PER_DEVICE
    )


def make_forward(model: nn.Module, mesh: Mesh | None = None) -> Callable[..., jax.Array]:
    """A jitted eval-mode ``forward(variables, x, lengths=None) -> logits``, the batch split over
    `mesh` when it divides evenly (see `data_parallel_mesh`)."""

    def forward(variables, x, lengths=None):
        return model.apply(variables, x, train=False, lengths=lengths)

    fallback = jax.jit(forward)
    if mesh is None or mesh.size < 2:
        return fallback
    specs = (P(), P(DATA_AXIS), P(DATA_AXIS))
    sharded = jax.shard_map(forward, mesh=mesh, in_specs=specs, out_specs=P(DATA_AXIS), check_vma=False)
    dispatch = _Dispatch(
        jax.jit(sharded), fallback, mesh.size, lambda *args: args[1].shape[0], MIN_ROWS_PER_DEVICE
    )

    def call(variables, x, lengths=None):
        return dispatch(variables, x, lengths)

    return call


def evaluate(eval_step, state: TrainState, x, y, lengths, batch_size: int):
    """Mean cross-entropy and accuracy over a split, in chunks of `batch_size`.

    Floats for one model; (K,) float64 arrays for a `many=True` eval step.
    """
    total_loss, correct = 0.0, 0
    n = len(y)
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)
        loss_sum, hits = eval_step(
            state.params, state.batch_stats, x[lo:hi], y[lo:hi], None if lengths is None else lengths[lo:hi]
        )
        total_loss = total_loss + np.asarray(loss_sum, np.float64)
        correct = correct + np.asarray(hits, np.int64)
    if np.ndim(total_loss) == 0:
        return float(total_loss) / n, int(correct) / n
    return total_loss / n, correct / n


@dataclasses.dataclass
class _DeviceData:
    x_train: jax.Array
    y_train: jax.Array
    len_train: jax.Array | None
    x_test: jax.Array | None  # None: no test split, nothing is evaluated
    y_test: jax.Array | None
    len_test: jax.Array | None

    @classmethod
    def put(cls, dataset: Dataset, mesh: Mesh | None = None) -> _DeviceData:
        """The dataset on the device, or replicated on every device of `mesh`."""
        placement = None if mesh is None else NamedSharding(mesh, P())

        def dev(a, dtype=None):
            if a is None:
                return None
            a = a if dtype is None else a.astype(dtype)
            return jnp.asarray(a) if placement is None else jax.device_put(a, placement)

        has_test = len(dataset.y_test) > 0
        return cls(
            dev(dataset.x_train),
            dev(dataset.y_train, np.int32),
            dev(dataset.lengths_train, np.int32),
            dev(dataset.x_test) if has_test else None,
            dev(dataset.y_test, np.int32) if has_test else None,
            dev(dataset.lengths_test, np.int32) if has_test else None,
        )


def _check_finite(batch_losses: np.ndarray, epoch: int, seeds: list[int] | None = None) -> None:
    """Raises TrainingDivergedError at the first NaN/inf in (steps,) or (steps, K) losses."""
    bad = np.argwhere(~np.isfinite(batch_losses))
    if not len(bad):
        return
    step = int(bad[0][0])
    whose = "" if seeds is None else f" of seed {seeds[int(bad[0][1])]}"
    raise TrainingDivergedError(
        f"the training loss{whose} became {batch_losses[tuple(bad[0])]} at epoch {epoch + 1}, "
        f"step {step + 1}; stopping. Try a lower --lr or --clip, or check the data for extreme values."
    )


def _record(epoch: int, train_loss: float, test_loss, test_accuracy, lr: float, seconds: float) -> dict:
    """One epoch's entry of a run's history (0-based `epoch`; `lr` as used during the epoch)."""
    return {
        "epoch": epoch + 1,
        "train_loss": train_loss,
        "test_loss": float(test_loss),
        "test_accuracy": float(test_accuracy),
        "lr": lr,
        "seconds": seconds,
    }


def train_epoch(
    state: TrainState,
    plateau: optim.PlateauState,
    epoch: int,
    config: TrainConfig,
    data: _DeviceData,
    train_step,
    eval_step,
    scheduler: optim.ReduceLROnPlateau,
    log: Callable[[str], None] | None = print,
    progress: Any = None,
) -> tuple[TrainState, optim.PlateauState, dict[str, float]]:
    """One epoch (0-based `epoch`): the shuffled batches, evaluation, one scheduler step.

    Returns the new train state, the new plateau state and the epoch's record (train_loss,
    test_loss, test_accuracy, lr used during the epoch). Raises TrainingDivergedError on a NaN/inf loss.
    """
    batches = batch_order(len(data.y_train), config.batch_size, config.seed, epoch)
    start = time.perf_counter()
    losses = []
    for i, idx in enumerate(batches):
        state, loss = train_step(state, data.x_train, data.y_train, data.len_train, jnp.asarray(idx))
        losses.append(loss)
        if progress is not None:
            progress.update(1)
        if log and config.log_every and (i + 1) % config.log_every == 0:
            log(
                f"Epoch [{epoch + 1}/{config.epochs}], Step [{i + 1}/{len(batches)}], Loss: {float(loss):.4f}"
            )
    batch_losses = np.asarray(jnp.stack(losses))  # one device sync per epoch
    _check_finite(batch_losses, epoch)
    train_loss = epoch_mean(batch_losses, [len(idx) for idx in batches])
    train_seconds = time.perf_counter() - start
    test_loss = test_accuracy = math.nan
    if data.x_test is not None:
        test_loss, test_accuracy = evaluate(
            eval_step, state, data.x_test, data.y_test, data.len_test, config.eval_batch_size
        )
    lr_used = plateau.lr
    plateau = scheduler.update(plateau, train_loss)
    if plateau.lr != lr_used:
        state = state.replace(opt_state=optim.set_learning_rate(state.opt_state, plateau.lr))
    return state, plateau, _record(epoch, train_loss, test_loss, test_accuracy, lr_used, train_seconds)


@dataclasses.dataclass
class FitResult:
    """The outcome of `fit`: the final state, the scheduler state and one record per epoch."""

    state: TrainState
    plateau: optim.PlateauState
    history: list[dict[str, float]]
    config: TrainConfig
    num_classes: int

    @property
    def test_accuracy(self) -> float:
        return self.history[-1]["test_accuracy"]

    def variables(self) -> dict[str, Any]:
        """Flax variables of the trained model (for `apply`, `to_torch`)."""
        return self.state.variables()


def mesh_for(config: TrainConfig, data_parallel: bool | None, models: int | None = None) -> Mesh | None:
    """The mesh `fit` (or, with `models`, `fit_many`) splits its work over, or None for one device.

    ``data_parallel=None`` splits only where it pays; True insists, and says why when the work
    cannot be split.
    """
    mesh = data_parallel_mesh() if data_parallel in (None, True) else None
    if data_parallel and mesh is None:
        raise ValueError(
            "data_parallel=True needs more than one device; on CPU start Python with "
            "XLA_FLAGS=--xla_force_host_platform_device_count=<cores>"
        )
    if mesh is None:
        return None
    unsplittable = None
    if models is not None and models % mesh.size:
        # Whole models per device, so the count must divide evenly.
        unsplittable = f"{models} models do not divide over {mesh.size} devices"
    elif models is None and config.accumulate > 1 and config.model == "bn-lstm":
        # Micro-batches would group other rows than on one device, and BatchNorm sees the groups.
        unsplittable = "bn-lstm with accumulate > 1 would change BatchNorm's micro-batch statistics"
    if unsplittable:
        if data_parallel:
            raise ValueError(f"data_parallel=True cannot split this run: {unsplittable}")
        return None
    if models is not None:
        return mesh
    if mesh is not None and data_parallel is None and config.batch_size < MIN_ROWS_PER_DEVICE * mesh.size:
        # Too small to split: one device, with nothing replicated (a replicated program that does
        # not split its batch runs the whole step on every device).
        return None
    return mesh


def make_scheduler(config: TrainConfig) -> optim.ReduceLROnPlateau:
    """The article's `ReduceLROnPlateau(optimizer, 'min', patience=...)`."""
    return optim.reduce_lr_on_plateau("min", factor=config.factor, patience=config.patience)


def fit(
    config: TrainConfig,
    dataset: Dataset,
    *,
    variables: dict[str, Any] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    log: Callable[[str], None] | None = print,
    progress: Callable[[int, int], Any] | None = None,
    data_parallel: bool | None = None,
) -> FitResult:
    """Trains `config.model` on `dataset` for `config.epochs` epochs and evaluates after each.

    Args:
      config: hyperparameters; validated first.
      dataset: validated first (labels in range, no NaN, matching features): errors come before
        any training. With an empty test split nothing is evaluated (test metrics are NaN).
      variables: initial weights (e.g. `from_torch(torch_model.state_dict())`); default: from the seed.
      checkpoint_dir: if given, the full training state is saved there atomically after every epoch.
      resume: continue from the checkpoint in `checkpoint_dir` up to `config.epochs`; the result is
        bit-identical to an uninterrupted run.
      log: receives the article's "Epoch [e/E], Step [s/S], Loss: x" lines and epoch summaries.
      progress: ``progress(total_steps, initial_steps)`` returns a tqdm-like bar (``update(n)``,
        ``close()``), or None for no bar.
      data_parallel: split each batch over the local devices (see `data_parallel_mesh`); None
        (default) does so whenever there is more than one device. The update is the whole batch's;
        only the order of floating-point sums changes.
    """
    from jax_lstm import checkpoint as ckpt

    config.validate()
    dataset = dataset.validate(require_test=False).astype(config.dtype)
    num_classes, num_features = dataset.num_classes, dataset.num_features
    scheduler = make_scheduler(config)
    history: list[dict[str, float]] = []
    start_epoch = 0
    if resume:
        if checkpoint_dir is None:
            raise ValueError("resume needs a checkpoint directory")
        if variables is not None:
            raise ValueError(
                "resume continues from the checkpoint's weights: pass variables or resume, not both"
            )
        loaded = ckpt.load(checkpoint_dir)
        loaded.check_compatible(config, dataset)
        state, plateau, history, start_epoch = loaded.state, loaded.plateau, loaded.history, loaded.epoch
        if log:
            log(f"resuming from {loaded.path} after epoch {start_epoch}")
    else:
        state = create_train_state(config, num_features, num_classes, variables)
        plateau = scheduler.init(config.lr)

    mesh = mesh_for(config, data_parallel)
    model = make_model(config, num_classes)
    train_step = make_train_step(model, make_optimizer(config), config.accumulate, mesh=mesh)
    eval_step = make_eval_step(model, mesh=mesh)
    data = _DeviceData.put(dataset, mesh)
    if mesh is not None:
        state = jax.device_put(state, NamedSharding(mesh, P()))

    steps_per_epoch = math.ceil(len(dataset.y_train) / config.batch_size)
    bar = progress(config.epochs * steps_per_epoch, start_epoch * steps_per_epoch) if progress else None
    try:
        for epoch in range(start_epoch, config.epochs):
            state, plateau, record = train_epoch(
                state, plateau, epoch, config, data, train_step, eval_step, scheduler, log, bar
            )
            # The first epoch of a process also compiles the step (and the shorter last batch);
            # later epochs run the cached programs, so their "seconds" are pure training time.
            history.append(record)
            if checkpoint_dir is not None:
                ckpt.save(checkpoint_dir, state, plateau, epoch + 1, history, config, dataset)
            if log:
                log(
                    f"Epoch [{epoch + 1}/{config.epochs}] train loss {record['train_loss']:.4f}, "
                    f"test loss {record['test_loss']:.4f}, test accuracy "
                    f"{100 * record['test_accuracy']:.2f}%, lr {record['lr']:.2e}"
                )
    finally:
        if bar is not None:
            bar.close()
    return FitResult(state, plateau, history, config, num_classes)


def fit_many(
    config: TrainConfig,
    dataset: Dataset,
    seeds: list[int],
    *,
    log: Callable[[str], None] | None = print,
    progress: Callable[[int, int], Any] | None = None,
    data_parallel: bool | None = None,
) -> list[FitResult]:
    """Trains one model per seed in a single compiled program; returns one FitResult per seed.

    Each model gets what ``fit(dataclasses.replace(config, seed=s), dataset)`` would give it (its own
    initial weights, its own batch order, its own plateau scheduler): the train step maps the
    single-model step over a leading model axis, and with several devices (`data_parallel`,
    default: whenever there are) the models are divided among them, so that K small models keep
    every core busy. Results equal the one-at-a-time runs on one device.
    """
    if not seeds:
        raise ValueError("fit_many needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    config.validate()
    dataset = dataset.validate(require_test=False).astype(config.dtype)
    num_classes, num_features = dataset.num_classes, dataset.num_features
    configs = [dataclasses.replace(config, seed=int(seed)) for seed in seeds]
    states = [create_train_state(c, num_features, num_classes) for c in configs]
    state = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)  # leading model axis (K, ...)
    scheduler = make_scheduler(config)
    plateaus = [scheduler.init(config.lr) for _ in seeds]
    mesh = mesh_for(config, data_parallel, models=len(seeds))
    model = make_model(config, num_classes)
    train_step = make_train_step(model, make_optimizer(config), config.accumulate, many=True, mesh=mesh)
    eval_step = make_eval_step(model, many=True, mesh=mesh)
    data = _DeviceData.put(dataset, mesh)
    if mesh is not None:
        state = jax.device_put(state, NamedSharding(mesh, P(DATA_AXIS)))
    histories: list[list[dict[str, float]]] = [[] for _ in seeds]
    n = len(dataset.y_train)
    steps_per_epoch = math.ceil(n / config.batch_size)
    bar = progress(config.epochs * steps_per_epoch, 0) if progress else None
    try:
        for epoch in range(config.epochs):
            orders = [batch_order(n, config.batch_size, c.seed, epoch) for c in configs]
            start = time.perf_counter()
            losses = []
            for i in range(steps_per_epoch):
                idx = jnp.asarray(np.stack([order[i] for order in orders]))  # (K, B)
                state, loss = train_step(state, data.x_train, data.y_train, data.len_train, idx)
                losses.append(loss)
                if bar is not None:
                    bar.update(1)
            batch_losses = np.asarray(jnp.stack(losses))  # (steps, K)
            seconds = time.perf_counter() - start
            _check_finite(batch_losses, epoch, seeds)
            sizes = [len(idx) for idx in orders[0]]
            if data.x_test is not None:
                test_loss, test_accuracy = evaluate(
                    eval_step, state, data.x_test, data.y_test, data.len_test, config.eval_batch_size
                )
            else:
                test_loss = test_accuracy = np.full(len(seeds), math.nan)
            lrs_used = [p.lr for p in plateaus]
            for k in range(len(seeds)):
                train_loss = epoch_mean(batch_losses[:, k], sizes)
                plateaus[k] = scheduler.update(plateaus[k], train_loss)
                histories[k].append(
                    _record(epoch, train_loss, test_loss[k], test_accuracy[k], lrs_used[k], seconds)
                )
            new_lrs = [p.lr for p in plateaus]
            if new_lrs != lrs_used:
                state = state.replace(opt_state=optim.set_learning_rate(state.opt_state, np.asarray(new_lrs)))
            if log:
                accuracies = ", ".join(f"{100 * h[-1]['test_accuracy']:.1f}" for h in histories)
                log(
                    f"Epoch [{epoch + 1}/{config.epochs}] {len(seeds)} models: mean train loss "
                    f"{np.mean([h[-1]['train_loss'] for h in histories]):.4f}, test accuracy % "
                    f"[{accuracies}]"
                )
    finally:
        if bar is not None:
            bar.close()
    results = []
    for k, c in enumerate(configs):
        state_k = jax.tree.map(lambda leaf, k=k: leaf[k], state)
        results.append(FitResult(state_k, plateaus[k], histories[k], c, num_classes))
    return results
