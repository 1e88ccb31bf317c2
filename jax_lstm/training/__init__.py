"""Training as pure functions of a train state: config, state, steps, data parallelism, the loop,
checkpoints and the per-epoch history."""

from jax_lstm.training import predict
from jax_lstm.training.checkpoint import Checkpoint, CheckpointError, check_directory
from jax_lstm.training.config import RECIPE_FIELDS, TrainConfig, resolve_config
from jax_lstm.training.history import EpochRecord
from jax_lstm.training.loop import (
    CheckpointWriteError,
    FitResult,
    Partial,
    Run,
    TrainingDivergedError,
    TrainingInterrupted,
    evaluate,
    fit,
    fit_many,
    fit_models,
    load_checkpoint,
    train_epoch,
)
from jax_lstm.training.parallel import Programs, data_parallel_mesh, mesh_for
from jax_lstm.training.state import (
    TrainState,
    create_train_state,
    initial_variables,
    make_model,
    make_optimizer,
    make_scheduler,
)
from jax_lstm.training.steps import Batch, cross_entropy, make_eval_step, make_forward, make_train_step

__all__ = [
    "RECIPE_FIELDS",
    "Batch",
    "Checkpoint",
    "CheckpointError",
    "CheckpointWriteError",
    "EpochRecord",
    "FitResult",
    "Partial",
    "Programs",
    "Run",
    "TrainConfig",
    "TrainState",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "check_directory",
    "create_train_state",
    "cross_entropy",
    "data_parallel_mesh",
    "evaluate",
    "fit",
    "fit_many",
    "fit_models",
    "initial_variables",
    "load_checkpoint",
    "make_eval_step",
    "make_forward",
    "make_model",
    "make_optimizer",
    "make_scheduler",
    "make_train_step",
    "mesh_for",
    "predict",
    "resolve_config",
    "train_epoch",
]
