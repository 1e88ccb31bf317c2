"""Comparing arrays against a reference: the tolerance table and the one comparison helper.

Used by the parity test suite and by ``jax-lstm parity``. A comparison reports the leaf name, the
largest absolute difference and the tolerance, so a failure says which leaf diverged and by how much.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = [
    "ARTICLE_RUN_RTOL",
    "TOLERANCES",
    "TRAINING_LOSS_RTOL",
    "Difference",
    "Tolerance",
    "assert_all_close",
    "compare",
    "kind_of",
]


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """Elementwise bound ``|actual - expected| <= atol + rtol * |expected|`` (numpy's allclose)."""

    rtol: float
    atol: float

    def __str__(self) -> str:
        return f"atol={self.atol:.0e} + rtol={self.rtol:.0e}*|ref|"


# Measured on CPU (torch 2.13 oneDNN, jax 0.10.2) over every case in torch_ref/parity.py, both
# recurrences: float32 uses at most 0.18 of the forward bound (1.2e-6 on BN logits of features
# offset by 300) and 0.14 of the gradient bound (4.2e-5 on a bias gradient of magnitude 40, article
# config); float64 uses at most 0.043 of its bound (2.0e-14 on a weight gradient; forward 0.0085).
# float32 gradients sum over batch and time in a different order on each side, hence the rtol.
TOLERANCES: dict[str, dict[str, Tolerance]] = {
    "float32": {
        "forward": Tolerance(rtol=1e-6, atol=5e-6),
        "grad": Tolerance(rtol=1e-4, atol=1e-5),
    },
    "float64": {
        "forward": Tolerance(rtol=1e-12, atol=1e-13),
        "grad": Tolerance(rtol=1e-12, atol=1e-13),
    },
}


# The article's experiment run on both sides (10 epochs from identical weights and batches, both
# models; also the parity suite's shorter runs): largest relative difference allowed between the
# per-epoch losses (and, scaled by each tensor's largest value, the final parameters). Measured:
# float32 2.2e-7 (test loss); float64 2.3e-10, on the run whose learning rate 0.05 amplifies
# rounding about 10x per epoch (2e-16 at the article's 1e-3).
ARTICLE_RUN_RTOL: dict[str, float] = {"float32": 1e-5, "float64": 1e-8}

# `jax-lstm train --compare-torch` on any dataset and length of run: training amplifies float32
# rounding differences, measured on JapaneseVowels after 30 epochs at 5.4e-4 (batch 16) and 1.3e-3
# (batch 32, which therefore prints the float32 note) with the same accuracies; float64 ~1e-13.
TRAINING_LOSS_RTOL: dict[str, float] = {"float32": 1e-3, "float64": 1e-8}


@dataclasses.dataclass(frozen=True)
class Difference:
    """How far one leaf is from its reference."""

    name: str
    max_abs: float  # largest |actual - expected|
    worst: float  # largest |actual - expected| / (atol + rtol*|expected|); <= 1 passes
    tolerance: Tolerance
    problem: str = ""  # a shape, dtype or NaN mismatch, which fails regardless of the numbers

    @property
    def ok(self) -> bool:
        return not self.problem and self.worst <= 1.0

    def __str__(self) -> str:
        if self.problem:
            return f"{self.name}: {self.problem}"
        verdict = "ok" if self.ok else "FAILS"
        return (
            f"{self.name}: max |diff| {self.max_abs:.3g} ({verdict}: {self.worst:.3g} of the "
            f"tolerance {self.tolerance})"
        )


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def compare(name: str, actual: Any, expected: Any, tolerance: Tolerance) -> Difference:
    """Compares two arrays (numpy, JAX or torch) elementwise."""
    a, e = _numpy(actual), _numpy(expected)
    if a.shape != e.shape:
        return Difference(name, np.inf, np.inf, tolerance, f"shape {a.shape} != expected {e.shape}")
    if a.dtype != e.dtype:
        return Difference(name, np.inf, np.inf, tolerance, f"dtype {a.dtype} != expected {e.dtype}")
    if a.size == 0:
        return Difference(name, 0.0, 0.0, tolerance)
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    nan_a, nan_e = np.isnan(a64), np.isnan(e64)
    if not np.array_equal(nan_a, nan_e):
        where = (
            "NaN where the reference has none"
            if (nan_a & ~nan_e).any()
            else "a number where the reference has NaN"
        )
        return Difference(name, np.nan, np.nan, tolerance, where)
    compared = ~nan_e
    with np.errstate(invalid="ignore"):
        # Equal values (equal infinities included) differ by exactly 0; inf - inf would be NaN.
        diff = np.where(a64 == e64, 0.0, np.abs(a64 - e64))[compared]
    bound = tolerance.atol + tolerance.rtol * np.abs(e64[compared])
    if diff.size == 0:
        return Difference(name, 0.0, 0.0, tolerance)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(diff == 0, 0.0, np.where(np.isinf(diff), np.inf, diff / bound))
    return Difference(name, float(diff.max()), float(ratio.max()), tolerance)


def assert_all_close(
    pairs: Mapping[str, tuple[Any, Any]] | Iterable[tuple[str, tuple[Any, Any]]],
    tolerance_for: Mapping[str, Tolerance] | Tolerance,
) -> list[Difference]:
    """Compares every ``name -> (actual, expected)`` pair and raises one error listing all failures.

    `tolerance_for` is a Tolerance, or a mapping from a name's kind (``"forward"`` / ``"grad"``,
    the part before ``/`` for names like ``"grad/weight_ih_l0"``) to a Tolerance.
    """
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    differences = []
    for name, (actual, expected) in items:
        if isinstance(tolerance_for, Tolerance):
            tolerance = tolerance_for
        else:
            tolerance = tolerance_for[kind_of(name)]
        differences.append(compare(name, actual, expected, tolerance))
    failures = [d for d in differences if not d.ok]
    if failures:
        raise AssertionError("\n".join(str(d) for d in failures))
    return differences


def kind_of(name: str) -> str:
    """``"grad/weight_ih_l0"`` -> ``"grad"``; anything else is a forward quantity."""
    return "grad" if name.startswith("grad/") else "forward"
