"""The training loop: one epoch function for K >= 1 models, `fit` (one model) and `fit_many` (K
models in one program), both pure functions of a train state stepped by jitted programs.

The loop is the article's (section 3.2 with 4.1 and 4.2): shuffled mini-batches, cross-entropy,
`clip_grad_norm_(max_norm=1.0)`, Adam, and `ReduceLROnPlateau(patience=2)` stepped once per epoch on
the epoch's mean training loss (the article's `scheduler.step(loss)` would see the last batch's
loss; `torch_ref.train` lists every departure). `torch_ref.train` runs the same loop in PyTorch
from the same batches.

A step is jitted rather than a whole epoch: compiling an epoch into one program gained nothing
(dispatch is small next to a step; benchmarks/NOTES.md), while per-step jit keeps the host free to
log. Nothing recompiles after the first epoch: a full and possibly a shorter last batch are the only
two shapes, and a learning rate the scheduler changes keeps its dtype, shape and placement.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jax_lstm import optim
from jax_lstm.data import Dataset, WindowDataset, batch_order, epoch_mean
from jax_lstm.models import registry
from jax_lstm.training import checkpoint as ckpt
from jax_lstm.training import parallel
from jax_lstm.training.config import TrainConfig
from jax_lstm.training.history import EpochRecord
from jax_lstm.training.parallel import Programs
from jax_lstm.training.state import (
    TrainState,
    create_train_state,
    make_model,
    make_optimizer,
    make_scheduler,
)
from jax_lstm.training.steps import Batch, make_eval_step, make_train_step
from jax_lstm.training.tasks import CLASSIFICATION, Task
from jax_lstm.training.tasks import get as get_task

__all__ = [
    "FitResult",
    "Partial",
    "Run",
    "TrainingDivergedError",
    "check_checkpoint_dir",
    "evaluate",
    "fit",
    "fit_many",
    "load_checkpoint",
    "train_epoch",
]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or inf; the last good checkpoint (if any) is left untouched.

    ``epoch`` is the 1-based epoch in which it happened; `fit` adds ``partial`` (see `Partial`).
    """

    def __init__(self, message: str, epoch: int = 0) -> None:
        super().__init__(message)
        self.epoch = epoch


@dataclasses.dataclass
class Partial:
    """What a `fit` that stopped early (divergence, interrupt, a failed write) had done, attached to
    the exception as ``err.partial``: the records of the completed epochs, the 1-based epoch that was
    running, and the epoch of the last checkpoint on disk (None: none was written or resumed)."""

    history: list[EpochRecord]
    epoch: int
    checkpoint_epoch: int | None


@dataclasses.dataclass
class FitResult:
    """The outcome of `fit`: the state, the scheduler state and one record per epoch.

    Without a validation split, `state` is the last epoch's and so are the reported metrics. With
    one (`data.validation_split`), `selected_epoch` is the epoch of the best validation accuracy
    (ties: the lower validation loss), `state` holds that epoch's weights, and `test_accuracy` is
    that epoch's: the test split chooses nothing.
    """

    state: TrainState
    plateau: optim.PlateauState
    history: list[EpochRecord]
    config: TrainConfig
    num_classes: int
    selected_epoch: int | None = None  # 1-based; None: the last epoch (no validation split)

    @property
    def reported(self) -> EpochRecord:
        """The epoch whose metrics are reported: the selected one, else the last."""
        return self.history[(self.selected_epoch or len(self.history)) - 1]

    @property
    def test_accuracy(self) -> float:
        return self.reported.test_accuracy

    def variables(self) -> dict[str, Any]:
        """Flax variables of the trained model (for `apply`, `to_torch`)."""
        return self.state.variables()


