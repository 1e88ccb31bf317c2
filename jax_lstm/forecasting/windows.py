"""Splitting a table by time, scaling on the training period, and cutting forecast windows.

Time runs train | validation | test. A window at origin ``o`` has the inputs of rows ``o - L .. o - 1``
(all columns, scaled) and the targets of rows ``o .. o + H - 1``: an input row always precedes every
target row, so no value of a forecast period is ever an input for it. Training windows lie wholly in
the training period. Validation and test windows are rolling-origin windows whose targets lie in
their period; their inputs may reach back into earlier periods, which is history the forecaster
would have had at that origin.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jax_lstm.data import DataError
from jax_lstm.forecasting.table import Table, check_rows

__all__ = [
    "DEFAULT_MAX_TEST_ROWS",
    "DEFAULT_TEST_FRACTION",
    "DEFAULT_VAL_FRACTION",
    "ForecastData",
    "Periods",
    "Scaler",
    "Windows",
    "fit_scaler",
    "make_windows",
    "prepare",
    "split_periods",
]

DEFAULT_TEST_FRACTION = 0.2  # of all rows, at most DEFAULT_MAX_TEST_ROWS
DEFAULT_MAX_TEST_ROWS = 1000
DEFAULT_VAL_FRACTION = 0.1  # of the rows before the test period


@dataclasses.dataclass(frozen=True)
class Periods:
    """Rows ``[0, train_end)`` train, ``[train_end, val_end)`` validation, ``[val_end, num_rows)`` test."""

    num_rows: int
    train_end: int
    val_end: int

    @property
    def train(self) -> slice:
        return slice(0, self.train_end)

    @property
    def validation(self) -> slice:
        return slice(self.train_end, self.val_end)

    @property
    def test(self) -> slice:
        return slice(self.val_end, self.num_rows)

    @property
    def sizes(self) -> tuple[int, int, int]:
        """(train, validation, test) row counts."""
        return self.train_end, self.val_end - self.train_end, self.num_rows - self.val_end


def split_periods(
    num_rows: int,
    lookback: int,
    horizon: int,
    test_size: int | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
) -> Periods:
    """Splits ``num_rows`` time steps into train / validation / test periods, in that order.

    Args:
      num_rows: N.
      lookback: L, the input window length.
      horizon: H, the steps forecast from each origin.
      test_size: the last `test_size` rows; default ``DEFAULT_TEST_FRACTION`` of N (rounded, at
        least H, at most ``DEFAULT_MAX_TEST_ROWS``).
      val_fraction: the validation period is this fraction of the rows before the test period
        (rounded), at its end; 0 for none.

    Raises:
      DataError: too few rows for one training window plus the validation and test periods, or a
        validation or test period shorter than the horizon (it would hold no whole forecast).
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if test_size is None:
        test_size = min(max(round(DEFAULT_TEST_FRACTION * num_rows), horizon), DEFAULT_MAX_TEST_ROWS)
    check_rows(num_rows, lookback, horizon, test_size)
    if test_size < horizon:
        raise DataError(
            f"the test period has {test_size} rows, fewer than the horizon {horizon}: no forecast from "
            "it would lie wholly in it; use a test period of at least the horizon"
        )
    val_size = round(val_fraction * (num_rows - test_size))
    if 0 < val_size < horizon:
        raise DataError(
            f"the validation period would have {val_size} rows ({val_fraction} of {num_rows - test_size}), "
            f"fewer than the horizon {horizon}: raise val_fraction (--val-fraction)"
        )
    check_rows(num_rows, lookback, horizon, test_size, val_size)
    val_end = num_rows - test_size
    return Periods(num_rows=num_rows, train_end=val_end - val_size, val_end=val_end)


