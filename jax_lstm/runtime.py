"""Process-wide set-up for library users and the command line: host devices and the compile cache.

Both must run before anything starts JAX's backend (the first array, `jax.devices()`, a jitted call).
"""

from __future__ import annotations

import os

__all__ = ["enable_compilation_cache", "use_all_cores"]


def use_all_cores(max_devices: int = 8) -> None:
    """Starts JAX's CPU backend with one device per core (at most `max_devices`), unless XLA_FLAGS
    already says how many.

    XLA runs a program on one thread; with several host devices, `jax_lstm.fit` splits each batch
    (and `fit_many` the models) across them. Must run before JAX initialises its backend; it changes
    nothing on a GPU.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    count = max(1, min(os.cpu_count() or 1, max_devices))
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def enable_compilation_cache(path: str | None = None) -> str:
    """Keeps compiled XLA programs on disk (JAX's persistent compilation cache), so that a later run
    of the same configuration skips most of its compile time (measured in `benchmarks/NOTES.md`).

    Location: `path`, $JAX_LSTM_CACHE, or ~/.cache/jax-lstm/xla. Returns the directory used.
    """
    import jax

    default = os.path.join(os.path.expanduser("~"), ".cache", "jax-lstm", "xla")
    path = path or os.environ.get("JAX_LSTM_CACHE") or default
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    return path
