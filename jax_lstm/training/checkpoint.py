"""Checkpoints of a training run: the full train state, written atomically, restored exactly.

One file, ``<dir>/checkpoint.msgpack`` (Flax serialization), holds the train state (params, batch
stats, optimizer state with its learning rate, PRNG key, step), the plateau scheduler's state, the
epochs done, the history, the config and a description of the data. It is written with
`jax_lstm.atomic.write_atomically` (temporary file, fsync, rename), so a crash mid-save leaves the
previous checkpoint readable.

This module knows the file, not the training code: `load` takes what it restores into (a function
from the stored config and data description to a template state), so it imports nothing of
`jax_lstm.training` but the history record.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import serialization

from jax_lstm import optim
from jax_lstm.atomic import write_atomically
from jax_lstm.data import Dataset, WindowDataset
from jax_lstm.training.history import EpochRecord, from_dicts, to_dicts

__all__ = ["CHECKPOINT_NAME", "Checkpoint", "data_description", "dims", "load", "save"]

CHECKPOINT_NAME = "checkpoint.msgpack"
FORMAT = "jax-lstm-checkpoint/1"


def _path(directory: str | Path) -> Path:
    directory = Path(directory)
    return directory / CHECKPOINT_NAME if directory.suffix != ".msgpack" else directory


def data_description(dataset: Dataset | WindowDataset) -> dict[str, Any]:
    """What a checkpoint records of its data: a classifier's classes, or a forecaster's (H, T)."""
    description: dict[str, Any] = {"name": dataset.name, "num_features": dataset.num_features}
    if dataset.output_shape is None:
        description["classes"] = list(dataset.classes)
    else:
        description["output_shape"] = list(dataset.output_shape)
    description["num_train"] = len(dataset.y_train)
    return description


def dims(data: dict[str, Any]) -> tuple[int, int, tuple[int, ...] | None]:
    """(num_features, output width, output shape or None) of a `data_description`."""
    if "output_shape" in data:
        shape = tuple(int(n) for n in data["output_shape"])
        return int(data["num_features"]), math.prod(shape), shape
    return int(data["num_features"]), len(data["classes"]), None


def save(
    directory: str | Path,
    state,
    plateau: optim.PlateauState,
    epoch: int,
    history: list[EpochRecord],
    config,
    dataset: Dataset,
) -> Path:
    """Writes the checkpoint after `epoch` completed epochs; returns its path."""
    path = _path(directory)
    payload = {
        "format": FORMAT,
        "state": serialization.to_state_dict(jax.device_get(state)),
        "plateau": plateau._asdict(),
        "epoch": epoch,
        "history": json.dumps(to_dicts(history)),
        "config": json.dumps(dataclasses.asdict(config)),
        "data": json.dumps(data_description(dataset)),
    }
    write_atomically(path, serialization.msgpack_serialize(payload))
    return path


@dataclasses.dataclass
class Checkpoint:
    """A loaded checkpoint. `variables()` gives Flax variables, ready for `to_torch`."""

    path: Path
    state: Any  # TrainState
    plateau: optim.PlateauState
    epoch: int
    history: list[EpochRecord]
    config: Any  # TrainConfig
    data: dict[str, Any]

    def variables(self) -> dict[str, Any]:
        return self.state.variables()

    def check_compatible(self, config, dataset: Dataset) -> None:
        """Refuses to resume with another model, optimizer setting or dataset (epochs may grow)."""
        saved = dataclasses.asdict(self.config)
        wanted = dataclasses.asdict(config)
        ignored = {"epochs", "log_every", "eval_batch_size"}
        changed = {k: (saved[k], wanted[k]) for k in saved if k not in ignored and saved[k] != wanted[k]}
        if changed:
            details = ", ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in changed.items())
            raise ValueError(f"cannot resume from {self.path} with different settings ({details})")
        if data_description(dataset) != self.data:
            raise ValueError(
                f"cannot resume from {self.path}: it was trained on {self.data}, "
                f"not on {data_description(dataset)}"
            )
        if self.epoch >= config.epochs:
            raise ValueError(
                f"{self.path} already holds {self.epoch} epochs; ask for more than that with --epochs"
            )


# What `load` restores into: (the stored config as a dict, the data description) -> (config, a
# template train state of the right structure, shapes and dtypes).
Target = Callable[[dict[str, Any], dict[str, Any]], tuple[Any, Any]]


def load(directory: str | Path, target: Target) -> Checkpoint:
    """Reads a checkpoint written by `save` (a directory or the .msgpack file itself) into `target`'s
    structure (see `jax_lstm.training.load_checkpoint`, which supplies it)."""
    path = _path(directory)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    raw = serialization.msgpack_restore(path.read_bytes())
    if raw.get("format") != FORMAT:
        raise ValueError(f"{path} is not a jax-lstm checkpoint (format {raw.get('format')!r})")
    data = json.loads(raw["data"])
    config, template = target(json.loads(raw["config"]), data)
    state = serialization.from_state_dict(template, raw["state"])
    # Back to device arrays of the exact saved dtypes (numpy arrays would be traced as a different
    # signature and recompile the step).
    state = jax.tree.map(jnp.asarray, state)
    plateau = optim.PlateauState(**raw["plateau"])
    history = from_dicts(json.loads(raw["history"]))
    return Checkpoint(path, state, plateau, int(raw["epoch"]), history, config, data)
