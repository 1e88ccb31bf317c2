"""torch-exact optimisation pieces: gradient clipping, Adam, and learning-rate schedules.

- `clip_grad_norm(max_norm)`: an optax transformation scaling as `torch.nn.utils.clip_grad_norm_`.
- `adam(...)`: `torch.optim.Adam` as an optax chain, its learning rate injectable without recompiling.
- `reduce_lr_on_plateau(...)`: `torch.optim.lr_scheduler.ReduceLROnPlateau` as a pure state machine
  stepped once per epoch on the host, with Python floats, exactly as torch does it.
- `cosine_annealing(...)`, `linear_lr(...)`, `warmup_cosine(...)`: torch's `CosineAnnealingLR`,
  `LinearLR` and `SequentialLR([LinearLR, CosineAnnealingLR])` the same way; `cosine_schedule(epochs,
  ...)` builds the one a training loop wants from its epoch count.
- `Schedule`: what a training loop holds, any of the above; `schedule(kind, **args)` builds one by name
  (`torch_ref.schedules.torch_scheduler` builds torch's twin from the same name and arguments).
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any, Generic, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "SCHEDULES",
    "CosineState",
    "EpochSchedule",
    "LinearState",
    "PlateauState",
    "ReduceLROnPlateau",
    "Schedule",
    "ScheduleState",
    "WarmupCosineState",
    "adam",
    "clip_grad_norm",
    "cosine_annealing",
    "cosine_schedule",
    "global_norm",
    "learning_rate",
    "linear_lr",
    "reduce_lr_on_plateau",
    "schedule",
    "set_learning_rate",
    "warmup_cosine",
]


def global_norm(tree) -> jax.Array:
    """torch's total norm: the 2-norm of the per-tensor 2-norms (clip_grad.py, `_get_total_norm`)."""
    norms = [jnp.linalg.norm(jnp.ravel(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.linalg.norm(jnp.stack(norms))


def clip_grad_norm(max_norm: float) -> optax.GradientTransformation:
    """Scales updates as `torch.nn.utils.clip_grad_norm_(params, max_norm)` scales gradients.

    ``coef = min(max_norm / (total_norm + 1e-6), 1)`` and every update is multiplied by it, always
    (torch/nn/utils/clip_grad.py: ``clip_coef = max_norm / (total_norm + 1e-6)``, clamped at 1).
    `optax.clip_by_global_norm` differs: no 1e-6, and it scales only when the norm exceeds max_norm.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        total = global_norm(updates)
        coef = jnp.minimum(max_norm / (total + 1e-6), 1.0)
        updates = jax.tree.map(lambda g: g * coef.astype(g.dtype), updates)
        return updates, state

    return optax.GradientTransformation(init_fn, update_fn)


def adam(
    learning_rate: float,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    max_grad_norm: float | None = None,
) -> optax.GradientTransformation:
    """`torch.optim.Adam` (optionally after `clip_grad_norm_`) with an injectable learning rate.

    torch's `weight_decay` is an L2 term added to the gradient before the moments (not AdamW's
    decoupled decay). The clipping sits first, as in the article's loop (clip, then `step()`).
    The learning rate lives in the optimizer state (`optax.inject_hyperparams`), so a scheduler can
    change it between steps without recompiling: see `set_learning_rate`.
    """

    def make(learning_rate):
        parts = []
        if max_grad_norm is not None:
            parts.append(clip_grad_norm(max_grad_norm))
        if weight_decay:
            parts.append(optax.add_decayed_weights(weight_decay))
        # eps outside the square root, after bias correction, as torch.optim.Adam (eps_root=0).
        parts.append(optax.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=0.0))
        parts.append(optax.scale_by_learning_rate(learning_rate))
        return optax.chain(*parts)

    return optax.inject_hyperparams(make)(learning_rate=learning_rate)


def learning_rate(opt_state) -> jax.Array:
    """The current learning rate held in an `adam(...)` state."""
    return opt_state.hyperparams["learning_rate"]


def set_learning_rate(opt_state, lr):
    """A copy of an `adam(...)` state with the learning rate replaced (same dtype, shape and sharding,
    so no recompile). `lr` is a float, or a (K,) array for a stack of K optimizer states (`fit_many`)."""
    current = opt_state.hyperparams["learning_rate"]
    value = np.broadcast_to(np.asarray(lr, dtype=current.dtype), current.shape)
    hyperparams = dict(opt_state.hyperparams)
    # Placed as the current rate is (replicated, or split by model, over a mesh): an array on one
    # device would be another input signature for a sharded step, and recompile it. An uncommitted
    # rate (a fresh state, not yet placed) stays uncommitted, free to join any placement.
    if getattr(current, "committed", False):
        hyperparams["learning_rate"] = jax.device_put(value, current.sharding)
    else:
        hyperparams["learning_rate"] = jnp.asarray(value)
    return opt_state._replace(hyperparams=hyperparams)


class PlateauState(NamedTuple):
    """torch's ReduceLROnPlateau bookkeeping, as Python numbers (torch keeps Python floats too)."""

    lr: float  # the learning rate torch's optimizer would now hold
    best: float  # best metric so far; +inf (min) or -inf (max) before the first step
    num_bad_epochs: int
    cooldown_counter: int
    # torch's `last_epoch`: update() calls so far. Nothing here reads it; it keeps the state torch's
    # (compared field by field in test_optim) and travels in checkpoints.
    last_epoch: int


class ReduceLROnPlateau(NamedTuple):
    """The scheduler as two pure functions (its arguments live in their closure). Build with
    `reduce_lr_on_plateau`."""

    init: Callable[[float], PlateauState]
    update: Callable[[PlateauState, float], PlateauState]


def reduce_lr_on_plateau(
    mode: Literal["min", "max"] = "min",
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: Literal["rel", "abs"] = "rel",
    cooldown: int = 0,
    min_lr: float = 0.0,
    eps: float = 1e-8,
) -> ReduceLROnPlateau:
    """`torch.optim.lr_scheduler.ReduceLROnPlateau` as pure ``init(lr)`` / ``update(state, metric)``.

    After the same sequence of ``update`` calls as torch's ``step(metric)`` calls, ``state.lr`` is
    the learning rate torch's optimizer holds, for every argument combination: both modes, both
    threshold modes, cooldown, min_lr and the eps rule (a reduction smaller than eps is skipped).
    The arithmetic is torch's, in Python floats (torch/optim/lr_scheduler.py, `ReduceLROnPlateau`).

    (`optax.contrib.reduce_on_plateau` differs: its patience is off by one, it has no eps rule and
    no mode="max", and it runs on every update call rather than once per epoch.)
    """
    if factor >= 1.0:
        raise ValueError("Factor should be < 1.0.")
    if mode not in ("min", "max"):
        raise ValueError(f"mode {mode} is unknown!")
    if threshold_mode not in ("rel", "abs"):
        raise ValueError(f"threshold mode {threshold_mode} is unknown!")

    def is_better(a: float, best: float) -> bool:
        if mode == "min" and threshold_mode == "rel":
            return a < best * (1.0 - threshold)
        if mode == "min":
            return a < best - threshold
        if threshold_mode == "rel":
            return a > best * (threshold + 1.0)
        return a > best + threshold

    def init(lr: float) -> PlateauState:
        worst = math.inf if mode == "min" else -math.inf
        return PlateauState(float(lr), worst, 0, 0, 0)

    def update(state: PlateauState, metric: float) -> PlateauState:
        current = float(metric)
        lr, best, bad, cooldown_counter, epoch = state
        if is_better(current, best):
            best, bad = current, 0
        else:
            bad += 1
        if cooldown_counter > 0:
            cooldown_counter -= 1
            bad = 0  # bad epochs in cooldown are ignored
        if bad > patience:
            new_lr = max(lr * factor, min_lr)
            if lr - new_lr > eps:
                lr = new_lr
            cooldown_counter = cooldown
            bad = 0
        return PlateauState(lr, best, bad, cooldown_counter, epoch + 1)

    return ReduceLROnPlateau(init, update)


# --- Schedules fixed in advance by the epoch count --------------------------------------------------
#
# A training loop holds any schedule the same way: ``state = schedule.init(lr)`` before the first
# epoch, ``state = schedule.update(state, metric)`` after each epoch, and trains the next epoch at
# ``state.lr``. ReduceLROnPlateau reads the metric; the schedules below take it and ignore it, so the
# loop needs no branch. Every state is a NamedTuple of Python numbers with at least `lr` and
# `last_epoch`, which is what a checkpoint stores.


@runtime_checkable
class ScheduleState(Protocol):
    """What every schedule state has (`PlateauState`, `CosineState`, `LinearState`, `WarmupCosineState`)."""

    @property
    def lr(self) -> float: ...  # the learning rate of the next epoch, as torch's optimizer holds it

    @property
    def last_epoch(self) -> int: ...  # torch's `last_epoch`: update() calls so far


@runtime_checkable
class Schedule(Protocol):
    """What a training loop holds: ``init(lr) -> state`` once, ``update(state, metric) -> state`` after
    every epoch (`ReduceLROnPlateau` reads the metric, an `EpochSchedule` ignores it), and the next
    epoch trains at ``state.lr``. Both are pure functions of Python numbers, run on the host."""

    @property
    def init(self) -> Callable[[float], Any]: ...

    @property
    def update(self) -> Callable[[Any, float], Any]: ...


S = TypeVar("S")


class EpochSchedule(NamedTuple, Generic[S]):
    """A schedule whose learning rates depend on the epoch count alone, as two pure functions (its
    arguments live in their closure): ``init(lr) -> state``, ``update(state, metric=None) -> state``,
    the metric accepted and ignored so that a loop steps it as it steps `ReduceLROnPlateau`."""

    init: Callable[[float], S]
    update: Callable[[S, float | None], S]


class CosineState(NamedTuple):
    """torch's CosineAnnealingLR bookkeeping, as Python numbers (torch keeps Python floats too)."""

    lr: float  # the learning rate torch's optimizer would now hold
    base_lr: float  # torch's `base_lrs[0]`: the learning rate at init (the restart branch adds a step of it)
    last_epoch: int  # torch's `last_epoch`: update() calls so far; the cosine's argument


class LinearState(NamedTuple):
    """torch's LinearLR bookkeeping, as Python numbers."""

    lr: float  # the learning rate torch's optimizer would now hold
    last_epoch: int  # torch's `last_epoch`: update() calls so far


class WarmupCosineState(NamedTuple):
    """torch's SequentialLR([LinearLR, CosineAnnealingLR], milestones=[warmup_epochs]) bookkeeping.

    The two inner schedulers' epochs follow from `last_epoch`: LinearLR's is
    ``min(last_epoch, warmup_epochs - 1)`` (it is not stepped from the milestone on),
    CosineAnnealingLR's ``last_epoch - warmup_epochs`` from the milestone on (-1 before).
    """

    lr: float  # the learning rate torch's optimizer would now hold
    base_lr: float  # both inner schedulers' `base_lrs[0]`: the learning rate at init
    last_epoch: int  # SequentialLR's `last_epoch`: update() calls so far


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_int(name: str, value, low: int, meaning: str) -> int:
    if not (isinstance(value, numbers.Integral) and not isinstance(value, bool)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low} ({meaning}), got {value!r}")
    return int(value)


def _check_eta_min(eta_min) -> float:
    if not (_is_number(eta_min) and math.isfinite(eta_min) and eta_min >= 0):
        raise ValueError(
            f"eta_min must be a finite number >= 0 (the lowest learning rate of the cosine; 0 anneals "
            f"to zero), got {eta_min!r}"
        )
    return float(eta_min)


def _check_factor(name: str, value, low_open: bool, meaning: str) -> float:
    # torch's LinearLR: start_factor in (0, 1], end_factor in [0, 1] (lr_scheduler.py, LinearLR.__init__).
    inside = _is_number(value) and (0 < value <= 1 if low_open else 0 <= value <= 1)
    if not inside:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(f"{name} must be in {interval} ({meaning}), got {value!r}")
    return float(value)


def _check_lr(lr) -> float:
    if not (_is_number(lr) and math.isfinite(lr) and lr >= 0):
        raise ValueError(f"the learning rate must be a finite number >= 0, got {lr!r}")
    return float(lr)


def _cosine_step(lr: float, base_lr: float, epoch: int, T_max: int, eta_min: float) -> float:  # noqa: N803
    """torch's `CosineAnnealingLR.get_lr()` at the new `last_epoch` `epoch` >= 1, from the current lr.

    torch 2.13, torch/optim/lr_scheduler.py, CosineAnnealingLR.get_lr, its expressions term for term
    (the floating-point results depend on their order):
    - at ``(epoch - 1 - T_max) % (2 T_max) == 0`` (the epoch after each trough, where the recursion
      would divide by ``1 + cos(pi) = 0``) it adds ``(base_lr - eta_min) (1 - cos(pi / T_max)) / 2``;
    - otherwise ``eta_min + (lr - eta_min) (1 + cos(pi epoch / T_max)) / (1 + cos(pi (epoch - 1) / T_max))``,
      which past T_max climbs back up (no restart, no clamp).
    (Its third branch, the closed form when ``_step_count == 1 and last_epoch > 0``, serves a
    scheduler built with ``last_epoch > 0``; a state here resumes by being carried instead.)
    """
    if (epoch - 1 - T_max) % (2 * T_max) == 0:
        return lr + (base_lr - eta_min) * (1 - math.cos(math.pi / T_max)) / 2
    # torch's left-to-right order: (ratio of consecutive cosines) * (lr - eta_min), then + eta_min.
    ratio = (1 + math.cos(math.pi * epoch / T_max)) / (1 + math.cos(math.pi * (epoch - 1) / T_max))
    return ratio * (lr - eta_min) + eta_min


def _cosine_closed_form(base_lr: float, epoch: int, T_max: int, eta_min: float) -> float:  # noqa: N803
    """torch's `CosineAnnealingLR._get_closed_form_lr()`, which `step(epoch)` uses (SequentialLR does)."""
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * epoch / T_max)) / 2


