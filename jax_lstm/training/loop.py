"""The training loop: one epoch function and one driver (`fit_models`) for K >= 1 models, with `fit`
(one model) and `fit_many` (K models in one program) its two names; pure functions of a train state
stepped by jitted programs.

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

import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jax_lstm import optim
from jax_lstm.data import Dataset, WindowDataset, batch_order, epoch_mean
from jax_lstm.models import registry
from jax_lstm.training import checkpoint as ckpt
from jax_lstm.training import dirlock, memory, parallel
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
    "CheckpointWriteError",
    "FitResult",
    "Partial",
    "Run",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "evaluate",
    "fit",
    "fit_many",
    "fit_models",
    "load_checkpoint",
    "train_epoch",
]


@dataclasses.dataclass
class Partial:
    """What a run that stopped early (divergence, interrupt, a failed checkpoint write) had done,
    carried by the exception: each model's records of the completed epochs, the 1-based epoch that
    was running, and the epoch of the last checkpoint on disk (None: none was written or resumed)."""

    histories: list[list[EpochRecord]]
    epoch: int
    checkpoint_epoch: int | None

    @property
    def history(self) -> list[EpochRecord]:
        """The first (for one model: the) model's records."""
        return self.histories[0]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or inf; the last good checkpoint (if any) is left untouched.

    ``epoch`` is the 1-based epoch in which it happened; ``partial`` (`Partial`) what the run had
    done, once the driver has seen it (None when raised by `train_epoch` itself).
    """

    def __init__(self, message: str, epoch: int = 0, partial: Partial | None = None) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.partial = partial


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during training: a KeyboardInterrupt carrying ``partial`` (`Partial`)."""

    def __init__(self, partial: Partial) -> None:
        super().__init__(f"interrupted at epoch {partial.epoch}")
        self.partial = partial


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, permissions): the OSError's errno, strerror and
    filename, with ``partial`` (`Partial`); the previous checkpoint is intact."""

    def __init__(self, err: OSError, partial: Partial) -> None:
        super().__init__(err.errno, err.strerror or str(err), err.filename)
        self.partial = partial


@dataclasses.dataclass
class FitResult:
    """The outcome of training one model: its state, schedule state and one record per epoch.

    With ``select="last"`` (`TrainConfig.select`), `state` is the last epoch's and so are the
    reported metrics. Otherwise `selected_epoch` is the epoch the selection kept (the best on the
    validation split: accuracy, ties the lower loss; or the lowest training loss), `state` holds that
    epoch's weights, and `test_accuracy` is that epoch's: the test split chooses nothing.
    """

    state: TrainState
    schedule: Any  # the learning-rate schedule's state after the last epoch (optim.PlateauState, ...)
    history: list[EpochRecord]
    config: TrainConfig
    num_classes: int  # the model's output width (a forecaster's H * T)
    selected_epoch: int | None = None  # 1-based; None: the last epoch (select="last")
    # An ensemble (TrainConfig.ensemble > 1): `state` holds its E members stacked (E, ...), `history`
    # the ensemble's records (its members' mean training loss, its combined evaluation), `members`
    # each member's own result. With a selection, each member keeps its own epoch, and `final` is
    # the ensemble of the kept members evaluated after training: the reported one.
    members: list[FitResult] | None = None
    final: EpochRecord | None = None

    @property
    def plateau(self) -> Any:
        """The schedule's state (its name from the days of ReduceLROnPlateau alone)."""
        return self.schedule

    @property
    def reported(self) -> EpochRecord:
        """The record whose metrics are reported: an ensemble's final evaluation, else the selected
        epoch's, else the last epoch's."""
        if self.final is not None:
            return self.final
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
    the mesh and the data. ``stacked``: the state has a leading model axis (K models, `seeds`
    given). Build with `Run.build`."""

    configs: list[TrainConfig]
    stacked: bool
    train_step: Programs
    eval_step: Programs
    mesh: Mesh | None
    dataset: Dataset | WindowDataset  # validated, in the config's dtype
    train: _Split
    test: _Split | None  # None: no test split, nothing is evaluated
    scheduler: optim.Schedule
    task: Task = CLASSIFICATION  # the model's (its registry entry names it)
    validation: _Split | None = None  # held out of the training data to choose the epoch by
    ensemble: int = 1  # E: the models are groups of E members, each group one ensemble

    @property
    def config(self) -> TrainConfig:
        return self.configs[0]

    @property
    def seeds(self) -> list[int] | None:
        """The models' seeds when the state is stacked, None for one model."""
        return [c.seed for c in self.configs] if self.stacked else None

    def evaluates(self, epoch: int) -> bool:
        """Whether the test split is evaluated after the 1-based `epoch` (`TrainConfig.evaluates`)."""
        return self.test is not None and self.config.evaluates(epoch)

    @property
    def groups(self) -> int:
        """How many results the run gives: its models, or its ensembles of `ensemble` members."""
        return len(self.configs) // self.ensemble

    @classmethod
    def build(
        cls,
        config: TrainConfig,
        dataset: Dataset | WindowDataset,
        seeds: Sequence[int] | None = None,
        data_parallel: bool | None = None,
    ) -> Run:
        """Validates the config and the data (before any work) and builds the programs over the
        right mesh: one model; one per seed with a stacked state; or, with ``config.ensemble`` E > 1,
        E members per seed s (seeds s .. s + E - 1), stacked."""
        config.validate()
        dataset = dataset.validate(require_test=False).astype(config.dtype)
        ensemble = config.ensemble
        stacked = seeds is not None or ensemble > 1
        runs = [int(s) for s in seeds] if seeds is not None else [config.seed]
        members = [s + e for s in runs for e in range(ensemble)]
        if len(set(members)) != len(members):
            raise ValueError(
                f"the ensembles of seeds {runs} overlap: each takes {ensemble} seeds "
                f"(s .. s + {ensemble - 1}); give seeds {ensemble} apart, e.g. "
                f"{[runs[0] + ensemble * k for k in range(len(runs))]}"
            )
        # Each member is one model (ensemble 1) of its own seed.
        configs = [dataclasses.replace(config, seed=s, ensemble=1) for s in members] if stacked else [config]
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
        model = make_model(config, dataset.dims)
        tx = make_optimizer(config)
        has_test = len(dataset.y_test) > 0
        return cls(
            configs=configs,
            stacked=stacked,
            train_step=make_train_step(model, tx, config.accumulate, many=stacked, mesh=mesh, task=task),
            eval_step=make_eval_step(model, many=stacked, mesh=mesh, task=task, ensemble=ensemble),
            mesh=mesh,
            dataset=dataset,
            train=_Split.of(dataset.x_train, dataset.y_train, dataset.lengths_train),
            test=_Split.of(dataset.x_test, dataset.y_test, dataset.lengths_test) if has_test else None,
            scheduler=make_scheduler(config),
            task=task,
            validation=_validation_split(dataset),
            ensemble=ensemble,
        )

    def initial_state(self, variables: Sequence[dict[str, Any] | None] | None = None) -> TrainState:
        """The state the run starts from, placed for its programs: each model's weights from
        `variables` (one entry per model; None: from its seed), stacked for K models."""
        variables = list(variables) if variables is not None else [None] * len(self.configs)
        if len(variables) != len(self.configs):
            raise ValueError(f"{len(variables)} sets of initial weights for {len(self.configs)} models")
        dims = self.dataset.dims
        states = [create_train_state(c, dims, v) for c, v in zip(self.configs, variables, strict=True)]
        state = _stack(states) if self.stacked else states[0]
        return self.place(state)

    def place(self, state: TrainState) -> TrainState:
        """`state` on the run's devices: replicated for one model, split by model for K."""
        if self.mesh is None:
            return state
        return parallel.place(state, self.mesh, split=self.stacked)


