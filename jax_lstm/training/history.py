"""The per-epoch record of a run, shared by the JAX loop, the torch reference, checkpoints and reports."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["EpochRecord", "from_dicts", "to_dicts"]


@dataclasses.dataclass(frozen=True)
class EpochRecord:
    """One epoch of one model. Losses are per-sample means over the split; NaN where not evaluated.

    ``test_*`` describe the data's test split, evaluated after every epoch where the data has it
    (every `TrainConfig.eval_every` epochs, the last and the reported epoch: NaN after the others);
    ``val_*`` its validation split (held-out training series of a classifier, a forecaster's
    validation windows: their MSE), evaluated after every epoch; accuracy is NaN for a task without
    one (forecasting).
    """

    epoch: int  # 1-based
    train_loss: float  # mean of the batch losses weighted by batch size, float64
    test_loss: float
    test_accuracy: float  # fraction in [0, 1]
    lr: float  # the learning rate used during the epoch (the scheduler steps after it)
    seconds: float  # training time of the epoch (the first epoch of a process includes compilation)
    # The validation split held out of the training data (`data.validation_split`); None without one.
    val_loss: float | None = None
    val_accuracy: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def to_dicts(history: Iterable[EpochRecord]) -> list[dict[str, Any]]:
    """JSON-ready: the metrics files and checkpoints store records as plain dictionaries."""
    return [record.as_dict() for record in history]


def from_dicts(rows: Iterable[Mapping[str, Any]]) -> list[EpochRecord]:
    return [EpochRecord(**row) for row in rows]