def _linear_step(lr: float, epoch: int, start_factor: float, end_factor: float, total_iters: int) -> float:
    """torch's `LinearLR.get_lr()` at the new `last_epoch` `epoch` >= 1, from the current lr: each
    epoch up to total_iters multiplies the lr by the ratio of consecutive factors, written as torch
    writes it; after total_iters the lr is left alone."""
    if epoch > total_iters:
        return lr
    return lr * (
        1.0
        + (end_factor - start_factor)
        / (total_iters * start_factor + (epoch - 1) * (end_factor - start_factor))
    )


def cosine_annealing(T_max: int, eta_min: float = 0.0) -> EpochSchedule[CosineState]:  # noqa: N803
    """`torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max, eta_min)` stepped once per epoch,
    as pure ``init(lr)`` / ``update(state, metric=None)``.

    After the same number of ``update`` calls as torch's ``step()`` calls, ``state.lr`` equals (==)
    the learning rate torch's optimizer holds. torch steps it *recursively* (`get_lr`, the chainable
    form), not by its closed form ``eta_min + (lr0 - eta_min) (1 + cos(pi t / T_max)) / 2``; the two
    differ in the last bits, so this follows the recursion (see `_cosine_step`): the lr reaches
    eta_min at epoch T_max and, stepped further, climbs back to lr0 at 2 T_max, and so on.

    (`optax.cosine_decay_schedule` differs: the closed form, a function of the update count, and
    clamped at the end of the decay instead of rising again; its `alpha` is a fraction of lr0, not an
    absolute eta_min.)

    Refused (ValueError): T_max not an integer >= 1, eta_min negative or not finite.
    """
    T_max = _check_int("T_max", T_max, 1, "the epochs from the initial learning rate down to eta_min")  # noqa: N806
    eta_min = _check_eta_min(eta_min)

    def init(lr: float) -> CosineState:
        lr = _check_lr(lr)
        # torch's constructor steps once with `_is_initial` set: last_epoch 0, lr unchanged.
        return CosineState(lr, lr, 0)

    def update(state: CosineState, metric: float | None = None) -> CosineState:
        del metric
        epoch = state.last_epoch + 1
        return CosineState(_cosine_step(state.lr, state.base_lr, epoch, T_max, eta_min), state.base_lr, epoch)

    return EpochSchedule(init, update)


