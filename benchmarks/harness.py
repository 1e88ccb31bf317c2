"""Timing machinery: interleaved rounds, load monitoring, robust statistics, timed `fit` runs.

Both sides of a comparison are timed in the same process, round by round, alternating which goes
first, after a warm-up, each call synchronised by the callables themselves (`block_until_ready` for
JAX; for torch, `torch.cuda.synchronize` on a CUDA device, see `cases._synchronize`, while torch's
CPU ops are synchronous). Each round also records the CPU share taken by *other* processes (from /proc/stat
and this process's own CPU time); rounds where others took more than a threshold are dropped and
counted, because on shared machines another process can stall torch's OpenMP threads badly.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["LoadMonitor", "Timing", "calls_for", "interleaved", "measure", "time_first_call", "timed_fit"]


class LoadMonitor:
    """CPU share of other processes over an interval: (busy jiffies - our CPU time) / capacity."""

    def __init__(self) -> None:
        self._available = os.path.exists("/proc/stat")
        self._tick = os.sysconf("SC_CLK_TCK") if self._available else 100
        self._cpus = os.cpu_count() or 1

    def _snapshot(self) -> tuple[float, float, float]:
        wall = time.perf_counter()
        own = sum(os.times()[:2])  # user + system CPU seconds of this process (all threads)
        if not self._available:
            return wall, own, 0.0
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        busy = (sum(fields) - idle) / self._tick  # includes steal: time the VM did not get
        return wall, own, busy

    def start(self) -> tuple[float, float, float]:
        return self._snapshot()

    def others(self, start: tuple[float, float, float]) -> float:
        """Fraction of the machine (0..1) used by other processes since `start`."""
        wall0, own0, busy0 = start
        wall1, own1, busy1 = self._snapshot()
        if not self._available or wall1 <= wall0:
            return 0.0
        others = (busy1 - busy0) - (own1 - own0)
        return max(0.0, others / ((wall1 - wall0) * self._cpus))


@dataclasses.dataclass
class Timing:
    """Per-call seconds of the kept rounds of one implementation."""

    samples: list[float]
    dropped: int  # rounds discarded because other processes were busy
    others: list[float]  # other processes' CPU share in each kept round

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def minimum(self) -> float:
        return min(self.samples)

    def as_dict(self) -> dict:
        return {
            "median_s": self.median,
            "min_s": self.minimum,
            "rounds": len(self.samples),
            "dropped_rounds": self.dropped,
            "max_others_cpu_share": max(self.others) if self.others else 0.0,
        }


def time_first_call(fn: Callable[[], object]) -> float:
    """Seconds of the first call (for JAX: tracing and compilation plus one execution)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def calls_for(seconds: float) -> int:
    """Calls per round so that a round lasts about 0.2 s (at least one)."""
    return max(1, int(0.2 / max(seconds, 1e-6)))


def interleaved(
    fns: dict[str, Callable[[], object]],
    rounds: int,
    calls: int,
    warmup: int = 2,
    max_others: float = 0.10,
    max_extra_rounds: int | None = None,
) -> dict[str, Timing]:
    """Times each callable `calls` times per round for `rounds` kept rounds, interleaved.

    Each callable must block until its work is done. A round in which other processes used more
    than `max_others` of the machine is dropped and repeated, up to `max_extra_rounds` extra
    rounds (default: as many as `rounds`); after that the remaining disturbed rounds are kept and
    their load is reported.
    """
    monitor = LoadMonitor()
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    kept: dict[str, list[float]] = {n: [] for n in names}
    loads: dict[str, list[float]] = {n: [] for n in names}
    dropped = {n: 0 for n in names}
    budget = rounds if max_extra_rounds is None else max_extra_rounds
    attempt = 0
    while min(len(v) for v in kept.values()) < rounds:
        order = names if attempt % 2 == 0 else names[::-1]
        for name in order:
            if len(kept[name]) >= rounds:
                continue
            fn = fns[name]
            start_load = monitor.start()
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            seconds = (time.perf_counter() - start) / calls
            others = monitor.others(start_load)
            if others > max_others and dropped[name] < budget:
                dropped[name] += 1
                continue
            kept[name].append(seconds)
            loads[name].append(others)
        attempt += 1
    return {n: Timing(kept[n], dropped[n], loads[n]) for n in names}


def measure(fns: dict[str, Callable[[], object]], rounds: int) -> tuple[dict[str, Timing], dict[str, float]]:
    """Times `fns` interleaved after their first calls; returns (timings, compile seconds per JAX side).

    Sides whose name starts with "jax" have their first call timed (tracing, compilation and one
    execution); their compile estimate is that first call minus the median timed call (at least 0).
    The other sides get one untimed warm call. One more call of each probes how many calls make a
    round of about 0.2 s, then `interleaved` times `rounds` rounds.
    """
    first_call = {}
    for side, fn in fns.items():
        if side.startswith("jax"):
            first_call[side] = time_first_call(fn)
        else:
            fn()
    probe = time.perf_counter()
    for fn in fns.values():
        fn()
    timings = interleaved(fns, rounds, calls_for((time.perf_counter() - probe) / len(fns)))
    compile_s = {side: max(0.0, first - timings[side].median) for side, first in first_call.items()}
    return timings, compile_s


def timed_fit(config: Any, dataset: Any, variables: Any) -> dict[str, float]:
    """`jax_lstm.fit` timed: total seconds and a compile estimate, both wall-clock.

    The estimate is the fit's total time minus `epochs` times the median wall time of the epochs
    after the first, each epoch timed from one end-of-epoch log call to the next, so it includes
    the evaluation after each epoch: everything the first epoch pays on top of a later one (the
    train step's and the evaluation's compilation, plus the few milliseconds of building the train
    state and moving the data to the devices). `config.log_every` must be 0 (one log call per epoch).
    """
    from jax_lstm import training

    if config.log_every:
        raise ValueError("timed_fit needs config.log_every == 0: it times epochs by their log calls")
    marks: list[float] = []
    start = time.perf_counter()
    training.fit(config, dataset, variables=variables, log=lambda _line: marks.append(time.perf_counter()))
    seconds = time.perf_counter() - start
    if len(marks) != config.epochs:
        raise RuntimeError(f"expected one log call per epoch ({config.epochs}), got {len(marks)}")
    epochs = [b - a for a, b in zip([start, *marks[:-1]], marks, strict=True)]
    later = statistics.median(epochs[1:]) if len(epochs) > 1 else 0.0
    return {"seconds": seconds, "compile_s": max(0.0, seconds - config.epochs * later)}