def _validation_split(dataset) -> _Split | None:
    x = getattr(dataset, "x_validation", None)
    if x is None:
        return None
    return _Split.of(x, dataset.y_validation, dataset.lengths_validation)


class Scores(NamedTuple):
    """An evaluation: the task's mean loss and accuracy (classification: cross-entropy and
    accuracy; forecasting: MSE and NaN), floats for one model, (K,) float64 for K; with ensembles,
    each ensemble's (its members' combined prediction), (K / E,)."""

    loss: Any
    accuracy: Any
    ensemble_loss: Any = None
    ensemble_accuracy: Any = None


def evaluate(run: Run, state: TrainState, split: _Split | None = None) -> Scores:
    """The `Scores` of every model (and ensemble) of `run` over `split` (default: the test split),
    in chunks of ``eval_batch_size``."""
    split, size = split if split is not None else run.test, run.config.eval_batch_size
    variables = state.variables()
    totals: dict[str, Any] = {}
    n = len(split)
    for lo in range(0, n, size):
        sums = run.eval_step.run(variables, split.rows(slice(lo, min(lo + size, n))))
        sums = parallel.fetch(sums)  # replicated (one model) or split by model across processes
        for name, value in sums.items():
            # float64 and int64 on the host: chunk sums add up without rounding or overflow.
            value = np.asarray(value)
            value = value.astype(np.float64 if np.issubdtype(value.dtype, np.floating) else np.int64)
            totals[name] = totals[name] + value if name in totals else value
    members = {k: v for k, v in totals.items() if not k.startswith("ensemble_")}
    combined = {k.removeprefix("ensemble_"): v for k, v in totals.items() if k.startswith("ensemble_")}
    return Scores(*run.task.finish(members, n), *(run.task.finish(combined, n) if combined else ()))


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


