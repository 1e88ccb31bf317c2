"""Training as pure functions of a train state: config, state, steps, data parallelism, the loop,
checkpoints and the per-epoch history."""

from jax_lstm.training.checkpoint import Checkpoint, CheckpointError
from jax_lstm.training.config import TrainConfig
from jax_lstm.training.history import EpochRecord
from jax_lstm.training.loop import (
    FitResult,
    Partial,
    Run,
    TrainingDivergedError,
    check_checkpoint_dir,
    evaluate,
    fit,
    fit_many,
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
    "Batch",
    "Checkpoint",
    "CheckpointError",
    "EpochRecord",
    "FitResult",
    "Partial",
    "Programs",
    "Run",
    "TrainConfig",
    "TrainState",
    "TrainingDivergedError",
    "check_checkpoint_dir",
    "create_train_state",
    "cross_entropy",
    "data_parallel_mesh",
    "evaluate",
    "fit",
    "fit_many",
    "initial_variables",
    "load_checkpoint",
    "make_eval_step",
    "make_forward",
    "make_model",
    "make_optimizer",
    "make_scheduler",
    "make_train_step",
    "mesh_for",
    "train_epoch",
]
