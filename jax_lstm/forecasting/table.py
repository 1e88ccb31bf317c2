"""Multivariate time-series tables: a CSV (or a DataFrame) read into a checked `Table`.

Every problem with the data is a `jax_lstm.data.DataError` raised before any work, naming the row
(as a line number of the file) and the column, and saying how to fix it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jax_lstm.data import DataError

__all__ = [
    "FILL_METHODS",
    "Table",
    "check_rows",
    "infer_season",
    "parse_times",
    "read_table",
    "table_from_frame",
    "time_label",
]

FILL_METHODS = (None, "ffill", "interpolate")

_QUARTER = re.compile(r"^\s*(\d{4})\s*-?\s*[Qq]([1-4])\s*$")


@dataclasses.dataclass(frozen=True, eq=False)
class Table:
    """A multivariate time series: N rows in time order, V numeric columns.

    Attributes:
      columns: the V column names, in file order; every column is a model input.
      values: (N, V) float64, no NaN.
      targets: the names of the columns to forecast (a subset of `columns`, in the order asked for).
      times: (N,) time labels (a DatetimeIndex, a quarterly PeriodIndex, or the column as read when
        it is neither), strictly increasing; None without a time column.
      season: the season length inferred from a regular time index (see `infer_season`), or None.
      name: where the table came from, for messages.
      time_column: the column the time labels were read from (None: none).
      source_columns: every column of the file or frame it was read from, in order (the time
        column and columns it does not use included): a newer version of the file must have the
        same (`jax-lstm forecast --from-checkpoint`). None for a table built by hand.
    """

    columns: tuple[str, ...]
    values: np.ndarray
    targets: tuple[str, ...]
    times: pd.Index | None = None
    season: int | None = None
    name: str = "table"
    time_column: str | None = None
    source_columns: tuple[str, ...] | None = None

    @property
    def num_rows(self) -> int:
        return int(self.values.shape[0])

    @property
    def target_indices(self) -> np.ndarray:
        """(T,) positions of the targets among `columns`."""
        return np.asarray([self.columns.index(t) for t in self.targets], dtype=np.int64)

    @property
    def target_values(self) -> np.ndarray:
        """(N, T) the target columns."""
        return self.values[:, self.target_indices]

    def describe(self) -> str:
        span = ""
        if self.times is not None and len(self.times):
            span = f", {time_label(self.times[0])} .. {time_label(self.times[-1])}"
        season = f", season {self.season}" if self.season else ""
        return (
            f"{self.name}: {self.num_rows} rows x {len(self.columns)} variables{span}{season}; "
            f"targets {list(self.targets)}"
        )


def time_label(time: Any) -> str:
    """A time label as text: dates without a midnight time of day, quarters as pandas writes them."""
    text = str(time)
    return text[:-9] if text.endswith(" 00:00:00") else text


def read_table(
    path: str | Path,
    *,
    time_column: str | None = None,
    targets: Sequence[str] | None = None,
    features: Sequence[str] | None = None,
    fill: str | None = None,
) -> Table:
    """Reads a CSV file (a header line, then one row per time step; ``.gz`` works too) into a `Table`.

    Args:
      path: the CSV file.
      time_column: the column holding the time labels: dates (anything `pandas.to_datetime` reads)
        or quarters such as ``1970 Q1`` / ``1970Q1``. It must be strictly increasing. Without it
        the rows are taken to be in time order, and every column must be numeric.
      targets: the columns to forecast; default every numeric column.
      features: the input columns; default every numeric column. The targets are always inputs
        too (the model sees their history), whether listed here or not.
      fill: missing values: None refuses them (the error names the first one), ``"ffill"`` repeats
        the last observed value (causal), ``"interpolate"`` interpolates linearly between the
        neighbouring observed values (this looks ahead by the length of the gap). Neither can
        fill a gap at the very start (or, for interpolate, the end); those rows must be dropped.

    Raises:
      DataError: a missing, unreadable or malformed file, missing values, unsorted or duplicated
        times, non-numeric columns, unknown column names; the message names the row and column.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path} is a directory: give the path of a CSV file")
    try:
        frame = pd.read_csv(path, skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{path}: the file is empty: expected a header line and one row per time step"
        ) from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise DataError(f"{path}: cannot read it as CSV: {error}") from None
    # Blank lines are kept as rows so that line numbers in messages are the file's; blank lines at
    # the end of the file are not data.
    filled = frame.notna().any(axis=1).to_numpy()
    frame = frame.iloc[: (int(np.flatnonzero(filled)[-1]) + 1) if filled.any() else 0]
    return table_from_frame(
        frame,
        time_column=time_column,
        targets=targets,
        features=features,
        fill=fill,
        name=str(path),
        first_line=2,
    )


