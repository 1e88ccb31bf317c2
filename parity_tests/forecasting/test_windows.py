"""Periods, the training-only scaler, window alignment, and leakage."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from jax_lstm.data import DataError
from jax_lstm.forecasting import (
    Table,
    evaluate_baselines,
    fit_scaler,
    make_windows,
    prepare,
    split_periods,
)


def random_table(n: int = 120, v: int = 3, targets=(0, 2), seed: int = 0) -> Table:
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.standard_normal((n, v)), axis=0) * rng.uniform(0.5, 5, v) + rng.uniform(-50, 50, v)
    columns = tuple(f"v{j}" for j in range(v))
    return Table(columns, values, tuple(columns[t] for t in targets), season=4)


def index_table(n: int = 60) -> Table:
    """values[i, j] = 100 i + j: every value names its row and column."""
    values = 100.0 * np.arange(n)[:, None] + np.arange(3)[None, :]
    return Table(("a", "b", "c"), values, ("c", "a"))


def test_split_periods_defaults_and_explicit():
    p = split_periods(1000, lookback=10, horizon=5)
    assert p.sizes == (720, 80, 200)  # test 20%, validation 10% of the rest, at its end
    assert (p.train, p.validation, p.test) == (slice(0, 720), slice(720, 800), slice(800, 1000))
    assert split_periods(100_000, 10, 5).sizes[2] == 1000  # the test period is capped
    assert split_periods(100, 10, 5, test_size=30, val_fraction=0).sizes == (70, 0, 30)


def test_split_periods_errors():
    with pytest.raises(DataError, match=r"has 30 rows, but lookback 20 \+ horizon 5 \+ test period 6"):
        split_periods(30, 20, 5)
    with pytest.raises(DataError, match=r"the test period has 3 rows, fewer than the horizon 5"):
        split_periods(100, 10, 5, test_size=3)
    with pytest.raises(DataError, match=r"validation period would have 2 rows .* fewer than the horizon 5"):
        split_periods(40, 10, 5, test_size=10, val_fraction=0.05)
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
        split_periods(100, 10, 5, val_fraction=1.0)


def test_scaler_is_per_variable_and_constant_columns_get_scale_1():
    values = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    scaler = fit_scaler(values)
    np.testing.assert_array_equal(scaler.mean, [3.0, 5.0])
    np.testing.assert_allclose(scaler.scale, [np.sqrt(8 / 3), 1.0], rtol=1e-15)
    scaled = scaler.transform(values)
    np.testing.assert_allclose(scaled[:, 0], [-np.sqrt(1.5), 0, np.sqrt(1.5)], rtol=1e-15)
    np.testing.assert_array_equal(scaled[:, 1], 0.0)
    np.testing.assert_allclose(scaler.inverse(scaled), values, rtol=1e-15)
    np.testing.assert_allclose(scaler.inverse(scaled[:, [1]], np.array([1])), values[:, [1]], rtol=1e-15)


def test_scaler_is_fitted_on_the_training_period_only():
    table = random_table()
    data = prepare(table, lookback=8, horizon=3)
    train = table.values[data.periods.train]
    np.testing.assert_allclose(data.scaler.mean, train.mean(0), rtol=1e-13)
    np.testing.assert_allclose(data.scaler.scale, train.std(0), rtol=1e-13)
    scaled_train = data.scaler.transform(train)
    np.testing.assert_allclose(scaled_train.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(scaled_train.std(0), 1, rtol=1e-12)


def test_windows_are_the_lookback_rows_before_and_the_horizon_rows_from_each_origin():
    table = index_table(60)
    lookback, horizon = 7, 4
    data = prepare(table, lookback, horizon, test_size=12, val_fraction=0.2)
    p = data.periods
    assert p.sizes == (38, 10, 12)
    for windows, first, last in (
        (data.train, lookback, p.train_end - horizon),
        (data.validation, p.train_end, p.val_end - horizon),
        (data.test, p.val_end, p.num_rows - horizon),
    ):
        np.testing.assert_array_equal(windows.origins, np.arange(first, last + 1))
        assert windows.inputs.shape == (len(windows), lookback, 3)
        assert windows.targets.shape == windows.actual.shape == (len(windows), horizon, 2)
        raw_inputs = data.scaler.inverse(windows.inputs)
        for k, o in enumerate(windows.origins):
            np.testing.assert_allclose(raw_inputs[k], table.values[o - lookback : o], rtol=1e-12, atol=1e-10)
            # targets c and a, in that order, of rows o .. o + H - 1, exactly
            np.testing.assert_array_equal(windows.actual[k], table.values[o : o + horizon][:, [2, 0]])
        np.testing.assert_allclose(
            data.inverse_targets(windows.targets), windows.actual, rtol=1e-12, atol=1e-10
        )
        # every input row precedes every target row
        assert (raw_inputs.max(axis=(1, 2)) // 100 < windows.actual.min(axis=(1, 2)) // 100).all()
    # training windows stay in the training period; evaluation targets in their own period
    assert data.train.actual.max() // 100 == p.train_end - 1
    assert (
        data.validation.actual.min() // 100 == p.train_end
        and data.validation.actual.max() // 100 == p.val_end - 1
    )
    assert data.test.actual.min() // 100 == p.val_end and data.test.actual.max() // 100 == p.num_rows - 1
    # test inputs reach back into the validation and training periods: legitimate history
    assert data.scaler.inverse(data.test.inputs).min() // 100 == p.val_end - lookback


def test_stride_spaces_the_evaluation_origins():
    data = prepare(index_table(60), 7, 4, test_size=12, val_fraction=0.2, stride=3)
    np.testing.assert_array_equal(data.test.origins, [48, 51, 54])
    np.testing.assert_array_equal(data.validation.origins, [38, 41, 44])
    assert len(data.train) == 38 - 7 - 4 + 1  # training always every origin


def test_no_validation_period():
    data = prepare(index_table(60), 7, 4, test_size=12, val_fraction=0)
    assert len(data.validation) == 0 and data.validation.inputs.shape == (0, 7, 3)
    assert data.periods.train_end == 48


def test_make_windows_rejects_origins_without_history():
    values = np.zeros((20, 2))
    with pytest.raises(ValueError, match=r"origins must lie in \[5, 17\]"):
        make_windows(values, values, np.array([0]), np.array([4]), 5, 3)


@pytest.mark.parametrize("period", ["test", "validation"])
def test_perturbing_after_an_origin_changes_no_input_scaler_or_baseline_of_that_origin(period):
    table = random_table(n=150)
    lookback, horizon = 10, 3
    data = prepare(table, lookback, horizon, test_size=30)
    windows = getattr(data, period)
    baselines = evaluate_baselines(data, windows)
    rng = np.random.default_rng(1)
    for k in (0, len(windows) // 2, len(windows) - 1):
        o = int(windows.origins[k])
        values = table.values.copy()
        # shuffle every value from the origin on, then perturb it: nothing of the future survives
        values[o:] = rng.permutation(values[o:].ravel()).reshape(values[o:].shape) + rng.normal(
            0, 100, values[o:].shape
        )
        changed = prepare(dataclasses.replace(table, values=values), lookback, horizon, test_size=30)
        changed_windows = getattr(changed, period)
        np.testing.assert_array_equal(changed.scaler.mean, data.scaler.mean)
        np.testing.assert_array_equal(changed.scaler.scale, data.scaler.scale)
        np.testing.assert_array_equal(changed_windows.inputs[k], windows.inputs[k])
        assert not np.array_equal(changed_windows.targets[k], windows.targets[k])  # the future did change
        changed_baselines = evaluate_baselines(changed, changed_windows)
        for name, result in baselines.items():
            if result.forecasts is not None:
                np.testing.assert_array_equal(
                    changed_baselines[name].forecasts[k], result.forecasts[k], err_msg=name
                )


def test_perturbing_the_test_or_validation_period_leaves_the_scaler_unchanged():
    table = random_table(n=150)
    data = prepare(table, 10, 3)
    values = table.values.copy()
    values[data.periods.train_end :] *= -1000.0
    changed = prepare(dataclasses.replace(table, values=values), 10, 3)
    assert changed.periods == data.periods
    np.testing.assert_array_equal(changed.scaler.mean, data.scaler.mean)
    np.testing.assert_array_equal(changed.scaler.scale, data.scaler.scale)
    np.testing.assert_array_equal(changed.train.inputs, data.train.inputs)
    np.testing.assert_array_equal(changed.train.targets, data.train.targets)
    # the last training row is an input of the first test window, but only as history
    values[data.periods.train_end - 1] += 1.0
    moved = prepare(dataclasses.replace(table, values=values), 10, 3)
    assert not np.array_equal(moved.scaler.mean, data.scaler.mean)
