"""What every subcommand shares: the error path, log lines and the progress bar."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_DIVERGED",
    "EXIT_INTERRUPTED",
    "EXIT_WRITE_FAILED",
    "OutputPathError",
    "check_output_file",
    "fail",
    "log_function",
    "progress_factory",
]

# The documented exit codes (README, "Bad input"); 1 is a parity or torch comparison that disagrees.
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_WRITE_FAILED = 4
EXIT_INTERRUPTED = 130


class OutputPathError(ValueError):
    """An output path that cannot be written: refused before any work."""


def check_output_file(path: str | Path, flag: str, suffixes: tuple[str, ...]) -> Path:
    """Refuses, before any work, an output file path that is a directory, lies under a file, sits in
    a directory that is not writable, or lacks one of `suffixes` (the format that will be written)."""
    path = Path(path)
    if path.is_dir() or str(path).endswith(os.sep):
        example = path / f"out{suffixes[0]}"
        raise OutputPathError(f"{flag} {path} is a directory; give a file name, e.g. {example}")
    if path.suffix.lower() not in suffixes:
        raise OutputPathError(
            f"{flag} {path}: writes {suffixes[0][1:].upper()}, so the name must end in "
            f"{' or '.join(suffixes)} (e.g. {path.with_suffix(suffixes[0])})"
        )
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(f"{flag} {path} cannot be created: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputPathError(f"{flag} {path} cannot be written: {ancestor} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(f"{flag} {path} exists and is not writable")
    return path


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


def fail(message: str, status: int = EXIT_BAD_INPUT) -> int:
    """Prints ``jax-lstm: error: message`` to stderr and returns the exit status."""
    print(f"jax-lstm: error: {message}", file=sys.stderr)
    return status