def linear_lr(
    start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5
) -> EpochSchedule[LinearState]:
    """`torch.optim.lr_scheduler.LinearLR(optimizer, start_factor, end_factor, total_iters)` stepped
    once per epoch, as pure ``init(lr)`` / ``update(state, metric=None)`` (torch's defaults).

    ``init(lr)`` holds ``lr * start_factor`` (torch's constructor multiplies the optimizer's lr);
    each update up to total_iters multiplies the *current* lr by torch's ratio of consecutive factors
    (`LinearLR.get_lr`, the recursive form: the closed form ``lr0 (start + (end - start) t / total)``
    differs in the last bits), then the lr stays. Traces equal torch's with ==.

    (`optax.linear_schedule` differs: the closed form, of the update count, from absolute values.)

    Refused (ValueError): start_factor outside (0, 1], end_factor outside [0, 1] (as torch), and
    total_iters not an integer >= 1 (torch accepts 0, a warm-up that never warms up).
    """
    start_factor = _check_factor(
        "start_factor", start_factor, True, "the first epoch trains at start_factor * lr"
    )
    end_factor = _check_factor(
        "end_factor", end_factor, False, "the lr reaches end_factor * lr at total_iters"
    )
    total_iters = _check_int("total_iters", total_iters, 1, "the epochs from start_factor to end_factor")

    def init(lr: float) -> LinearState:
        return LinearState(_check_lr(lr) * start_factor, 0)

    def update(state: LinearState, metric: float | None = None) -> LinearState:
        del metric
        epoch = state.last_epoch + 1
        return LinearState(_linear_step(state.lr, epoch, start_factor, end_factor, total_iters), epoch)

    return EpochSchedule(init, update)