@dataclasses.dataclass(frozen=True)
class _Split:
    """One split on the host: x (N, T, F), y (N,) int32 labels (or float targets, e.g. (N, H, T)),
    lengths (N,) int32 or None."""

    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray | None

    @classmethod
    def of(cls, x, y, lengths) -> _Split:
        y = np.asarray(y)
        y = y if np.issubdtype(y.dtype, np.floating) else y.astype(np.int32)
        return cls(x, y, None if lengths is None else np.asarray(lengths, np.int32))

    def rows(self, index) -> Batch:
        """The rows `index` ((B,), or (K, B) for K models) as a host batch."""
        return Batch(self.x[index], self.y[index], None if self.lengths is None else self.lengths[index])

    def __len__(self) -> int:
        return len(self.y)


@dataclasses.dataclass(frozen=True)
class Run:
    """What an epoch needs besides the state: the configs (one per model), the compiled programs,
    the mesh and the data. ``stacked``: the state has a leading model axis (`fit_many`). Build with
    `Run.build`."""

    configs: list[TrainConfig]
    stacked: bool
    train_step: Programs
    eval_step: Programs
    mesh: Mesh | None
    dataset: Dataset | WindowDataset  # validated, in the config's dtype
    train: _Split
    test: _Split | None  # None: no test split, nothing is evaluated
    scheduler: optim.ReduceLROnPlateau
    task: Task = CLASSIFICATION  # the model's (its registry entry names it)
    validation: _Split | None = None  # held out of the training data to choose the epoch by

    @property
    def config(self) -> TrainConfig:
        return self.configs[0]

    @classmethod
    def build(
        cls,
        config: TrainConfig,
        dataset: Dataset | WindowDataset,
        seeds: list[int] | None = None,
        data_parallel: bool | None = None,
    ) -> Run:
        """Validates the config and the data (before any work) and builds the programs over the
        right mesh: one model (`fit`), or one per seed with a stacked state (`fit_many`)."""
        config.validate()
        dataset = dataset.validate(require_test=False).astype(config.dtype)
        stacked = seeds is not None
        configs = [dataclasses.replace(config, seed=int(s)) for s in seeds] if stacked else [config]
        entry = registry.get(config.model)
        task = get_task(entry.task)
        if task.labelled != (dataset.output_shape is None):
            other = not task.labelled
            fitting = [n for n in registry.names() if get_task(registry.get(n).task).labelled == other]
            raise ValueError(
                f"model {config.model!r} is a {task.name} model and cannot train on {dataset.name}; "
                f"models for this data: {fitting}"
            )
        unsplittable = None
        if config.accumulate > 1 and entry.batch_stats:
            # Micro-batches would group other rows than on one device, and BatchNorm sees the groups.
            unsplittable = (
                f"{config.model} with accumulate > 1 would change BatchNorm's micro-batch statistics"
            )
        mesh = parallel.mesh_for(
            data_parallel,
            config.batch_size,
            models=len(configs) if stacked else None,
            unsplittable=unsplittable,
        )
        model = make_model(
            config, dataset.num_features, dataset.num_classes, dataset.output_shape, dataset.seq_len
        )
        tx = make_optimizer(config)
        has_test = len(dataset.y_test) > 0
        return cls(
            configs=configs,
            stacked=stacked,
            train_step=make_train_step(model, tx, config.accumulate, many=stacked, mesh=mesh, task=task),
            eval_step=make_eval_step(model, many=stacked, mesh=mesh, task=task),
            mesh=mesh,
            dataset=dataset,
            train=_Split.of(dataset.x_train, dataset.y_train, dataset.lengths_train),
            test=_Split.of(dataset.x_test, dataset.y_test, dataset.lengths_test) if has_test else None,
            scheduler=make_scheduler(config),
            task=task,
            validation=_validation_split(dataset),
        )


def _place_batch(batch: Batch, programs: Programs, key: str, split_models: bool) -> Batch:
    """The batch on the devices its program expects: split over the mesh (its rows, or its models),
    replicated beside a replicated state, or on the one device."""
    split = key == parallel.SHARDED or split_models
    return parallel.place(batch, programs.mesh, split=split)