def table_from_frame(
    frame: pd.DataFrame,
    *,
    time_column: str | None = None,
    targets: Sequence[str] | None = None,
    features: Sequence[str] | None = None,
    fill: str | None = None,
    name: str = "table",
    first_line: int | None = None,
) -> Table:
    """A `Table` from a DataFrame whose rows are time steps; the options are `read_table`'s.

    `first_line` is the file line of the frame's first row (2 after a header line), so that messages
    name lines of the file; None names rows by their position (0-based) instead.
    """
    if fill not in FILL_METHODS:
        raise ValueError(f"fill must be one of {FILL_METHODS}, got {fill!r}")

    def where(i: int) -> str:
        return f"row {i}" if first_line is None else f"line {i + first_line}"

    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise DataError(f"{name}: no rows after the header")
    available = [c for c in frame.columns if c != time_column]
    if time_column is not None and time_column not in frame.columns:
        raise DataError(f"{name}: no time column {time_column!r}; the columns are {list(frame.columns)}")
    for option, chosen in (("targets", targets), ("features", features)):
        if chosen is None:
            continue
        if isinstance(chosen, str):
            raise TypeError(f"{option} must be a sequence of column names, got the string {chosen!r}")
        unknown = [c for c in chosen if c not in available]
        if unknown:
            raise DataError(
                f"{name}: unknown {option} {unknown}; the available columns are {available}"
                + (f" (the time column {time_column!r} cannot be one)" if time_column in unknown else "")
            )
        if not chosen:
            raise DataError(f"{name}: {option} is empty: name at least one column")
    numeric = {c: _as_number(frame[c]) for c in available}
    non_numeric = {c: bad for c, (_, bad) in numeric.items() if bad is not None}
    if targets is None or features is None:
        # A default of "every numeric column" that quietly dropped a column would hide a typo in
        # the data (a stray "n/a" in a numeric column): a non-numeric column is named instead.
        if non_numeric:
            detail = ", ".join(f"{c!r} ({where(i)}: {v!r})" for c, (i, v) in non_numeric.items())
            hint = "drop them from the file, or name the columns to use with --targets/--features"
            if time_column is None:
                hint = f"if one holds the times, pass it as --time-column; otherwise {hint}"
            raise DataError(f"{name}: non-numeric columns {detail}: {hint}")
    chosen_targets = list(targets) if targets is not None else list(available)
    inputs = set(chosen_targets) | set(features if features is not None else available)
    columns = [c for c in available if c in inputs]
    for c in columns:
        if c in non_numeric:
            i, v = non_numeric[c]
            raise DataError(
                f"{name}: column {c!r} is not numeric ({where(i)}: {v!r}): drop it or fix the value"
            )
    values = pd.DataFrame({c: numeric[c][0] for c in columns})
    if fill == "ffill":
        values = values.ffill()
    elif fill == "interpolate":
        values = values.interpolate(method="linear", limit_area="inside")
    missing = values.isna().to_numpy()
    if missing.any():
        i, j = (int(k) for k in np.argwhere(missing)[0])
        if fill is None:
            advice = "fill the gaps (--fill ffill or --fill interpolate) or drop the rows"
        else:
            advice = f"--fill {fill} cannot fill a gap at the start or end of the table; drop those rows"
        raise DataError(f"{name}: missing value in column {columns[j]!r} at {where(i)}: {advice}")
    times = None
    if time_column is not None:
        times = parse_times(frame[time_column], name=name, where=where)
    return Table(
        columns=tuple(columns),
        values=np.ascontiguousarray(values.to_numpy(dtype=np.float64)),
        targets=tuple(chosen_targets),
        times=times,
        season=None if times is None else infer_season(times),
        name=name,
        time_column=time_column,
        source_columns=tuple(frame.columns),
    )


def _as_number(column: pd.Series) -> tuple[pd.Series, tuple[int, str] | None]:
    """The column as float64 (missing cells NaN) and the first value that is not a number, if any."""
    if pd.api.types.is_bool_dtype(column):
        return column.astype(np.float64), None
    if pd.api.types.is_numeric_dtype(column):
        return column.astype(np.float64), None
    converted = pd.to_numeric(column, errors="coerce")
    bad = converted.isna() & column.notna() & (column.astype(str).str.strip() != "")
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        return converted.astype(np.float64), (i, str(column.iloc[i]))
    return converted.astype(np.float64), None


