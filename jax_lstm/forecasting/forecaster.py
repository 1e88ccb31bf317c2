"""Training an `LSTMForecaster` on a table through the library's one training loop, and using it.

    from jax_lstm import forecasting as fc

    forecaster = fc.fit_forecaster(fc.seattle_weather(), horizon=7)
    forecaster.evaluate().overall          # {"mae": ..., "rmse": ..., "mase": ...} on the test period
    forecaster.predict()                   # the 7 days after the table, (H, T) in original units
    forecaster.predict().long_frame()      # with conformal intervals, as `jax-lstm forecast --output`

`plan` picks what the caller left open from the table (horizon and lookback, `default_lookback`)
and resolves the training settings as every entry point does (`jax_lstm.training.resolve_config`:
the forecaster's recipe and the windows' defaults); `ForecastPlan.fit` trains ("lstm-forecaster" in
the model registry, MSE on the scaled targets, validation MSE after every epoch) and returns a
`Forecaster`, calibrated on the validation period (`intervals.Calibration`); `fit_forecaster` is
the two in one call. A `ForecastModel` is what forecasting needs without the training data (the
weights, the table's scaler and columns, the calibration): `Forecaster.forecast_model()`, or
`load_forecaster` from a checkpoint (``jax-lstm forecast --from-checkpoint``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jax_lstm.data import DataError, Dims, Preprocessing, TableSpec, WindowDataset
from jax_lstm.forecasting.intervals import DEFAULT_LEVELS, Calibration, calibrate, level_name
from jax_lstm.forecasting.metrics import Evaluation, evaluate, naive_scale
from jax_lstm.forecasting.table import Table, table_from_frame, time_label
from jax_lstm.forecasting.windows import (
    DEFAULT_VAL_FRACTION,
    ForecastData,
    Scaler,
    Windows,
    prepare,
    split_periods,
)
from jax_lstm.predictor import select_variables
from jax_lstm.training import (
    FitResult,
    TrainConfig,
    fit,
    load_checkpoint,
    make_model,
    predict,
    resolve_config,
)

__all__ = [
    "MODEL",
    "ForecastModel",
    "ForecastPlan",
    "Forecaster",
    "Prediction",
    "default_horizon",
    "default_lookback",
    "fit_forecaster",
    "load_forecaster",
    "plan",
    "read_like",
    "table_spec",
    "time_label",
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


def _time_index(times: pd.Index | None) -> dict[str, str | None]:
    """How a table's time index continues: its kind, pandas frequency and last step, as text."""
    if times is None or len(times) == 0:
        return {"time_kind": None, "frequency": None, "step": None, "last_time": None}
    step = str(times[-1] - times[-2]) if len(times) >= 2 and not isinstance(times, pd.PeriodIndex) else None
    if isinstance(times, pd.PeriodIndex):
        kind, frequency, step = "periods", times.freqstr, "1"
    elif isinstance(times, pd.DatetimeIndex):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frequency = pd.infer_freq(times) if len(times) >= 3 else None
        kind = "dates"
    else:
        kind, frequency = "labels", None
    return {"time_kind": kind, "frequency": frequency, "step": step, "last_time": time_label(times[-1])}


def table_spec(data: ForecastData) -> TableSpec:
    """What a forecaster keeps of its table (`TableSpec`): columns, targets, window sizes, time index."""
    table = data.table
    return TableSpec(
        columns=table.columns,
        targets=table.targets,
        lookback=data.lookback,
        horizon=data.horizon,
        time_column=table.time_column,
        rows=table.num_rows,
        periods=(data.periods.train_end, data.periods.val_end),
        source_columns=table.source_columns,
        name=table.name,
        **_time_index(table.times),
    )