def _validation_split(dataset) -> _Split | None:
    x = getattr(dataset, "x_validation", None)
    if x is None:
        return None
    return _Split.of(x, dataset.y_validation, dataset.lengths_validation)


def evaluate(run: Run, state: TrainState, split: _Split | None = None) -> tuple[Any, Any]:
    """The task's mean loss and accuracy over `split` (default: the test split; classification:
    cross-entropy and accuracy; forecasting: MSE and NaN), in chunks of ``eval_batch_size``.

    Floats for one model; (K,) float64 arrays for a stacked state.
    """
    split, size = split if split is not None else run.test, run.config.eval_batch_size
    variables = state.variables()
    totals: dict[str, Any] = {}
    n = len(split)
    for lo in range(0, n, size):
        chunk = split.rows(slice(lo, min(lo + size, n)))
        key = (
            parallel.SHARDED
            if run.stacked and run.eval_step.mesh is not None
            else run.eval_step.key_for(len(chunk.y))
        )
        # K models share each chunk: it is replicated, and the models are split.
        placed = parallel.place(chunk, run.eval_step.mesh, split=key == parallel.SHARDED and not run.stacked)
        sums = run.eval_step(key, variables, placed)
        sums = parallel.fetch(sums)  # replicated (one model) or split by model across processes
        for name, value in sums.items():
            # float64 and int64 on the host: chunk sums add up without rounding or overflow.
            value = np.asarray(value)
            value = value.astype(np.float64 if np.issubdtype(value.dtype, np.floating) else np.int64)
            totals[name] = totals[name] + value if name in totals else value
    return run.task.finish(totals, n)


def _check_finite(batch_losses: np.ndarray, epoch: int, seeds: list[int] | None = None) -> None:
    """Raises TrainingDivergedError at the first NaN/inf in (steps, K) losses."""
    bad = np.argwhere(~np.isfinite(batch_losses))
    if not len(bad):
        return
    step = int(bad[0][0])
    whose = "" if seeds is None else f" of seed {seeds[int(bad[0][1])]}"
    raise TrainingDivergedError(
        f"the training loss{whose} became {batch_losses[tuple(bad[0])]} at epoch {epoch + 1}, "
        f"step {step + 1}; stopping. Try a lower --lr or --clip, or check the data for extreme values.",
        epoch=epoch + 1,
    )