class Epoch(NamedTuple):
    """What `train_epoch` returns: the new state and schedule states, one record per model, and with
    ensembles one record per ensemble (its members' mean training loss, its combined evaluation)."""

    state: TrainState
    schedules: list[Any]
    records: list[EpochRecord]
    ensembles: list[EpochRecord] | None = None


def train_epoch(
    run: Run,
    state: TrainState,
    schedules: list[Any],
    epoch: int,
    log: Callable[[str], None] | None = print,
    progress: Any = None,
) -> Epoch:
    """One epoch (0-based `epoch`) of every model of `run`: each its own shuffled batches, then
    evaluation (the test split's when `TrainConfig.evaluates` the epoch, its metrics NaN otherwise)
    and one scheduler step per model. Raises TrainingDivergedError on a NaN/inf loss."""
    n, config = len(run.train), run.config
    orders = [batch_order(n, config.batch_size, c.seed, epoch) for c in run.configs]
    steps = len(orders[0])
    start = time.perf_counter()
    losses = []
    for i in range(steps):
        rows = np.stack([order[i] for order in orders]) if run.stacked else orders[0][i]  # (K, B) or (B,)
        state, metrics = run.train_step.run(state, run.train.rows(rows))
        losses.append(metrics["loss"])
        if progress is not None:
            progress.update(1)
        if log and not run.stacked and config.log_every and (i + 1) % config.log_every == 0:
            loss = float(metrics["loss"])
            log(f"Epoch [{epoch + 1}/{config.epochs}], Step [{i + 1}/{steps}], Loss: {loss:.4f}")
    # One device sync per epoch: (steps, K).
    batch_losses = np.stack([parallel.fetch(loss) for loss in losses]).reshape(steps, len(run.configs))
    seconds = time.perf_counter() - start
    _check_finite(batch_losses, epoch, run.seeds)
    sizes = [len(idx) for idx in orders[0]]
    test = evaluate(run, state) if run.evaluates(epoch + 1) else None
    validation = evaluate(run, state, run.validation) if run.validation is not None else None
    train_losses = [epoch_mean(batch_losses[:, k], sizes) for k in range(len(run.configs))]
    lrs_used = [p.lr for p in schedules]
    records = _records(epoch + 1, train_losses, lrs_used, seconds, test, validation, len(run.configs))
    ensembles = None
    if run.ensemble > 1:
        members = np.reshape(train_losses, (run.groups, run.ensemble))
        ensembles = _records(
            epoch + 1,
            [float(np.mean(m)) for m in members],
            lrs_used[:: run.ensemble],
            seconds,
            None if test is None else Scores(test.ensemble_loss, test.ensemble_accuracy),
            None if validation is None else Scores(validation.ensemble_loss, validation.ensemble_accuracy),
            run.groups,
        )
    new_schedules = [run.scheduler.update(s, loss) for s, loss in zip(schedules, train_losses, strict=True)]
    new_lrs = [p.lr for p in new_schedules]
    if new_lrs != lrs_used:
        lr = np.asarray(new_lrs) if run.stacked else new_lrs[0]
        state = state.replace(opt_state=optim.set_learning_rate(state.opt_state, lr))
    return Epoch(state, new_schedules, records, ensembles)