def parse_times(labels: pd.Series, name: str = "table", where=None) -> pd.Index:
    """(N,) time labels -> a strictly increasing index: quarterly PeriodIndex, DatetimeIndex, or as is.

    Quarter labels (``1970 Q1``, ``1970Q1``, ``1970-Q1``) become a quarterly `pd.PeriodIndex`;
    anything `pandas.to_datetime` reads becomes a DatetimeIndex; integer labels (years, step
    numbers) are kept. Raises DataError for missing or unreadable labels and for times that are
    not strictly increasing (naming both rows).
    """
    where = where or (lambda i: f"row {i}")
    labels = labels.reset_index(drop=True)
    if labels.isna().any():
        i = int(np.argmax(labels.isna().to_numpy()))
        raise DataError(f"{name}: missing time label at {where(i)}")
    if pd.api.types.is_integer_dtype(labels):
        index = pd.Index(labels.to_numpy())
    else:
        text = labels.astype(str)
        quarters = text.str.extract(_QUARTER)
        if quarters.notna().all(axis=None):
            index = pd.PeriodIndex.from_fields(
                year=quarters[0].astype(int).to_numpy(), quarter=quarters[1].astype(int).to_numpy(), freq="Q"
            )
        else:
            parsed = pd.to_datetime(text, errors="coerce", format="mixed")
            if parsed.isna().any():
                i = int(np.argmax(parsed.isna().to_numpy()))
                raise DataError(
                    f"{name}: time label {text.iloc[i]!r} at {where(i)} is neither a date nor a quarter "
                    "like '1970 Q1'"
                )
            index = pd.DatetimeIndex(parsed)
    _check_increasing(index, name, where)
    return index


def _check_increasing(index: pd.Index, name: str, where) -> None:
    if len(index) < 2:
        return
    # Compare neighbours; PeriodIndex / DatetimeIndex / integer Index all compare elementwise.
    later, earlier = index[1:], index[:-1]
    duplicated = np.asarray(later == earlier)
    backwards = np.asarray(later < earlier)
    if duplicated.any():
        i = int(np.argmax(duplicated))
        raise DataError(
            f"{name}: duplicated time {index[i]} at {where(i)} and {where(i + 1)}: each time step must "
            "appear once (aggregate or drop the duplicates)"
        )
    if backwards.any():
        i = int(np.argmax(backwards))
        raise DataError(
            f"{name}: times are not sorted: {index[i + 1]} at {where(i + 1)} comes after {index[i]} at "
            f"{where(i)}; sort the rows by time"
        )


def infer_season(times: pd.Index) -> int | None:
    """The season length of a regular time index: quarterly 4, monthly 12, weekly 52, daily 7
    (the week), hourly 24 (the day); None for an irregular or other index.

    Regularity is checked on the calendar: every step one quarter, one month (same day of month, or
    every month end), exactly 7 days, 1 day or 1 hour apart.
    """
    if len(times) < 3:
        return None
    if isinstance(times, pd.PeriodIndex):
        # "Q-DEC" -> "Q", "W-SUN" -> "W"; a multiple such as "2Q" is no season.
        base = times.freqstr.split("-")[0].upper()
        if not (np.diff(times.asi8) == 1).all():
            return None
        return {"Q": 4, "M": 12, "W": 52, "D": 7, "H": 24}.get(base)
    if not isinstance(times, pd.DatetimeIndex):
        return None
    deltas = np.diff(times.asi8)
    if (deltas == deltas[0]).all():
        step = pd.Timedelta(times[1] - times[0])
        for length, season in (
            (pd.Timedelta(hours=1), 24),
            (pd.Timedelta(days=1), 7),
            (pd.Timedelta(days=7), 52),
        ):
            if step == length:
                return season
    if (times.normalize() != times).any():
        return None
    months = np.asarray(times.year * 12 + times.month)
    gaps = np.diff(months)
    same_day = (times.day == times.day[0]).all() or bool(times.is_month_end.all())
    if same_day and (gaps == 1).all():
        return 12
    if same_day and (gaps == 3).all():
        return 4
    return None


def check_rows(num_rows: int, lookback: int, horizon: int, test_size: int, val_size: int = 0) -> None:
    """Raises DataError unless ``num_rows >= lookback + horizon + val_size + test_size``.

    That is the least that gives one training window (lookback inputs and horizon targets inside
    the training period) and lets every validation and test row be a forecast target.
    """
    for label, value, least in (
        ("lookback", lookback, 1),
        ("horizon", horizon, 1),
        ("test_size", test_size, 0),
    ):
        if int(value) != value or value < least:
            raise ValueError(f"{label} must be an integer >= {least}, got {value}")
    needed = lookback + horizon + val_size + test_size
    if num_rows < needed:
        parts = f"lookback {lookback} + horizon {horizon}"
        if val_size:
            parts += f" + validation {val_size}"
        parts += f" + test period {test_size}"
        raise DataError(
            f"the table has {num_rows} rows, but {parts} need at least {needed}: use a shorter lookback, "
            "horizon or test period, or more data"
        )