def train_epoch(
    run: Run,
    state: TrainState,
    plateaus: list[optim.PlateauState],
    epoch: int,
    log: Callable[[str], None] | None = print,
    progress: Any = None,
) -> tuple[TrainState, list[optim.PlateauState], list[EpochRecord]]:
    """One epoch (0-based `epoch`) of every model of `run`: each its own shuffled batches, then
    evaluation and one scheduler step per model.

    Returns the new state, the new plateau states and one record per model. Raises
    TrainingDivergedError on a NaN/inf loss.
    """
    n, config = len(run.train), run.config
    orders = [batch_order(n, config.batch_size, c.seed, epoch) for c in run.configs]
    steps = len(orders[0])
    start = time.perf_counter()
    losses = []
    for i in range(steps):
        if run.stacked:
            batch = run.train.rows(np.stack([order[i] for order in orders]))  # (K, B, ...)
            key = parallel.SHARDED if run.train_step.mesh is not None else parallel.SINGLE
        else:
            batch = run.train.rows(orders[0][i])
            key = run.train_step.key_for(len(batch.y))
        state, metrics = run.train_step(key, state, _place_batch(batch, run.train_step, key, run.stacked))
        losses.append(metrics["loss"])
        if progress is not None:
            progress.update(1)
        if log and not run.stacked and config.log_every and (i + 1) % config.log_every == 0:
            loss = float(metrics["loss"])
            log(f"Epoch [{epoch + 1}/{config.epochs}], Step [{i + 1}/{steps}], Loss: {loss:.4f}")
    # One device sync per epoch: (steps, K).
    batch_losses = np.stack([parallel.fetch(loss) for loss in losses]).reshape(steps, len(run.configs))
    seconds = time.perf_counter() - start
    _check_finite(batch_losses, epoch, [c.seed for c in run.configs] if run.stacked else None)
    sizes = [len(idx) for idx in orders[0]]
    if run.test is not None:
        test_loss, test_accuracy = (np.atleast_1d(v) for v in evaluate(run, state))
    else:
        test_loss = test_accuracy = np.full(len(run.configs), math.nan)
    val_loss = val_accuracy = None
    if run.validation is not None:
        val_loss, val_accuracy = (np.atleast_1d(v) for v in evaluate(run, state, run.validation))
    lrs_used = [p.lr for p in plateaus]
    records, new_plateaus = [], []
    for k, plateau in enumerate(plateaus):
        train_loss = epoch_mean(batch_losses[:, k], sizes)
        new_plateaus.append(run.scheduler.update(plateau, train_loss))
        records.append(
            EpochRecord(
                epoch=epoch + 1,
                train_loss=train_loss,
                test_loss=float(test_loss[k]),
                test_accuracy=float(test_accuracy[k]),
                lr=lrs_used[k],
                seconds=seconds,
                val_loss=None if val_loss is None else float(val_loss[k]),
                val_accuracy=None if val_accuracy is None else float(val_accuracy[k]),
            )
        )
    new_lrs = [p.lr for p in new_plateaus]
    if new_lrs != lrs_used:
        lr = np.asarray(new_lrs) if run.stacked else new_lrs[0]
        state = state.replace(opt_state=optim.set_learning_rate(state.opt_state, lr))
    return state, new_plateaus, records


def load_checkpoint(directory: str | Path, log: Callable[[str], None] | None = None) -> ckpt.Checkpoint:
    """The checkpoint in `directory` (written by `fit`), verified and restored into a train state of
    its config. A corrupt latest checkpoint falls back to the previous one, saying so through `log`;
    raises `CheckpointError` when there is none to fall back to."""

    def target(config_fields: dict[str, Any], data: dict[str, Any]):
        config = TrainConfig(**config_fields)
        dims = ckpt.dims(data)
        state = create_train_state(
            config, dims.num_features, dims.num_outputs, output_shape=dims.output_shape, seq_len=dims.seq_len
        )
        return config, state

    return ckpt.load(directory, target, log)


