"""Checkpoints of a training run: the full train state, written atomically, verified on load, and
the policy for the directory they live in (`check_directory`).

``<dir>/checkpoint.msgpack`` holds the latest state and ``<dir>/checkpoint.prev.msgpack`` the one
before it. Each file is a msgpack map of the format version, the sha256 of the payload and the
payload itself (Flax serialization): the train state (params, batch stats, optimizer state with its
learning rate, PRNG key, step; with K models trained at once, every leaf has a leading model axis),
each model's scheduler state, the epochs done, each model's history, the seeds of the models (none
for a single model), the config it was written with and a description of the data
(`data_description`: its sizes, a classifier's class names in order, the padded length, the
preprocessing the series went through, a forecaster's table). The checksum covers all of it. Files
of the previous format (one model: ``jax-lstm-checkpoint/2``) still load; what their description
lacks (written before it was recorded) is named by `missing`.

Annotations are what is known of a run only after its last epoch (a forecaster's calibration
residuals): JSON beside the payload, with their own checksum, added to the latest file by
`annotate` without touching the payload.

Files are written with `jax_lstm.atomic.write_atomically` (temporary file, fsync, rename, the
previous file kept as ``checkpoint.prev.msgpack``), so a crash mid-save leaves a readable
checkpoint. On load, anything that is not exactly such a file (a flipped byte, truncation, another
program's msgpack, an older format) is one `CheckpointError` naming the file; a corrupt latest
checkpoint falls back to the previous one, saying so on the log.

This module knows the file, not the training code: `load` takes what it restores into (a function
from the stored config and data description to a template state), so it imports nothing of
`jax_lstm.training` but the history record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import msgpack
from flax import serialization

from jax_lstm.atomic import check_can_create, remove_stale_temporaries, write_atomically
from jax_lstm.data import Dataset, Dims, WindowDataset, preprocessing_record
from jax_lstm.training.history import EpochRecord, from_dicts, to_dicts

__all__ = [
    "CHECKPOINT_NAME",
    "PREVIOUS_NAME",
    "Checkpoint",
    "CheckpointError",
    "annotate",
    "check_directory",
    "data_description",
    "dims",
    "exists",
    "load",
    "missing",
    "read_description",
    "remove",
    "remove_leftovers",
    "save",
    "set_aside",
]

CHECKPOINT_NAME = "checkpoint.msgpack"
PREVIOUS_NAME = "checkpoint.prev.msgpack"
FORMAT = "jax-lstm-checkpoint/3"
_READABLE = ("jax-lstm-checkpoint/2", FORMAT)  # /2: one model, "plateau" and "history" alone


class CheckpointError(ValueError):
    """A checkpoint file that cannot be trusted: corrupt, truncated, foreign or of another format."""


def _path(directory: str | Path) -> Path:
    directory = Path(directory)
    return directory / CHECKPOINT_NAME if directory.suffix != ".msgpack" else directory


def check_directory(directory: str | Path, resume: bool = False, overwrite: bool = False) -> Path:
    """Refuses, before any work, a checkpoint directory that cannot be written (a file, a path
    under a file, no write permission), and one that holds a checkpoint when neither `resume` nor
    `overwrite` says what to do with it. Returns the directory."""
    directory = Path(directory)
    if resume and overwrite:
        raise ValueError("resume continues the checkpoint and overwrite starts over: pass one, not both")
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"checkpoint directory {directory} is a file, not a directory")
    check_can_create(directory, f"checkpoint directory {directory}", directory=True)
    if not resume and not overwrite and exists(directory):
        raise ValueError(
            f"{directory} already holds a checkpoint, which this run would overwrite: continue it with "
            "--resume (resume=True), or start over on purpose with --overwrite (overwrite=True)"
        )
    return directory


def exists(directory: str | Path) -> bool:
    """Whether `directory` holds a checkpoint (the latest or the previous one)."""
    directory = Path(directory)
    return (directory / CHECKPOINT_NAME).exists() or (directory / PREVIOUS_NAME).exists()


def remove(directory: str | Path) -> None:
    """Deletes the checkpoints in `directory` (a run that starts over on purpose)."""
    for name in (CHECKPOINT_NAME, PREVIOUS_NAME):
        (Path(directory) / name).unlink(missing_ok=True)


def set_aside(path: Path) -> Path:
    """Renames a corrupt checkpoint to ``checkpoint.corrupt.msgpack`` (kept for inspection), so the
    next save does not keep it as the previous checkpoint."""
    return Path(path).replace(Path(path).with_name("checkpoint.corrupt.msgpack"))


def remove_leftovers(directory: str | Path) -> list[Path]:
    """Removes temporary files of a save that was interrupted (by a kill) in an earlier run."""
    return remove_stale_temporaries(Path(directory) / CHECKPOINT_NAME)


# The fields of a data description, each with the first version of jax-lstm that wrote it: a
# description without one was written before (`missing` names them; resume compares the rest).
_LATER_FIELDS = {
    "seq_len": "the padded length its model was built for",
    "preprocessing": "the standardisation fitted on its training split (or that none was applied)",
    "variable_length": "whether its training series had different lengths",
    "table": "its table's columns, targets and time index",
}


def data_description(dataset: Dataset | WindowDataset) -> dict[str, Any]:
    """What a checkpoint records of its data: its name and sizes; a classifier's class names in
    order, or a forecaster's (H, T); the padded length (``seq_len``); the preprocessing the series
    went through (``{"kind": "standardize", "mean": [...], "scale": [...]}`` fitted on the training
    split, or ``{"kind": "none"}``); a classifier's ``variable_length`` (its series were padded
    with lengths); a forecaster's ``table`` (`TableSpec`: columns, targets, lookback, horizon, time
    index), when its windows know it."""
    description: dict[str, Any] = {"name": dataset.name, "num_features": dataset.num_features}
    if dataset.output_shape is None:
        description["classes"] = list(dataset.classes)
    else:
        description["output_shape"] = list(dataset.output_shape)
    description["num_train"] = len(dataset.y_train)
    description["seq_len"] = dataset.seq_len
    description["preprocessing"] = preprocessing_record(getattr(dataset, "preprocessing", None))
    if dataset.output_shape is None:
        description["variable_length"] = dataset.lengths_train is not None
    table = getattr(dataset, "table", None)
    if table is not None:
        description["table"] = table.as_dict()
    return description


def missing(data: Mapping[str, Any]) -> dict[str, str]:
    """What a data description written by an earlier version lacks: {field: what it would say}.
    (A forecaster's ``table`` and a classifier's ``variable_length`` are asked of their own task.)"""
    wanted = dict(_LATER_FIELDS)
    if "output_shape" in data:
        wanted.pop("variable_length")
    else:
        wanted.pop("table")
    return {key: what for key, what in wanted.items() if key not in data}


def dims(data: dict[str, Any]) -> Dims:
    """The model's `Dims` of a `data_description`: features, output width and shape, series length
    (0 in checkpoints written before it was recorded, whose models did not depend on it)."""
    seq_len = int(data.get("seq_len", 0))
    if "output_shape" in data:
        shape = tuple(int(n) for n in data["output_shape"])
        return Dims(int(data["num_features"]), math.prod(shape), shape, seq_len)
    return Dims(int(data["num_features"]), len(data["classes"]), None, seq_len)


def save(
    directory: str | Path,
    state,
    schedules: Sequence[Any],
    epoch: int,
    histories: Sequence[Sequence[EpochRecord]],
    config,
    dataset: Dataset | WindowDataset | Mapping[str, Any],
    seeds: Sequence[int] | None = None,
    selection: dict[str, Any] | None = None,
    ensembles: Sequence[Sequence[EpochRecord]] = (),
) -> Path:
    """Writes the checkpoint after `epoch` completed epochs (the previous one kept beside it);
    returns its path. `state` is on the host (`parallel.fetch`); one scheduler state and one
    history per model; `seeds` the models' seeds when K models were trained at once (their state
    has a leading model axis), None for one model; `selection` the weights a run keeps by its
    `TrainConfig.select` ({"scores", "epochs", "state"}), None when it keeps the last epoch's;
    `ensembles` each ensemble's history (none without ensembles). `dataset` may be its
    `data_description` already (the estimator keeps the description, not the data)."""
    path = _path(directory)
    description = dict(dataset) if isinstance(dataset, Mapping) else data_description(dataset)
    kept = None
    if selection is not None:
        kept = {
            "scores": json.dumps(selection["scores"]),
            "epochs": json.dumps(selection["epochs"]),
            "state": serialization.to_state_dict(jax.device_get(selection["state"])),
        }
    payload = serialization.msgpack_serialize(
        {
            "selection": kept,
            "state": serialization.to_state_dict(jax.device_get(state)),
            "schedules": [s._asdict() for s in schedules],
            "epoch": epoch,
            "histories": json.dumps([to_dicts(h) for h in histories]),
            "ensembles": json.dumps([to_dicts(h) for h in ensembles]),
            "seeds": json.dumps(None if seeds is None else [int(s) for s in seeds]),
            "config": json.dumps(dataclasses.asdict(config)),
            "data": json.dumps(description),
        }
    )
    envelope = {
        "format": FORMAT,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": payload,
    }
    keep = path.with_name(PREVIOUS_NAME) if path.name == CHECKPOINT_NAME else None
    write_atomically(path, msgpack.packb(envelope, use_bin_type=True), keep_previous=keep)
    return path


@dataclasses.dataclass
class Checkpoint:
    """A loaded checkpoint. `variables()` gives Flax variables, ready for `to_torch`."""

    path: Path
    state: Any  # TrainState; a leading model axis when `seeds` is not None
    schedules: list[Any]  # one schedule state per model (optim.PlateauState, optim.CosineState, ...)
    epoch: int
    histories: list[list[EpochRecord]]  # one per model
    config: Any  # TrainConfig
    data: dict[str, Any]
    seeds: list[int] | None = None  # the models' seeds when K were trained at once; None: one model
    # The weights the run's selection keeps ({"scores", "epochs", "state"}); None: the last epoch's.
    selection: dict[str, Any] | None = None
    ensembles: list[list[EpochRecord]] = dataclasses.field(default_factory=list)  # each ensemble's history
    # The corrupt latest file when this is the previous checkpoint, loaded in its place.
    replaces: Path | None = None
    # What `annotate` added after training (e.g. {"calibration": ...}); {} when nothing was.
    annotations: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def plateau(self) -> Any:
        """The schedule state of the first (for one model: the) model."""
        return self.schedules[0]

    @property
    def history(self) -> list[EpochRecord]:
        """The history of the first (for one model: the) model."""
        return self.histories[0]

    def variables(self) -> dict[str, Any]:
        return self.state.variables()

    @property
    def dims(self) -> Dims:
        return dims(self.data)

    @property
    def missing(self) -> dict[str, str]:
        """What its data description lacks, written before it was recorded (`missing`)."""
        return missing(self.data)

    def check_compatible(
        self, config, dataset: Dataset | WindowDataset, seeds: Sequence[int] | None = None
    ) -> None:
        """Refuses to resume with another model, optimizer setting, dataset or set of models, or with
        fewer epochs than it holds (as many: the run is complete, and resuming it gives its results,
        e.g. after a kill between its last checkpoint and its outputs)."""
        wanted_seeds = None if seeds is None else [int(s) for s in seeds]
        if wanted_seeds != self.seeds:
            held = "one model" if self.seeds is None else f"the models of seeds {self.seeds}"
            asked = "one model" if wanted_seeds is None else f"the models of seeds {wanted_seeds}"
            raise ValueError(f"cannot resume from {self.path}: it holds {held}, and this run trains {asked}")
        saved = dataclasses.asdict(self.config)
        wanted = dataclasses.asdict(config)
        ignored = {"epochs", "log_every", "eval_batch_size", "eval_every"}  # what only reports
        changed = {k: (saved[k], wanted[k]) for k in saved if k not in ignored and saved[k] != wanted[k]}
        if changed:
            details = ", ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in changed.items())
            raise ValueError(f"cannot resume from {self.path} with different settings ({details})")
        now = data_description(dataset)
        for key in _LATER_FIELDS:  # written before the field was recorded: compare the rest
            if key not in self.data:
                now.pop(key, None)
        # The sizes the weights depend on first, by name: they are the usual mistake.
        for key, what in (("num_features", "channels (features)"), ("seq_len", "steps per padded series")):
            if key in self.data and self.data[key] != now.get(key):
                raise ValueError(
                    f"cannot resume from {self.path}: its model was trained on series of "
                    f"{self.data[key]} {what}, and this data has {now.get(key)}; resume with the "
                    "data it was trained on, or start over with --overwrite"
                )
        if now != self.data:
            raise ValueError(
                f"cannot resume from {self.path}: it was trained on {self.data}, "
                f"not on {data_description(dataset)}"
            )
        if self.epoch > config.epochs:
            raise ValueError(
                f"{self.path} already holds {self.epoch} epochs, more than the {config.epochs} asked for; "
                f"resume with --epochs {self.epoch} or more"
            )


# What `load` restores into: (the stored config as a dict, the data description, the models' seeds
# or None) -> (config, a template train state of the right structure, shapes and dtypes, the type of
# its schedule's state: e.g. optim.PlateauState).
Target = Callable[[dict[str, Any], dict[str, Any], list[int] | None], tuple[Any, Any, type]]


def _corrupt(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"{path} is corrupt or from an incompatible version of jax-lstm ({why}); it cannot be resumed "
        "or exported. Start over with --overwrite, or point --checkpoint-dir at another directory"
    )


def _read_envelope(path: Path) -> dict[str, Any]:
    """The msgpack map of one checkpoint file, its payload's and annotations' checksums verified."""
    try:
        envelope = msgpack.unpackb(path.read_bytes(), raw=False, strict_map_key=False)
    except (OSError, IsADirectoryError) as err:
        raise CheckpointError(f"{path} cannot be read: {err.strerror or err}") from None
    except Exception as err:  # msgpack raises several types (ExtraData, FormatError, ValueError, ...)
        raise _corrupt(path, f"not valid msgpack: {type(err).__name__}") from None
    if not isinstance(envelope, dict) or "format" not in envelope:
        raise _corrupt(path, "not a jax-lstm checkpoint")
    if envelope["format"] not in _READABLE:
        raise _corrupt(path, f"format {envelope['format']!r}, this version reads {' and '.join(_READABLE)}")
    payload, digest = envelope.get("payload"), envelope.get("sha256")
    if not isinstance(payload, bytes) or not isinstance(digest, str):
        raise _corrupt(path, "no payload or checksum")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise _corrupt(path, "its sha256 checksum does not match its contents")
    notes = envelope.get("annotations")
    if notes is not None:
        if (
            not isinstance(notes, bytes)
            or envelope.get("annotations_sha256") != hashlib.sha256(notes).hexdigest()
        ):
            raise _corrupt(path, "its annotations' sha256 checksum does not match them")
    return envelope


def _read_payload(path: Path) -> dict[str, Any]:
    """The verified payload of one checkpoint file (with its annotations under ``"annotations"``,
    {} when there are none); CheckpointError for anything else."""
    envelope = _read_envelope(path)
    payload = envelope["payload"]
    try:
        raw = serialization.msgpack_restore(payload)
    except Exception as err:
        raise _corrupt(path, f"unreadable payload: {type(err).__name__}") from None
    if not isinstance(raw, dict):
        raise _corrupt(path, "fields are missing")
    if envelope["format"] != FORMAT and {"plateau", "history"} <= set(raw):
        # One model in the previous format.
        raw = {
            **raw,
            "schedules": [raw["plateau"]],
            "histories": f"[{raw['history']}]",
            "seeds": "null",
            "selection": None,
            "ensembles": "[]",
        }
    fields = {"state", "schedules", "epoch", "histories", "ensembles", "seeds", "selection", "config", "data"}
    if not fields <= set(raw):
        raise _corrupt(path, "fields are missing")
    notes = envelope.get("annotations")
    try:
        annotations = {} if notes is None else json.loads(notes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _corrupt(path, "its annotations are not JSON") from None
    return {**raw, "annotations": annotations}


def read_description(directory: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the stored config's fields, the data description) of the checkpoint in `directory` (the
    previous one when the latest is missing or corrupt), without restoring its state: what a
    caller reads to know which model it holds before loading it."""
    path = _path(directory)
    previous = path.with_name(PREVIOUS_NAME) if path.name == CHECKPOINT_NAME else None
    candidates = [p for p in (path, previous) if p is not None and p.exists()]
    if not candidates:
        raise CheckpointError(f"no checkpoint at {path}: {_contents(path)}")
    error = None
    for candidate in candidates:
        try:
            raw = _read_payload(candidate)
            return json.loads(raw["config"]), json.loads(raw["data"])
        except CheckpointError as err:
            error = error or err
        except ValueError as err:
            error = error or _corrupt(candidate, f"its config or data description is not JSON: {err}")
    raise error


