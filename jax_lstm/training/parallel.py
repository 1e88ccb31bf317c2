"""Data parallelism over the local devices: the mesh, the placement of batches and states, and the
compiled programs of a step (one over the whole mesh, one on a single device) chosen by explicit key.

On CPU, `jax-lstm` starts JAX with one host device per core (`jax_lstm.runtime.use_all_cores`): XLA
runs each program on one thread, and the recurrent matmuls of a small batch are too small to be
split inside one, so splitting the *batch* (or, for several models, the models) across host devices
is what puts every core to work.

Across processes (`jax_lstm.runtime.initialize_distributed`) the mesh is the global one, over the
devices of every process. Every process reads the whole dataset and draws the same global batches
from the seed; `place` then transfers to each process's devices only the rows they hold, and the
sharded step sums gradients across all devices, so the update is the single-process run's. In that
mode every batch runs on the mesh: one that splits into at least `MIN_ROWS_PER_DEVICE` rows per
device runs sharded, any other (a shorter last batch, a batch too small to split) runs replicated:
the whole batch on every device, each computing the same update, with no communication. Results
are read back with `fetch`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "DATA_AXIS",
    "MIN_ROWS_PER_DEVICE",
    "MODELS",
    "ROWS",
    "SHARED",
    "ProcessLostError",
    "Programs",
    "data_parallel_mesh",
    "fetch",
    "is_primary",
    "lost_process_error",
    "mesh_for",
    "multiprocess",
    "place",
]

DATA_AXIS = "data"

# Below this many rows per device, splitting a batch costs more (cross-device reduction, one more
# program) than it saves (measured in benchmarks/NOTES.md, "data parallelism").
MIN_ROWS_PER_DEVICE = 16

SINGLE, SHARDED = "single", "sharded"


def multiprocess() -> bool:
    """Whether this run spans several processes (`jax_lstm.runtime.initialize_distributed`)."""
    return jax.process_count() > 1


def is_primary() -> bool:
    """Whether this process writes the run's files (checkpoints, metrics, plots): process 0."""
    return jax.process_index() == 0


class ProcessLostError(RuntimeError):
    """A run of several processes lost contact with one of them (it died, was stopped, or the network
    failed); the other processes cannot go on."""


# How a collective or the coordination service reports a peer that is gone (Gloo on CPU, NCCL on
# GPU, JAX's coordination service); matched in lower case.
_LOST_CONTACT = (
    "gloo",
    "nccl",
    "connection closed",
    "connection reset",
    "heartbeat",
    "coordination service",
    "unavailable:",
    "deadline exceeded",
    "deadline_exceeded",
)


def lost_process_error(err: BaseException) -> ProcessLostError | None:
    """`err` as a `ProcessLostError` naming the lost process when it is a failed collective of a
    multi-process run; None for anything else (which keeps its own type and message)."""
    if not multiprocess():
        return None
    text = str(err).strip()
    if not any(marker in text.lower() for marker in _LOST_CONTACT):
        return None
    index, count = jax.process_index(), jax.process_count()
    # With two processes the lost one is known; with more, only JAX's coordination service knows,
    # and it names it in its own message when the heartbeat times out.
    who = f"process {1 - index}" if count == 2 else f"one of the other {count - 1} processes"
    first_line = text.splitlines()[0][:300] if text else type(err).__name__
    return ProcessLostError(
        f"process {index} lost contact with {who} ({first_line}): it died, was stopped or cannot be "
        "reached. Restart every process; with --checkpoint-dir and --resume training continues after "
        "the last saved epoch, on any number of processes"
    )


def data_parallel_mesh(devices=None) -> Mesh | None:
    """A 1-D mesh over the local devices, or over every process's devices in a multi-process run
    (None when there is only one)."""
    if devices is None:
        devices = jax.devices() if multiprocess() else jax.local_devices()
    devices = list(devices)
    if len(devices) < 2:
        return None
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def mesh_for(
    data_parallel: bool | None,
    batch_size: int,
    *,
    models: int | None = None,
    unsplittable: str | None = None,
) -> Mesh | None:
    """The mesh `fit` (or, with `models`, `fit_many`) splits its work over, or None for one device.

    ``data_parallel=None`` splits only where it pays; True insists, and says why when the work
    cannot be split. `unsplittable` is a reason the batch of one model cannot be split (e.g. BatchNorm
    statistics over micro-batches).
    """
    if multiprocess():
        return _multiprocess_mesh(data_parallel, models, unsplittable)
    mesh = data_parallel_mesh() if data_parallel in (None, True) else None
    if data_parallel and mesh is None:
        raise ValueError(
            "data_parallel=True needs more than one device; on CPU start Python with "
            "XLA_FLAGS=--xla_force_host_platform_device_count=<cores>"
        )
    if mesh is None:
        return None
    reason = None
    if models is not None and models % mesh.size:
        # Whole models per device, so the count must divide evenly.
        reason = f"{models} models do not divide over {mesh.size} devices"
    elif models is None:
        reason = unsplittable
    if reason:
        if data_parallel:
            raise ValueError(f"data_parallel=True cannot split this run: {reason}")
        return None
    if models is None and data_parallel is None and batch_size < MIN_ROWS_PER_DEVICE * mesh.size:
        # Too small to split: one device, with nothing replicated (a replicated program that does
        # not split its batch runs the whole step on every device).
        return None
    return mesh