def fit(
    config: TrainConfig,
    dataset: Dataset | WindowDataset,
    *,
    variables: dict[str, Any] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
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
      checkpoint_dir: if given, the full training state is saved there atomically after every epoch
        (the previous epoch's checkpoint kept beside it).
      resume: continue from the checkpoint in `checkpoint_dir` up to `config.epochs`; the result is
        bit-identical to an uninterrupted run.
      overwrite: start over in a `checkpoint_dir` that already holds a checkpoint (deleting it);
        without it (or `resume`) such a directory is refused.
      log: receives the article's "Epoch [e/E], Step [s/S], Loss: x" lines and epoch summaries.
      progress: ``progress(total_steps, initial_steps)`` returns a tqdm-like bar (``update(n)``,
        ``close()``), or None for no bar.
      data_parallel: split each batch over the local devices (see `parallel.data_parallel_mesh`);
        None (default) does so whenever there is more than one device and the batch is large
        enough. The update is the whole batch's; only the order of floating-point sums changes.
        Across processes (`jax_lstm.runtime.initialize_distributed`) the batches are always split
        over the devices of all of them, and only process 0 writes the checkpoint.

    Raises:
      TrainingDivergedError on a NaN/inf loss. That, an interrupt and a failed checkpoint write carry
      ``err.partial`` (`Partial`): the epochs completed so far and the last checkpoint's epoch.
    """
    if resume and overwrite:
        raise ValueError("resume continues the checkpoint and overwrite starts over: pass one, not both")
    if checkpoint_dir is not None:
        check_checkpoint_dir(checkpoint_dir, resume=resume, overwrite=overwrite)
    run = Run.build(config, dataset, data_parallel=data_parallel)
    dataset = run.dataset
    history: list[EpochRecord] = []
    start_epoch = 0
    checkpoint_epoch: int | None = None
    if checkpoint_dir is not None:
        for leftover in ckpt.remove_leftovers(checkpoint_dir):
            if log:
                log(f"removed {leftover}, left by an interrupted save")
    if resume:
        if checkpoint_dir is None:
            raise ValueError("resume needs a checkpoint directory")
        if variables is not None:
            raise ValueError(
                "resume continues from the checkpoint's weights: pass variables or resume, not both"
            )
        loaded = load_checkpoint(checkpoint_dir, log)
        loaded.check_compatible(config, dataset)
        if loaded.replaces is not None:
            aside = ckpt.set_aside(loaded.replaces)
            if log:
                log(f"the corrupt checkpoint is kept as {aside}")
        state, plateau, history, start_epoch = loaded.state, loaded.plateau, loaded.history, loaded.epoch
        checkpoint_epoch = start_epoch
        if log:
            log(f"resuming from {loaded.path} after epoch {start_epoch}")
    else:
        if checkpoint_dir is not None and overwrite:
            ckpt.remove(checkpoint_dir)
        state = create_train_state(
            config,
            dataset.num_features,
            dataset.num_classes,
            variables,
            dataset.output_shape,
            dataset.seq_len,
        )
        plateau = run.scheduler.init(config.lr)
    if run.mesh is not None:
        state = parallel.place(state, run.mesh, split=False)

    steps_per_epoch = math.ceil(len(dataset.y_train) / config.batch_size)
    bar = progress(config.epochs * steps_per_epoch, start_epoch * steps_per_epoch) if progress else None
    epoch = start_epoch
    selected: tuple[tuple[float, float], int, TrainState] | None = None  # (score, epoch, state)
    if run.validation is not None and resume:
        raise ValueError(
            "a validation split chooses among the epochs of one run, whose weights a checkpoint does "
            "not keep: train it without resume"
        )
    try:
        for epoch in range(start_epoch, config.epochs):
            state, (plateau,), (record,) = train_epoch(run, state, [plateau], epoch, log, bar)
            history.append(record)
            if record.val_accuracy is not None:
                # Device arrays are immutable: keeping the reference keeps that epoch's weights.
                score = (record.val_accuracy, -record.val_loss)
                if selected is None or score > selected[0]:
                    selected = (score, epoch + 1, state)
            if checkpoint_dir is not None and parallel.is_primary():  # one writer across processes
                ckpt.save(checkpoint_dir, state, plateau, epoch + 1, history, config, dataset)
                checkpoint_epoch = epoch + 1
            if log:
                held = ""
                if record.val_accuracy is not None:
                    held = (
                        f"validation loss {record.val_loss:.4f} accuracy {100 * record.val_accuracy:.2f}%, "
                    )
                log(
                    f"Epoch [{epoch + 1}/{config.epochs}] train loss {record.train_loss:.4f}, {held}"
                    f"{run.task.describe(record.test_loss, record.test_accuracy)}, lr {record.lr:.2e}"
                )
    except (TrainingDivergedError, KeyboardInterrupt, OSError) as err:
        err.partial = Partial(list(history), epoch + 1, checkpoint_epoch)
        raise
    except Exception as err:
        _raise_if_process_lost(err)
        raise
    finally:
        if bar is not None:
            bar.close()
    if selected is not None:
        if log:
            log(f"selected epoch {selected[1]}: the best validation accuracy ({100 * selected[0][0]:.2f}%)")
        return FitResult(_local(selected[2]), plateau, history, config, dataset.num_classes, selected[1])
    return FitResult(_local(state), plateau, history, config, dataset.num_classes)


def check_checkpoint_dir(directory: str | Path, resume: bool = False, overwrite: bool = False) -> Path:
    """Refuses, before any work, a checkpoint directory that cannot be written (a file, a path
    under a file, no write permission), and one that holds a checkpoint when neither `resume` nor
    `overwrite` says what to do with it. Returns the directory."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"checkpoint directory {directory} is a file, not a directory")
    ancestor = directory
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"checkpoint directory {directory} cannot be created: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"checkpoint directory {directory} is not writable ({ancestor} is read-only)")
    if not resume and not overwrite and ckpt.exists(directory):
        raise ValueError(
            f"{directory} already holds a checkpoint, which this run would overwrite: continue it with "
            "--resume (resume=True), or start over on purpose with --overwrite (overwrite=True)"
        )
    return directory


def fit_many(
    config: TrainConfig,
    dataset: Dataset | WindowDataset,
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
    run = Run.build(config, dataset, list(seeds), data_parallel)
    configs, dataset = run.configs, run.dataset
    states = [
        create_train_state(
            c,
            dataset.num_features,
            dataset.num_classes,
            output_shape=dataset.output_shape,
            seq_len=dataset.seq_len,
        )
        for c in configs
    ]
    state = _stack(states)  # leading model axis (K, ...)
    if run.mesh is not None:
        state = parallel.place(state, run.mesh, split=True)
    plateaus = [run.scheduler.init(config.lr) for _ in seeds]
    histories: list[list[EpochRecord]] = [[] for _ in seeds]
    steps_per_epoch = math.ceil(len(dataset.y_train) / config.batch_size)
    bar = progress(config.epochs * steps_per_epoch, 0) if progress else None
    # With a validation split: per model, (score, epoch, the stacked state of that epoch), as `fit`.
    selected: list[tuple[tuple[float, float], int, TrainState] | None] = [None] * len(seeds)
    try:
        for epoch in range(config.epochs):
            state, plateaus, records = train_epoch(run, state, plateaus, epoch, log, bar)
            for k, (history, record) in enumerate(zip(histories, records, strict=True)):
                history.append(record)
                if record.val_accuracy is not None:
                    score = (record.val_accuracy, -record.val_loss)
                    if selected[k] is None or score > selected[k][0]:
                        selected[k] = (score, epoch + 1, state)
            if log:
                accuracies = ", ".join(f"{100 * r.test_accuracy:.1f}" for r in records)
                log(
                    f"Epoch [{epoch + 1}/{config.epochs}] {len(seeds)} models: mean train loss "
                    f"{np.mean([r.train_loss for r in records]):.4f}, test accuracy % [{accuracies}]"
                )
    except Exception as err:
        _raise_if_process_lost(err)
        raise
    finally:
        if bar is not None:
            bar.close()
    results = []
    for k, c in enumerate(configs):
        chosen = selected[k]
        model_state = _unstack(_local(state if chosen is None else chosen[2]), k)
        epoch_k = None if chosen is None else chosen[1]
        results.append(FitResult(model_state, plateaus[k], histories[k], c, dataset.num_classes, epoch_k))
    return results


def _raise_if_process_lost(err: Exception) -> None:
    """A collective that failed because another process is gone becomes a ProcessLostError (a
    RuntimeError, not the ValueError Gloo raises, which callers take for bad input)."""
    lost = parallel.lost_process_error(err)
    if lost is not None:
        raise lost from err


def _local(state: TrainState) -> TrainState:
    """The state on this process's default device: after a multi-process run its arrays span other
    processes' devices too, which nothing outside the run's programs could read or apply."""
    if not parallel.multiprocess():
        return state
    return jax.tree.map(jnp.asarray, parallel.fetch(state))


def _stack(states: list[TrainState]) -> TrainState:
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


def _unstack(state: TrainState, k: int) -> TrainState:
    return jax.tree.map(lambda leaf: leaf[k], state)
