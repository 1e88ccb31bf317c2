"""A trained model's predictions on new data: its eval-mode outputs in chunks, a classifier's class
probabilities, a forecaster's forecasts; an ensemble's members combined (the mean of their
probabilities, the mean of their forecasts). Shared by the estimator, the forecaster and the
predictor of a checkpoint.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_lstm.data.dims import Dims
from jax_lstm.training.config import TrainConfig
from jax_lstm.training.state import make_model
from jax_lstm.training.steps import make_forward

__all__ = ["class_probabilities", "forecasts", "outputs"]

# The config fields that decide the eval-mode program (dropout is inactive in eval mode; seed, lr,
# epochs and the rest only shape training).
_PROGRAM_FIELDS = ("model", "hidden_size", "num_layers", "dtype", "implementation", "cell")


@functools.lru_cache(maxsize=16)
def _forward(program: tuple[tuple[str, Any], ...], dims: Dims):
    """One jitted eval-mode forward (`make_forward`) per architecture and data sizes, shared by every
    caller (the estimator's instances, predictors)."""
    return make_forward(make_model(TrainConfig(**dict(program)), dims))


def outputs(
    config: TrainConfig,
    dims: Dims,
    variables: dict[str, Any],
    x: np.ndarray,
    lengths: np.ndarray | None = None,
    batch_size: int | None = None,
) -> np.ndarray:
    """The model's eval-mode outputs on x (N, T, F) (right-padded with `lengths` (N,)), in chunks of
    `batch_size` (default the config's eval_batch_size): (N, C) logits or (N, H, T) forecasts; for
    an ensemble (``config.ensemble`` E > 1, `variables` stacked (E, ...)), (E, N, ...)."""
    forward = _forward(tuple((f, getattr(config, f)) for f in _PROGRAM_FIELDS), dims)
    size = batch_size or config.eval_batch_size
    members = (
        [jax.tree.map(lambda leaf, e=e: leaf[e], variables) for e in range(config.ensemble)]
        if config.ensemble > 1
        else [variables]
    )
    results = []
    for member in members:
        parts = []
        for lo in range(0, len(x), size):
            chunk = jnp.asarray(x[lo : lo + size])
            chunk_lengths = None if lengths is None else jnp.asarray(lengths[lo : lo + size])
            parts.append(np.asarray(forward(member, chunk, chunk_lengths)))
        results.append(np.concatenate(parts))
    return np.stack(results) if config.ensemble > 1 else results[0]


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    logits = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=-1, keepdims=True)


def class_probabilities(
    config: TrainConfig,
    dims: Dims,
    variables: dict[str, Any],
    x: np.ndarray,
    lengths: np.ndarray | None = None,
    batch_size: int | None = None,
) -> np.ndarray:
    """(N, C) float64 class probabilities of a classifier (rows sum to 1): its softmax, or the mean
    of an ensemble's members' softmax."""
    probabilities = _softmax(outputs(config, dims, variables, x, lengths, batch_size))
    return probabilities.mean(axis=0) if config.ensemble > 1 else probabilities


def forecasts(
    config: TrainConfig, dims: Dims, variables: dict[str, Any], x: np.ndarray, batch_size: int | None = None
) -> np.ndarray:
    """(B, H, T) float64 scaled forecasts of a forecaster from (B, L, F) windows: its own, or the
    mean of an ensemble's members'."""
    result = outputs(config, dims, variables, x, None, batch_size).astype(np.float64)
    return result.mean(axis=0) if config.ensemble > 1 else result
