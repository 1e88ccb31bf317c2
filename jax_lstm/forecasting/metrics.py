"""Forecast errors: MAE, RMSE and MASE, per horizon step, per target and overall.

Forecasts and actual values are (B, H, T): B rolling origins, H steps ahead, T targets, in original
units. Every reduction is over the samples it covers (all origins, and the steps or targets folded
in), so the per-step RMSE is the root of the mean squared error over origins and targets, not a mean
of RMSEs. MAE and RMSE averaged over targets mix the targets' units; MASE is unit-free.

MASE divides by the in-sample MAE of the one-step naive forecast (the previous value) of each target
over the training period (Hyndman and Koehler, 2006). `naive_scale` can also give the seasonal
naive scale (``season=m``: the value m steps earlier); `evaluate` uses the one-step scale unless it
is given another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jax_lstm.data import DataError

__all__ = ["METRICS", "Evaluation", "evaluate", "mae", "mase", "naive_scale", "rmse"]

METRICS = ("mae", "rmse", "mase")

Axis = int | tuple[int, ...] | None


def _errors(forecast: np.ndarray, actual: np.ndarray) -> np.ndarray:
    forecast = np.asarray(forecast, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if forecast.shape != actual.shape:
        raise ValueError(f"forecast shape {forecast.shape} != actual shape {actual.shape}")
    if forecast.size == 0:
        raise ValueError("no forecasts to score (empty arrays)")
    return forecast - actual


def mae(forecast: np.ndarray, actual: np.ndarray, axis: Axis = None) -> np.ndarray:
    """Mean absolute error over `axis` (all axes by default)."""
    return np.mean(np.abs(_errors(forecast, actual)), axis=axis)


def rmse(forecast: np.ndarray, actual: np.ndarray, axis: Axis = None) -> np.ndarray:
    """Root mean squared error over `axis` (all axes by default)."""
    return np.sqrt(np.mean(np.square(_errors(forecast, actual)), axis=axis))


def mase(forecast: np.ndarray, actual: np.ndarray, scale: np.ndarray, axis: Axis = None) -> np.ndarray:
    """Mean absolute scaled error: |forecast - actual| / scale (T,) on the last axis, averaged over `axis`."""
    scale = np.asarray(scale, dtype=np.float64)
    return np.mean(np.abs(_errors(forecast, actual)) / scale, axis=axis)


def naive_scale(train_targets: np.ndarray, season: int = 1, names: Sequence[str] | None = None) -> np.ndarray:
    """(T,) in-sample MAE of the (seasonal) naive forecast on the training period, MASE's denominator.

    Args:
      train_targets: (N_train, T) the targets over the training period, original units.
      season: 1 for the one-step naive forecast (``y[t-1]``); m for the seasonal one (``y[t-m]``).
      names: the targets' names, for the error message.

    Raises:
      DataError: fewer than ``season + 1`` training rows, or a target whose naive error is 0 on the
        whole training period (constant, or exactly periodic), for which MASE is undefined.
    """
    y = np.asarray(train_targets, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"train_targets must be (rows, targets), got shape {y.shape}")
    if int(season) != season or season < 1:
        raise ValueError(f"season must be an integer >= 1, got {season}")
    if len(y) <= season:
        raise DataError(
            f"the training period has {len(y)} rows: the naive scale with season {season} needs at least "
            f"{season + 1}"
        )
    scale = np.mean(np.abs(y[season:] - y[:-season]), axis=0)
    zero = np.flatnonzero(scale == 0)
    if zero.size:
        name = names[zero[0]] if names is not None else f"number {zero[0]}"
        raise DataError(
            f"target {name!r}: its naive forecast (season {season}) is exact over the whole training period "
            "(a constant series?), so MASE, which divides by that error, is undefined"
        )
    return scale


@dataclasses.dataclass(frozen=True, eq=False)
class Evaluation:
    """Errors of (B, H, T) forecasts: ``per_step[m]`` (H,), ``per_target[m]`` (T,), ``overall[m]``
    (float) and ``grid[m]`` (H, T), for m in ``METRICS``; ``targets`` the T names."""

    targets: tuple[str, ...]
    per_step: dict[str, np.ndarray]
    per_target: dict[str, np.ndarray]
    overall: dict[str, float]
    grid: dict[str, np.ndarray]
    num_origins: int

    def summary(self) -> str:
        """One line per metric: overall, then per target."""
        lines = []
        for m in METRICS:
            parts = ", ".join(f"{t} {v:.4g}" for t, v in zip(self.targets, self.per_target[m], strict=True))
            lines.append(f"{m.upper():>4} {self.overall[m]:.4g} ({parts})")
        return "\n".join(lines)


def evaluate(
    forecast: np.ndarray, actual: np.ndarray, scale: np.ndarray, targets: Sequence[str] | None = None
) -> Evaluation:
    """MAE, RMSE and MASE of (B, H, T) forecasts against (B, H, T) actual values, with MASE scale (T,)."""
    err = _errors(forecast, actual)
    if err.ndim != 3:
        raise ValueError(f"forecasts must be (origins, horizon, targets), got shape {err.shape}")
    scale = np.asarray(scale, dtype=np.float64)
    if scale.shape != (err.shape[-1],):
        raise ValueError(f"scale must have shape ({err.shape[-1]},), got {scale.shape}")
    targets = tuple(targets) if targets is not None else tuple(str(t) for t in range(err.shape[-1]))
    absolute, squared, scaled = np.abs(err), np.square(err), np.abs(err) / scale

    def reduce(axis):
        return {
            "mae": absolute.mean(axis=axis),
            "rmse": np.sqrt(squared.mean(axis=axis)),
            "mase": scaled.mean(axis=axis),
        }

    return Evaluation(
        targets=targets,
        per_step=reduce((0, 2)),
        per_target=reduce((0, 1)),
        overall={k: float(v) for k, v in reduce(None).items()},
        grid=reduce(0),
        num_origins=int(err.shape[0]),
    )
