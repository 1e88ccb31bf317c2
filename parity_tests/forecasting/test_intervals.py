"""Prediction intervals and forecasts of the future: split-conformal coverage on data with known
noise, within 3 points of nominal over many origins; the VAR's intervals are statsmodels' own;
`jax-lstm forecast --output` writes the steps after the table with their intervals; ``--from-checkpoint``
forecasts from a newer table without training and refuses one whose columns differ."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from jax_lstm import forecasting as fc
from jax_lstm.cli import main
from jax_lstm.forecasting.intervals import Calibration, conformal_rank, parse_levels

TINY = ["--hidden-size", "6", "--quiet", "--no-compile-cache"]


def test_conformal_rank_and_quantiles():
    assert conformal_rank(19, 0.95) == 19 and conformal_rank(18, 0.95) == 19  # 18 origins: unbounded
    assert conformal_rank(9, 0.8) == 8
    residuals = np.sort(np.arange(1.0, 10.0))[:, None, None]  # 9 origins, H = T = 1
    calibration = Calibration(residuals)
    assert calibration.quantile(0.8)[0, 0] == 8.0  # the 8th smallest
    assert np.isinf(calibration.quantile(0.95)).all() and calibration.least_origins(0.95) == 19
    lower, upper = calibration.bounds(np.zeros((2, 1, 1)), 0.8)
    np.testing.assert_array_equal(upper, 8.0)
    np.testing.assert_array_equal(lower, -8.0)
    assert Calibration.from_dict(calibration.as_dict()).residuals.tolist() == residuals.tolist()
    assert parse_levels("0.95, 0.8") == (0.8, 0.95) and parse_levels(None) == (0.8, 0.95)
    for bad, message in (
        ("0.8,x", "not a number"),
        ("1.2", r"lie in \(0, 1\)"),
        ("0.8,0.8", "twice"),
        ("", "at least"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_levels(bad)


def test_split_conformal_covers_known_noise_at_the_nominal_rate():
    """Forecasts off by i.i.d. Gaussian noise (known sd 2): 2000 calibration and 20000 test
    origins give coverage within 1 point of each level and widths near 2 z sd."""
    rng = np.random.default_rng(0)
    horizon, targets = 3, 2
    calibration = fc.calibrate(
        np.zeros((2000, horizon, targets)), 2.0 * rng.standard_normal((2000, horizon, targets))
    )
    actual = 2.0 * rng.standard_normal((20000, horizon, targets))
    for level, z in ((0.8, 1.2815515655446004), (0.95, 1.959963984540054)):
        lower, upper = calibration.bounds(np.zeros_like(actual), level)
        coverage = np.mean((actual >= lower) & (actual <= upper))
        assert abs(coverage - level) < 0.01, (level, coverage)
        np.testing.assert_allclose(np.mean(upper - lower), 2 * z * 2.0, rtol=0.05)


def _noisy_table(rows: int = 2600, seed: int = 0) -> fc.Table:
    """A seasonal signal plus Gaussian noise of sd 0.5, and a second input column."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    y = 2 * np.sin(2 * np.pi * t / 12) + 0.5 * rng.standard_normal(rows)
    x = np.cos(2 * np.pi * t / 12) + 0.1 * rng.standard_normal(rows)
    return fc.Table(("y", "x"), np.stack([y, x], axis=1), ("y",), None, None, "noisy")


def test_a_trained_forecasters_conformal_intervals_cover_within_3_points_over_many_origins():
    table = _noisy_table()
    forecaster = fc.fit_forecaster(
        table, horizon=3, lookback=12, test_size=1200, val_fraction=0.5, hidden_size=8, epochs=2, seed=0
    )
    calibration = forecaster.calibration
    assert calibration.origins == len(forecaster.data.validation) == 698
    bounds = forecaster.intervals(levels=(0.8, 0.95))
    scores = fc.interval_scores(bounds, forecaster.data.test.actual, table.targets)
    assert len(forecaster.data.test) == 1198
    for level in ("0.8", "0.95"):
        assert abs(scores["coverage"][level] - float(level)) < 0.03, scores["coverage"]
    assert scores["interval_width"]["0.8"] < scores["interval_width"]["0.95"]
    # The future: the steps after the last row, numbered, with both levels.
    frame = forecaster.predict().long_frame()
    assert list(frame.columns) == [
        "time",
        "target",
        "horizon",
        "forecast",
        "lower_0.8",
        "upper_0.8",
        "lower_0.95",
        "upper_0.95",
    ]
    assert list(frame["time"]) == ["2601", "2602", "2603"] and list(frame["horizon"]) == [1, 2, 3]
    assert (frame["lower_0.95"] < frame["lower_0.8"]).all() and (
        frame["upper_0.8"] < frame["upper_0.95"]
    ).all()


