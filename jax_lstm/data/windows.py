"""`WindowDataset`: forecast windows in the form the training loop batches, as it batches `Dataset`.

x_*: (N, L, F) input windows, y_*: (N, H, T) target windows (both scaled, float); the "test" split is
the one the loop evaluates after every epoch (for a forecaster: the validation windows, keeping the
test period for scoring afterwards). numpy only.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from jax_lstm.data.dataset import DataError

__all__ = ["WindowDataset"]


@dataclasses.dataclass(frozen=True, eq=False)
class WindowDataset:
    """Train and evaluation windows: x (N, L, F) inputs, y (N, H, T) targets.

    Full-length windows: ``lengths_*`` are always None (the loop's padded-series argument).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    lengths_train: None = None
    lengths_test: None = None

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[-1])

    @property
    def seq_len(self) -> int:
        """T: the padded length of the series (every split is padded to the same)."""
        return int(self.x_train.shape[1])

    @property
    def output_shape(self) -> tuple[int, int]:
        """(H, T): one window's targets."""
        return int(self.y_train.shape[1]), int(self.y_train.shape[2])

    @property
    def num_classes(self) -> int:
        """The model's output width H * T (the loop's name for it, shared with classifiers)."""
        return math.prod(self.output_shape)

    def describe(self) -> str:
        horizon, targets = self.output_shape
        return (
            f"{self.name}: {len(self.x_train)} training / {len(self.x_test)} validation windows of "
            f"{self.x_train.shape[1]} steps x {self.num_features} variables -> {horizon} steps x "
            f"{targets} targets"
        )

    def astype(self, dtype: str) -> WindowDataset:
        return dataclasses.replace(
            self,
            x_train=self.x_train.astype(dtype),
            y_train=self.y_train.astype(dtype),
            x_test=self.x_test.astype(dtype),
            y_test=self.y_test.astype(dtype),
        )

    def validate(self, require_test: bool = True) -> WindowDataset:
        """Raises DataError, before any training, for windows of the wrong shapes or with NaN/inf."""
        splits = [("train", self.x_train, self.y_train)]
        if require_test or len(self.y_test):
            splits.append(("validation", self.x_test, self.y_test))
        for split, x, y in splits:
            if x.ndim != 3 or y.ndim != 3:
                raise DataError(
                    f"{split} windows must be inputs (N, L, F) and targets (N, H, T), got shapes "
                    f"{x.shape} and {y.shape}"
                )
            if len(x) != len(y):
                raise DataError(f"{split}: {len(x)} input windows but {len(y)} target windows")
            if len(x) == 0:
                raise DataError(f"the {split} split has no windows")
            for what, values in (("inputs", x), ("targets", y)):
                if not np.issubdtype(values.dtype, np.floating):
                    raise DataError(f"{split} {what} must be floating point, got {values.dtype}")
                if not np.isfinite(values).all():
                    where = int(np.argwhere(~np.isfinite(values))[0][0])
                    raise DataError(f"{split} {what} contain NaN or inf (first in window {where})")
        if len(splits) == 2:
            train_shapes = (self.x_train.shape[1:], self.y_train.shape[1:])
            if (self.x_test.shape[1:], self.y_test.shape[1:]) != train_shapes:
                raise DataError(
                    f"validation windows {self.x_test.shape[1:]} -> {self.y_test.shape[1:]} do not match "
                    f"the training windows {self.x_train.shape[1:]} -> {self.y_train.shape[1:]}"
                )
        if len(self.x_train) < 2:
            raise DataError(
                f"there are {len(self.x_train)} training windows: training needs at least 2; use a "
                "shorter lookback or horizon, or more data"
            )
        return self