def _records(
    epoch: int,
    train_losses: list[float],
    lrs: list[float],
    seconds: float,
    test: Scores | None,
    validation: Scores | None,
    count: int,
) -> list[EpochRecord]:
    """One EpochRecord per model (or ensemble): NaN where the data has no test split."""
    nan = np.full(count, math.nan)
    test_loss, test_accuracy = (nan, nan) if test is None else map(np.atleast_1d, (test.loss, test.accuracy))
    val_loss = val_accuracy = None
    if validation is not None:
        val_loss, val_accuracy = map(np.atleast_1d, (validation.loss, validation.accuracy))
    return [
        EpochRecord(
            epoch=epoch,
            train_loss=train_losses[k],
            test_loss=float(test_loss[k]),
            test_accuracy=float(test_accuracy[k]),
            lr=lrs[k],
            seconds=seconds,
            val_loss=None if val_loss is None else float(val_loss[k]),
            val_accuracy=None if val_accuracy is None else float(val_accuracy[k]),
        )
        for k in range(count)
    ]


def load_checkpoint(directory: str | Path, log: Callable[[str], None] | None = None) -> ckpt.Checkpoint:
    """The checkpoint in `directory` (written by `fit` or `fit_many`), verified and restored into a
    train state of its config (stacked for K models). A corrupt latest checkpoint falls back to the
    previous one, saying so through `log`; raises `CheckpointError` when there is none to fall back
    to, or no checkpoint at all."""

    def target(config_fields: dict[str, Any], data: dict[str, Any], seeds: list[int] | None):
        config = TrainConfig(**config_fields)
        dims = ckpt.dims(data)
        schedule_state = type(make_scheduler(config).init(config.lr))
        if seeds is None:
            return config, create_train_state(config, dims), schedule_state
        states = [create_train_state(dataclasses.replace(config, seed=s), dims) for s in seeds]
        return config, _stack(states), schedule_state

    return ckpt.load(directory, target, log)


def fit(
    config: TrainConfig,
    dataset: Dataset | WindowDataset,
    *,
    variables: dict[str, Any] | None = None,
    **options: Any,
) -> FitResult:
    """Trains `config.model` on `dataset` for `config.epochs` epochs and evaluates after each (the
    test split every `config.eval_every` epochs): `fit_models` with one model (or, with
    ``config.ensemble`` E > 1, one ensemble). `variables`:
    initial weights (e.g. `from_torch(torch_model.state_dict())`); default: from the seed.
    `options` are `fit_models`' (checkpoint_dir, resume, overwrite, log, progress, data_parallel).
    """
    (result,) = fit_models(
        config, dataset, None, variables=None if variables is None else [variables], **options
    )
    return result


