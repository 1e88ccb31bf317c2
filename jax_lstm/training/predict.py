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
from jax_lstm.models import registry
from jax_lstm.training.config import TrainConfig
from jax_lstm.training.state import make_model
from jax_lstm.training.steps import make_forward

__all__ = ["predictions"]

# The config fields that decide the eval-mode program (dropout is inactive in eval mode; seed, lr,
# epochs and the rest only shape training).
_PROGRAM_FIELDS = ("model", "hidden_size", "num_layers", "dtype", "implementation", "cell")


@functools.lru_cache(maxsize=16)
def _forward(program: tuple[tuple[str, Any], ...], dims: Dims):
    """One jitted eval-mode forward (`make_forward`) per architecture and data sizes, shared by every
    caller (the estimator's instances, predictors)."""
    return make_forward(make_model(TrainConfig(**dict(program)), dims))


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=-1, keepdims=True)


def predictions(
    config: TrainConfig,
    dims: Dims,
    variables: dict[str, Any],
    x: np.ndarray,
    lengths: np.ndarray | None = None,
    batch_size: int | None = None,
) -> np.ndarray:
    """What the model predicts on x (N, T, F) (right-padded with `lengths` (N,)), float64, in
    eval mode and in chunks of `batch_size` (default the config's eval_batch_size): a classifier's
    class probabilities (N, C) (rows sum to 1; an ensemble's, ``config.ensemble`` E > 1 with
    `variables` stacked (E, ...), the mean of its members' softmax), a forecaster's scaled forecasts
    (N, H, T) (an ensemble's, the mean of its members')."""
    forward = _forward(tuple((f, getattr(config, f)) for f in _PROGRAM_FIELDS), dims)
    size = batch_size or config.eval_batch_size
    classifier = registry.get(config.model).task == "classification"
    members = [variables]
    if config.ensemble > 1:
        members = [jax.tree.map(lambda leaf, e=e: leaf[e], variables) for e in range(config.ensemble)]
    results = []
    for member in members:
        parts = []
        for lo in range(0, len(x), size):
            chunk = jnp.asarray(x[lo : lo + size])
            chunk_lengths = None if lengths is None else jnp.asarray(lengths[lo : lo + size])
            parts.append(np.asarray(forward(member, chunk, chunk_lengths), np.float64))
        result = np.concatenate(parts)
        results.append(_softmax(result) if classifier else result)
    return np.mean(results, axis=0)