def window_dataset(data: ForecastData) -> WindowDataset:
    """The loop's form of prepared data: training windows, and the validation windows it evaluates
    after every epoch (the test period is scored afterwards, in original units); with the table's
    scaler and `TableSpec`, which checkpoints record."""
    name = f"{data.table.name} (lookback {data.lookback}, horizon {data.horizon})"
    return WindowDataset(
        name,
        data.train.inputs,
        data.train.targets,
        data.validation.inputs,
        data.validation.targets,
        preprocessing=Preprocessing(data.scaler.mean, data.scaler.scale),
        table=table_spec(data),
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
        resume; ``log``, ``progress``); no log lines by default. Calibrated on the validation
        period's residuals (none without a validation period)."""
        result = fit(self.config, self.dataset, **{"log": None, **options})
        return Forecaster(self.data, self.config, result).calibrated()


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
    if len(data.validation) == 0:
        # The loop evaluates the validation windows after every epoch (the plateau schedule and
        # --select read them) and the intervals are calibrated on them: training needs some.
        raise DataError(
            f"val_fraction {val_fraction} leaves no validation period, which the forecaster's training "
            "evaluates after every epoch and its prediction intervals are calibrated on: use a "
            f"fraction above 0 (--val-fraction; default {DEFAULT_VAL_FRACTION})"
        )
    dataset = window_dataset(data)
    settings.setdefault("log_every", 0)  # thousands of small steps: epoch lines only
    return ForecastPlan(data, dataset, resolve_config(MODEL, dataset, **settings))


@dataclasses.dataclass(frozen=True, eq=False)
class Prediction:
    """Forecasts from one origin: values (H, T) in original units, the target names and, when the
    table has time labels, the H forecast times (else `steps`, the row numbers the H steps would
    have after the history). `intervals`: {level: (lower, upper) (H, T)}, the calibrated intervals
    (empty without a calibration).

    `frame` is the wide form (one row per step, one column per target); `long_frame` the form
    ``jax-lstm forecast --output`` writes (one row per step and target, with the bounds).
    """

    values: np.ndarray
    targets: tuple[str, ...]
    times: pd.Index | None
    intervals: dict[float, tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)
    steps: np.ndarray | None = None

    def frame(self) -> pd.DataFrame:
        """The forecasts as a DataFrame: one row per step (indexed by time when known)."""
        return pd.DataFrame(self.values, columns=list(self.targets), index=self.times)

    def labels(self) -> list[str]:
        """The H steps' ``time`` labels: the forecast times as text, or the row numbers."""
        if self.times is not None:
            return [time_label(t) for t in self.times]
        steps = self.steps if self.steps is not None else np.arange(1, len(self.values) + 1)
        return [str(int(s)) for s in steps]

    def long_frame(self) -> pd.DataFrame:
        """One row per forecast step and target: ``time``, ``target``, ``horizon`` (1..H),
        ``forecast``, and ``lower_<level>``, ``upper_<level>`` for each interval level."""
        labels = self.labels()
        rows = []
        for h in range(len(self.values)):
            for t, target in enumerate(self.targets):
                row: dict[str, Any] = {
                    "time": labels[h],
                    "target": target,
                    "horizon": h + 1,
                    "forecast": float(self.values[h, t]),
                }
                for level, (lower, upper) in self.intervals.items():
                    row[f"lower_{level_name(level)}"] = float(lower[h, t])
                    row[f"upper_{level_name(level)}"] = float(upper[h, t])
                rows.append(row)
        return pd.DataFrame(rows)


