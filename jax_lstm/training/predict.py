"""A trained model's predictions on new data: its eval-mode outputs in chunks, a classifier's class
probabilities, a forecaster's forecasts; an ensemble's members combined (the mean of their
probabilities, the mean of their forecasts). Shared by the estimator, the forecaster and the
predictor of a checkpoint.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_lstm.data.dims import Dims
from jax_lstm.models import registry
from jax_lstm.training import parallel
from jax_lstm.training.config import TrainConfig
from jax_lstm.training.state import make_model
from jax_lstm.training.steps import make_forward

__all__ = ["predictions"]

# The config fields that decide the eval-mode program: the model, its dtype and every model option
# but dropout, inactive in eval mode (seed, lr, epochs and the rest only shape training).
_PROGRAM_FIELDS = ("model", "dtype", *(o for o in registry.OPTION_DEFAULTS if o != "dropout"))


@functools.lru_cache(maxsize=16)
def _forward(program: tuple[tuple[str, Any], ...], dims: Dims, split: bool):
    """One jitted eval-mode forward (`make_forward`) per architecture, data sizes and placement,
    shared by every caller (the estimator's instances, predictors); `split`: over the local devices'
    mesh, as training's evaluation of the same model ran."""
    mesh = parallel.data_parallel_mesh() if split else None
    return make_forward(make_model(TrainConfig(**dict(program)), dims), mesh)


def _split_as_training(config: TrainConfig) -> bool:
    """Whether training's evaluation of one model of `config` ran over the mesh of this machine's
    devices (`training.loop.Run.build` asks `parallel.mesh_for` so; ensembles and K models evaluate
    each model on the whole chunk). Predictions taken the same way are the evaluation's to the last
    bit: a chunk split over two devices rounds some outputs differently from a whole one."""
    if config.ensemble > 1 or parallel.multiprocess():
        return False
    unsplittable = (
        "batch statistics" if config.accumulate > 1 and registry.get(config.model).batch_stats else None
    )
    return parallel.mesh_for(None, config.batch_size, unsplittable=unsplittable) is not None


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
    progress: Callable[[int], Any] | None = None,
) -> np.ndarray:
    """What the model predicts on x (N, T, F) (right-padded with `lengths` (N,)), float64, in
    eval mode and in chunks of `batch_size` (default the config's eval_batch_size): a classifier's
    class probabilities (N, C) (rows sum to 1; an ensemble's, ``config.ensemble`` E > 1 with
    `variables` stacked (E, ...), the mean of its members' softmax), a forecaster's scaled forecasts
    (N, H, T) (an ensemble's, the mean of its members').

    The chunks run as training's evaluation ran them (the same program, over the same devices), so
    with the default chunk size the outputs are those training evaluated, bit for bit, on the same
    machine. `progress(rows)` is called after each chunk with the rows it held (of every member).
    """
    program = tuple((f, getattr(config, f)) for f in _PROGRAM_FIELDS)
    forward = _forward(program, dims, _split_as_training(config))
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
            if progress is not None:
                progress(len(chunk))
        result = np.concatenate(parts)
        results.append(_softmax(result) if classifier else result)
    return np.mean(results, axis=0)
