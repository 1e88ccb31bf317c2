"""The train and eval steps: pure functions ``step(state, batch) -> (state, metrics)``, and the one
factory that jits them (over the mesh and undivided) into `Programs`. The loss and the evaluation
sums are the model's task's (`jax_lstm.training.tasks`; classification unless told otherwise).

A `Batch` holds the rows of one mini-batch (gathered on the host from the shuffled order and placed
on the devices: split over the mesh, or replicated). With K models trained at once (`fit_many`),
every leaf of the state and of the batch has a leading model axis; the models run one after another
inside one program (`lax.map`), and over a mesh each device takes whole models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jax_lstm.data import micro_batch_bounds
from jax_lstm.training.parallel import DATA_AXIS, MIN_ROWS_PER_DEVICE, MODELS, ROWS, SHARED, Programs
from jax_lstm.training.state import TrainState, model_variables
from jax_lstm.training.tasks import CLASSIFICATION, Task, cross_entropy
from jax_lstm.training.tasks import classification_sums as eval_sums

__all__ = [
    "Batch",
    "cross_entropy",
    "eval_sums",
    "make_eval_step",
    "make_forward",
    "make_train_step",
]


class Batch(struct.PyTreeNode):
    """One mini-batch: x (B, T, F), y (B,) labels (or the task's targets, e.g. (B, H, T) values),
    lengths (B,) valid lengths or None (full length). With K models: (K, B, T, F), (K, B), (K, B)."""

    x: jax.Array
    y: jax.Array
    lengths: jax.Array | None = None


def _over_models(fn: Callable, shared_batch: bool = False) -> Callable:
    """Applies ``fn(state_or_variables, batch)`` to each model of a stack, one model after another,
    inside one program. `lax.map` rather than `jax.vmap`: vmapping made every recurrent matmul a
    batched one whose weights no longer stay in cache, and every convolution a grouped one, slower
    than K separate ones (benchmarks/NOTES.md, "several models", "Convolutions inside loops"). A
    convolution inside the loop is fast only in the form `jax_lstm.nn.conv1d` writes it in."""

    def mapped(stacked, batch):
        if shared_batch:
            return jax.lax.map(lambda item: fn(item, batch), stacked)
        return jax.lax.map(lambda item: fn(*item), (stacked, batch))

    return mapped


def _loss_and_grads(model: nn.Module, task: Task) -> Callable:
    def loss_fn(params, batch_stats, xb, yb, lb, key):
        variables = model_variables(params, batch_stats)
        rngs = {"dropout": key}
        if batch_stats:
            logits, updates = model.apply(
                variables, xb, train=True, lengths=lb, rngs=rngs, mutable=["batch_stats"]
            )
            batch_stats = updates["batch_stats"]
        else:
            logits = model.apply(variables, xb, train=True, lengths=lb, rngs=rngs)
        return task.loss(logits, yb), batch_stats

    return jax.value_and_grad(loss_fn, has_aux=True)


def train_step_fn(
    model: nn.Module,
    tx: optax.GradientTransformation,
    accumulate: int = 1,
    shards: int = 1,
    axis_name: str | None = None,
    task: Task = CLASSIFICATION,
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]:
    """The pure train step ``step(state, batch) -> (state, {"loss": ()})``.

    With ``accumulate = k`` the batch is split into k micro-batches whose gradients are summed,
    weighted by their share of the batch, before one update: the same update as the whole batch
    for models without BatchNorm (a BN model normalises each micro-batch with its own statistics, as
    torch would). Inside a `shard_map` over `axis_name` with `shards` devices, each device holds its
    rows of the batch and the gradients (and BatchNorm's statistics, through the model's
    `axis_name`) are summed across them, so the update is the whole batch's.
    """
    grad_fn = _loss_and_grads(model, task)

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
        key, dropout_key = jax.random.split(state.key)
        if axis_name is not None:  # each shard draws its own dropout masks
            dropout_key = jax.random.fold_in(dropout_key, jax.lax.axis_index(axis_name))
        rows = batch.y.shape[0]
        total = rows * shards  # the whole batch, across shards
        batch_stats = state.batch_stats
        loss = grads = None
        for j, (lo, hi) in enumerate(micro_batch_bounds(rows, accumulate)):
            weight = (hi - lo) / total
            (micro_loss, batch_stats), micro_grads = grad_fn(
                state.params,
                batch_stats,
                batch.x[lo:hi],
                batch.y[lo:hi],
                None if batch.lengths is None else batch.lengths[lo:hi],
                jax.random.fold_in(dropout_key, j),
            )
            micro_grads = jax.tree.map(lambda g, w=weight: g * w, micro_grads)
            grads = micro_grads if grads is None else jax.tree.map(jnp.add, grads, micro_grads)
            loss = micro_loss * weight if loss is None else loss + micro_loss * weight
        if axis_name is not None:
            grads, loss = jax.lax.psum((grads, loss), axis_name)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(
            step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state, key=key
        )
        return new_state, {"loss": loss}

    return step


def make_train_step(
    model: nn.Module,
    tx: optax.GradientTransformation,
    accumulate: int = 1,
    many: bool = False,
    mesh: Mesh | None = None,
    task: Task = CLASSIFICATION,
) -> Programs:
    """The jitted train step as `Programs`: ``programs(key, state, batch) -> (state, metrics)``.

    With ``many=True`` it trains K models in one program (leading model axis on the state and the
    batch; the loss comes back as (K,)). With a `mesh` (`parallel.data_parallel_mesh`) the work is
    split over its devices: the batch of one model, or whole models (``many``).
    """
    single = train_step_fn(model, tx, accumulate, task=task)
    if many:
        single = _over_models(single)
    fallback = jax.jit(single)
    layout = MODELS if many else ROWS
    if mesh is None or mesh.size < 2:
        return Programs(fallback, batch_layout=layout)
    if many:
        # Whole models per device: no communication at all. (check_vma=False: the scan carries
        # start replicated and become per-device, which the type check rejects; the parity
        # tests compare these programs with the single-device ones.)
        sharded = jax.shard_map(
            single, mesh=mesh, in_specs=(P(DATA_AXIS), P(DATA_AXIS)), out_specs=P(DATA_AXIS), check_vma=False
        )
        return Programs(fallback, jax.jit(sharded), mesh, batch_layout=MODELS)
    split_model = model.clone(axis_name=DATA_AXIS) if hasattr(model, "axis_name") else model
    step = train_step_fn(split_model, tx, accumulate, mesh.size, DATA_AXIS, task)
    sharded = jax.shard_map(step, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=P(), check_vma=False)
    return Programs(fallback, jax.jit(sharded), mesh, MIN_ROWS_PER_DEVICE)


def eval_step_fn(
    model: nn.Module, task: Task = CLASSIFICATION
) -> Callable[[dict[str, Any], Batch], dict[str, jax.Array]]:
    """The pure eval step ``eval(variables, batch) -> the task's sums`` (classification: {"loss":
    summed loss, "correct": count})."""

    def eval_step(variables: dict[str, Any], batch: Batch) -> dict[str, jax.Array]:
        logits = model.apply(variables, batch.x, train=False, lengths=batch.lengths)
        return task.eval_sums(logits, batch.y)

    return eval_step


def _ensemble_eval(model: nn.Module, task: Task, ensemble: int) -> tuple[Callable, Callable]:
    """K groups of `ensemble` members: the mapped step (each model's sums and outputs) and what turns
    its result into every model's sums plus each group's (``"ensemble_<sum>"``, (K,)) combined."""

    def with_outputs(variables: dict[str, Any], batch: Batch):
        outputs = model.apply(variables, batch.x, train=False, lengths=batch.lengths)
        return task.eval_sums(outputs, batch.y), outputs

    def combine(result, batch: Batch) -> dict[str, jax.Array]:
        sums, outputs = result  # (M,) each; (M, B, ...)
        groups = outputs.reshape(outputs.shape[0] // ensemble, ensemble, *outputs.shape[1:])
        combined = jax.vmap(lambda members: task.ensemble_sums(members, batch.y))(groups)
        return {**sums, **{f"ensemble_{name}": value for name, value in combined.items()}}

    return _over_models(with_outputs, shared_batch=True), combine


def make_eval_step(
    model: nn.Module,
    many: bool = False,
    mesh: Mesh | None = None,
    task: Task = CLASSIFICATION,
    ensemble: int = 1,
) -> Programs:
    """The jitted eval step as `Programs`: ``programs(key, variables, batch) -> sums`` (eval mode).

    With ``many=True`` the variables carry a leading model axis, the batch is shared, and each sum
    is (K,). With ``ensemble=E > 1`` the models are groups of E members, and the sums also hold each
    group's ``"ensemble_<sum>"`` (K / E,) for its members' combined prediction
    (`Task.ensemble_sums`). With a `mesh`, the chunk of data (one model) or the models (``many``)
    are split.
    """
    eval_step = eval_step_fn(model, task)
    if many:
        if ensemble > 1:
            mapped, combine = _ensemble_eval(model, task, ensemble)
        else:
            mapped, combine = _over_models(eval_step, shared_batch=True), lambda sums, batch: sums
        fallback = jax.jit(lambda stacked, batch: combine(mapped(stacked, batch), batch))
        if mesh is None or mesh.size < 2:
            return Programs(fallback, batch_layout=SHARED)
        split = jax.shard_map(
            mapped, mesh=mesh, in_specs=(P(DATA_AXIS), P()), out_specs=P(DATA_AXIS), check_vma=False
        )
        # An ensemble's combination reads every member's outputs: outside the per-device programs.
        sharded = jax.jit(lambda stacked, batch: combine(split(stacked, batch), batch))
        return Programs(fallback, sharded, mesh, batch_layout=SHARED)
    fallback = jax.jit(eval_step)
    if mesh is None or mesh.size < 2:
        return Programs(fallback)

    def split_eval(variables, batch):
        return jax.lax.psum(eval_step(variables, batch), DATA_AXIS)

    sharded = jax.shard_map(
        split_eval, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=P(), check_vma=False
    )
    return Programs(fallback, jax.jit(sharded), mesh, MIN_ROWS_PER_DEVICE)


def make_forward(model: nn.Module, mesh: Mesh | None = None) -> Callable[..., jax.Array]:
    """A jitted eval-mode ``forward(variables, x, lengths=None) -> logits``, the batch split over
    `mesh` when it divides evenly (see `parallel.data_parallel_mesh`)."""

    def forward(variables, x, lengths=None):
        return model.apply(variables, x, train=False, lengths=lengths)

    fallback = jax.jit(forward)
    if mesh is None or mesh.size < 2:
        programs = Programs(fallback)
    else:
        specs = (P(), P(DATA_AXIS), P(DATA_AXIS))
        sharded = jax.shard_map(forward, mesh=mesh, in_specs=specs, out_specs=P(DATA_AXIS), check_vma=False)
        programs = Programs(fallback, jax.jit(sharded), mesh, MIN_ROWS_PER_DEVICE)

    def call(variables, x, lengths=None):
        return programs(programs.key_for(x.shape[0]), variables, x, lengths)

    call.programs = programs  # type: ignore[attr-defined]
    return call
