"""Prediction intervals: split-conformal intervals calibrated on the validation period, and their
coverage and width on the test period.

Split conformal (Vovk et al. 2005; Lei et al. 2018), per target and horizon step: the absolute
residuals ``|actual - forecast|`` (original units) of the n validation origins, for each step h and
target t, give the interval ``forecast ± q`` of level 1 - alpha, with q the k-th smallest residual,
``k = ceil((n + 1)(1 - alpha))``. When the residuals of a new origin are exchangeable with the
validation ones, the interval covers the actual value with probability at least 1 - alpha (and
less than 1 - alpha + 1/(n + 1)). With ``k > n`` (too few validation origins for the level) the
interval is unbounded, and said to be. Only validation origins calibrate: the test period never
does, so its coverage is an honest measurement.

Rolling origins one step apart give overlapping, correlated residuals; the guarantee is then an
approximation, which `coverage` measures.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_LEVELS",
    "Calibration",
    "calibrate",
    "conformal_rank",
    "interval_scores",
    "level_name",
    "parse_levels",
]

DEFAULT_LEVELS = (0.8, 0.95)


def level_name(level: float) -> str:
    """A level as the columns and JSON keys name it: 0.8 -> "0.8", 0.95 -> "0.95"."""
    return f"{level:g}"


def parse_levels(text: str | Sequence[float] | None) -> tuple[float, ...]:
    """``"0.8,0.95"`` (or a sequence of floats) -> (0.8, 0.95), sorted, each in (0, 1); ValueError naming
    the bad value otherwise. None: `DEFAULT_LEVELS`."""
    if text is None:
        return DEFAULT_LEVELS
    parts = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    levels = []
    for part in parts:
        if part == "":
            continue
        try:
            level = float(part)
        except (TypeError, ValueError):
            raise ValueError(f"--interval takes levels like 0.8,0.95; {part!r} is not a number") from None
        if not 0 < level < 1 or not math.isfinite(level):
            raise ValueError(f"--interval levels must lie in (0, 1), e.g. 0.8,0.95; got {part}")
        levels.append(level)
    if not levels:
        raise ValueError("--interval needs at least one level, e.g. 0.8,0.95")
    if len(set(levels)) != len(levels):
        raise ValueError(f"--interval lists a level twice: {parts}")
    return tuple(sorted(levels))


def conformal_rank(n: int, level: float) -> int:
    """k = ceil((n + 1) level): the rank (1-based) of the residual that bounds a level-`level`
    interval from n calibration residuals; k > n means no finite bound exists."""
    # The rounding guard: (n + 1) * level can land a hair above an integer (e.g. 20 * 0.95).
    return math.ceil(round((n + 1) * level, 9))


@dataclasses.dataclass(frozen=True, eq=False)
class Calibration:
    """The validation period's absolute residuals, sorted per step and target: (n, H, T), original
    units; `quantile` and `bounds` make intervals of them."""

    residuals: np.ndarray  # (n, H, T), sorted along the first axis

    @property
    def origins(self) -> int:
        return int(self.residuals.shape[0])

    def quantile(self, level: float) -> np.ndarray:
        """(H, T) the half-width of the level-`level` interval (inf where n is too small)."""
        k = conformal_rank(self.origins, level)
        if k > self.origins or self.origins == 0:
            return np.full(self.residuals.shape[1:], np.inf)
        return self.residuals[k - 1]

    def least_origins(self, level: float) -> int:
        """The fewest validation origins that bound a level-`level` interval: ceil(level / (1 - level))."""
        n = 1
        while conformal_rank(n, level) > n:
            n += 1
        return n

    def bounds(self, forecasts: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        """(..., H, T) forecasts -> their lower and upper bounds at `level`."""
        q = self.quantile(level)
        return forecasts - q, forecasts + q

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (floats by repr, so `from_dict` gives back the same residuals)."""
        return {"method": "split conformal", "residuals": self.residuals.tolist()}

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> Calibration:
        residuals = np.asarray(fields["residuals"], np.float64)
        if residuals.ndim != 3:
            raise ValueError(f"calibration residuals must be (n, H, T), got shape {residuals.shape}")
        return cls(residuals)


def calibrate(forecasts: np.ndarray, actual: np.ndarray) -> Calibration:
    """The calibration of (n, H, T) validation forecasts against their actual values (original units)."""
    forecasts, actual = np.asarray(forecasts, np.float64), np.asarray(actual, np.float64)
    if forecasts.shape != actual.shape or forecasts.ndim != 3:
        raise ValueError(
            f"calibrate needs (n, H, T) forecasts and actual values, got {forecasts.shape} and {actual.shape}"
        )
    return Calibration(np.sort(np.abs(actual - forecasts), axis=0))


def interval_scores(
    bounds: dict[float, tuple[np.ndarray, np.ndarray]], actual: np.ndarray, targets: Sequence[str]
) -> dict[str, Any]:
    """Coverage (the fraction of actual values inside their interval) and mean width of (B, H, T)
    intervals per level: overall (every origin, step and target), per target and per step. A width
    is None where an interval is unbounded."""
    actual = np.asarray(actual, np.float64)

    def width(lower, upper, axis=None):
        w = np.mean(upper - lower, axis=axis)
        return np.where(np.isfinite(w), w, np.nan)

    def value(x) -> float | None:
        x = float(x)
        return None if math.isnan(x) else x

    coverage: dict[str, float] = {}
    widths: dict[str, float | None] = {}
    per_target = {t: {"coverage": {}, "interval_width": {}} for t in targets}
    steps = actual.shape[1]
    per_step = [{"step": h + 1, "coverage": {}, "interval_width": {}} for h in range(steps)]
    for level, (lower, upper) in bounds.items():
        name = level_name(level)
        inside = (actual >= lower) & (actual <= upper)
        coverage[name] = float(inside.mean())
        widths[name] = value(width(lower, upper))
        for t, target in enumerate(targets):
            per_target[target]["coverage"][name] = float(inside[..., t].mean())
            per_target[target]["interval_width"][name] = value(width(lower[..., t], upper[..., t]))
        for h in range(steps):
            per_step[h]["coverage"][name] = float(inside[:, h].mean())
            per_step[h]["interval_width"][name] = value(width(lower[:, h], upper[:, h]))
    return {"coverage": coverage, "interval_width": widths, "per_target": per_target, "per_horizon": per_step}
