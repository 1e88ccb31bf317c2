"""Training an `LSTMForecaster` on a table through the library's one training loop, and using it.

    from jax_lstm import forecasting as fc

    forecaster = fc.fit_forecaster(fc.seattle_weather(), horizon=7)
    forecaster.evaluate().overall          # {"mae": ..., "rmse": ..., "mase": ...} on the test period
    forecaster.predict()                   # the 7 days after the table, (H, T) in original units

`plan` picks what the caller left open from the table (horizon and lookback, `default_lookback`)
and resolves the training settings as every entry point does (`jax_lstm.training.resolve_config`:
the forecaster's recipe and the windows' defaults); `ForecastPlan.fit` trains ("lstm-forecaster" in
the model registry, MSE on the scaled targets, validation MSE after every epoch) and returns a
`Forecaster`; `fit_forecaster` is the two in one call.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jax_lstm.data import DataError, Dims, WindowDataset
from jax_lstm.forecasting.metrics import Evaluation, evaluate, naive_scale
from jax_lstm.forecasting.table import Table, table_from_frame
from jax_lstm.forecasting.windows import DEFAULT_VAL_FRACTION, ForecastData, Windows, prepare, split_periods
from jax_lstm.training import FitResult, TrainConfig, fit, make_model, predict, resolve_config

__all__ = [
    "MODEL",
    "ForecastPlan",
    "Forecaster",
    "Prediction",
    "default_horizon",
    "default_lookback",
    "fit_forecaster",
    "plan",
    "window_dataset",
]

MODEL = "lstm-forecaster"  # its registry name; its recipe (hidden 32, 1 layer, ~640 steps) is there


def default_horizon(table: Table) -> int:
    """One season (at most 24 steps) when the time labels have one, else one step."""
    return min(table.season, 24) if table.season else 1


def default_lookback(table: Table, horizon: int, test_size: int | None = None) -> int:
    """Four horizons or two seasons (at least 8 steps), shortened to a third of the training period
    so that most training rows start a window."""
    periods = split_periods(table.num_rows, 1, horizon, test_size)  # the lookback does not move them
    wanted = max(4 * horizon, 2 * (table.season or 0), 8)
    return max(1, min(wanted, periods.train_end // 3))


def window_dataset(data: ForecastData) -> WindowDataset:
    """The loop's form of prepared data: training windows, and the validation windows it evaluates
    after every epoch (the test period is scored afterwards, in original units)."""
    name = f"{data.table.name} (lookback {data.lookback}, horizon {data.horizon})"
    return WindowDataset(
        name, data.train.inputs, data.train.targets, data.validation.inputs, data.validation.targets
    )


@dataclasses.dataclass(frozen=True, eq=False)
class ForecastPlan:
    """A run ready to train: the prepared data, its windows as the loop takes them, and the
    resolved config. Unpacks as ``data, config``."""

    data: ForecastData
    dataset: WindowDataset
    config: TrainConfig

    def __iter__(self):
        return iter((self.data, self.config))

    def fit(self, **options: Any) -> Forecaster:
        """Trains the forecaster and returns the `Forecaster`: `options` are `jax_lstm.fit`'s
        (``variables``: initial weights, e.g. ``from_torch(twin.state_dict())``, default from the
        seed; ``checkpoint_dir``, ``resume``, ``overwrite``: per-epoch checkpoints and bit-exact
        resume; ``log``, ``progress``); no log lines by default."""
        return Forecaster(self.data, self.config, fit(self.config, self.dataset, **{"log": None, **options}))


def plan(
    table: Table,
    horizon: int | None = None,
    lookback: int | None = None,
    *,
    test_size: int | None = None,
    val_fraction: float | None = None,
    **settings: Any,
) -> ForecastPlan:
    """The prepared data and the validated config of a run, defaults filled in from the table.

    `settings` holds `TrainConfig` fields (epochs, batch_size, hidden_size, num_layers, lr, clip,
    cell, seed, dtype, ...); ``None`` values and missing ones are resolved as for every model
    (`jax_lstm.training.resolve_config`): the forecaster's recipe (hidden 32, 1 layer, about 640
    optimizer steps in 20 to 200 epochs) and the windows' defaults (batches of 32 from 512 training
    windows on, of 16 below).

    Raises:
      DataError: the table is too short for the horizon, lookback and test period (the message
        says which to shorten). ValueError: a bad setting, named.
    """
    horizon = default_horizon(table) if horizon is None else horizon
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon}")
    lookback = default_lookback(table, horizon, test_size) if lookback is None else lookback
    val_fraction = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
    data = prepare(table, lookback, horizon, test_size=test_size, val_fraction=val_fraction)
    if len(data.train) < 2:
        raise DataError(
            f"the training period leaves {len(data.train)} windows of lookback {lookback} + horizon "
            f"{horizon}: use a shorter lookback or horizon, a shorter test period, or more data"
        )
    dataset = window_dataset(data)
    settings.setdefault("log_every", 0)  # thousands of small steps: epoch lines only
    return ForecastPlan(data, dataset, resolve_config(MODEL, dataset, **settings))


@dataclasses.dataclass(frozen=True, eq=False)
class Prediction:
    """Forecasts from one origin: values (H, T) in original units, the target names and, when the
    table has time labels, the H forecast times."""

    values: np.ndarray
    targets: tuple[str, ...]
    times: pd.Index | None

    def frame(self) -> pd.DataFrame:
        """The forecasts as a DataFrame: one row per step (indexed by time when known)."""
        return pd.DataFrame(self.values, columns=list(self.targets), index=self.times)


@dataclasses.dataclass(frozen=True, eq=False)
class Forecaster:
    """A trained forecaster with the data it was fitted on."""

    data: ForecastData
    config: TrainConfig
    result: FitResult

    @property
    def horizon(self) -> int:
        return self.data.horizon

    @property
    def lookback(self) -> int:
        return self.data.lookback

    @property
    def targets(self) -> tuple[str, ...]:
        return self.data.table.targets

    def variables(self) -> dict[str, Any]:
        """The trained Flax variables (``jax_lstm.to_torch(..., model="lstm-forecaster")`` takes them)."""
        return self.result.variables()

    @property
    def dims(self) -> Dims:
        shape = (self.horizon, len(self.targets))
        return Dims(self.data.table.values.shape[1], math.prod(shape), shape, self.lookback)

    def module(self):
        """The Flax `LSTMForecaster` these variables belong to (an ensemble's: each member's)."""
        return make_model(self.config, self.dims)

    def forecast_scaled(self, inputs: np.ndarray) -> np.ndarray:
        """(B, L, V) scaled input windows -> (B, H, T) scaled forecasts (an ensemble's: the mean of
        its members')."""
        inputs = np.asarray(inputs, dtype=self.config.dtype)
        return predict.predictions(self.config, self.dims, self.variables(), inputs)

    def forecast_windows(self, windows: Windows | None = None) -> np.ndarray:
        """(B, H, T) forecasts in original units from each origin of `windows` (default: the test period)."""
        windows = self.data.test if windows is None else windows
        return self.data.inverse_targets(self.forecast_scaled(windows.inputs))

    def evaluate(self, windows: Windows | None = None) -> Evaluation:
        """MAE, RMSE and MASE (scaled by the training period's one-step naive error) of the forecasts
        from every origin of `windows` (default: the test period)."""
        windows = self.data.test if windows is None else windows
        scale = naive_scale(self.data.train_targets, names=self.targets)
        return evaluate(self.forecast_windows(windows), windows.actual, scale, self.targets)

    def predict(self, history: np.ndarray | Table | None = None) -> Prediction:
        """The H steps after `history`, in original units.

        Args:
          history: (N, V) values in original units, columns as the table's (N >= lookback; the last
            L rows are used), or a `Table` with the same columns; default: the fitted table itself,
            so the forecast continues past its last row.

        Returns:
          `Prediction` with values (H, T) and, when the history has time labels, the forecast times.
        """
        table = self.data.table
        times = None
        if history is None:
            history = table
        if isinstance(history, Table):
            if history.columns != table.columns:
                raise ValueError(
                    f"history has columns {list(history.columns)}; the forecaster was fitted on "
                    f"{list(table.columns)}"
                )
            times = _next_times(history.times, self.horizon)
            history = history.values
        values = np.asarray(history, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(table.columns):
            raise ValueError(
                f"history must be (rows, {len(table.columns)}) values of {list(table.columns)}, got "
                f"shape {values.shape}"
            )
        if len(values) < self.lookback:
            raise ValueError(f"history has {len(values)} rows, fewer than the lookback {self.lookback}")
        if not np.isfinite(values[-self.lookback :]).all():
            raise ValueError("history's last lookback rows contain NaN or inf: fill them first")
        window = self.data.scaler.transform(values[-self.lookback :])[None]
        forecast = self.data.inverse_targets(self.forecast_scaled(window))[0]
        return Prediction(forecast, self.targets, times)


def _next_times(times: pd.Index | None, horizon: int) -> pd.Index | None:
    """The `horizon` labels after a regular time index; None when there is no rule to extend it."""
    if times is None or len(times) < 2:
        return None
    if isinstance(times, pd.PeriodIndex):
        return pd.period_range(times[-1] + 1, periods=horizon, freq=times.freq)
    if isinstance(times, pd.DatetimeIndex):
        with warnings.catch_warnings():
            # pandas 3 announces that infer_freq will return an offset; date_range takes either.
            warnings.simplefilter("ignore")
            freq = pd.infer_freq(times) if len(times) >= 3 else None
        if freq is not None:
            return pd.date_range(times[-1], periods=horizon + 1, freq=freq)[1:]
        step = times[-1] - times[-2]
        return pd.DatetimeIndex([times[-1] + step * (i + 1) for i in range(horizon)])
    return None


def fit_forecaster(
    table: Table | pd.DataFrame,
    horizon: int | None = None,
    lookback: int | None = None,
    *,
    time_column: str | None = None,
    targets: list[str] | None = None,
    test_size: int | None = None,
    val_fraction: float | None = None,
    variables: dict[str, Any] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    progress: Callable[[int, int], Any] | None = None,
    **settings: Any,
) -> Forecaster:
    """Trains an `LSTMForecaster` on `table` and returns the `Forecaster`: ``plan(...).fit(...)``.

    Args:
      table: a `Table` (`read_table`, `seattle_weather`, ...) or a DataFrame (read with
        `table_from_frame` and `time_column` / `targets`).
      horizon: H steps forecast from each origin; default one season (or 1).
      lookback: L input steps; default `default_lookback`.
      test_size, val_fraction: the test and validation periods (see `prepare`).
      variables: initial weights (e.g. ``from_torch(twin.state_dict())``); default from the seed.
      checkpoint_dir, resume, overwrite: as `jax_lstm.fit` (per-epoch checkpoints; bit-exact resume).
      log, progress: as `jax_lstm.fit`; no log lines by default.
      settings: `TrainConfig` fields (epochs, batch_size, hidden_size, cell, lr, seed, dtype, ...);
        one the forecaster does not take is refused by name.
    """
    if isinstance(table, pd.DataFrame):
        table = table_from_frame(table, time_column=time_column, targets=targets)
    elif time_column is not None or targets is not None:
        raise ValueError("time_column and targets apply to a DataFrame; a Table already has them")
    planned = plan(table, horizon, lookback, test_size=test_size, val_fraction=val_fraction, **settings)
    return planned.fit(
        variables=variables,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        overwrite=overwrite,
        log=log,
        progress=progress,
    )