@dataclasses.dataclass(frozen=True, eq=False)
class Scaler:
    """A per-variable standard scaler: ``scaled = (value - mean) / scale``; mean and scale (V,)."""

    mean: np.ndarray
    scale: np.ndarray

    def transform(self, values: np.ndarray, indices: np.ndarray | None = None) -> np.ndarray:
        """(..., V) original units -> scaled; with `indices` (K,) the values are those columns (..., K)."""
        mean, scale = self._pick(indices)
        return (np.asarray(values, dtype=np.float64) - mean) / scale

    def inverse(self, values: np.ndarray, indices: np.ndarray | None = None) -> np.ndarray:
        """Scaled (..., V) (or (..., K) columns `indices`) -> original units, float64."""
        mean, scale = self._pick(indices)
        return np.asarray(values, dtype=np.float64) * scale + mean

    def _pick(self, indices: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if indices is None:
            return self.mean, self.scale
        return self.mean[indices], self.scale[indices]


def fit_scaler(values: np.ndarray) -> Scaler:
    """Mean and (population) standard deviation of each column of (N, V) values.

    Fit it on the training period only. A constant column gets scale 1, so it scales to 0, not NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or len(values) == 0:
        raise ValueError(
            f"fit_scaler expects (rows, variables) with at least one row, got shape {values.shape}"
        )
    std = values.std(axis=0)
    return Scaler(mean=values.mean(axis=0), scale=np.where(std > 0, std, 1.0))


@dataclasses.dataclass(frozen=True, eq=False)
class Windows:
    """B forecast windows.

    Attributes:
      inputs: (B, L, V) scaled values of every column at rows ``o - L .. o - 1``.
      targets: (B, H, T) scaled targets at rows ``o .. o + H - 1``: what the model is trained on.
      actual: (B, H, T) the same targets in original units: what forecasts are scored against.
      origins: (B,) int64, each window's origin ``o``, the row of its first forecast step.
    """

    inputs: np.ndarray
    targets: np.ndarray
    actual: np.ndarray
    origins: np.ndarray

    def __len__(self) -> int:
        return int(self.origins.shape[0])

    def astype(self, dtype) -> Windows:
        """The model's side in `dtype` (e.g. float32): inputs and targets cast; actual stays float64."""
        return dataclasses.replace(self, inputs=self.inputs.astype(dtype), targets=self.targets.astype(dtype))


def make_windows(
    scaled: np.ndarray,
    original_targets: np.ndarray,
    target_indices: np.ndarray,
    origins: np.ndarray,
    lookback: int,
    horizon: int,
) -> Windows:
    """Windows at the given origins.

    Args:
      scaled: (N, V) scaled values.
      original_targets: (N, T) the targets in original units.
      target_indices: (T,) the target columns of `scaled`.
      origins: (B,) rows of the first forecast step; each needs ``o >= L`` and ``o + H <= N``.
    """
    origins = np.asarray(origins, dtype=np.int64)
    n = scaled.shape[0]
    if origins.size and (origins.min() < lookback or origins.max() + horizon > n):
        raise ValueError(
            f"origins must lie in [{lookback}, {n - horizon}] for lookback {lookback}, horizon {horizon}"
        )
    past = origins[:, None] + np.arange(-lookback, 0)[None, :]  # (B, L)
    future = origins[:, None] + np.arange(horizon)[None, :]  # (B, H)
    return Windows(
        inputs=scaled[past],
        targets=scaled[future][..., target_indices],
        actual=np.asarray(original_targets, dtype=np.float64)[future],
        origins=origins,
    )


@dataclasses.dataclass(frozen=True, eq=False)
class ForecastData:
    """A table split, scaled on its training period, and cut into windows.

    Attributes:
      table: the source table.
      periods: the train / validation / test rows.
      scaler: fitted on the training rows only, over every column (V,).
      lookback, horizon: L and H.
      train: windows wholly inside the training period, every origin.
      validation: rolling-origin windows with targets in the validation period (may be empty).
      test: rolling-origin windows with targets in the test period.
      stride: the step between evaluation origins.
    """

    table: Table
    periods: Periods
    scaler: Scaler
    lookback: int
    horizon: int
    train: Windows
    validation: Windows
    test: Windows
    stride: int = 1

    def inverse_targets(self, forecasts: np.ndarray) -> np.ndarray:
        """Scaled forecasts (..., T) (e.g. the model's (B, H, T)) -> original units, float64."""
        return self.scaler.inverse(forecasts, self.table.target_indices)

    @property
    def train_targets(self) -> np.ndarray:
        """(N_train, T) the targets over the training period, original units (for MASE and baselines)."""
        return self.table.target_values[self.periods.train]


def prepare(
    table: Table,
    lookback: int,
    horizon: int,
    test_size: int | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    stride: int = 1,
) -> ForecastData:
    """Splits `table` (`split_periods`), fits the scaler on its training rows, and cuts the windows.

    `stride` spaces the rolling origins of the validation and test windows (1: every origin;
    training windows always take every origin). The first test origin is the first test row.
    Window arrays are float64 (`Windows.astype` for the model's dtype).
    """
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride}")
    periods = split_periods(table.num_rows, lookback, horizon, test_size, val_fraction)
    scaler = fit_scaler(table.values[periods.train])
    scaled = scaler.transform(table.values)
    targets = table.target_values
    idx = table.target_indices

    def windows(first: int, last: int, step: int) -> Windows:
        return make_windows(scaled, targets, idx, np.arange(first, last + 1, step), lookback, horizon)

    train = windows(lookback, periods.train_end - horizon, 1)
    validation = windows(periods.train_end, periods.val_end - horizon, stride)
    test = windows(periods.val_end, periods.num_rows - horizon, stride)
    return ForecastData(table, periods, scaler, lookback, horizon, train, validation, test, stride)