def fit_many(
    config: TrainConfig, dataset: Dataset | WindowDataset, seeds: Sequence[int], **options: Any
) -> list[FitResult]:
    """Trains one model (or, with ``config.ensemble`` E > 1, one ensemble) per seed in a single
    compiled program; returns one FitResult per seed (`fit_models` with K models). `options` are
    `fit_models`': checkpoint_dir, resume, overwrite (the K models in one checkpoint), log,
    progress, data_parallel.

    Each model gets what ``fit(dataclasses.replace(config, seed=s), dataset)`` would give it (its own
    initial weights, its own batch order, its own schedule): the train step maps the single-model
    step over a leading model axis, and with several devices (`data_parallel`, default: whenever
    there are) the models are divided among them, so that K small models keep every core busy.
    Results equal the one-at-a-time runs on one device.
    """
    if not seeds:
        raise ValueError("fit_many needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    return fit_models(config, dataset, list(seeds), **options)


def check_memory(run: Run, log: Callable[[str], None] | None = None) -> None:
    """Refuses, before any array is made, a run that cannot fit in the memory its devices have
    (`memory.InsufficientMemoryError`, naming the estimate, the limit and what to lower); says so
    through `log` when it comes within 20% of it."""
    dataset = run.dataset
    evaluated = max(len(dataset.y_test), 0 if run.validation is None else len(run.validation))
    devices = run.mesh.size if (run.mesh is not None and run.stacked) else 1
    needs = memory.estimate(
        run.config, dataset.dims, len(dataset.y_train), evaluated, len(run.configs), devices=devices
    )
    warning = memory.check(needs, memory.available_bytes())
    if warning and log:
        log(warning)


def fit_models(
    config: TrainConfig,
    dataset: Dataset | WindowDataset,
    seeds: Sequence[int] | None = None,
    *,
    variables: Sequence[dict[str, Any] | None] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = print,
    progress: Callable[[int, int], Any] | None = None,
    data_parallel: bool | None = None,
) -> list[FitResult]:
    """The training driver: one model (`seeds` None, `fit`), or one per seed trained at once in one
    program with a stacked state (`fit_many`); with ``config.ensemble`` E > 1 an ensemble of E
    members per seed. Returns one FitResult per seed (per model, or per ensemble).

    Every check comes before any work (the checkpoint directory, the config, the data, resume's
    compatibility); then per epoch: `train_epoch`, the selection (`TrainConfig.select`), the
    checkpoint (process 0 writes it), the log line.

    Args:
      config: hyperparameters; validated first.
      dataset: validated first (labels in range, no NaN, matching features): errors come before
        any training. With an empty test split nothing is evaluated (test metrics are NaN).
      seeds: the runs' seeds (None: one run of ``config.seed``).
      variables: each model's initial weights (None: from its seed), in the order of the stacked
        state (seed by seed, member by member).
      checkpoint_dir: if given, the full training state is saved there atomically after every epoch
        (the previous epoch's checkpoint kept beside it).
      resume: continue from the checkpoint in `checkpoint_dir` up to `config.epochs`; the result is
        bit-identical to an uninterrupted run.
      overwrite: start over in a `checkpoint_dir` that already holds a checkpoint (deleting it);
        without it (or `resume`) such a directory is refused.
      log: receives the article's "Epoch [e/E], Step [s/S], Loss: x" lines and epoch summaries.
      progress: ``progress(total_steps, initial_steps)`` returns a tqdm-like bar (``update(n)``,
        ``close()``), or None for no bar.
      data_parallel: split the work over the local devices (see `parallel.mesh_for`): one model's
        batch, or K models; None (default) does so whenever there is more than one device and it
        pays. The update is the whole batch's; only the order of floating-point sums changes.
        Across processes (`jax_lstm.runtime.initialize_distributed`) the batches are always split
        over the devices of all of them, and only process 0 writes the checkpoint.

    Raises:
      TrainingDivergedError on a NaN/inf loss, TrainingInterrupted on Ctrl-C, CheckpointWriteError
      when a checkpoint cannot be written: each carries ``partial`` (`Partial`), the epochs
      completed so far and the last checkpoint's epoch.
    """
    if checkpoint_dir is not None:
        ckpt.check_directory(checkpoint_dir, resume=resume, overwrite=overwrite)
    elif resume:
        raise ValueError("resume needs a checkpoint directory")
    run = Run.build(config, dataset, seeds, data_parallel)
    check_memory(run, log)
    lock = contextlib.nullcontext()
    if checkpoint_dir is not None and parallel.is_primary():
        # One run per checkpoint directory: process 0 holds the lock for the whole run; a lock of a
        # process that is gone is taken over with a note, one of another host only when overwriting.
        command = sys.argv or ["python"]
        lock = dirlock.acquire(checkpoint_dir, command, take_over_foreign=overwrite, log=log)
    with lock:
        return _drive(run, config, variables, checkpoint_dir, resume, overwrite, log, progress)


def _drive(
    run: Run,
    config: TrainConfig,
    variables,
    checkpoint_dir,
    resume: bool,
    overwrite: bool,
    log: Callable[[str], None] | None,
    progress,
) -> list[FitResult]:
    """`fit_models` once its checks have passed (and its directory is locked)."""
    if config.select == "validation" and run.validation is None:
        raise ValueError(
            "select='validation' chooses the epoch on a validation split, and the data has none: hold "
            "one out (--validation-split F, jax_lstm.data.validation_split), or select 'last' or 'train-loss'"
        )
    if resume and variables is not None:
        raise ValueError("resume continues from the checkpoint's weights: pass variables or resume, not both")
    dataset, models = run.dataset, len(run.configs)
    histories: list[list[EpochRecord]] = [[] for _ in range(models)]
    ensembles: list[list[EpochRecord]] = [[] for _ in range(run.groups)] if run.ensemble > 1 else []
    selection = _Selection.start(config.select, run.task, models)
    start_epoch = 0
    checkpoint_epoch: int | None = None
    if checkpoint_dir is not None:
        for leftover in ckpt.remove_leftovers(checkpoint_dir):
            if log:
                log(f"removed {leftover}, left by an interrupted save")
    if resume:
        loaded = load_checkpoint(checkpoint_dir, log)
        loaded.check_compatible(config, dataset, run.seeds)
        if loaded.replaces is not None:
            aside = ckpt.set_aside(loaded.replaces)
            if log:
                log(f"the corrupt checkpoint is kept as {aside}")
        state, schedules, histories = run.place(loaded.state), loaded.schedules, loaded.histories
        ensembles = loaded.ensembles or ensembles
        selection = selection.restored(loaded.selection, run)
        start_epoch = checkpoint_epoch = loaded.epoch
        if log:
            done = " (every epoch: nothing left to train)" if start_epoch == config.epochs else ""
            log(f"resuming from {loaded.path} after epoch {start_epoch}{done}")
    else:
        if checkpoint_dir is not None and overwrite:
            ckpt.remove(checkpoint_dir)
        state = run.initial_state(variables)
        schedules = [run.scheduler.init(config.lr) for _ in range(models)]

    steps_per_epoch = math.ceil(len(dataset.y_train) / config.batch_size)
    bar = progress(config.epochs * steps_per_epoch, start_epoch * steps_per_epoch) if progress else None
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, config.epochs):
            done = train_epoch(run, state, schedules, epoch, log, bar)
            state, schedules = done.state, done.schedules
            for history, record in zip(
                [*histories, *ensembles], [*done.records, *(done.ensembles or [])], strict=True
            ):
                history.append(record)
            selection.update(run, state, done.records)
            if checkpoint_dir is not None:
                try:
                    kept = (histories, ensembles, selection)
                    _save(run, config, checkpoint_dir, state, schedules, epoch + 1, *kept)
                except OSError as err:
                    partial = Partial(histories, epoch + 1, checkpoint_epoch)
                    raise CheckpointWriteError(err, partial) from err
                checkpoint_epoch = epoch + 1
            if log:
                log(_epoch_line(run, done))
    except TrainingDivergedError as err:
        raise TrainingDivergedError(
            str(err), err.epoch, Partial(histories, epoch + 1, checkpoint_epoch)
        ) from None
    except KeyboardInterrupt as err:
        raise TrainingInterrupted(Partial(histories, epoch + 1, checkpoint_epoch)) from err
    except Exception as err:
        _raise_if_process_lost(err)
        raise
    finally:
        if bar is not None:
            bar.close()
    kept_state = state if selection.state is None else selection.state
    unmeasured = _unmeasured(run, selection, histories)
    combined = bool(ensembles) and selection.state is not None
    test = evaluate(run, kept_state) if run.test is not None and (unmeasured or combined) else None
    histories = _measured(histories, unmeasured, selection, test)
    finals = _final_ensembles(run, kept_state, selection, histories, test) if combined else None
    final = _local(kept_state)
    results = []
    num_outputs = dataset.dims.num_outputs
    for k, c in enumerate(run.configs):
        model_state = _unstack(final, k) if run.stacked else final
        chosen = selection.epochs[k]
        if chosen is not None and log and not run.stacked:
            log(f"selected epoch {chosen}: {selection.describe(k)}")
        results.append(FitResult(model_state, schedules[k], histories[k], c, num_outputs, chosen))
    if not ensembles:
        return results
    size = run.ensemble
    return [
        FitResult(
            jax.tree.map(lambda leaf, g=g: leaf[g * size : (g + 1) * size], final),
            schedules[g * size],
            ensembles[g],
            dataclasses.replace(config, seed=run.configs[g * size].seed),
            num_outputs,
            members=results[g * size : (g + 1) * size],
            final=None if finals is None else finals[g],
        )
        for g in range(run.groups)
    ]


