"""Real multivariate tables, offline.

`seattle_weather` is shipped next to this file (``seattle-weather.csv.gz``; source, license and why
it was chosen in ``SEATTLE_WEATHER.txt``). `macrodata` reads statsmodels' copy of the US
macroeconomic quarterly table (public domain), so it needs statsmodels.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from collections.abc import Sequence

import pandas as pd

from jax_lstm.forecasting.table import Table, read_table, table_from_frame

__all__ = ["SEATTLE_WEATHER_COLUMNS", "macrodata", "seattle_weather", "seattle_weather_path"]

SEATTLE_WEATHER_COLUMNS = ("precipitation", "temp_max", "temp_min", "wind")


def seattle_weather_path():
    """The shipped gzipped CSV (a `importlib.resources` Traversable; use `as_file` for a real path)."""
    return importlib.resources.files(__name__).joinpath("seattle-weather.csv.gz")


def seattle_weather(targets: Sequence[str] | None = None, features: Sequence[str] | None = None) -> Table:
    """Daily Seattle weather 2012-2015 (NOAA via vega-datasets): 1461 rows x 4 variables.

    Columns precipitation, temp_max, temp_min, wind; dates as a DatetimeIndex, season 7 (daily).
    `targets` / `features` as in `read_table` (default: all four).
    """
    with importlib.resources.as_file(seattle_weather_path()) as path:
        table = read_table(path, time_column="date", targets=targets, features=features)
    return dataclasses.replace(table, name="seattle-weather")


def macrodata(
    columns: Sequence[str] = ("realgdp", "realcons", "realinv"),
    targets: Sequence[str] | None = None,
) -> Table:
    """statsmodels' US macroeconomic data, 1959 Q1 - 2009 Q3 (203 quarters), public domain.

    The year and quarter columns become labels like ``1959 Q1`` (a quarterly PeriodIndex, season 4).
    `columns` picks the variables (every one is an input); `targets` default all of them.
    """
    try:
        from statsmodels.datasets import macrodata as source
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("macrodata comes with statsmodels: pip install 'jax-lstm[forecast]'") from error
    raw = source.load_pandas().data
    frame = pd.DataFrame(
        {"quarter": [f"{int(y)} Q{int(q)}" for y, q in zip(raw["year"], raw["quarter"], strict=True)]}
    )
    for c in columns:
        if c not in raw.columns:
            raise KeyError(f"macrodata has no column {c!r}; it has {list(raw.columns)}")
        frame[c] = raw[c].to_numpy()
    return table_from_frame(frame, time_column="quarter", targets=targets, name="macrodata")
