"""torch-exact optimisation pieces: gradient clipping, Adam, and ReduceLROnPlateau.

- `clip_grad_norm(max_norm)`: an optax transformation scaling as `torch.nn.utils.clip_grad_norm_`.
- `adam(...)`: `torch.optim.Adam` as an optax chain, its learning rate injectable without recompiling.
- `reduce_lr_on_plateau(...)`: `torch.optim.lr_scheduler.ReduceLROnPlateau` as a pure state machine
  stepped once per epoch on the host, with Python floats, exactly as torch does it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "PlateauState",
    "ReduceLROnPlateau",
    "adam",
    "clip_grad_norm",
    "global_norm",
    "learning_rate",
    "reduce_lr_on_plateau",
    "set_learning_rate",
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