def _unmeasured(run: Run, selection: _Selection, histories: list[list[EpochRecord]]) -> list[int]:
    """The models whose kept epoch (`TrainConfig.select`) the test split was not evaluated after
    (`TrainConfig.eval_every`): their reported metrics are measured once the run is over."""
    return [
        k
        for k, (epoch, history) in enumerate(zip(selection.epochs, histories, strict=True))
        if run.test is not None and history and not run.evaluates(epoch or len(history))
    ]


def _measured(
    histories: list[list[EpochRecord]], models: list[int], selection: _Selection, test: Scores | None
) -> list[list[EpochRecord]]:
    """`histories` with the kept epoch's test metrics of each of `models` filled in from `test`, the
    kept weights' evaluation: what evaluating after that epoch would have measured."""
    if not models:
        return histories
    loss, accuracy = np.atleast_1d(test.loss), np.atleast_1d(test.accuracy)
    histories = [list(history) for history in histories]
    for k in models:
        at = (selection.epochs[k] or len(histories[k])) - 1
        histories[k][at] = dataclasses.replace(
            histories[k][at], test_loss=float(loss[k]), test_accuracy=float(accuracy[k])
        )
    return histories


def _final_ensembles(
    run: Run, state: TrainState, selection, histories, test: Scores | None
) -> list[EpochRecord]:
    """Each ensemble of the members as its selection kept them (each at its own epoch), evaluated
    once after training (`test`: the kept weights' evaluation of the test split): its record, at the
    latest of its members' epochs."""
    validation = evaluate(run, state, run.validation) if run.validation is not None else None
    kept = [histories[k][epoch - 1] for k, epoch in enumerate(selection.epochs)]
    groups = [kept[g * run.ensemble : (g + 1) * run.ensemble] for g in range(run.groups)]
    records = _records(
        0,
        [float(np.mean([r.train_loss for r in group])) for group in groups],
        [group[0].lr for group in groups],
        0.0,
        None if test is None else Scores(test.ensemble_loss, test.ensemble_accuracy),
        None if validation is None else Scores(validation.ensemble_loss, validation.ensemble_accuracy),
        run.groups,
    )
    return [
        dataclasses.replace(record, epoch=max(r.epoch for r in group))
        for record, group in zip(records, groups, strict=True)
    ]


