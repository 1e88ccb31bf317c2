"""Process-wide set-up for library users and the command line: host devices, the compile cache and
joining a run of several processes (`initialize_distributed`).

All must run before anything starts JAX's backend (the first array, `jax.devices()`, a jitted call).
"""

from __future__ import annotations

import os
import socket
import time

__all__ = [
    "DEFAULT_DISTRIBUTED_TIMEOUT_S",
    "check_distributed_arguments",
    "enable_compilation_cache",
    "initialize_distributed",
    "parse_coordinator",
    "use_all_cores",
]

# Long enough for a slow start of a node, short enough that a lost process is noticed in about a
# minute rather than JAX's default of 100 s (heartbeats) and 300 s (joining).
DEFAULT_DISTRIBUTED_TIMEOUT_S = 60


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


def parse_coordinator(address: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``[v6]:PORT`` for an IPv6 address) -> (host, port); ValueError naming the fix
    for anything else."""
    host, sep, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"--coordinator must be HOST:PORT with a port in 1-65535 (e.g. 127.0.0.1:12345 or "
            f"node001:12345), got {address!r}"
        )
    return host, int(port)


def check_distributed_arguments(
    coordinator: str | None, num_processes: int | None, process_id: int | None, timeout_s: float
) -> None:
    """Refuses an incomplete or impossible set of joining arguments (ValueError), touching nothing.

    Either all of `coordinator`, `num_processes` and `process_id` are given, or none (then JAX
    detects them: SLURM, Open MPI, TPU).
    """
    given = [coordinator is not None, num_processes is not None, process_id is not None]
    if any(given) and not all(given):
        raise ValueError(
            "--coordinator, --num-processes and --process-id go together: pass all three (or none, "
            "to let JAX detect them under SLURM or Open MPI)"
        )
    if coordinator is not None:
        parse_coordinator(coordinator)
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"--num-processes must be at least 1, got {num_processes}")
    if process_id is not None and not 0 <= process_id < num_processes:
        raise ValueError(
            f"--process-id must be in 0..{num_processes - 1} for {num_processes} processes, got {process_id}"
        )
    if not timeout_s > 0:
        raise ValueError(f"the distributed timeout must be positive (seconds), got {timeout_s}")


def _wait_for_coordinator(coordinator: str, timeout_s: float, process_id: int) -> None:
    """Waits until the coordinator's port accepts connections, or raises ConnectionError.

    JAX itself aborts the whole process (SIGABRT, a C++ stack trace) when it cannot register with
    the coordinator; probing first turns the common mistakes (wrong address, process 0 not started,
    a firewall) into a clear error.
    """
    host, port = parse_coordinator(coordinator)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(5.0, timeout_s)):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise ConnectionError(
                    f"process {process_id} could not reach the coordinator at {coordinator} within "
                    f"{timeout_s:g} s ({err}); start process 0 first with the same --coordinator, and "
                    "check the address and that the port is open between the machines"
                ) from err
            time.sleep(0.25)


def initialize_distributed(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    timeout_s: float = DEFAULT_DISTRIBUTED_TIMEOUT_S,
) -> tuple[int, int]:
    """Joins a run of several processes (`jax.distributed.initialize`); returns (process index,
    process count).

    With no arguments JAX detects the cluster (SLURM, Open MPI, TPU); otherwise give all three:
    `coordinator` ``"HOST:PORT"`` (where process 0 serves the coordination service), the number of
    processes and this one's id. `timeout_s` bounds joining (every process must arrive within it),
    the heartbeat (a process silent this long is declared dead, and the others are terminated
    instead of hanging in a collective) and the shutdown barrier. On CPU the collectives go through
    Gloo (TCP); on GPU through NCCL, which needs nothing set here.

    After it, `jax.devices()` lists the devices of every process; `jax_lstm.fit` then splits its
    batches over all of them (see `jax_lstm.training.parallel`). A single process (`num_processes`
    1) joins nothing. Must run before JAX's backend starts.
    """
    check_distributed_arguments(coordinator, num_processes, process_id, timeout_s)
    import jax

    if num_processes == 1:
        return 0, 1
    # Without it, CPU devices of different processes cannot run a collective at all.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if coordinator is not None and process_id:
        _wait_for_coordinator(coordinator, timeout_s, process_id)
    seconds = max(1, round(timeout_s))
    jax.distributed.initialize(
        coordinator,
        num_processes,
        process_id,
        initialization_timeout=seconds,
        heartbeat_timeout_seconds=seconds,
        shutdown_timeout_seconds=seconds,
    )
    return jax.process_index(), jax.process_count()
