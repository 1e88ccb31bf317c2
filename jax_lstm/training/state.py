"""The train state and what builds it: the model from the registry, its initial weights, the optimizer
(torch's clipping and Adam) and the plateau scheduler."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jax_lstm import optim
from jax_lstm.data.dims import Dims
from jax_lstm.models import registry
from jax_lstm.training.config import TrainConfig

__all__ = [
    "TrainState",
    "create_train_state",
    "initial_variables",
    "make_model",
    "make_optimizer",
    "make_scheduler",
    "model_variables",
    "schedule_spec",
]


def model_variables(params: Any, batch_stats: Any) -> dict[str, Any]:
    """The Flax variables of params and (when the model has any) batch statistics."""
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


class TrainState(struct.PyTreeNode):
    """Everything a train step reads and writes; all device arrays, so it passes through jit."""

    step: jax.Array  # () int32: optimizer updates so far
    params: Any  # the model's params, torch-named
    batch_stats: Any  # BatchNorm running statistics ({} for models without BatchNorm)
    opt_state: Any  # Adam moments, step count and the injected learning rate
    key: jax.Array  # (2,) uint32 PRNG key, split once per step for dropout

    def variables(self) -> dict[str, Any]:
        """The model's Flax variables (for `apply`, `to_torch`): params, and batch_stats if any."""
        return model_variables(self.params, self.batch_stats)


def make_model(config: TrainConfig, dims: Dims) -> nn.Module:
    """The Flax module of `config.model` for data of `dims` (`dataset.dims`; see
    `jax_lstm.models.registry.build`)."""
    return registry.build(registry.get(config.model), config, _dims(dims))


def initial_variables(config: TrainConfig, dims: Dims) -> dict[str, Any]:
    """The Flax variables a run with this config starts from on data of `dims`: torch's
    initialisation drawn from the seed (every LSTM tensor and the head U(-1/sqrt(H), 1/sqrt(H)),
    BatchNorm weight 1, bias 0, running mean 0, variance 1); see `registry.initial_variables`."""
    return registry.initial_variables(registry.get(config.model), config, _dims(dims))


def _dims(dims: Any) -> Dims:
    if not isinstance(dims, Dims):
        raise TypeError(
            f"expected the data's Dims (dataset.dims, or jax_lstm.data.Dims(num_features, num_outputs, "
            f"output_shape, seq_len)), got {type(dims).__name__}"
        )
    return dims


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """clip_grad_norm_ then Adam, as in the article; the learning rate is injectable."""
    return optim.adam(config.lr, weight_decay=config.weight_decay, max_grad_norm=config.clip)


def schedule_spec(config: TrainConfig) -> tuple[str, dict[str, Any]]:
    """The learning-rate schedule of `config` as a kind and arguments of `optim.schedule` (the
    torch twin builds the same with `torch_ref.schedules.torch_scheduler`): the article's
    ``ReduceLROnPlateau(optimizer, 'min', patience=...)``, or torch's cosine annealing over the run's
    epochs (after a linear warm-up)."""
    if config.schedule == "cosine":
        return "cosine", {
            "epochs": config.epochs,
            "warmup_epochs": config.warmup_epochs,
            "eta_min": config.eta_min,
        }
    return "plateau", {
        "mode": "min",
        "factor": config.factor,
        "patience": config.patience,
        "min_lr": config.min_lr,
    }


def make_scheduler(config: TrainConfig) -> optim.Schedule:
    """The run's learning-rate schedule (`schedule_spec`): ``init(lr)``, ``update(state, train_loss)``
    once per epoch; the next epoch trains at ``state.lr``."""
    kind, args = schedule_spec(config)
    return optim.schedule(kind, **args)


def _state_key(config: TrainConfig) -> jax.Array:
    """The train state's PRNG key: for seeds below 2**32 exactly `jax.random.PRNGKey(seed)`
    (threefry's raw (2,) uint32 layout; `validate` keeps seeds in [0, 2**64)), built with numpy so
    that no random program is compiled."""
    seed = config.seed
    return jnp.asarray(np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32))


@functools.lru_cache(maxsize=64)
def _optimizer_init(weight_decay: float, clip: float | None) -> Callable:
    """`make_optimizer(config).init`, jitted once per optimizer rather than once per call.

    One small program instead of an eager op per parameter; built anew on every call it would cost
    a compile each time (once per seed in `fit_many`, on every checkpoint load). The learning rate
    only seeds the state's injected rate, which `create_train_state` replaces, so it is not part of
    the key.
    """
    return jax.jit(make_optimizer(TrainConfig(lr=1.0, weight_decay=weight_decay, clip=clip)).init)


def create_train_state(
    config: TrainConfig, dims: Dims, variables: dict[str, Any] | None = None
) -> TrainState:
    """A fresh train state for data of `dims`: weights from `variables` (e.g. `from_torch`) or
    initialised from the seed."""
    if variables is None:
        variables = initial_variables(config, dims)
    params = variables["params"]
    opt_state = _optimizer_init(config.weight_decay, config.clip)(params)
    # The first epoch's rate (a warm-up starts below config.lr), of fixed dtype from the start, so
    # the scheduler's updates never retrace.
    opt_state = optim.set_learning_rate(opt_state, make_scheduler(config).init(config.lr).lr)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=opt_state,
        key=_state_key(config),
    )