@dataclasses.dataclass
class _Selection:
    """The epoch each model keeps (`TrainConfig.select`): its best score so far, that epoch, and
    the state holding every model's kept weights (for K models, each row from its own epoch)."""

    rule: str  # "last", "validation" or "train-loss"
    task: Task
    scores: list[tuple[float, ...] | None]
    epochs: list[int | None]
    state: TrainState | None = None

    @classmethod
    def start(cls, rule: str, task: Task, models: int) -> _Selection:
        return cls(rule, task, [None] * models, [None] * models)

    def score(self, record: EpochRecord) -> tuple[float, ...]:
        if self.rule == "validation":
            return self.task.score(record.val_loss, record.val_accuracy)
        return (-record.train_loss,)

    def update(self, run: Run, state: TrainState, records: list[EpochRecord]) -> None:
        """Keeps `state`'s weights for each model whose epoch scores better (ties: the earlier).
        Device arrays are immutable: keeping a reference keeps that epoch's weights."""
        if self.rule == "last":
            return
        improved = []
        for k, record in enumerate(records):
            score = self.score(record)
            better = self.scores[k] is None or score > self.scores[k]
            if better:
                self.scores[k], self.epochs[k] = score, record.epoch
            improved.append(better)
        if all(improved) or self.state is None:
            self.state = state
        elif any(improved):
            self.state = _keep_rows(np.asarray(improved), state, self.state)

    def describe(self, k: int) -> str:
        """Why model `k`'s epoch was kept, for the log."""
        score = self.scores[k]
        if self.rule == "train-loss":
            return f"the lowest training loss ({-score[0]:.4g})"
        if len(score) == 2:
            return f"the best validation accuracy ({100 * score[0]:.2f}%)"
        return f"the lowest validation loss ({-score[0]:.4g})"

    def saved(self) -> dict[str, Any] | None:
        """What a checkpoint keeps of it (None: nothing to keep)."""
        if self.state is None:
            return None
        return {"scores": [list(s) for s in self.scores], "epochs": self.epochs, "state": self.state}

    def restored(self, saved: dict[str, Any] | None, run: Run) -> _Selection:
        if saved is None:
            return self
        scores = [None if s is None else tuple(s) for s in saved["scores"]]
        return dataclasses.replace(
            self, scores=scores, epochs=list(saved["epochs"]), state=run.place(saved["state"])
        )


