"""What runs print and write, and how they end: the log and progress bar, the one metrics-JSON
writer (one schema family for every run), and the one mapping from an expected failure to its exit
status and message (`exit_status`).

The metrics JSON of every run has ``task``, ``dataset``, ``config``, ``environment``, ``seconds``
and either one model's ``epochs`` (its `EpochRecord`s), ``selection`` (which epoch is reported and
why) and, for a classifier, ``test_accuracy``; or K models' ``models`` (each the same fields and
its ``seed``) with ``test_accuracy_mean``. A run that stopped early says why (``stopped``,
``diverged``); a forecast adds its test-period scores; ``torch`` and ``comparison`` hold the torch
twin's run when it was compared.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_DISAGREE",
    "EXIT_DIVERGED",
    "EXIT_INTERRUPTED",
    "EXIT_WRITE_FAILED",
    "RunError",
    "exit_status",
    "log_function",
    "model_record",
    "progress_factory",
    "run_record",
    "stopped_note",
    "training_failures",
    "write_metrics",
    "write_outputs",
]

# The documented exit codes (README, "Bad input").
EXIT_DISAGREE = 1  # a parity check or torch comparison that disagrees
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_WRITE_FAILED = 4  # an output could not be written, or a process of the run was lost
EXIT_INTERRUPTED = 130


class RunError(Exception):
    """An expected failure of a run: its one-line message and its exit status."""

    def __init__(self, message: str, status: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.status = status


def exit_status(err: BaseException) -> tuple[int, str] | None:
    """The exit status and message of an expected failure; None for anything else (a bug, which
    keeps its traceback)."""
    from jax_lstm.data import DataError
    from jax_lstm.training import CheckpointError, CheckpointWriteError, TrainingDivergedError
    from jax_lstm.training.parallel import ProcessLostError

    if isinstance(err, RunError):
        return err.status, str(err)
    if isinstance(err, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(err, TrainingDivergedError):
        return EXIT_DIVERGED, str(err)
    if isinstance(err, CheckpointWriteError | ProcessLostError):
        return EXIT_WRITE_FAILED, str(err)
    if isinstance(err, DataError | CheckpointError):
        return EXIT_BAD_INPUT, str(err)
    return None


def progress_factory() -> Callable[[int, int], Any] | None:
    """A tqdm bar over all training steps when stderr is a terminal; None (no bar) otherwise."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return lambda total, initial: tqdm(total=total, initial=initial, unit="step", leave=False)


def log_function(progress: Callable | None, prefix: str = "") -> Callable[[str], None]:
    """Prints a log line; through tqdm while a bar is drawn, so the bar stays at the bottom."""
    if progress is None:
        return lambda line: print(prefix + line, flush=True)
    from tqdm import tqdm

    return lambda line: tqdm.write(prefix + line)


def selection_record(config, result) -> dict[str, Any] | None:
    """Which epoch is reported and why (`TrainConfig.select`), for the metrics JSON."""
    if not result.history:
        return None
    if result.final is not None:
        epochs = [m.selected_epoch for m in result.members]
        why = f"the ensemble of its members, each at its own epoch by {config.select} ({epochs})"
        return {"rule": config.select, "epoch": None, "member_epochs": epochs, "why": why}
    why = {
        "last": "the last epoch",
        "validation": "the best on the validation split (accuracy, then loss)",
        "train-loss": "the lowest training loss",
    }[config.select]
    return {"rule": config.select, "epoch": result.reported.epoch, "why": why}


def epoch_records(history) -> list[dict[str, Any]]:
    """The epochs of a history for the metrics JSON: a value not measured (NaN: a forecaster's test
    loss per epoch, which is scored apart; an accuracy without labels) is written as null, so that
    the file is strict JSON and a NaN in it always means a diverged number."""

    def plain(value: Any) -> Any:
        return None if isinstance(value, float) and not math.isfinite(value) else value

    return [{k: plain(v) for k, v in record.as_dict().items()} for record in history]


def model_record(result, labelled: bool) -> dict[str, Any]:
    """One model's (or ensemble's) part of the metrics JSON: its seed, epochs, the reported one and
    why, its test accuracy; an ensemble's members, each the same."""
    record: dict[str, Any] = {
        "seed": result.config.seed,
        "epochs": epoch_records(result.history),
        "selected_epoch": result.selected_epoch,
        "selection": selection_record(result.config, result),
    }
    if labelled:
        record["test_accuracy"] = result.reported.test_accuracy if result.history else None
    if result.final is not None:
        record["final"] = epoch_records([result.final])[0]
    if result.members is not None:
        record["members"] = [model_record(m, labelled) for m in result.members]
    return record


