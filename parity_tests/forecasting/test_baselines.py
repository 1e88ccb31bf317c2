"""Baselines on synthetic tables whose answer is known, the VAR against statsmodels, and macrodata."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from jax_lstm.data import DataError
from jax_lstm.forecasting import (
    Table,
    evaluate_baselines,
    fit_var,
    macrodata,
    mean_forecast,
    naive_forecast,
    prepare,
    read_table,
    seasonal_naive_forecast,
    seattle_weather,
    var_forecast,
)


def test_naive_on_a_random_walk():
    rng = np.random.default_rng(0)
    y = np.cumsum(rng.standard_normal((4000, 1)), axis=0)
    data = prepare(Table(("y",), y, ("y",)), lookback=5, horizon=4, test_size=2000, val_fraction=0)
    result = evaluate_baselines(data, maxlags=2)["naive"]
    o = data.test.origins
    np.testing.assert_array_equal(result.forecasts, np.repeat(y[o - 1][:, None, :], 4, axis=1))
    # errors of the h-step naive forecast of a unit random walk are N(0, h): E|e| = sqrt(2h/pi)
    expected = np.sqrt(2 * np.arange(1, 5) / np.pi)
    np.testing.assert_allclose(result.evaluation.per_step["mae"], expected, rtol=0.1)
    assert result.evaluation.per_step["mase"][0] == pytest.approx(1.0, rel=0.1)  # scale: the 1-step naive MAE


def test_seasonal_naive_is_exact_on_a_pure_seasonal_series():
    pattern = np.random.default_rng(1).standard_normal((12, 2))
    y = np.tile(pattern, (20, 1))
    times = pd.date_range("2000-01-01", periods=len(y), freq="MS")
    table = Table(("a", "b"), y, ("a", "b"), times=times, season=12)
    data = prepare(table, lookback=6, horizon=15, test_size=40)  # horizon longer than the season
    results = evaluate_baselines(data)
    assert results["seasonal_naive"].note == "season 12"
    assert results["seasonal_naive"].evaluation.overall["mae"] == 0.0
    assert results["naive"].evaluation.overall["mae"] > 0.1


def test_seasonal_naive_uses_only_rows_before_the_origin():
    y = np.arange(30.0)[:, None]
    forecast = seasonal_naive_forecast(y, np.array([10]), horizon=5, season=3)
    np.testing.assert_array_equal(forecast[0, :, 0], [7, 8, 9, 7, 8])
    with pytest.raises(
        DataError, match="season 3 needs 3 rows before each origin; the first origin is row 2"
    ):
        seasonal_naive_forecast(y, np.array([2]), horizon=1, season=3)


def test_seasonal_naive_skipped_without_a_season():
    y = np.cumsum(np.random.default_rng(2).standard_normal((100, 2)), axis=0)
    results = evaluate_baselines(prepare(Table(("a", "b"), y, ("a",)), 5, 2))
    assert results["seasonal_naive"].forecasts is None
    assert "skipped: no season" in results["seasonal_naive"].note
    assert results["naive"].forecasts.shape == (len(prepare(Table(("a", "b"), y, ("a",)), 5, 2).test), 2, 1)


def test_mean_forecast():
    train = np.array([[1.0, 4.0], [3.0, 8.0]])
    np.testing.assert_array_equal(mean_forecast(train, 3, 2), np.broadcast_to([2.0, 6.0], (3, 2, 2)))
    np.testing.assert_array_equal(
        naive_forecast(np.arange(5.0)[:, None], np.array([2, 4]), 2)[:, :, 0], [[1, 1], [3, 3]]
    )


A = np.array([[0.5, 0.2], [-0.3, 0.4]])
C = np.array([1.0, -2.0])


def simulate_var1(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.zeros((n, 2))
    y[0] = np.linalg.solve(np.eye(2) - A, C)
    for t in range(1, n):
        y[t] = C + A @ y[t - 1] + rng.standard_normal(2)
    return y


def test_var_recovers_a_var1_and_beats_the_mean():
    y = simulate_var1(3000)
    data = prepare(Table(("a", "b"), y, ("a", "b")), lookback=4, horizon=3, test_size=500)
    model = fit_var(y[data.periods.train], maxlags=4)
    assert model.method == "VAR" and model.lag_order >= 1
    np.testing.assert_allclose(model.coefs[0], A, atol=0.06)
    np.testing.assert_allclose(model.coefs[1:], 0, atol=0.06)
    results = evaluate_baselines(data, maxlags=4)
    assert results["var"].note.startswith(f"VAR({model.lag_order}) by AIC")
    var_mse, mean_mse = results["var"].evaluation.overall["rmse"], results["mean"].evaluation.overall["rmse"]
    assert var_mse < 0.95 * mean_mse
    # one step ahead the VAR's error is the innovation noise, unit variance
    np.testing.assert_allclose(results["var"].evaluation.per_step["rmse"][0], 1.0, rtol=0.1)


def test_var_forecast_matches_statsmodels():
    from statsmodels.tsa.api import VAR

    y = simulate_var1(400, seed=3)
    train = y[:300]
    model = fit_var(train, maxlags=3)
    results = VAR(train).fit(maxlags=3, ic="aic", trend="c")
    assert model.lag_order == results.k_ar
    origins = np.array([300, 350, 397])
    ours = var_forecast(model, y, origins, horizon=3)
    for k, o in enumerate(origins):
        theirs = results.forecast(y[o - results.k_ar : o], steps=3)
        np.testing.assert_allclose(ours[k], theirs, rtol=1e-12, atol=1e-12)


def test_univariate_table_gets_an_ar_model():
    rng = np.random.default_rng(4)
    y = np.zeros((2000, 1))
    for t in range(1, len(y)):
        y[t] = 0.5 + 0.7 * y[t - 1] + rng.standard_normal()
    model = fit_var(y[:1500], maxlags=4)
    assert model.method == "AR" and model.lag_order >= 1
    assert model.coefs[0, 0, 0] == pytest.approx(0.7, abs=0.05)
    assert model.intercept[0] == pytest.approx(0.5, abs=0.15)
    results = evaluate_baselines(prepare(Table(("y",), y, ("y",)), 5, 2), maxlags=4)
    assert results["var"].note.startswith("AR(")
    assert results["var"].evaluation.overall["mae"] < results["mean"].evaluation.overall["mae"]


def test_var_skipped_with_a_reason_when_the_training_period_is_too_short():
    with pytest.raises(DataError, match="3 training rows are too few for a VAR model of 2 variables"):
        fit_var(np.random.default_rng(0).standard_normal((3, 2)))
    y = np.cumsum(np.random.default_rng(5).standard_normal((14, 3)), axis=0)
    results = evaluate_baselines(
        prepare(Table(("a", "b", "c"), y, ("a",)), 1, 1, test_size=10, val_fraction=0)
    )
    assert results["var"].forecasts is None and "skipped: 4 training rows are too few" in results["var"].note


def test_macrodata_quarterly_pipeline(tmp_path):
    """A 203-row quarterly CSV labelled like '1970 Q1', through the table, windows and baselines."""
    table = macrodata()
    path = tmp_path / "macro.csv"
    frame = pd.DataFrame(table.values, columns=table.columns)
    frame.insert(0, "quarter", [f"{p.year} Q{p.quarter}" for p in table.times])
    frame.to_csv(path, index=False)
    assert path.read_text().splitlines()[1].startswith("1959 Q1,2710.349")
    read = read_table(path, time_column="quarter", targets=["realgdp", "realinv"])
    assert read.values.shape == (203, 3) and read.season == 4
    assert str(read.times[0]) == "1959Q1" and str(read.times[-1]) == "2009Q3"
    data = prepare(read, lookback=8, horizon=4)
    assert data.periods.sizes == (146, 16, 41)
    assert data.test.inputs.shape == (38, 8, 3) and data.test.actual.shape == (38, 4, 2)
    results = evaluate_baselines(data)
    for name in ("naive", "seasonal_naive", "mean", "var"):
        assert np.isfinite(results[name].forecasts).all(), name
    assert results["var"].note.startswith("VAR(")
    # trending series: the training mean is far off, the naive and VAR forecasts are not
    assert results["var"].evaluation.overall["mase"] < 0.1 * results["mean"].evaluation.overall["mase"]
    assert results["naive"].evaluation.overall["mase"] < 0.1 * results["mean"].evaluation.overall["mase"]


def test_var_skipped_with_statsmodels_reason_for_a_constant_column():
    y = np.cumsum(np.random.default_rng(6).standard_normal((120, 2)), axis=0)
    table = Table(("a", "b", "flat"), np.column_stack([y, np.full(120, 3.0)]), ("a",))
    results = evaluate_baselines(prepare(table, 4, 2), maxlags=3)
    assert results["var"].forecasts is None
    assert "skipped: statsmodels could not fit the VAR model" in results["var"].note
    assert "constant" in results["var"].note
    assert results["naive"].evaluation is not None  # the other baselines still run


def test_missing_statsmodels_gets_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "statsmodels.tsa.api", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install 'jax-lstm\[forecast\]'"):
        fit_var(simulate_var1(50))


def test_statsmodels_is_imported_only_when_the_var_is_fitted():
    code = "import sys, jax_lstm.forecasting; print('statsmodels' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-u", "-c", code], capture_output=True, text=True, check=True, timeout=600
    )
    assert done.stdout.strip() == "False"


def test_seattle_weather_pipeline():
    table = seattle_weather()
    data = prepare(table, lookback=28, horizon=7)
    assert data.periods.sizes == (1052, 117, 292)
    assert data.test.inputs.shape == (286, 28, 4) and data.test.actual.shape == (286, 7, 4)
    results = evaluate_baselines(data, maxlags=7)
    assert results["seasonal_naive"].note == "season 7"
    assert all(np.isfinite(r.forecasts).all() for r in results.values())
    # the VAR uses the other variables and the recent past: better than the training mean
    assert results["var"].evaluation.overall["mase"] < results["mean"].evaluation.overall["mase"]
    assert data.test.astype(np.float32).inputs.dtype == np.float32
