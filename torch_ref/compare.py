"""A JAX run beside its torch twin: the twin trained from the same initial weights on the same
batches (`torch_ref.train.train_torch`), and the two per-epoch histories compared against the
tolerance of the dtype. One path for every model and both tasks (``--compare-torch``)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch.nn as nn

from jax_lstm import reporting
from jax_lstm.data import Dataset, WindowDataset
from jax_lstm.testing import TRAINING_LOSS_RTOL
from jax_lstm.training import EpochRecord, TrainConfig
from torch_ref.train import torch_twin, train_torch

__all__ = ["Comparison", "compare_with_twin"]


@dataclasses.dataclass
class Comparison:
    """The twin's run and how it compares with the JAX run's history."""

    model: nn.Module  # the trained twin
    history: list[EpochRecord]
    seconds: float
    summary: dict[str, Any]  # reporting.comparison of the two histories
    tolerance: float  # the largest relative difference of per-epoch losses that agrees
    agree: bool

    @property
    def worst(self) -> float:
        """The largest relative difference of any per-epoch loss the two runs evaluated."""
        return max(v for k, v in self.summary.items() if k.startswith("max_rel_diff") and v is not None)

    def verdict(self, dtype: str) -> str:
        """The line that says whether the runs agree, with the numbers."""
        parts = ", ".join(
            f"{k.removeprefix('max_rel_diff_').replace('_loss', '').replace('val', 'validation')} {v:.2e}"
            for k, v in self.summary.items()
            if k.startswith("max_rel_diff") and v is not None
        )
        line = (
            f"largest relative difference of per-epoch losses: {parts} (tolerance {self.tolerance:.0e} in "
            f"{dtype}): " + ("agree" if self.agree else "DISAGREE")
        )
        if not self.agree and dtype == "float32":
            line += (
                "\nnote: training amplifies float32 rounding differences over long runs (README, "
                "'Training'); rerun with --dtype float64 to separate rounding from semantics: there "
                "the runs agree to ~1e-13"
            )
        return line

    def record(self) -> dict[str, Any]:
        """The comparison's part of the metrics JSON."""
        return {**self.summary, "tolerance": self.tolerance, "agree": self.agree}


def compare_with_twin(
    config: TrainConfig,
    dataset: Dataset | WindowDataset,
    variables: dict[str, Any],
    jax_history: Sequence[EpochRecord],
    log: Callable[[str], None] | None = None,
) -> Comparison:
    """Trains the torch twin of `config.model` from `variables` (the JAX run's initial weights) on
    `dataset`'s batches and compares its per-epoch losses with `jax_history`."""
    start = time.perf_counter()
    result = train_torch(config, dataset, model=torch_twin(config, dataset, variables), log=log)
    seconds = time.perf_counter() - start
    summary = reporting.comparison(jax_history, result.history)
    tolerance = TRAINING_LOSS_RTOL[config.dtype]
    worst = max(v for k, v in summary.items() if k.startswith("max_rel_diff") and v is not None)
    agree = bool(worst <= tolerance) and not math.isnan(worst)
    return Comparison(result.model, result.history, seconds, summary, tolerance, agree)