def warmup_cosine(
    warmup_epochs: int,
    T_max: int,  # noqa: N803
    eta_min: float = 0.0,
    start_factor: float = 1.0 / 3,
    end_factor: float = 1.0,
    total_iters: int | None = None,
) -> EpochSchedule[WarmupCosineState]:
    """A linear warm-up then cosine annealing, as torch users write it::

        SequentialLR(optimizer, [LinearLR(optimizer, start_factor, end_factor, total_iters),
                                 CosineAnnealingLR(optimizer, T_max, eta_min)], milestones=[warmup_epochs])

    with total_iters = warmup_epochs unless given; pure ``init(lr)`` / ``update(state, metric=None)``,
    traces equal torch's with ==. SequentialLR's own rules, followed here (lr_scheduler.py,
    SequentialLR.__init__ and step):
    - it resets the lr to the initial one and redoes only LinearLR's first step: epoch 0 trains at
      ``start_factor * lr``, epochs 1 .. warmup_epochs - 1 at LinearLR's recursive rates;
    - at the milestone it calls CosineAnnealingLR's ``_update_lr(0)``, the *closed form* at epoch 0,
      ``eta_min + (lr - eta_min)``: the lr jumps to the initial lr (up to that rounding) from wherever
      LinearLR left it, which is ``lr (start + (end - start)(warmup - 1) / total)``, one step short of
      end_factor when total_iters = warmup_epochs;
    - after it, CosineAnnealingLR's recursion from there, its epoch ``last_epoch - warmup_epochs``.

    (optax's `warmup_cosine_decay_schedule` differs: closed forms of the update count, warm-up from an
    absolute init_value reaching the peak at the milestone, the decay clamped at its end.)

    Refused (ValueError): warmup_epochs not an integer >= 1, and what `linear_lr` and
    `cosine_annealing` refuse.
    """
    warmup_epochs = _check_int("warmup_epochs", warmup_epochs, 1, "SequentialLR's milestone; 0 is no warm-up")
    total_iters = warmup_epochs if total_iters is None else total_iters
    linear_lr(start_factor, end_factor, total_iters)  # its refusals
    cosine_annealing(T_max, eta_min)
    # As Python numbers (a numpy integer would make the lrs numpy floats, which JSON does not take).
    start_factor, end_factor, eta_min = float(start_factor), float(end_factor), float(eta_min)
    T_max, total_iters = int(T_max), int(total_iters)  # noqa: N806

    def init(lr: float) -> WarmupCosineState:
        lr = _check_lr(lr)
        return WarmupCosineState(lr * start_factor, lr, 0)

    def update(state: WarmupCosineState, metric: float | None = None) -> WarmupCosineState:
        del metric
        lr, base_lr, epoch = state.lr, state.base_lr, state.last_epoch + 1
        if epoch < warmup_epochs:
            lr = _linear_step(lr, epoch, start_factor, end_factor, total_iters)
        elif epoch == warmup_epochs:
            lr = _cosine_closed_form(base_lr, 0, T_max, eta_min)
        else:
            lr = _cosine_step(lr, base_lr, epoch - warmup_epochs, T_max, eta_min)
        return WarmupCosineState(lr, base_lr, epoch)

    return EpochSchedule(init, update)