@dataclasses.dataclass(frozen=True, eq=False)
class ForecastModel:
    """A trained forecaster without its training data: the weights, the table's scaler and
    `TableSpec` (columns, targets, lookback, horizon, time index), the calibration of its
    intervals. Forecasts the H steps after any history of the same columns (`predict`).

    From a training run (`Forecaster.forecast_model`) or a checkpoint (`load_forecaster`).
    """

    config: TrainConfig
    variables: dict[str, Any]  # an ensemble's members stacked (E, ...)
    spec: TableSpec
    scaler: Scaler  # over every column (V,), fitted on the training period
    calibration: Calibration | None = None  # None: no validation period, or a checkpoint without one
    path: Path | None = None  # the checkpoint it was loaded from
    epoch: int = 0

    @property
    def horizon(self) -> int:
        return self.spec.horizon

    @property
    def lookback(self) -> int:
        return self.spec.lookback

    @property
    def targets(self) -> tuple[str, ...]:
        return self.spec.targets

    @property
    def dims(self) -> Dims:
        shape = (self.horizon, len(self.targets))
        return Dims(len(self.spec.columns), math.prod(shape), shape, self.lookback)

    @property
    def target_indices(self) -> np.ndarray:
        return np.asarray([self.spec.columns.index(t) for t in self.targets], np.int64)

    def forecast_scaled(self, inputs: np.ndarray) -> np.ndarray:
        """(B, L, V) scaled input windows -> (B, H, T) scaled forecasts (an ensemble's: the mean of
        its members')."""
        inputs = np.asarray(inputs, dtype=self.config.dtype)
        return predict.predictions(self.config, self.dims, self.variables, inputs)

    def inverse_targets(self, forecasts: np.ndarray) -> np.ndarray:
        """Scaled (..., T) forecasts -> original units, float64."""
        return self.scaler.inverse(forecasts, self.target_indices)

    def intervals(
        self, forecasts: np.ndarray, levels: Sequence[float] = DEFAULT_LEVELS
    ) -> dict[float, tuple]:
        """{level: (lower, upper)} of (..., H, T) forecasts in original units; {} uncalibrated."""
        if self.calibration is None:
            return {}
        return {level: self.calibration.bounds(forecasts, level) for level in levels}

    def check_table(self, table: Table) -> None:
        """Refuses a table whose columns differ from the training table's (names or order), naming
        the difference."""
        spec = self.spec
        if spec.source_columns is not None and table.source_columns is not None:
            have, want = tuple(table.source_columns), tuple(spec.source_columns)
        else:
            have, want = table.columns, spec.columns
        if have != want:
            lacking = [c for c in want if c not in have]
            extra = [c for c in have if c not in want]
            detail = "; ".join(
                part
                for part in (
                    f"it lacks {lacking}" if lacking else "",
                    f"it has {extra} besides" if extra else "",
                    "" if lacking or extra else "the same columns in another order",
                )
                if part
            )
            raise DataError(
                f"{table.name} has the columns {list(have)}, but the model was trained on a table of "
                f"{list(want)} ({detail}): forecast from a table with the training table's columns"
            )
        if table.columns != spec.columns or table.targets != spec.targets:
            raise DataError(
                f"{table.name} gives the inputs {list(table.columns)} and targets {list(table.targets)}, "
                f"but the model takes {list(spec.columns)} and forecasts {list(spec.targets)}"
            )

    def predict(self, history: np.ndarray | Table, levels: Sequence[float] = DEFAULT_LEVELS) -> Prediction:
        """The H steps after `history`, in original units, with the calibrated intervals at `levels`.

        Args:
          history: a `Table` with the training table's columns (its time labels are continued), or
            (N, V) values in the columns' order (N >= lookback; the last L rows are used; the steps
            are then numbered N + 1 .. N + H).
        """
        times, name = None, "history"
        if isinstance(history, Table):
            self.check_table(history)
            times = _next_times(history.times, self.horizon, self.spec)
            history, name = history.values, history.name
        values = np.asarray(history, dtype=np.float64)
        columns = self.spec.columns
        if values.ndim != 2 or values.shape[1] != len(columns):
            raise ValueError(
                f"history must be (rows, {len(columns)}) values of {list(columns)}, got shape {values.shape}"
            )
        if len(values) < self.lookback:
            raise ValueError(
                f"{name} has {len(values)} rows, fewer than the model's lookback {self.lookback}: the "
                f"forecast needs the last {self.lookback} rows"
            )
        if not np.isfinite(values[-self.lookback :]).all():
            raise ValueError(
                f"{name}'s last {self.lookback} rows (the lookback) contain NaN or inf: fill them first"
            )
        window = self.scaler.transform(values[-self.lookback :])[None]
        forecast = self.inverse_targets(self.forecast_scaled(window))[0]
        steps = None if times is not None else len(values) + np.arange(1, self.horizon + 1)
        return Prediction(forecast, self.targets, times, self.intervals(forecast, levels), steps)