def run_record(
    task: str,
    description: str,
    config,
    seconds: float,
    env: dict[str, Any],
    results: Sequence[Any],
    stacked: bool,
    stopped: str | None = None,
) -> dict[str, Any]:
    """The metrics JSON of a run: `results` holds a `FitResult` (or a stand-in with its fields: the
    epochs of a run that stopped) per model; one model's fields sit at the top level, K models'
    under ``models``."""
    labelled = task == "classification"
    record: dict[str, Any] = {
        "task": task,
        "dataset": description,
        "config": dataclasses.asdict(config),
        "environment": env,
        "seconds": seconds,
    }
    parts = [model_record(r, labelled) for r in results]
    if stacked:
        record["models"] = parts
        if labelled:
            accuracies = [p["test_accuracy"] for p in parts if p["test_accuracy"] is not None]
            record["test_accuracy_mean"] = sum(accuracies) / len(accuracies) if accuracies else None
    else:
        record.update(parts[0])
    if stopped is not None:
        record["stopped"] = stopped
        record["diverged"] = stopped == "diverged"
    return record


def write_metrics(path: str | Path | None, payload: dict[str, Any]) -> Path | None:
    """Writes the metrics JSON atomically, on process 0 only (None: nothing written)."""
    from jax_lstm import reporting
    from jax_lstm.training import parallel

    if path is None or not parallel.is_primary():
        return None
    return reporting.write_json(path, payload)


def write_outputs(
    metrics_json: str | Path | None,
    payload: dict[str, Any],
    plots: Sequence[tuple[str, Callable[[], Path]]] = (),
) -> None:
    """Writes the metrics JSON and draws the plots ((what, draw) pairs), on process 0 only, saying
    where each went; one that cannot be written is a RunError of status 4."""
    from jax_lstm.training import parallel

    try:
        written = write_metrics(metrics_json, payload)
        if written:
            print(f"metrics written to {written}")
        if parallel.is_primary():
            for what, draw in plots:
                print(f"{what} written to {draw()}")
    except OSError as err:
        raise RunError(
            f"could not write {err.filename or 'an output'}: {err.strerror or err}", EXIT_WRITE_FAILED
        ) from err


def stopped_note(checkpoint_dir: str | None, partial, short: bool = False) -> str:
    """What is on disk after a run stopped early, exactly: never a checkpoint that was not written."""
    if not checkpoint_dir:
        return ""
    epoch = None if partial is None else partial.checkpoint_epoch
    if short:
        return f"; last checkpoint at epoch {epoch}" if epoch is not None else "; no checkpoint was written"
    if epoch is None:
        return f" No checkpoint was written to {checkpoint_dir}."
    return f" The last good checkpoint (epoch {epoch}) is in {checkpoint_dir}."


@contextlib.contextmanager
def training_failures(
    checkpoint_dir: str | None, stopped: Callable[[Any, str], str] | None = None
) -> Iterator[None]:
    """Turns what training raises into RunErrors with their status and message: a diverged loss (3),
    an interrupt (130), a checkpoint that could not be written (4), resume's refusals (2).
    ``stopped(partial, why)`` writes what the run measured before it stopped and returns a note."""
    from jax_lstm.training import (
        CheckpointError,
        CheckpointWriteError,
        TrainingDivergedError,
        TrainingInterrupted,
    )

    def note(partial, why: str) -> str:
        return stopped(partial, why) if stopped is not None else ""

    try:
        yield
    except TrainingDivergedError as err:
        message = f"{err}{stopped_note(checkpoint_dir, err.partial)}"
        raise RunError(message + note(err.partial, "diverged"), EXIT_DIVERGED) from err
    except TrainingInterrupted as err:
        note(err.partial, "interrupted")
        where = stopped_note(checkpoint_dir, err.partial, short=True)
        raise RunError(f"interrupted at epoch {err.partial.epoch}{where}", EXIT_INTERRUPTED) from err
    except CheckpointWriteError as err:
        message = f"could not write the checkpoint in {checkpoint_dir}: {err.strerror or err}"
        message += stopped_note(checkpoint_dir, err.partial)
        raise RunError(message + note(err.partial, "write failed"), EXIT_WRITE_FAILED) from err
    except (ValueError, CheckpointError) as err:  # resume's refusals, before training
        raise RunError(str(err)) from err
