"""torch's learning-rate schedulers built from the names and arguments of `jax_lstm.optim`'s schedules,
so that the torch twin of a training loop and the JAX loop run the same schedule from one config.

``torch_scheduler(optimizer, kind, **args)`` builds the torch scheduler that ``jax_lstm.optim.schedule(
kind, **args)`` reproduces (traces equal with ==, parity_tests/training/test_schedules.py):

- "plateau" (`reduce_lr_on_plateau`): ``ReduceLROnPlateau(optimizer, **args)``;
- "cosine" (`cosine_schedule`): ``CosineAnnealingLR(T_max=epochs)``, or "warmup_cosine" with
  ``T_max=epochs - warmup_epochs`` when warmup_epochs > 0;
- "cosine_annealing": ``CosineAnnealingLR(optimizer, T_max, eta_min)``;
- "linear_lr": ``LinearLR(optimizer, start_factor, end_factor, total_iters)``;
- "warmup_cosine": ``SequentialLR(optimizer, [LinearLR(...), CosineAnnealingLR(...)], [warmup_epochs])``.

The arguments are checked, and completed with their defaults, by `jax_lstm.optim` itself, so both
sides refuse the same input with the same message. Step the result with `step_scheduler` after each
epoch's `optimizer.step()` calls: ReduceLROnPlateau takes the metric, the others take none.
"""

from __future__ import annotations

import torch
from torch.optim import lr_scheduler

from jax_lstm import optim

__all__ = ["step_scheduler", "torch_scheduler"]


def _cosine_annealing(optimizer, T_max, eta_min):  # noqa: N803
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=T_max, eta_min=eta_min)


def _linear_lr(optimizer, start_factor, end_factor, total_iters):
    return lr_scheduler.LinearLR(
        optimizer, start_factor=start_factor, end_factor=end_factor, total_iters=total_iters
    )


def _warmup_cosine(optimizer, warmup_epochs, T_max, eta_min, start_factor, end_factor, total_iters):  # noqa: N803
    total_iters = warmup_epochs if total_iters is None else total_iters
    # Built in the order torch users write it: LinearLR first (it multiplies the lr by start_factor),
    # then CosineAnnealingLR; SequentialLR resets the lr and redoes LinearLR's first step.
    warmup = _linear_lr(optimizer, start_factor, end_factor, total_iters)
    cosine = _cosine_annealing(optimizer, T_max, eta_min)
    return lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_epochs])


def _cosine_schedule(optimizer, epochs, warmup_epochs, eta_min, warmup_start_factor):
    if warmup_epochs == 0:
        return _cosine_annealing(optimizer, epochs, eta_min)
    T_max = epochs - warmup_epochs  # noqa: N806
    return _warmup_cosine(optimizer, warmup_epochs, T_max, eta_min, warmup_start_factor, 1.0, None)


_BUILDERS = {
    "plateau": lambda optimizer, **args: lr_scheduler.ReduceLROnPlateau(optimizer, **args),
    "cosine": _cosine_schedule,
    "cosine_annealing": _cosine_annealing,
    "linear_lr": _linear_lr,
    "warmup_cosine": _warmup_cosine,
}


def torch_scheduler(optimizer: torch.optim.Optimizer, kind: str, **args) -> lr_scheduler.LRScheduler:
    """torch's twin of ``jax_lstm.optim.schedule(kind, **args)`` for `optimizer` (built now, so the
    optimizer's lr is set as torch's constructors set it: LinearLR multiplies it by start_factor).

    Raises the ValueError `jax_lstm.optim` raises for an unknown kind or a bad argument, before
    touching the optimizer.
    """
    full = optim.schedule_arguments(kind, **args)
    optim.SCHEDULES[kind](**full)  # its refusals, before the optimizer is touched
    return _BUILDERS[kind](optimizer, **full)


def step_scheduler(scheduler: lr_scheduler.LRScheduler, metric: float) -> None:
    """One end-of-epoch step: ``step(metric)`` for ReduceLROnPlateau, ``step()`` for the others (as
    `jax_lstm.optim`'s ``update(state, metric)`` reads the metric or ignores it)."""
    if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
        scheduler.step(metric)
    else:
        scheduler.step()
