"""Data parallelism over the local devices: the mesh, the placement of batches and states, and the
compiled programs of a step (one over the whole mesh, one on a single device) chosen by explicit key.

On CPU, `jax-lstm` starts JAX with one host device per core (`jax_lstm.runtime.use_all_cores`): XLA
runs each program on one thread, and the recurrent matmuls of a small batch are too small to be
split inside one, so splitting the *batch* (or, for several models, the models) across host devices
is what puts every core to work.
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
    "Programs",
    "data_parallel_mesh",
    "mesh_for",
    "place",
]

DATA_AXIS = "data"

# Below this many rows per device, splitting a batch costs more (cross-device reduction, one more
# program) than it saves (measured in benchmarks/NOTES.md, "data parallelism").
MIN_ROWS_PER_DEVICE = 16

SINGLE, SHARDED = "single", "sharded"


def data_parallel_mesh(devices=None) -> Mesh | None:
    """A 1-D mesh over the local devices (None when there is only one)."""
    devices = list(jax.local_devices() if devices is None else devices)
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


def place(tree: Any, mesh: Mesh | None, split: bool) -> Any:
    """`tree` on the device, or over `mesh`: split along its leading axis, or replicated."""
    if mesh is None:
        return jax.device_put(tree)
    return jax.device_put(tree, NamedSharding(mesh, P(DATA_AXIS) if split else P()))


class Programs:
    """The compiled programs of one step function, called by explicit key: ``"sharded"`` (over the
    whole mesh) or ``"single"`` (undivided).

    `key_for(rows)` says which one a batch of `rows` leading rows runs: the sharded program when
    they split evenly into shards of at least `min_rows`, else the single one (e.g. a shorter last
    batch).
    """

    def __init__(
        self,
        single: Callable,
        sharded: Callable | None = None,
        mesh: Mesh | None = None,
        min_rows: int = 1,
    ):
        self._programs = {SINGLE: single} if sharded is None else {SINGLE: single, SHARDED: sharded}
        self.mesh = mesh if sharded is not None else None
        self.min_rows = min_rows

    def key_for(self, rows: int) -> str:
        if self.mesh is None:
            return SINGLE
        shards = self.mesh.size
        return SHARDED if rows % shards == 0 and rows // shards >= self.min_rows else SINGLE

    def __call__(self, key: str, *args):
        return self._programs[key](*args)

    def compiled_programs(self, key: str | None = None) -> int:
        """How many programs have been compiled so far, for `key` or over both (a test of "no
        recompiles")."""
        # jax.jit's cache size is the one count of compiled signatures JAX keeps; read only here.
        chosen = self._programs.values() if key is None else [self._programs.get(key)]
        return sum(program._cache_size() for program in chosen if program is not None)