def _multiprocess_mesh(data_parallel: bool | None, models: int | None, unsplittable: str | None) -> Mesh:
    """The global mesh of a multi-process run, or ValueError naming why this run cannot use it (each
    process holds only its devices' share, so there is no single-device fallback)."""
    mesh = data_parallel_mesh()
    processes = jax.process_count()
    if data_parallel is False:
        raise ValueError(
            f"data_parallel=False cannot run across {processes} processes: the work is split over "
            "the devices of all of them; run a single process instead"
        )
    if models is not None and models % mesh.size:
        raise ValueError(
            f"{models} models do not divide over the {mesh.size} devices of {processes} processes; "
            f"train a multiple of {mesh.size} seeds"
        )
    if models is None and unsplittable:
        raise ValueError(f"cannot train across {processes} processes: {unsplittable}")
    return mesh


def place(tree: Any, mesh: Mesh | None, split: bool) -> Any:
    """`tree` on the device, or over `mesh`: split along its leading axis, or replicated.

    Over a mesh of several processes every process passes the same whole (global) host value and
    each transfers only the rows (or the replica) its own devices hold.
    """
    if mesh is None:
        return jax.device_put(tree)
    return jax.device_put(tree, NamedSharding(mesh, P(DATA_AXIS) if split else P()))


def fetch(tree: Any) -> Any:
    """`tree` as host numpy arrays, whatever its placement: a value on this process's devices or
    replicated over a global mesh is copied from a local device; one split across processes (the
    models of `fit_many`) is gathered from all of them, so every process must call it at the same
    point."""
    from jax.experimental import multihost_utils

    def one(leaf):
        if not isinstance(leaf, jax.Array):
            return np.asarray(leaf)
        if leaf.is_fully_addressable or leaf.is_fully_replicated:
            return np.asarray(leaf)
        return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))

    return jax.tree.map(one, tree)


# How a step's batch lies against the mesh (`Programs.batch_layout`): one model's rows (split when
# the sharded program runs), K models' own batches (a leading model axis, split with the models), or
# one batch shared by K models (replicated beside the split models).
ROWS, MODELS, SHARED = "rows", "models", "shared"


class Programs:
    """The compiled programs of one step function: ``"sharded"`` (over the whole mesh) and
    ``"single"`` (undivided).

    ``run(first, batch)`` chooses the program for a host batch and places the batch for it (the
    loop's one call); ``programs(key, *args)`` runs one by explicit key (tests, benchmarks).
    `key_for(rows)` says which one a batch of `rows` leading rows runs: the sharded program when
    they split evenly into shards of at least `min_rows`, else the single one (e.g. a shorter last
    batch); K models always run sharded when there is a mesh (whole models per device).
    """

    def __init__(
        self,
        single: Callable,
        sharded: Callable | None = None,
        mesh: Mesh | None = None,
        min_rows: int = 1,
        batch_layout: str = ROWS,
    ):
        self._programs = {SINGLE: single} if sharded is None else {SINGLE: single, SHARDED: sharded}
        self.mesh = mesh if sharded is not None else None
        self.min_rows = min_rows
        self.batch_layout = batch_layout

    def key_for(self, rows: int) -> str:
        if self.mesh is None:
            return SINGLE
        if self.batch_layout != ROWS:
            return SHARDED
        shards = self.mesh.size
        return SHARDED if rows % shards == 0 and rows // shards >= self.min_rows else SINGLE

    def __call__(self, key: str, *args):
        return self._programs[key](*args)

    def run(self, first: Any, batch: Any) -> Any:
        """``program(first, batch)`` with the program chosen for the host `batch` (its leading rows,
        or its models) and the batch placed for it: split over the mesh (rows of one model, or the
        models' own batches) or, shared by K models, replicated."""
        key = self.key_for(len(batch.y) if self.batch_layout == ROWS else 0)
        split = self.batch_layout == MODELS or (self.batch_layout == ROWS and key == SHARDED)
        return self(key, first, place(batch, self.mesh, split=split))

    def compiled_programs(self, key: str | None = None) -> int:
        """How many programs have been compiled so far, for `key` or over both (a test of "no
        recompiles")."""
        # jax.jit's cache size is the one count of compiled signatures JAX keeps; read only here.
        chosen = self._programs.values() if key is None else [self._programs.get(key)]
        return sum(program._cache_size() for program in chosen if program is not None)
