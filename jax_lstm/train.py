"""Training the article's classifiers: pure functions of a train state, jitted per step.

The loop is the article's (section 3.2 with 4.1 and 4.2): shuffled mini-batches, cross-entropy,
`clip_grad_norm_(max_norm=1.0)`, Adam, and `ReduceLROnPlateau(patience=2)` stepped once per epoch on
the epoch's training loss. `torch_ref.train` runs the same loop in PyTorch from the same batches.

A step is jitted rather than a whole epoch: measured on CPU, compiling an epoch into one program
gained nothing (dispatch is small next to a step), while per-step jit keeps the host free to log.
Each step gathers its batch from the device-resident dataset by index, so no data crosses from the
host after the first epoch, and nothing recompiles after it (a full and possibly a shorter last
batch are the only two shapes).
"""

from __future__ import annotations

import dataclasses
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

from jax_lstm import optim
from jax_lstm.data import Dataset, batch_order, epoch_mean, micro_batch_bounds
from jax_lstm.models import BNLSTMClassifier, LSTMClassifier

__all__ = [
    "FitResult",
    "TrainConfig",
    "TrainState",
    "TrainingDivergedError",
    "create_train_state",
    "cross_entropy",
    "evaluate",
    "fit",
    "initial_variables",
    "make_eval_step",
    "make_model",
    "make_optimizer",
    "make_train_step",
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
            (self.dtype in ("float32", "float64"), f"dtype must be float32 or float64, got {self.dtype}"),
            (self.eval_batch_size >= 1, "eval_batch_size must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.dtype == "float64" and not jax.config.read("jax_enable_x64"):
            raise ValueError(
                "dtype float64 needs JAX's 64-bit mode: call "
                "jax.config.update('jax_enable_x64', True) at startup"
            )
        return self


class TrainState(struct.PyTreeNode):
    """Everything a train step reads and writes; all device arrays, so it passes through jit."""

    step: jax.Array  # () int32: optimizer updates so far
    params: Any  # the model's params, torch-named
    batch_stats: Any  # BatchNorm running statistics ({} for the plain LSTM model)
    opt_state: Any  # Adam moments, step count and the injected learning rate
    key: jax.Array  # (2,) uint32 PRNG key, split once per step for dropout


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
    )


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """clip_grad_norm_ then Adam, as in the article; the learning rate is injectable."""
    return optim.adam(config.lr, weight_decay=config.weight_decay, max_grad_norm=config.clip)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """`nn.CrossEntropyLoss()`: mean over the batch. logits (B, C), labels (B,) -> ()."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def _keys(config: TrainConfig) -> tuple[jax.Array, jax.Array]:
    """(init key, train-state key) derived from the seed."""
    init_key, state_key = jax.random.split(jax.random.PRNGKey(config.seed))
    return init_key, state_key


def initial_variables(config: TrainConfig, num_features: int, num_classes: int) -> dict[str, Any]:
    """The Flax variables a run with this config starts from (torch's init, drawn from the seed)."""
    dummy = jnp.zeros((1, 1, num_features), jnp.dtype(config.dtype))
    return make_model(config, num_classes).init(_keys(config)[0], dummy)


def create_train_state(
    config: TrainConfig,
    num_features: int,
    num_classes: int,
    variables: dict[str, Any] | None = None,
) -> TrainState:
    """A fresh train state: weights from `variables` (e.g. `from_torch`) or initialised from the seed."""
    _, state_key = _keys(config)
    if variables is None:
        variables = initial_variables(config, num_features, num_classes)
    params = variables["params"]
    tx = make_optimizer(config)
    # A learning rate of fixed dtype from the start, so the scheduler's updates never retrace.
    opt_state = optim.set_learning_rate(tx.init(params), config.lr)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=opt_state,
        key=state_key,
    )


def _variables(params, batch_stats) -> dict[str, Any]:
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def make_train_step(
    model: nn.Module, tx: optax.GradientTransformation, accumulate: int = 1
) -> Callable[..., tuple[TrainState, jax.Array]]:
    """A jitted ``step(state, x, y, lengths, idx) -> (state, loss)``.

    x (N, T, F), y (N,), lengths (N,) or None are the whole device-resident training set; idx (B,)
    picks the batch. With ``accumulate = k`` the batch is split into k micro-batches whose gradients
    are summed, weighted by their share of the batch, before one update: the same update as the whole
    batch for the LSTM model (the BN model normalises each micro-batch with its own statistics, as
    torch would).
    """

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
        batch = idx.shape[0]
        batch_stats = state.batch_stats
        loss = grads = None
        for j, (lo, hi) in enumerate(micro_batch_bounds(batch, accumulate)):
            weight = (hi - lo) / batch
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

    return jax.jit(step)


def make_eval_step(model: nn.Module) -> Callable[..., tuple[jax.Array, jax.Array]]:
    """A jitted ``eval(params, batch_stats, x, y, lengths) -> (summed loss, correct count)`` (eval mode)."""

    def eval_step(params, batch_stats, x, y, lengths):
        logits = model.apply(_variables(params, batch_stats), x, train=False, lengths=lengths)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        correct = jnp.sum(jnp.argmax(logits, axis=-1) == y)
        return jnp.sum(losses), correct

    return jax.jit(eval_step)


def evaluate(eval_step, state: TrainState, x, y, lengths, batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a split, in chunks of `batch_size`."""
    total_loss, correct = 0.0, 0
    n = len(y)
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)
        loss_sum, hits = eval_step(
            state.params, state.batch_stats, x[lo:hi], y[lo:hi], None if lengths is None else lengths[lo:hi]
        )
        total_loss += float(loss_sum)
        correct += int(hits)
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
    def put(cls, dataset: Dataset) -> _DeviceData:
        def dev(a, dtype=None):
            return None if a is None else jnp.asarray(a if dtype is None else a.astype(dtype))

        has_test = len(dataset.y_test) > 0
        return cls(
            dev(dataset.x_train),
            dev(dataset.y_train, np.int32),
            dev(dataset.lengths_train, np.int32),
            dev(dataset.x_test) if has_test else None,
            dev(dataset.y_test, np.int32) if has_test else None,
            dev(dataset.lengths_test, np.int32) if has_test else None,
        )


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
    if not np.isfinite(batch_losses).all():
        bad = int(np.argmax(~np.isfinite(batch_losses)))
        raise TrainingDivergedError(
            f"the training loss became {batch_losses[bad]} at epoch {epoch + 1}, step {bad + 1}; "
            "stopping. Try a lower --lr or --clip, or check the data for extreme values."
        )
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
    record = {
        "epoch": epoch + 1,
        "train_loss": train_loss,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
        "lr": lr_used,
        "seconds": train_seconds,
    }
    return state, plateau, record


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
        return _variables(self.state.params, self.state.batch_stats)


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
        loaded = ckpt.load(checkpoint_dir)
        loaded.check_compatible(config, dataset)
        state, plateau, history, start_epoch = loaded.state, loaded.plateau, loaded.history, loaded.epoch
        if log:
            log(f"resuming from {loaded.path} after epoch {start_epoch}")
    else:
        state = create_train_state(config, num_features, num_classes, variables)
        plateau = scheduler.init(config.lr)

    model = make_model(config, num_classes)
    train_step = make_train_step(model, make_optimizer(config), config.accumulate)
    eval_step = make_eval_step(model)
    data = _DeviceData.put(dataset)

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
