"""MAE, RMSE and MASE against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from jax_lstm.data import DataError
from jax_lstm.forecasting import evaluate, mae, mase, naive_scale, rmse

# (B=2 origins, H=2 steps, T=2 targets); errors forecast - actual are
# origin 0: step 0 (-1, 0), step 1 (0, -2); origin 1: step 0 (0, -3), step 1 (0, 1).
FORECAST = np.array([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [1.0, 1.0]]])
ACTUAL = np.array([[[2.0, 2.0], [3.0, 6.0]], [[0.0, 3.0], [1.0, 0.0]]])
SCALE = np.array([0.5, 2.0])


def test_hand_computed_values():
    result = evaluate(FORECAST, ACTUAL, SCALE, targets=["x", "y"])
    assert result.targets == ("x", "y") and result.num_origins == 2
    np.testing.assert_allclose(result.per_step["mae"], [4 / 4, 3 / 4], rtol=1e-15)
    np.testing.assert_allclose(result.per_target["mae"], [1 / 4, 6 / 4], rtol=1e-15)
    np.testing.assert_allclose(result.grid["mae"], [[0.5, 1.5], [0.0, 1.5]], rtol=1e-15)
    assert result.overall["mae"] == pytest.approx(7 / 8, rel=1e-15)
    np.testing.assert_allclose(result.per_step["rmse"], np.sqrt([10 / 4, 5 / 4]), rtol=1e-15)
    np.testing.assert_allclose(result.per_target["rmse"], np.sqrt([1 / 4, 14 / 4]), rtol=1e-15)
    assert result.overall["rmse"] == pytest.approx(np.sqrt(15 / 8), rel=1e-15)
    # scaled |errors|: x (/0.5): 2, 0, 0, 0; y (/2): 0, 1, 1.5, 0.5
    np.testing.assert_allclose(result.per_target["mase"], [2 / 4, 3 / 4], rtol=1e-15)
    np.testing.assert_allclose(result.per_step["mase"], [3.5 / 4, 1.5 / 4], rtol=1e-15)
    assert result.overall["mase"] == pytest.approx(5 / 8, rel=1e-15)
    assert "MASE 0.625 (x 0.5, y 0.75)" in result.summary()


def test_functions_agree_with_evaluate():
    assert mae(FORECAST, ACTUAL) == pytest.approx(7 / 8)
    assert rmse(FORECAST, ACTUAL) == pytest.approx(np.sqrt(15 / 8))
    assert mase(FORECAST, ACTUAL, SCALE) == pytest.approx(5 / 8)
    np.testing.assert_allclose(mae(FORECAST, ACTUAL, axis=(0, 1)), [1 / 4, 6 / 4])


def test_naive_scale_one_step_and_seasonal():
    train = np.array([[1.0, 10.0], [3.0, 10.0], [2.0, 13.0], [2.0, 9.0]])
    np.testing.assert_allclose(naive_scale(train), [1.0, 7 / 3], rtol=1e-15)  # |2|,|1|,|0| and |0|,|3|,|4|
    np.testing.assert_allclose(naive_scale(train, season=2), [1.0, 2.0], rtol=1e-15)  # |1|,|1| and |3|,|1|


def test_mase_of_the_in_sample_naive_forecast_is_one():
    y = np.cumsum(np.random.default_rng(0).standard_normal((50, 3)), axis=0)
    scale = naive_scale(y)
    forecast, actual = y[:-1][:, None, :], y[1:][:, None, :]  # one-step naive over the same rows
    np.testing.assert_allclose(evaluate(forecast, actual, scale).per_target["mase"], 1.0, rtol=1e-14)


def test_errors():
    with pytest.raises(DataError, match=r"target 'b': its naive forecast .* is exact .* MASE.* undefined"):
        naive_scale(np.array([[1.0, 2.0], [2.0, 2.0], [3.0, 2.0]]), names=["a", "b"])
    with pytest.raises(DataError, match="the training period has 2 rows: the naive scale with season 2"):
        naive_scale(np.ones((2, 1)), season=2)
    with pytest.raises(ValueError, match=r"forecast shape \(2, 2, 2\) != actual shape \(2, 2\)"):
        evaluate(FORECAST, ACTUAL[0], SCALE)
    with pytest.raises(ValueError, match=r"scale must have shape \(2,\)"):
        evaluate(FORECAST, ACTUAL, SCALE[:1])
    with pytest.raises(ValueError, match="no forecasts to score"):
        evaluate(FORECAST[:0], ACTUAL[:0], SCALE)
