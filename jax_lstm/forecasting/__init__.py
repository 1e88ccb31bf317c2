"""Multivariate forecasting: tables, leakage-free windows, metrics, baselines, and `LSTMForecaster`.

Training and forecasting in one call::

    forecaster = fc.fit_forecaster(fc.seattle_weather(), horizon=7)  # the library's training loop
    forecaster.evaluate().overall  # MAE, RMSE, MASE over the test period
    forecaster.predict().frame()  # the next 7 days, original units, dated
    forecaster.predict().long_frame()  # the same with conformal 80% and 95% intervals
    fc.load_forecaster("run1").predict(fc.read_table("newer.csv", time_column="date"))  # no training

The same by hand::

    from jax_lstm import forecasting as fc

    table = fc.read_table("data.csv", time_column="date", targets=["load"])  # or fc.seattle_weather()
    data = fc.prepare(table, lookback=28, horizon=7)  # split, scale on train, cut windows
    # ... train fc.LSTMForecaster on data.train.inputs (B, L, V) -> data.train.targets (B, H, T) ...
    forecasts = data.inverse_targets(scaled_forecasts)  # (B, H, T) original units, data.test origins
    scores = fc.evaluate(forecasts, data.test.actual, fc.naive_scale(data.train_targets))
    baselines = fc.evaluate_baselines(data)  # naive, seasonal naive, mean, VAR on the same origins

pandas is needed for tables, statsmodels for the VAR baseline and `macrodata`:
``pip install 'jax-lstm[forecast]'``.
"""

from jax_lstm.forecasting.baselines import (
    BaselineResult,
    LinearAR,
    evaluate_baselines,
    fit_var,
    mean_forecast,
    naive_forecast,
    seasonal_naive_forecast,
    var_forecast,
    var_half_widths,
)
from jax_lstm.forecasting.datasets import macrodata, seattle_weather
from jax_lstm.forecasting.forecaster import (
    Forecaster,
    ForecastModel,
    ForecastPlan,
    Prediction,
    default_horizon,
    default_lookback,
    fit_forecaster,
    load_forecaster,
    plan,
    read_like,
    table_spec,
    window_dataset,
)
from jax_lstm.forecasting.intervals import (
    DEFAULT_LEVELS,
    Calibration,
    calibrate,
    interval_scores,
    parse_levels,
)
from jax_lstm.forecasting.metrics import METRICS, Evaluation, evaluate, mae, mase, naive_scale, rmse
from jax_lstm.forecasting.table import Table, check_rows, infer_season, read_table, table_from_frame
from jax_lstm.forecasting.windows import (
    ForecastData,
    Periods,
    Scaler,
    Windows,
    fit_scaler,
    make_windows,
    prepare,
    split_periods,
)
from jax_lstm.models.forecaster import LSTMForecaster

__all__ = [
    "DEFAULT_LEVELS",
    "METRICS",
    "BaselineResult",
    "Calibration",
    "Evaluation",
    "ForecastData",
    "ForecastModel",
    "ForecastPlan",
    "Forecaster",
    "LSTMForecaster",
    "LinearAR",
    "Periods",
    "Prediction",
    "Scaler",
    "Table",
    "Windows",
    "calibrate",
    "check_rows",
    "default_horizon",
    "default_lookback",
    "evaluate",
    "evaluate_baselines",
    "fit_forecaster",
    "fit_scaler",
    "fit_var",
    "infer_season",
    "interval_scores",
    "load_forecaster",
    "macrodata",
    "mae",
    "make_windows",
    "mase",
    "mean_forecast",
    "naive_forecast",
    "naive_scale",
    "parse_levels",
    "plan",
    "prepare",
    "read_like",
    "read_table",
    "rmse",
    "seasonal_naive_forecast",
    "seattle_weather",
    "split_periods",
    "table_from_frame",
    "table_spec",
    "var_forecast",
    "var_half_widths",
    "window_dataset",
]
