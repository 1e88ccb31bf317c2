"""Missing values in classification series: steps of padding trimmed, gaps filled inside each series.

Archive files mark a missing value with ``?`` or ``NaN`` (a few UCR problems hold gaps in otherwise
complete series; series converted from a padded table end in steps missing on every channel).
`fill_series` reads the second kind as padding, the end of a shorter series, and fills the first
from the series' own values; a channel with no value at all in a series takes the training split's
mean of that channel (the standardisation's), so that standardisation maps it to exactly 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

__all__ = ["FILL_METHODS", "Filled", "fill_series"]

# None refuses missing values (the error names the first); the others fill them.
FILL_METHODS = (None, "interpolate", "ffill")


@dataclasses.dataclass(frozen=True)
class Filled:
    """What `fill_series` did to a split."""

    values: int = 0  # missing values filled
    series: int = 0  # series holding one or more of them
    trimmed: int = 0  # trailing steps missing on every channel, dropped as padding
    empty: int | None = None  # the first series with no value at all (nothing to fill from)

    def describe(self, split: str, method: str) -> str:
        """One line for the run's output: ``"train: 337 missing values in 40 series filled ..."``."""
        parts = []
        if self.values:
            how = "by linear interpolation" if method == "interpolate" else "with the last value before"
            parts.append(f"{self.values} missing values in {self.series} series filled {how}")
        if self.trimmed:
            parts.append(f"{self.trimmed} trailing steps missing on every channel read as padding")
        return f"{split}: {'; '.join(parts)}" if parts else ""


def _fill_channel(column: np.ndarray, method: str) -> np.ndarray:
    """(T,) with NaNs and one finite value or more -> (T,) with the NaNs filled. Interpolation is
    linear between the nearest finite values on either side; before the first value and after the
    last, both methods hold the nearest one."""
    gaps = np.isnan(column)
    known = np.flatnonzero(np.isfinite(column))  # an infinity is no value to fill from
    if method == "interpolate":
        values = np.interp(np.arange(len(column)), known, column[known])
    else:
        # The last finite value at or before each step; steps before the first take the first.
        steps = np.where(np.isfinite(column), np.arange(len(column)), -1)
        last = np.maximum.accumulate(steps)
        values = column[np.where(last < 0, known[0], last)]
    return np.where(gaps, values, column)


def fill_series(
    series: Sequence[np.ndarray], method: str, means: np.ndarray | None = None
) -> tuple[list[np.ndarray], Filled]:
    """Fills the NaNs of (T_i, F) float64 `series` (infinities are left for the caller to refuse).

    Trailing steps that are NaN on every channel are dropped (the series is that much shorter);
    then each channel's NaNs are filled by `method` (``"interpolate"`` or ``"ffill"``) from the
    channel's own values, and a channel without any takes ``means[channel]`` (None: it stays NaN,
    for the caller to fill once it knows the statistics). Series without a NaN are returned as they
    are. A series that is NaN throughout is returned unchanged and named in ``Filled.empty``.
    """
    if method not in FILL_METHODS[1:]:
        raise ValueError(f"fill must be one of {FILL_METHODS[1:]}, got {method!r}")
    out: list[np.ndarray] = []
    values = touched = trimmed = 0
    empty = None
    for i, x in enumerate(series):
        missing = np.isnan(x)
        if not missing.any():
            out.append(x)
            continue
        observed = np.flatnonzero(~missing.all(axis=1))
        if not len(observed):
            empty = i if empty is None else empty
            out.append(x)
            continue
        end = int(observed[-1]) + 1
        trimmed += len(x) - end
        x = np.array(x[:end], dtype=np.float64)
        gaps = np.isnan(x)
        if gaps.any():
            touched += 1
            values += int(gaps.sum())
            for c in np.flatnonzero(gaps.any(axis=0)):
                if not np.isfinite(x[:, c]).any():
                    if means is not None:
                        x[:, c] = np.where(np.isnan(x[:, c]), means[c], x[:, c])
                else:
                    x[:, c] = _fill_channel(x[:, c], method)
        out.append(x)
    return out, Filled(values, touched, trimmed, empty)
