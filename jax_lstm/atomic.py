"""Writing files so that a crash leaves either the old file or the new one, never a torn one.

Used for checkpoints (`jax_lstm.training.checkpoint`), metrics JSON (`jax_lstm.reporting`) and
torch_ref's checkpoints. Its own module so that none of them imports another for it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path: str | Path, payload: bytes) -> Path:
    """Writes `payload` to `path` so that a crash leaves either the old file or the new one.

    A temporary file in the same directory, flushed to disk, renamed over `path` (`os.replace`,
    atomic on POSIX and Windows), and the directory synced so the rename itself is durable. A
    failure (or interrupt) before the rename removes the temporary file.
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