def annotate(directory: str | Path, name: str, value: Any) -> Path:
    """Adds (or replaces) the annotation `name` (JSON-ready `value`) in the latest checkpoint of
    `directory`, written atomically; its payload, and the previous checkpoint, stay as they are.
    Raises CheckpointError when there is no intact latest checkpoint to annotate."""
    path = _path(directory)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path} to annotate: {_contents(path)}")
    envelope = _read_envelope(path)
    notes = {} if envelope.get("annotations") is None else json.loads(envelope["annotations"].decode())
    notes[name] = value
    encoded = json.dumps(notes).encode("utf-8")
    envelope = {**envelope, "annotations": encoded, "annotations_sha256": hashlib.sha256(encoded).hexdigest()}
    write_atomically(path, msgpack.packb(envelope, use_bin_type=True))
    return path


def _load_file(path: Path, target: Target) -> Checkpoint:
    raw = _read_payload(path)
    try:
        data = json.loads(raw["data"])
        seeds = json.loads(raw["seeds"])
        config, template, schedule_state = target(json.loads(raw["config"]), data, seeds)
    except (TypeError, KeyError, ValueError, AttributeError) as err:
        raise _corrupt(path, f"its config or data description does not fit this version: {err}") from None
    try:
        state = _restore(template, raw["state"])
        selection = None
        if raw["selection"] is not None:
            kept = raw["selection"]
            selection = {
                "scores": json.loads(kept["scores"]),
                "epochs": json.loads(kept["epochs"]),
                "state": _restore(template, kept["state"]),
            }
        schedules = [schedule_state(**s) for s in raw["schedules"]]
        histories = [from_dicts(h) for h in json.loads(raw["histories"])]
        ensembles = [from_dicts(h) for h in json.loads(raw["ensembles"])]
        epoch = int(raw["epoch"])
        models = 1 if seeds is None else len(seeds)
        if len(schedules) != models or len(histories) != models:
            raise ValueError(f"{len(schedules)} schedules and {len(histories)} histories for {models} models")
    except (TypeError, KeyError, ValueError, AttributeError, IndexError) as err:
        raise _corrupt(path, f"its train state does not fit its config: {err}") from None
    return Checkpoint(
        path,
        state,
        schedules,
        epoch,
        histories,
        config,
        data,
        seeds,
        selection,
        ensembles,
        annotations=raw["annotations"],
    )