def cosine_schedule(
    epochs: int, warmup_epochs: int = 0, eta_min: float = 0.0, warmup_start_factor: float = 1.0 / 3
) -> EpochSchedule[CosineState] | EpochSchedule[WarmupCosineState]:
    """The cosine schedule for a run of `epochs` epochs: torch's ``CosineAnnealingLR(T_max=epochs,
    eta_min)`` without warm-up, else ``SequentialLR([LinearLR(warmup_start_factor,
    total_iters=warmup_epochs), CosineAnnealingLR(T_max=epochs - warmup_epochs, eta_min)],
    milestones=[warmup_epochs])`` (`cosine_annealing`, `warmup_cosine`).

    Stepped once after each epoch, the last epoch trains one step above eta_min (the update after it
    would reach eta_min), as in torch. warmup_start_factor defaults to LinearLR's 1/3.

    Refused (ValueError): epochs not an integer >= 1, warmup_epochs not in [0, epochs), and what
    `cosine_annealing` and `linear_lr` refuse.
    """
    epochs = _check_int("epochs", epochs, 1, "the run's epoch count")
    warmup_epochs = _check_int("warmup_epochs", warmup_epochs, 0, "0 for no warm-up")
    if warmup_epochs >= epochs:
        raise ValueError(
            f"warmup_epochs ({warmup_epochs}) must be smaller than epochs ({epochs}): the cosine needs at "
            f"least one epoch after the warm-up; lower warmup_epochs or raise epochs"
        )
    if warmup_epochs == 0:
        return cosine_annealing(epochs, eta_min)
    return warmup_cosine(warmup_epochs, epochs - warmup_epochs, eta_min, start_factor=warmup_start_factor)


