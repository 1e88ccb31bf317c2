"""Checkpoints of a training run: the full train state, written atomically, restored exactly.

One file, ``<dir>/checkpoint.msgpack`` (Flax serialization), holds the train state (params, batch
stats, optimizer state with its learning rate, PRNG key, step), the plateau scheduler's state, the
epochs done, the history, the config and a description of the data. It is written to a temporary
file in the same directory, flushed to disk and renamed over the old one (`os.replace` is atomic on
POSIX and Windows), so a crash mid-save leaves the previous checkpoint readable: `write_atomically`,
which the metrics JSON and torch_ref's checkpoints use too.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import serialization

from jax_lstm import optim
from jax_lstm.data import Dataset

__all__ = ["CHECKPOINT_NAME", "Checkpoint", "load", "save", "write_atomically"]

CHECKPOINT_NAME = "checkpoint.msgpack"
FORMAT = "jax-lstm-checkpoint/1"


def _path(directory: str | Path) -> Path:
    directory = Path(directory)
    return directory / CHECKPOINT_NAME if directory.suffix != ".msgpack" else directory


def _data_description(dataset: Dataset) -> dict[str, Any]:
    return {
        "name": dataset.name,
        "num_features": dataset.num_features,
        "classes": list(dataset.classes),
        "num_train": len(dataset.y_train),
    }


def write_atomically(path: str | Path, payload: bytes) -> Path:
    """Writes `payload` to `path` so that a crash leaves either the old file or the new one.

    A temporary file in the same directory, flushed to disk, renamed over `path` (`os.replace`,
    atomic on POSIX and Windows), and the directory synced so the rename itself is durable. A
    failure (or interrupt) before the rename removes the temporary file. Used for checkpoints,
    metrics JSON (`reporting.write_json`) and torch_ref's checkpoints.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        fd = os.open(path.parent, os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def save(
    directory: str | Path,
    state,
    plateau: optim.PlateauState,
    epoch: int,
    history: list[dict[str, float]],
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
        "history": json.dumps(history),
        "config": json.dumps(dataclasses.asdict(config)),
        "data": json.dumps(_data_description(dataset)),
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
    history: list[dict[str, float]]
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
        if _data_description(dataset) != self.data:
            raise ValueError(
                f"cannot resume from {self.path}: it was trained on {self.data}, "
                f"not on {_data_description(dataset)}"
            )
        if self.epoch >= config.epochs:
            raise ValueError(
                f"{self.path} already holds {self.epoch} epochs; ask for more than that with --epochs"
            )


def load(directory: str | Path) -> Checkpoint:
    """Reads a checkpoint written by `save` (a directory or the .msgpack file itself)."""
    from jax_lstm.train import TrainConfig, create_train_state

    path = _path(directory)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    raw = serialization.msgpack_restore(path.read_bytes())
    if raw.get("format") != FORMAT:
        raise ValueError(f"{path} is not a jax-lstm checkpoint (format {raw.get('format')!r})")
    config = TrainConfig(**json.loads(raw["config"]))
    data = json.loads(raw["data"])
    target = create_train_state(config, data["num_features"], len(data["classes"]))
    state = serialization.from_state_dict(target, raw["state"])
    # Back to device arrays of the exact saved dtypes (numpy arrays would be traced as a different
    # signature and recompile the step).
    state = jax.tree.map(jnp.asarray, state)
    plateau = optim.PlateauState(**raw["plateau"])
    return Checkpoint(path, state, plateau, int(raw["epoch"]), json.loads(raw["history"]), config, data)