def _restore(template, saved) -> Any:
    """A stored train state in `template`'s structure, as device arrays of the exact saved dtypes
    (numpy arrays would be traced as a different signature and recompile the step); ValueError for
    an array of another shape or dtype than the template's."""
    state = jax.tree.map(jnp.asarray, serialization.from_state_dict(template, saved))
    for array, expected in zip(jax.tree.leaves(state), jax.tree.leaves(template), strict=True):
        if array.shape != expected.shape or array.dtype != expected.dtype:
            raise ValueError(
                f"an array of shape {array.shape} {array.dtype} where "
                f"{expected.shape} {expected.dtype} belongs"
            )
    return state


def load(directory: str | Path, target: Target, log: Callable[[str], None] | None = None) -> Checkpoint:
    """Reads a checkpoint written by `save` (a directory or the .msgpack file itself) into `target`'s
    structure (see `jax_lstm.training.load_checkpoint`, which supplies it), verifying its checksum.

    For a directory, a latest checkpoint that fails the check (or is missing after a crash between
    the two renames of a save) falls back to ``checkpoint.prev.msgpack``, saying so through `log`.

    Raises:
      CheckpointError: no checkpoint there (the message says what the directory holds), or the
        file (and its fallback) is corrupt or from an incompatible version.
    """
    path = _path(directory)
    previous = path.with_name(PREVIOUS_NAME) if path.name == CHECKPOINT_NAME else None
    if not path.exists() and (previous is None or not previous.exists()):
        raise CheckpointError(f"no checkpoint at {path}, so nothing to resume or load: {_contents(path)}")
    if not path.exists():
        loaded = _load_file(previous, target)
        if log:
            log(f"{path} is missing (a save was interrupted); using {previous} (epoch {loaded.epoch})")
        return loaded
    try:
        return _load_file(path, target)
    except CheckpointError as err:
        if previous is None or not previous.exists():
            raise
        try:
            loaded = _load_file(previous, target)
        except CheckpointError:
            raise err from None
        loaded.replaces = path
        if log:
            log(f"{err.args[0].split(';')[0]}; falling back to {previous} (epoch {loaded.epoch})")
        return loaded


def _contents(path: Path) -> str:
    """What a place without a checkpoint holds, for the error that says so."""
    where = path.parent if path.name in (CHECKPOINT_NAME, PREVIOUS_NAME) else path
    if not where.exists():
        return f"{where} does not exist"
    if not where.is_dir():
        return f"{where} is a file, not a checkpoint directory"
    # The run's own lock (dirlock: run.lock and its guard) is not what the user is asked about.
    names = sorted(p.name for p in where.iterdir() if p.name not in ("run.lock", ".run.lock.guard"))
    if not names:
        return f"{where} is empty"
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{where} holds no {CHECKPOINT_NAME} (it holds {shown})"