@jax.jit
def _keep_rows(improved: jax.Array, new: TrainState, kept: TrainState) -> TrainState:
    """Per model (leading axis), `new`'s row where `improved` (K,), else `kept`'s."""

    def pick(a, b):
        return jnp.where(improved.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, new, kept)


def _save(
    run: Run, config: TrainConfig, directory, state, schedules, epoch: int, histories, ensembles, selection
) -> None:
    """The checkpoint of the run of `config` (the models' own seeds apart) after `epoch` epochs,
    with the weights its selection keeps, written by process 0 (models split across processes are
    gathered by all of them first: a collective)."""
    kept = selection.saved()
    if run.stacked and parallel.multiprocess():
        state = parallel.fetch(state)
        if kept is not None:
            kept = {**kept, "state": parallel.fetch(kept["state"])}
    if parallel.is_primary():
        ckpt.save(
            directory, state, schedules, epoch, histories, config, run.dataset, run.seeds, kept, ensembles
        )


def _epoch_line(run: Run, done: Epoch) -> str:
    """The epoch's summary: one model's (or one ensemble's) losses, validation and evaluation; or K
    models' (ensembles') mean training loss and their test accuracies."""
    config, epoch = run.config, done.records[0].epoch
    records = done.records if done.ensembles is None else done.ensembles
    what = "models" if done.ensembles is None else f"ensembles of {run.ensemble}"
    if len(records) > 1 or (done.ensembles is None and run.stacked):
        line = (
            f"Epoch [{epoch}/{config.epochs}] {len(records)} {what}: mean train loss "
            f"{np.mean([r.train_loss for r in records]):.4f}"
        )
        if not run.evaluates(epoch):
            return line
        return line + ", test accuracy % [" + ", ".join(f"{100 * r.test_accuracy:.1f}" for r in records) + "]"
    (record,) = records
    if done.ensembles is not None:
        return _record_line(run, record, f"ensemble of {run.ensemble}: mean ")
    return _record_line(run, record)


def _record_line(run: Run, record: EpochRecord, prefix: str = "") -> str:
    config, epoch = run.config, record.epoch
    parts = [f"{prefix}train loss {record.train_loss:.4f}"]
    if record.val_loss is not None:
        parts.append(run.task.describe("validation", record.val_loss, record.val_accuracy))
    if run.evaluates(epoch):
        parts.append(run.task.describe("test", record.test_loss, record.test_accuracy))
    return f"Epoch [{epoch}/{config.epochs}] " + ", ".join(parts) + f", lr {record.lr:.2e}"


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