@dataclasses.dataclass(frozen=True, eq=False)
class Forecaster:
    """A trained forecaster with the data it was fitted on, and the calibration of its intervals
    on the validation period (None without one)."""

    data: ForecastData
    config: TrainConfig
    result: FitResult
    calibration: Calibration | None = None

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

    def forecast_model(self) -> ForecastModel:
        """What forecasting needs of it without the training data (`ForecastModel`)."""
        spec = table_spec(self.data)
        return ForecastModel(self.config, self.variables(), spec, self.data.scaler, self.calibration)

    def calibrated(self) -> Forecaster:
        """This forecaster with its calibration: the absolute residuals of its forecasts from every
        validation origin (`intervals.calibrate`); unchanged without a validation period."""
        validation = self.data.validation
        if len(validation) == 0:
            return dataclasses.replace(self, calibration=None)
        return dataclasses.replace(
            self, calibration=calibrate(self.forecast_windows(validation), validation.actual)
        )

    def forecast_scaled(self, inputs: np.ndarray) -> np.ndarray:
        """(B, L, V) scaled input windows -> (B, H, T) scaled forecasts (an ensemble's: the mean of
        its members')."""
        inputs = np.asarray(inputs, dtype=self.config.dtype)
        return predict.predictions(self.config, self.dims, self.variables(), inputs)

    def forecast_windows(self, windows: Windows | None = None) -> np.ndarray:
        """(B, H, T) forecasts in original units from each origin of `windows` (default: the test period)."""
        windows = self.data.test if windows is None else windows
        return self.data.inverse_targets(self.forecast_scaled(windows.inputs))

    def intervals(
        self,
        windows: Windows | None = None,
        levels: Sequence[float] = DEFAULT_LEVELS,
        forecasts: np.ndarray | None = None,
    ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        """{level: (lower, upper) (B, H, T)} the calibrated intervals of the forecasts from each
        origin of `windows` (default: the test period); {} without a calibration."""
        if self.calibration is None:
            return {}
        forecasts = self.forecast_windows(windows) if forecasts is None else forecasts
        return {level: self.calibration.bounds(forecasts, level) for level in levels}

    def evaluate(self, windows: Windows | None = None) -> Evaluation:
        """MAE, RMSE and MASE (scaled by the training period's one-step naive error) of the forecasts
        from every origin of `windows` (default: the test period)."""
        windows = self.data.test if windows is None else windows
        scale = naive_scale(self.data.train_targets, names=self.targets)
        return evaluate(self.forecast_windows(windows), windows.actual, scale, self.targets)

    def predict(
        self, history: np.ndarray | Table | None = None, levels: Sequence[float] = DEFAULT_LEVELS
    ) -> Prediction:
        """The H steps after `history`, in original units, with the calibrated intervals.

        Args:
          history: (N, V) values in original units, columns as the table's (N >= lookback; the last
            L rows are used), or a `Table` with the same columns; default: the fitted table itself,
            so the forecast continues past its last row.
          levels: the interval levels (default 0.8 and 0.95).

        Returns:
          `Prediction`: values (H, T), the forecast times when the history has time labels, the
          intervals per level; ``.long_frame()`` is the table ``jax-lstm forecast --output`` writes.
        """
        return self.forecast_model().predict(self.data.table if history is None else history, levels)


def _next_times(times: pd.Index | None, horizon: int, spec: TableSpec | None = None) -> pd.Index | None:
    """The `horizon` labels after a regular time index (dates at their inferred frequency or last
    step, periods, evenly spaced integers; a history too short to say falls back on the training
    table's frequency in `spec`); None when there is no rule to extend it."""
    if times is None or len(times) == 0:
        return None
    if isinstance(times, pd.PeriodIndex):
        return pd.period_range(times[-1] + 1, periods=horizon, freq=times.freq)
    if isinstance(times, pd.DatetimeIndex):
        with warnings.catch_warnings():
            # pandas 3 announces that infer_freq will return an offset; date_range takes either.
            warnings.simplefilter("ignore")
            freq = pd.infer_freq(times) if len(times) >= 3 else None
        if freq is None and spec is not None and spec.frequency is not None:
            freq = spec.frequency
        if freq is not None:
            return pd.date_range(times[-1], periods=horizon + 1, freq=freq)[1:]
        if len(times) < 2:
            return None
        step = times[-1] - times[-2]
        return pd.DatetimeIndex([times[-1] + step * (i + 1) for i in range(horizon)])
    if pd.api.types.is_integer_dtype(times) and len(times) >= 2:
        steps = np.diff(np.asarray(times))
        if (steps == steps[-1]).all():
            return pd.Index(int(times[-1]) + int(steps[-1]) * np.arange(1, horizon + 1))
    return None


def read_like(
    path: str | Path | None, spec: TableSpec, *, time_column: str | None = None, fill: str | None = None
) -> Table:
    """A newer version of the table a forecaster was trained on: the CSV at `path` read with the
    training table's time column (unless `time_column` says otherwise), inputs and targets; the
    embedded Seattle weather for `path` None when it was trained on that. Refuses (DataError),
    before reading the rows, a file whose columns differ from the training file's."""
    from jax_lstm.forecasting.datasets import seattle_weather
    from jax_lstm.forecasting.table import read_table

    if path is None:
        if spec.name != "seattle-weather":
            raise DataError(
                f"the model was trained on {spec.name or 'a table'}: give the newer version of it with "
                "--data NEWER.csv"
            )
        return seattle_weather(targets=list(spec.targets), features=list(spec.columns))
    path = Path(path)
    if path.exists() and path.is_file() and spec.source_columns is not None:
        try:
            header = tuple(str(c) for c in pd.read_csv(path, nrows=0).columns)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
            header = None  # read_table names the problem
        if header is not None and header != spec.source_columns:
            lacking = [c for c in spec.source_columns if c not in header]
            extra = [c for c in header if c not in spec.source_columns]
            detail = "; ".join(
                p
                for p in (
                    f"it lacks {lacking}" if lacking else "",
                    f"it has {extra} besides" if extra else "",
                    "" if lacking or extra else "the same columns in another order",
                )
                if p
            )
            raise DataError(
                f"{path} has the columns {list(header)}, but the model was trained on a table of "
                f"{list(spec.source_columns)} ({detail}): forecast from a newer version of the training table"
            )
    return read_table(
        path,
        time_column=spec.time_column if time_column is None else time_column,
        targets=list(spec.targets),
        features=list(spec.columns),
        fill=fill,
    )


def load_forecaster(
    directory: str | Path, *, seed: int | None = None, log: Callable[[str], None] | None = None
) -> ForecastModel:
    """The forecaster of a checkpoint directory (``jax-lstm forecast --checkpoint-dir``), ready to
    forecast from a newer table of the same columns without training: its weights (the selected
    epoch's, with a selection; the run of `seed` of several), the table's scaler and `TableSpec`,
    and the calibration the run added after training (None when the checkpoint has none: no
    intervals then).

    Raises:
      CheckpointError: no checkpoint or a corrupt one. ValueError: a classifier's checkpoint, or one
        written before checkpoints recorded their table and scaler (it cannot scale a new table).
    """
    from jax_lstm.models import registry

    loaded = load_checkpoint(directory, log)
    entry = registry.get(loaded.config.model)
    if entry.task != "forecasting":
        raise ValueError(
            f"{loaded.path} holds a {entry.task} model ({entry.name}): classify with jax-lstm predict "
            "(jax_lstm.load)"
        )
    lacking = {k: v for k, v in loaded.missing.items() if k in ("preprocessing", "table")}
    if lacking or loaded.data.get("preprocessing", {}).get("kind") != "standardize":
        what = "; ".join(lacking.values()) or "the table's scaler"
        raise ValueError(
            f"{loaded.path} was written before checkpoints recorded what forecasting from a new table "
            f"needs ({what}); train it again with this version (jax-lstm forecast --checkpoint-dir)"
        )
    config, variables = select_variables(loaded, seed)
    scaling = Preprocessing.from_dict(loaded.data["preprocessing"])
    notes = loaded.annotations.get("calibration")
    return ForecastModel(
        config,
        variables,
        TableSpec.from_dict(loaded.data["table"]),
        Scaler(scaling.mean, scaling.scale),
        None if notes is None else Calibration.from_dict(notes),
        loaded.path,
        loaded.epoch,
    )


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