# The schedules by name, for configs: `schedule(kind, **args)` here and
# `torch_ref.schedules.torch_scheduler(optimizer, kind, **args)` build twins from the same arguments.
SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "plateau": reduce_lr_on_plateau,
    "cosine": cosine_schedule,
    "cosine_annealing": cosine_annealing,
    "linear_lr": linear_lr,
    "warmup_cosine": warmup_cosine,
}


def schedule_arguments(kind: str, **args) -> dict[str, Any]:
    """`args` completed with the constructor's defaults (what torch's twin is built from). Refuses an
    unknown kind or argument with a ValueError naming the choices."""
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule kind {kind!r}; choose one of {', '.join(SCHEDULES)}")
    signature = inspect.signature(SCHEDULES[kind])
    unknown = sorted(set(args) - set(signature.parameters))
    if unknown:
        raise ValueError(
            f"schedule {kind!r} takes no argument {', '.join(unknown)}; its arguments are "
            f"{', '.join(signature.parameters)}"
        )
    try:
        bound = signature.bind(**args)
    except TypeError as err:  # a required argument missing
        raise ValueError(
            f"schedule {kind!r}: {err}; its arguments are {', '.join(signature.parameters)}"
        ) from None
    bound.apply_defaults()
    return dict(bound.arguments)


def schedule(kind: str, **args) -> Schedule:
    """The schedule `SCHEDULES[kind]` built from keyword arguments: "plateau" (`reduce_lr_on_plateau`),
    "cosine" (`cosine_schedule`), "cosine_annealing", "linear_lr", "warmup_cosine"."""
    full = schedule_arguments(kind, **args)  # first: it refuses an unknown kind with the choices
    return SCHEDULES[kind](**full)
