"""The batch order both training loops share, and the arithmetic of micro-batches and epoch means.

A JAX run, its resumed continuation and the torch reference all draw their batches from `batch_order`,
so they see identical batches in identical order.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

__all__ = ["batch_order", "epoch_mean", "micro_batch_bounds"]


def batch_order(num_samples: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The shuffled batches of one epoch: index arrays of `batch_size` (the last may be shorter).

    A pure function of (seed, epoch), so a resumed run and the torch reference draw the same
    batches as an uninterrupted JAX run (DataLoader(shuffle=True) semantics, drop_last=False).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    permutation = np.random.default_rng([seed, epoch]).permutation(num_samples)
    return [permutation[i : i + batch_size] for i in range(0, num_samples, batch_size)]


def micro_batch_bounds(batch: int, accumulate: int) -> list[tuple[int, int]]:
    """Splits a batch of `batch` rows into `accumulate` contiguous, near-equal micro-batches."""
    parts = min(accumulate, batch)
    edges = [round(batch * j / parts) for j in range(parts + 1)]
    return list(itertools.pairwise(edges))


def epoch_mean(batch_losses: Sequence[float], batch_sizes: Sequence[int]) -> float:
    """The epoch's training loss: the per-sample mean of batch-mean losses, in float64."""
    losses = np.asarray(batch_losses, dtype=np.float64)
    sizes = np.asarray(batch_sizes, dtype=np.float64)
    return float(np.sum(losses * sizes) / np.sum(sizes))
