"""Writing files so that a crash leaves either the old file or the new one, never a torn one.

Used for checkpoints (`jax_lstm.training.checkpoint`), metrics JSON (`jax_lstm.reporting`) and
torch_ref's checkpoints. Its own module so that none of them imports another for it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["check_can_create", "remove_stale_temporaries", "temporary_name", "write_atomically"]


def check_can_create(path: str | Path, what: str, directory: bool = False) -> Path:
    """Refuses, before any work, a `path` that could not be created or written: one under a file,
    or whose nearest existing directory (the path itself for an existing `directory`, else its
    nearest existing ancestor) is not writable. `what` names it in the message (e.g. "checkpoint
    directory runs/a", "--plot out.png"). Raises ValueError; returns the path."""
    path = Path(path)
    ancestor = path if directory else path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{what} cannot be created: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{what} cannot be written: {ancestor} is not writable")
    return path


def temporary_name(path: Path, pid: int | None = None) -> Path:
    """The temporary file `write_atomically` writes before renaming it to `path`."""
    return path.with_name(f".{path.name}.tmp-{os.getpid() if pid is None else pid}")


def write_atomically(path: str | Path, payload: bytes, keep_previous: str | Path | None = None) -> Path:
    """Writes `payload` to `path` so that a crash leaves either the old file or the new one.

    A temporary file in the same directory, flushed to disk, renamed over `path` (`os.replace`,
    atomic on POSIX and Windows), and the directory synced so the rename itself is durable. A
    failure (or interrupt) before the rename removes the temporary file.

    With `keep_previous`, an existing `path` is first renamed to it (after the new file is safely on
    disk), so the previous version survives beside the new one. A crash between the two renames
    leaves only `keep_previous`, which then holds the newest complete version.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)
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


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is not writing it now: it is starting
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Removes the temporary files an interrupted `write_atomically(path, ...)` left behind (those of
    processes no longer running); returns what was removed."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    prefix = f".{path.name}.tmp-"
    for leftover in path.parent.glob(f"{prefix}*"):
        pid = leftover.name[len(prefix) :]
        if pid.isdigit() and _alive(int(pid)):
            continue
        leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed
