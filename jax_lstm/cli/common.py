"""What every subcommand shares: the error path, log lines and the progress bar."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = ["fail", "log_function", "progress_factory"]


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


def fail(message: str, status: int = 2) -> int:
    """Prints ``jax-lstm: error: message`` to stderr and returns the exit status."""
    print(f"jax-lstm: error: {message}", file=sys.stderr)
    return status