def test_the_vars_intervals_are_statsmodels_own():
    from statsmodels.tsa.api import VAR
    from statsmodels.tsa.ar_model import ar_select_order

    values = fc.seattle_weather().values[:600]
    model = fc.fit_var(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = VAR(values).fit(maxlags=fc.baselines.default_maxlags(600, 4), ic="aic", trend="c")
    point, lower, upper = results.forecast_interval(values[-results.k_ar :], 5, alpha=0.05)
    half = fc.var_half_widths(model, 5, (0.95,))[0.95]
    np.testing.assert_allclose(upper - point, half, rtol=1e-12, atol=0)
    np.testing.assert_allclose(point - lower, half, rtol=1e-12, atol=0)
    one = values[:, :1]
    ar = fc.fit_var(one)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = ar_select_order(one[:, 0], maxlag=fc.baselines.default_maxlags(600, 1), ic="aic", trend="c")
        prediction = fitted.model.fit().get_prediction(start=600, end=604)
    bounds = prediction.conf_int(alpha=0.2)
    np.testing.assert_allclose(
        bounds[:, 1] - prediction.predicted_mean, fc.var_half_widths(ar, 5, (0.8,))[0.8][:, 0], rtol=1e-12
    )


def _quarterly_csv(path, rows: int, seed: int = 0, extra: str | None = None):
    rng = np.random.default_rng(seed)
    season = np.tile([1.0, -0.5, 0.8, -1.3], rows // 4 + 1)[:rows]
    a = np.zeros(rows)
    for t in range(1, rows):
        a[t] = 0.7 * a[t - 1] + rng.standard_normal()
    # price's own noise, from a generator of its own so that a longer table extends a shorter one: with
    # price an exact multiple of sales' innovation the VAR's residual covariance would be singular.
    own = 0.1 * np.random.default_rng(seed + 1).standard_normal(rows)
    quarters = [f"{1970 + i // 4} Q{i % 4 + 1}" for i in range(rows)]
    frame = pd.DataFrame({"quarter": quarters, "sales": 10 + a + season, "price": 3 + 0.3 * a + own})
    if extra:
        frame[extra] = 1.0
    frame.to_csv(path, index=False)
    return path


def test_forecast_writes_the_future_with_intervals_and_forecasts_again_from_the_checkpoint(tmp_path, capsys):
    table, grown = _quarterly_csv(tmp_path / "q.csv", 120), tmp_path / "newer.csv"
    _quarterly_csv(grown, 128)  # the same rows and 8 more quarters
    run, future, metrics = tmp_path / "run", tmp_path / "future.csv", tmp_path / "m.json"
    args = [
        "forecast",
        "--data",
        str(table),
        "--time-column",
        "quarter",
        *TINY,
        "--epochs",
        "1",
        "--horizon",
        "4",
    ]
    args += ["--checkpoint-dir", str(run), "--output", str(future), "--metrics-json", str(metrics)]
    assert main([*args, "--interval", "0.8,0.99"]) == 0
    out = capsys.readouterr().out
    payload = json.loads(metrics.read_text())
    origins = payload["intervals"]["calibration_origins"]
    assert origins < 99  # too few validation origins for a bounded 99% interval: said, and unbounded
    assert f"a 0.99 interval needs at least 99 validation origins, and there are {origins}" in out
    assert payload["interval_width"]["0.99"] is None and payload["coverage"]["0.99"] == 1.0
    assert 0 <= payload["coverage"]["0.8"] <= 1 and payload["interval_width"]["0.8"] > 0
    var = payload["baselines"]["var"]
    assert (
        set(var["coverage"]) == {"0.8", "0.99"}
        and var["interval_width"]["0.99"] > var["interval_width"]["0.8"]
    )
    rows = pd.read_csv(future)
    assert list(rows.columns) == [
        "time",
        "target",
        "horizon",
        "forecast",
        "lower_0.8",
        "upper_0.8",
        "lower_0.99",
        "upper_0.99",
    ]
    assert list(rows["time"]) == [q for q in ("2000Q1", "2000Q2", "2000Q3", "2000Q4") for _ in range(2)]
    assert list(rows["target"]) == ["sales", "price"] * 4 and list(rows["horizon"]) == [
        1,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
    ]
    assert np.isinf(rows["upper_0.99"]).all()
    # From the checkpoint, on the same table: the same file, byte for byte, without training.
    again = tmp_path / "again.csv"
    from_run = ["forecast", "--from-checkpoint", str(run), "--quiet", "--no-compile-cache"]
    assert main([*from_run, "--data", str(table), "--output", str(again), "--interval", "0.8,0.99"]) == 0
    assert again.read_bytes() == future.read_bytes()
    # On the grown table: the steps after its own last row, as the Python model forecasts them.
    newer = tmp_path / "newer_future.csv"
    assert main([*from_run, "--data", str(grown), "--output", str(newer)]) == 0
    rows = pd.read_csv(newer)
    assert rows["time"].iloc[0] == "2002Q1"
    model = fc.load_forecaster(run)
    expected = model.predict(fc.read_like(grown, model.spec), levels=(0.8, 0.95)).long_frame()
    np.testing.assert_array_equal(rows["forecast"].to_numpy(), expected["forecast"].to_numpy())
    np.testing.assert_array_equal(rows["upper_0.95"].to_numpy(), expected["upper_0.95"].to_numpy())
    assert model.calibration.origins == origins


def test_from_checkpoint_refuses_other_columns_and_training_flags(tmp_path, capsys):
    table = _quarterly_csv(tmp_path / "q.csv", 80)
    run = tmp_path / "run"
    args = [
        "forecast",
        "--data",
        str(table),
        "--time-column",
        "quarter",
        *TINY,
        "--epochs",
        "1",
        "--horizon",
        "2",
    ]
    assert main([*args, "--checkpoint-dir", str(run)]) == 0
    capsys.readouterr()
    other = _quarterly_csv(tmp_path / "other.csv", 90, extra="stock")
    out = tmp_path / "f.csv"
    assert main(["forecast", "--from-checkpoint", str(run), "--data", str(other), "--output", str(out)]) == 2
    error = capsys.readouterr().err
    assert (
        "has the columns ['quarter', 'sales', 'price', 'stock']" in error
        and "it has ['stock'] besides" in error
    )
    assert not out.exists()
    for extra, message in (
        (["--epochs", "3"], "--epochs does not apply"),
        (["--horizon", "3"], "--horizon does not apply"),
        ([], None),
    ):
        base = ["forecast", "--from-checkpoint", str(run), "--data", str(table)]
        if message is None:
            assert main(base) == 2
            assert "give --output FUTURE.csv" in capsys.readouterr().err
            continue
        assert main([*base, "--output", str(out), *extra]) == 2
        assert message in capsys.readouterr().err
    assert main(["forecast", "--from-checkpoint", str(run), "--output", str(out)]) == 2
    assert "give the newer version of it with --data NEWER.csv" in capsys.readouterr().err


def test_an_old_forecaster_checkpoint_says_what_it_lacks(tmp_path):
    from jax_lstm.training import checkpoint, load_checkpoint

    table = _quarterly_csv(tmp_path / "q.csv", 80)
    run = tmp_path / "run"
    args = [
        "forecast",
        "--data",
        str(table),
        "--time-column",
        "quarter",
        *TINY,
        "--epochs",
        "1",
        "--horizon",
        "2",
    ]
    assert main([*args, "--checkpoint-dir", str(run)]) == 0
    loaded = load_checkpoint(run)
    old = {k: v for k, v in loaded.data.items() if k not in ("preprocessing", "table")}
    checkpoint.save(
        tmp_path / "old", loaded.state, loaded.schedules, loaded.epoch, loaded.histories, loaded.config, old
    )
    with pytest.raises(
        ValueError, match="written before checkpoints recorded what forecasting from a new table"
    ):
        fc.load_forecaster(tmp_path / "old")
    # The new one carries the scaler fitted on its training period, exactly.
    model = fc.load_forecaster(run)
    train_end = model.spec.periods[0]
    values = fc.read_table(table, time_column="quarter").values
    np.testing.assert_array_equal(model.scaler.mean, values[:train_end].mean(axis=0))
    assert model.spec.columns == ("sales", "price") and model.spec.time_column == "quarter"
    assert model.spec.frequency == "Q-DEC" and model.spec.last_time == "1989Q4"
