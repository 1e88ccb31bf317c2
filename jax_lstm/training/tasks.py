"""What a model is trained for: its loss, the sums its evaluation adds up, and what they mean.

A registry entry names its task (`ModelEntry.task`); the train and eval steps take the `Task` from
`TASKS`, so the one loop trains classifiers and forecasters alike:

- ``classification``: outputs (B, C) logits, targets (B,) int labels; torch's
  ``nn.CrossEntropyLoss()``; evaluation: mean cross-entropy and accuracy.
- ``forecasting``: outputs and targets (B, H, T) scaled values; torch's ``nn.MSELoss()`` (the mean
  over every element); evaluation: the same MSE over the evaluation split, no accuracy (NaN).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["CLASSIFICATION", "FORECASTING", "TASKS", "Task", "ensemble_log_probabilities", "get"]


@dataclasses.dataclass(frozen=True)
class Task:
    """A loss and its evaluation.

    Attributes:
      name: the registry entries' `task`.
      loss: ``loss(outputs, targets) -> ()``, the batch mean that is differentiated.
      eval_sums: ``eval_sums(outputs, targets) -> {name: ()}``, sums over a chunk's samples, so
        they add up across chunks and devices.
      ensemble_sums: ``ensemble_sums(outputs (E, B, ...), targets) -> {name: ()}``, the same sums
        for the combined prediction of E members (a classifier's: the mean of their softmax
        probabilities; a forecaster's: the mean of their forecasts).
      finish: ``finish(sums, n) -> (loss, accuracy)``: the per-sample mean loss and the accuracy
        (NaN where the task has none) of n samples; floats or (K,) arrays, as the sums are.
      loss_name: how logs call the evaluation loss ("loss", "MSE").
      labelled: its targets are class labels (a `Dataset`), not arrays of values (a `WindowDataset`).
    """

    name: str
    loss: Callable[[jax.Array, jax.Array], jax.Array]
    eval_sums: Callable[[jax.Array, jax.Array], dict[str, jax.Array]]
    ensemble_sums: Callable[[jax.Array, jax.Array], dict[str, jax.Array]]
    finish: Callable[[Mapping[str, np.ndarray], int], tuple]
    loss_name: str = "loss"
    labelled: bool = True

    def describe(self, split: str, loss: float, accuracy: float) -> str:
        """The evaluation of `split` ("test", "validation") in an epoch's log line."""
        if math.isnan(accuracy):
            return f"{split} {self.loss_name} {loss:.4f}"
        if split == "test":
            return f"test {self.loss_name} {loss:.4f}, test accuracy {100 * accuracy:.2f}%"
        return f"{split} {self.loss_name} {loss:.4f} accuracy {100 * accuracy:.2f}%"

    def score(self, loss: float, accuracy: float) -> tuple[float, ...]:
        """How an evaluation ranks for choosing an epoch (higher is better): accuracy, then the
        lower loss; the lower loss alone where the task has no accuracy."""
        return (-loss,) if math.isnan(accuracy) else (accuracy, -loss)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """`nn.CrossEntropyLoss()`: mean over the batch. logits (B, C), labels (B,) -> ()."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def classification_sums(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """Summed cross-entropy and correct predictions of a chunk: sums add up across chunks and devices."""
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return {"loss": jnp.sum(losses), "correct": jnp.sum(jnp.argmax(logits, axis=-1) == labels)}


def ensemble_log_probabilities(logits: jax.Array) -> jax.Array:
    """(E, B, C) members' logits -> (B, C) log of the mean of their softmax probabilities, as
    log-mean-exp of their log-softmax (no probability underflows to a log of 0)."""
    members = logits.shape[0]
    return jax.nn.logsumexp(jax.nn.log_softmax(logits, axis=-1), axis=0) - jnp.log(members)


def classification_ensemble_sums(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """The summed cross-entropy and correct predictions of E members' mean probabilities:
    logits (E, B, C), labels (B,)."""
    log_p = ensemble_log_probabilities(logits)
    losses = -jnp.take_along_axis(log_p, labels[:, None], axis=-1)[:, 0]
    return {"loss": jnp.sum(losses), "correct": jnp.sum(jnp.argmax(log_p, axis=-1) == labels)}


def _classification_finish(sums: Mapping[str, np.ndarray], n: int) -> tuple:
    loss, correct = np.asarray(sums["loss"], np.float64), np.asarray(sums["correct"], np.int64)
    if np.ndim(loss) == 0:
        return float(loss) / n, int(correct) / n
    return loss / n, correct / n


def mse(forecasts: jax.Array, targets: jax.Array) -> jax.Array:
    """`nn.MSELoss()`: the mean squared error over every element. (B, H, T), (B, H, T) -> ()."""
    return jnp.mean(jnp.square(forecasts - targets))


def forecasting_sums(forecasts: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
    """The chunk's sum of per-sample MSEs (each the mean over its H x T values)."""
    per_sample = jnp.mean(jnp.square(forecasts - targets).reshape(forecasts.shape[0], -1), axis=-1)
    return {"loss": jnp.sum(per_sample)}


def forecasting_ensemble_sums(forecasts: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
    """The chunk's summed MSE of E members' mean forecast: forecasts (E, B, H, T), targets (B, H, T)."""
    return forecasting_sums(jnp.mean(forecasts, axis=0), targets)


def _forecasting_finish(sums: Mapping[str, np.ndarray], n: int) -> tuple:
    loss = np.asarray(sums["loss"], np.float64) / n
    if np.ndim(loss) == 0:
        return float(loss), math.nan
    return loss, np.full(loss.shape, math.nan)


CLASSIFICATION = Task(
    "classification",
    cross_entropy,
    classification_sums,
    classification_ensemble_sums,
    _classification_finish,
    "loss",
)
FORECASTING = Task(
    "forecasting",
    mse,
    forecasting_sums,
    forecasting_ensemble_sums,
    _forecasting_finish,
    "MSE",
    labelled=False,
)
TASKS: dict[str, Task] = {task.name: task for task in (CLASSIFICATION, FORECASTING)}


def get(name: str) -> Task:
    """The task a registry entry names; a ValueError listing the tasks when there is none."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"task must be one of {tuple(TASKS)}, got {name!r}") from None
