"""`WindowDataset`: forecast windows in the form the training loop batches, as it batches `Dataset`.

x_*: (N, L, F) input windows, y_*: (N, H, T) target windows (both scaled, float). The loop trains on
the training windows and evaluates the validation windows after every epoch (``val_loss``, the
validation MSE); the test period is scored afterwards in original units (`jax_lstm.forecasting`),
so the test split is empty unless one is given. numpy only.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from jax_lstm.data.dataset import DataError, Preprocessing
from jax_lstm.data.dims import Dims, SeriesSizes

__all__ = ["TableSpec", "WindowDataset"]


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """What a forecaster keeps of the table it was trained on, to forecast from a newer one: its
    columns in order, its targets, its windows' sizes, and its time index (so that the next labels
    continue it). Plain values, so a checkpoint records it as JSON (`as_dict`, `from_dict`).
    """

    columns: tuple[str, ...]  # the V input columns, in the table's order
    targets: tuple[str, ...]  # the T forecast columns, a subset of `columns`
    lookback: int  # L input rows per window
    horizon: int  # H forecast steps
    time_column: str | None = None  # None: the rows had no time labels (forecast steps are numbered)
    time_kind: str | None = None  # "dates", "periods" (e.g. quarters), "labels" (e.g. integers); None
    frequency: str | None = None  # the index's pandas frequency ("D", "Q-DEC"), None when it has none
    step: str | None = None  # the step between the last two labels as text ("1 days 00:00:00", "1")
    last_time: str | None = None  # the table's last time label, as text
    rows: int = 0  # the table's rows
    periods: tuple[int, int] = (0, 0)  # (train_end, val_end): rows of the training and validation periods
    # Every column of the file it was read from (time column and unused ones included), in order.
    source_columns: tuple[str, ...] | None = None
    name: str = ""  # where the table came from ("seattle-weather", a file name)

    def as_dict(self) -> dict[str, object]:
        fields = dataclasses.asdict(self)
        fields["columns"], fields["targets"] = list(self.columns), list(self.targets)
        fields["periods"] = list(self.periods)
        if self.source_columns is not None:
            fields["source_columns"] = list(self.source_columns)
        return fields

    @classmethod
    def from_dict(cls, fields: dict[str, object]) -> TableSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in fields.items() if k in known}
        values["columns"] = tuple(values["columns"])
        values["targets"] = tuple(values["targets"])
        values["periods"] = tuple(values.get("periods", (0, 0)))
        if values.get("source_columns") is not None:
            values["source_columns"] = tuple(values["source_columns"])
        return cls(**values)


def _empty_like(a: np.ndarray) -> np.ndarray:
    return np.zeros((0, *a.shape[1:]), a.dtype)


@dataclasses.dataclass(frozen=True, eq=False)
class WindowDataset(SeriesSizes):
    """Training and validation windows: x (N, L, F) inputs, y (N, H, T) targets; a test split only
    if given (empty by default).

    Full-length windows: ``lengths_*`` are always None (the loop's padded-series argument).
    ``preprocessing``: the table's scaler (fitted on its training period, over every column), and
    ``table`` what a forecaster needs of the table (`TableSpec`); both recorded by checkpoints, None
    for windows built by hand.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_validation: np.ndarray
    y_validation: np.ndarray
    x_test: np.ndarray | None = None  # None: no test split (empty)
    y_test: np.ndarray | None = None
    lengths_train: None = None
    lengths_validation: None = None
    lengths_test: None = None
    preprocessing: Preprocessing | None = None
    table: TableSpec | None = None

    def __post_init__(self) -> None:
        if self.x_test is None:
            object.__setattr__(self, "x_test", _empty_like(np.asarray(self.x_train)))
        if self.y_test is None:
            object.__setattr__(self, "y_test", _empty_like(np.asarray(self.y_train)))

    @property
    def output_shape(self) -> tuple[int, int]:
        """(H, T): one window's targets."""
        return int(self.y_train.shape[1]), int(self.y_train.shape[2])

    @property
    def dims(self) -> Dims:
        """A forecaster's sizes: input variables, H * T outputs folded as (H, T), lookback L."""
        return Dims(self.num_features, math.prod(self.output_shape), self.output_shape, self.seq_len)

    @property
    def defaults(self) -> dict[str, object]:
        """Batches of 32 from 512 training windows on, of 16 below (fewer, longer epochs)."""
        return {"batch_size": 32 if len(self.y_train) >= 512 else 16}

    def describe(self) -> str:
        horizon, targets = self.output_shape
        return (
            f"{self.name}: {len(self.x_train)} training / {len(self.x_validation)} validation windows of "
            f"{self.x_train.shape[1]} steps x {self.num_features} variables -> {horizon} steps x "
            f"{targets} targets"
        )

    def astype(self, dtype: str) -> WindowDataset:
        return dataclasses.replace(
            self,
            **{
                name: getattr(self, name).astype(dtype)
                for name in ("x_train", "y_train", "x_validation", "y_validation", "x_test", "y_test")
            },
        )

    def validate(self, require_test: bool = False) -> WindowDataset:
        """Raises DataError, before any training, for windows of the wrong shapes or with NaN/inf.

        The validation windows are required (an empty validation period is refused by
        `jax_lstm.forecasting.prepare` first); a test split only with `require_test`.
        """
        splits = [("train", self.x_train, self.y_train), ("validation", self.x_validation, self.y_validation)]
        if require_test or len(self.y_test):
            splits.append(("test", self.x_test, self.y_test))
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
        train_shapes = (self.x_train.shape[1:], self.y_train.shape[1:])
        for split, x, y in splits[1:]:
            if (x.shape[1:], y.shape[1:]) != train_shapes:
                raise DataError(
                    f"{split} windows {x.shape[1:]} -> {y.shape[1:]} do not match "
                    f"the training windows {train_shapes[0]} -> {train_shapes[1]}"
                )
        if len(self.x_train) < 2:
            raise DataError(
                f"there are {len(self.x_train)} training windows: training needs at least 2; use a "
                "shorter lookback or horizon, or more data"
            )
        return self
