"""CosineAnnealingLR, LinearLR and the warm-up + cosine SequentialLR against torch: learning-rate traces
equal with == over argument grids, the states torch's bookkeeping, the refusals, and
`torch_ref.schedules.torch_scheduler` building the twin of each `jax_lstm.optim.schedule`."""

from __future__ import annotations

import itertools
import json
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler

from jax_lstm import optim
from torch_ref.schedules import step_scheduler, torch_scheduler

LRS = [1e-3, 0.1, 3e-4]
T_MAXES = [1, 2, 7, 50, 200]
ETA_MINS = [0.0, 1e-5, 1e-4]
WARMUPS = [1, 3, 5]
START_FACTORS = [0.1, 1 / 3, 0.01]


def _optimizer(lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def _lr(optimizer: torch.optim.Optimizer) -> float:
    return optimizer.param_groups[0]["lr"]


def torch_trace(build, lr: float, epochs: int, metrics=None):
    """The lr torch's optimizer holds after building the scheduler and after each of `epochs` steps,
    and the scheduler. Any torch warning fails the test: it would mean torch was driven unlike a
    training loop drives it."""
    optimizer = _optimizer(lr)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler = build(optimizer)
        lrs = [_lr(optimizer)]
        for epoch in range(epochs):
            optimizer.step()  # no gradients, so nothing moves; torch wants it before the scheduler's step
            step_scheduler(scheduler, None if metrics is None else metrics[epoch])
            lrs.append(_lr(optimizer))
    return lrs, scheduler


def jax_trace(schedule: optim.Schedule, lr: float, epochs: int, metrics=None):
    """The same from ``init`` and `epochs` ``update`` calls, as the training loop makes them."""
    state = schedule.init(lr)
    lrs = [state.lr]
    for epoch in range(epochs):
        state = schedule.update(state, 0.5 if metrics is None else metrics[epoch])
        lrs.append(state.lr)
    return lrs, state


def _cosine(T_max, eta_min):  # noqa: N803
    return lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=T_max, eta_min=eta_min)


def _warmup_cosine(warmup, start_factor, T_max, eta_min, end_factor=1.0, total_iters=None):  # noqa: N803
    """Warm-up then cosine exactly as torch users write it."""

    def build(opt):
        warm = lr_scheduler.LinearLR(
            opt, start_factor=start_factor, end_factor=end_factor, total_iters=total_iters or warmup
        )
        cosine = lr_scheduler.CosineAnnealingLR(opt, T_max=T_max, eta_min=eta_min)
        return lr_scheduler.SequentialLR(opt, [warm, cosine], milestones=[warmup])

    return build


# --- CosineAnnealingLR ------------------------------------------------------------------------------


@pytest.mark.parametrize("T_max", T_MAXES)
def test_cosine_trace_equals_torch_over_the_grid(T_max):  # noqa: N803
    """lr in LRS x eta_min in ETA_MINS, 3 T_max + 5 epochs: down to eta_min, back up to lr0 at 2 T_max
    and down again, through every branch of torch's recursion (the add at (epoch - 1 - T_max) % 2 T_max
    == 0 twice)."""
    epochs = 3 * T_max + 5
    for lr, eta_min in itertools.product(LRS, ETA_MINS):
        expected, scheduler = torch_trace(_cosine(T_max, eta_min), lr, epochs)
        actual, state = jax_trace(optim.cosine_annealing(T_max, eta_min), lr, epochs)
        assert actual == expected, (lr, eta_min)
        assert all(type(x) is float for x in actual)
        assert state == (_lr(scheduler.optimizer), scheduler.base_lrs[0], scheduler.last_epoch)
        # The shape the grid is meant to cover: the trough at T_max, the peak at 2 T_max, the rise between.
        assert actual[T_max] == pytest.approx(eta_min, abs=1e-15)
        assert actual[2 * T_max] == pytest.approx(lr, rel=1e-9)
        assert actual[T_max + 1] > actual[T_max]


def test_the_cosine_grid_tells_torchs_recursion_from_the_closed_form():
    """torch's recursive lrs are not the closed form's on this grid (so an implementation of the
    closed form fails the trace test above) for every T_max above 1 (at T_max = 1 every value is
    eta_min or lr0 - eta_min + eta_min either way)."""
    for T_max in T_MAXES:  # noqa: N806
        differences = 0
        for lr, eta_min in itertools.product(LRS, ETA_MINS):
            trace, _ = jax_trace(optim.cosine_annealing(T_max, eta_min), lr, 3 * T_max + 5)
            closed = [
                eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t / T_max)) / 2 for t in range(len(trace))
            ]
            assert trace == pytest.approx(closed, rel=1e-9, abs=1e-15)
            differences += sum(a != b for a, b in zip(trace, closed, strict=True))
        assert (differences > 0) == (T_max > 1), T_max


# --- LinearLR -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("total_iters", [1, 3, 5])
def test_linear_lr_trace_equals_torch(total_iters):
    """Warming up (end_factor 1) and decaying (end_factor below start_factor), and past total_iters."""
    differs_from_closed_form = 0
    for lr, start, end in itertools.product(LRS, [*START_FACTORS, 1.0], [1.0, 0.5, 0.0]):
        build = lambda opt: lr_scheduler.LinearLR(opt, start, end, total_iters)  # noqa: B023, E731
        expected, scheduler = torch_trace(build, lr, total_iters + 5)
        actual, state = jax_trace(optim.linear_lr(start, end, total_iters), lr, total_iters + 5)
        assert actual == expected, (lr, start, end)
        assert state == (_lr(scheduler.optimizer), scheduler.last_epoch)
        closed = [
            lr * (start + (end - start) * min(t, total_iters) / total_iters) for t in range(len(actual))
        ]
        assert actual == pytest.approx(closed, rel=1e-12, abs=1e-15 * lr)  # end 0: rounding near 0
        differs_from_closed_form += actual != closed
    assert differs_from_closed_form > 0


# --- SequentialLR(LinearLR, CosineAnnealingLR) -------------------------------------------------------


@pytest.mark.parametrize("start_factor", START_FACTORS, ids=["0.1", "1/3", "0.01"])
@pytest.mark.parametrize("warmup", WARMUPS)
def test_warmup_cosine_trace_equals_torch(warmup, start_factor):
    """Each warm-up length and start factor against cosines of T_max 1, 2, 7, 50, one (lr, eta_min)
    pair each, stepped through the milestone, the trough, the climb and the second trough. The last
    pair is one where the milestone's ``eta_min + (lr - eta_min)`` is not lr (so taking lr there fails)."""
    pairs = [*zip(LRS, ETA_MINS, strict=True), (0.3, 0.03)]
    assert 0.03 + (0.3 - 0.03) != 0.3
    for T_max, (lr, eta_min) in zip([1, 2, 7, 50], pairs, strict=True):  # noqa: N806
        epochs = warmup + 3 * T_max + 5
        expected, scheduler = torch_trace(_warmup_cosine(warmup, start_factor, T_max, eta_min), lr, epochs)
        schedule = optim.warmup_cosine(warmup, T_max, eta_min, start_factor=start_factor)
        actual, state = jax_trace(schedule, lr, epochs)
        assert actual == expected, (T_max, lr, eta_min)
        assert state == (_lr(scheduler.optimizer), scheduler._schedulers[1].base_lrs[0], scheduler.last_epoch)
        # SequentialLR's quirk at the milestone: the cosine's closed form at 0, from the initial lr,
        # after LinearLR stopped one step short of it.
        assert actual[0] == lr * start_factor
        assert actual[warmup] == eta_min + (lr - eta_min)
        assert actual[warmup - 1] == pytest.approx(
            lr * (start_factor + (1 - start_factor) * (warmup - 1) / warmup)
        )


@pytest.mark.parametrize(
    "warmup, total_iters, end_factor",
    [(3, 1, 1.0), (3, 2, 1.0), (3, 6, 1.0), (5, 5, 0.5), (1, 4, 0.8)],
    ids=["total_below", "total_one_below", "total_beyond", "end_half", "one_epoch_warmup"],
)
def test_warmup_cosine_with_its_own_linear_arguments_equals_torch(warmup, total_iters, end_factor):
    for T_max, eta_min in [(2, 0.0), (7, 1e-4)]:  # noqa: N806
        epochs = warmup + 3 * T_max + 5
        build = _warmup_cosine(warmup, 0.1, T_max, eta_min, end_factor, total_iters)
        expected, _ = torch_trace(build, 0.1, epochs)
        schedule = optim.warmup_cosine(warmup, T_max, eta_min, 0.1, end_factor, total_iters)
        assert jax_trace(schedule, 0.1, epochs)[0] == expected


def test_warmup_cosine_state_derives_torchs_inner_epochs():
    """The inner schedulers' last_epoch, which the state does not store, follow from its own as its
    docstring says: LinearLR's stops at warmup - 1, CosineAnnealingLR's is last_epoch - warmup."""
    warmup, T_max = 3, 4  # noqa: N806
    optimizer = _optimizer(0.1)
    scheduler = _warmup_cosine(warmup, 0.1, T_max, 0.0)(optimizer)
    schedule = optim.warmup_cosine(warmup, T_max, 0.0, start_factor=0.1)
    state = schedule.init(0.1)
    for epoch in range(1, 12):
        optimizer.step()
        scheduler.step()
        state = schedule.update(state)
        linear, cosine = scheduler._schedulers
        assert state.last_epoch == scheduler.last_epoch == epoch
        assert linear.last_epoch == min(epoch, warmup - 1)
        assert cosine.last_epoch == (epoch - warmup if epoch >= warmup else -1)


# --- cosine_schedule, the loop's constructor ------------------------------------------------------------


@pytest.mark.parametrize("epochs, warmup", [(1, 0), (2, 0), (2, 1), (10, 0), (10, 3), (30, 5), (6, 5)])
def test_cosine_schedule_is_torchs_cosine_or_warmup_cosine(epochs, warmup):
    for lr, eta_min, start in [(1e-3, 0.0, 1 / 3), (0.1, 1e-5, 0.1), (3e-4, 1e-4, 0.01)]:
        if warmup:
            build = _warmup_cosine(warmup, start, epochs - warmup, eta_min)
        else:
            build = _cosine(epochs, eta_min)
        expected, _ = torch_trace(build, lr, epochs + 3)
        schedule = optim.cosine_schedule(epochs, warmup, eta_min, warmup_start_factor=start)
        actual, _ = jax_trace(schedule, lr, epochs + 3)
        assert actual == expected
        assert actual[epochs] == pytest.approx(eta_min, abs=1e-15)  # reached after the last epoch


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    epochs=st.integers(1, 40),
    warmup_share=st.floats(0, 0.99),
    eta_min=st.sampled_from([0.0, 1e-6, 1e-5, 3e-4]),
    start=st.sampled_from([1.0, 0.5, 0.2, 1 / 3, 0.05, 1e-3]),
    lr=st.sampled_from([1e-3, 0.1, 3e-4, 1.0, 2e-2]),
)
def test_cosine_schedule_random_arguments_equal_torch(epochs, warmup_share, eta_min, start, lr):
    warmup = int(warmup_share * epochs)
    args = dict(epochs=epochs, warmup_epochs=warmup, eta_min=eta_min, warmup_start_factor=start)
    expected, _ = torch_trace(lambda opt: torch_scheduler(opt, "cosine", **args), lr, 2 * epochs + 3)
    assert jax_trace(optim.schedule("cosine", **args), lr, 2 * epochs + 3)[0] == expected


# --- states and the loop's interface --------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule, state_type, fields",
    [
        (optim.cosine_annealing(5, 1e-5), optim.CosineState, ("lr", "base_lr", "last_epoch")),
        (optim.linear_lr(0.1, 1.0, 3), optim.LinearState, ("lr", "last_epoch")),
        (optim.warmup_cosine(2, 5, 1e-5, 0.1), optim.WarmupCosineState, ("lr", "base_lr", "last_epoch")),
        (optim.reduce_lr_on_plateau(patience=0), optim.PlateauState, optim.PlateauState._fields),
    ],
    ids=["cosine", "linear", "warmup_cosine", "plateau"],
)
def test_states_are_python_numbers_that_survive_json_and_resume(schedule, state_type, fields):
    """Any schedule is held and stepped the same way; its state is a NamedTuple of Python floats and
    ints (the lr and last_epoch every loop reads), which a JSON checkpoint carries and resumes
    exactly."""
    assert isinstance(schedule, optim.Schedule)
    metrics = [1.0, 1.0, 0.5, 0.5, 0.5, 0.4, 0.4, 0.4, 0.4, 0.4]
    full, _ = jax_trace(schedule, 0.1, len(metrics), metrics)
    state = schedule.init(0.1)
    for metric in metrics[:4]:
        state = schedule.update(state, metric)
    assert type(state) is state_type and state._fields == fields
    assert isinstance(state, optim.ScheduleState)
    assert type(state.lr) is float and type(state.last_epoch) is int and state.last_epoch == 4
    for name in fields:
        assert type(getattr(state, name)) in (float, int), name
    state = state_type(**json.loads(json.dumps(state._asdict())))
    resumed = [state.lr]
    for metric in metrics[4:]:
        state = schedule.update(state, metric)
        resumed.append(state.lr)
    assert resumed == full[4:]


def test_numpy_arguments_still_give_python_number_states():
    """A config read through numpy (np.int64 epochs, np.float64 rates) must not turn the lrs into numpy
    scalars, which a JSON checkpoint cannot hold."""
    schedules = [
        optim.cosine_schedule(np.int64(9), np.int64(2), np.float64(1e-5), np.float64(0.1)),
        optim.cosine_annealing(np.int64(5), np.float64(1e-5)),
        optim.warmup_cosine(
            np.int64(2), np.int64(5), np.float64(1e-5), np.float64(0.1), total_iters=np.int64(3)
        ),
        optim.linear_lr(np.float64(0.1), np.float64(1.0), np.int64(3)),
    ]
    for schedule in schedules:
        lrs, state = jax_trace(schedule, np.float64(0.1), 8)
        assert all(type(x) is float for x in lrs) and type(state.last_epoch) is int
        json.dumps(state._asdict())


def test_epoch_schedules_ignore_the_metric():
    schedule = optim.cosine_schedule(8, warmup_epochs=2)
    traces = [
        jax_trace(schedule, 0.1, 10, metrics)[0] for metrics in ([0.0] * 10, list(range(10)), [None] * 10)
    ]
    assert traces[0] == traces[1] == traces[2]
    assert len(set(traces[0])) > 5


# --- refusals --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: optim.cosine_annealing(0), r"T_max must be an integer >= 1 .*got 0"),
        (lambda: optim.cosine_annealing(-3), r"T_max must be an integer >= 1 .*got -3"),
        (lambda: optim.cosine_annealing(2.5), r"T_max must be an integer >= 1 .*got 2\.5"),
        (lambda: optim.cosine_annealing(5, -1e-5), r"eta_min must be a finite number >= 0 .*got -1e-05"),
        (lambda: optim.cosine_annealing(5, math.nan), r"eta_min must be a finite number >= 0 .*got nan"),
        (lambda: optim.cosine_annealing(5, math.inf), r"eta_min must be a finite number >= 0 .*got inf"),
        (lambda: optim.cosine_annealing(5, "0.1"), r"eta_min must be a finite number >= 0 .*got '0\.1'"),
        (lambda: optim.cosine_schedule(0), r"epochs must be an integer >= 1 .*got 0"),
        (lambda: optim.cosine_schedule(10, eta_min=-1.0), r"eta_min must be a finite number >= 0"),
        (
            lambda: optim.cosine_schedule(5, 5),
            r"warmup_epochs \(5\) must be smaller than epochs \(5\).*lower",
        ),
        (lambda: optim.cosine_schedule(5, 9), r"warmup_epochs \(9\) must be smaller than epochs \(5\)"),
        (lambda: optim.cosine_schedule(5, -1), r"warmup_epochs must be an integer >= 0 .*got -1"),
        (lambda: optim.cosine_schedule(5, 2, warmup_start_factor=0.0), r"start_factor must be in \(0, 1\]"),
        (lambda: optim.cosine_schedule(5, 2, warmup_start_factor=1.5), r"start_factor must be in \(0, 1\]"),
        (lambda: optim.linear_lr(-0.1), r"start_factor must be in \(0, 1\] .*got -0\.1"),
        (lambda: optim.linear_lr(math.nan), r"start_factor must be in \(0, 1\] .*got nan"),
        (lambda: optim.linear_lr(0.1, 1.5), r"end_factor must be in \[0, 1\] .*got 1\.5"),
        (lambda: optim.linear_lr(0.1, 1.0, 0), r"total_iters must be an integer >= 1 .*got 0"),
        (lambda: optim.warmup_cosine(0, 5), r"warmup_epochs must be an integer >= 1 .*0 is no warm-up"),
        (lambda: optim.warmup_cosine(2, 0), r"T_max must be an integer >= 1"),
        (lambda: optim.warmup_cosine(2, 5, start_factor=2.0), r"start_factor must be in \(0, 1\]"),
        (lambda: optim.cosine_annealing(5).init(math.nan), r"learning rate must be a finite number >= 0"),
        (lambda: optim.warmup_cosine(2, 5).init(-0.1), r"learning rate must be a finite number >= 0"),
        (
            lambda: optim.schedule("cosin", epochs=5),
            r"unknown schedule kind 'cosin'; choose one of plateau, cos",
        ),
        (
            lambda: optim.schedule("cosine", T_max=5),
            r"'cosine' takes no argument T_max; its arguments are epochs",
        ),
        (lambda: optim.schedule("cosine"), r"schedule 'cosine': missing a required argument: 'epochs'"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument_and_the_fix(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_torch_scheduler_refuses_what_jax_refuses_before_touching_the_optimizer():
    optimizer = _optimizer(0.1)
    refused = [("cosine", dict(epochs=3, warmup_epochs=3)), ("warmup_cosine", dict(warmup_epochs=2, T_max=0))]
    for kind, args in refused:
        with pytest.raises(ValueError) as jax_error:
            optim.schedule(kind, **args)
        with pytest.raises(ValueError) as torch_error:
            torch_scheduler(optimizer, kind, **args)
        assert str(torch_error.value) == str(jax_error.value)
    assert optimizer.param_groups[0].keys().isdisjoint({"initial_lr"}) and _lr(optimizer) == 0.1


# --- torch_ref.schedules.torch_scheduler ------------------------------------------------------------------

# One case per kind (a test below fails when a kind is added without one); epochs to step, metrics.
TWIN_CASES = {
    "plateau": dict(mode="min", factor=0.5, patience=1, cooldown=1, min_lr=1e-4),
    "cosine": dict(epochs=12, warmup_epochs=3, eta_min=1e-5, warmup_start_factor=0.1),
    "cosine_annealing": dict(T_max=7, eta_min=1e-4),
    "linear_lr": dict(start_factor=0.01, end_factor=0.5, total_iters=4),
    "warmup_cosine": dict(warmup_epochs=2, T_max=6, eta_min=1e-5, start_factor=0.1, total_iters=3),
}


def test_every_schedule_kind_has_a_twin_case():
    assert set(TWIN_CASES) == set(optim.SCHEDULES)


@pytest.mark.parametrize("kind", TWIN_CASES)
def test_torch_scheduler_builds_the_twin_of_each_jax_schedule(kind):
    args = TWIN_CASES[kind]
    metrics = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5] * 2
    build = lambda opt: torch_scheduler(opt, kind, **args)  # noqa: E731
    expected, _ = torch_trace(build, 0.1, len(metrics), metrics)
    actual, _ = jax_trace(optim.schedule(kind, **args), 0.1, len(metrics), metrics)
    assert actual == expected
    assert len(set(actual)) > 2, "the learning rate barely changed: a weak case"


def test_torch_scheduler_builds_torchs_own_objects_with_the_arguments():
    optimizer = _optimizer(0.1)
    plateau = torch_scheduler(optimizer, "plateau", **TWIN_CASES["plateau"])
    assert type(plateau) is lr_scheduler.ReduceLROnPlateau
    assert (plateau.mode, plateau.factor, plateau.patience, plateau.cooldown) == ("min", 0.5, 1, 1)
    assert (plateau.min_lrs, plateau.threshold, plateau.threshold_mode) == ([1e-4], 1e-4, "rel")
    assert plateau.eps == 1e-8  # the defaults come from jax_lstm.optim's signature, torch's own

    cosine = torch_scheduler(_optimizer(0.1), "cosine", epochs=9, eta_min=1e-5)
    assert type(cosine) is lr_scheduler.CosineAnnealingLR
    assert (cosine.T_max, cosine.eta_min) == (9, 1e-5)

    sequential = torch_scheduler(_optimizer(0.1), "cosine", **TWIN_CASES["cosine"])
    assert type(sequential) is lr_scheduler.SequentialLR and sequential._milestones == [3]
    linear, cosine = sequential._schedulers
    assert type(linear) is lr_scheduler.LinearLR and type(cosine) is lr_scheduler.CosineAnnealingLR
    assert (linear.start_factor, linear.end_factor, linear.total_iters) == (0.1, 1.0, 3)
    assert (cosine.T_max, cosine.eta_min) == (9, 1e-5)

    defaults = torch_scheduler(_optimizer(0.1), "linear_lr")
    assert (defaults.start_factor, defaults.end_factor, defaults.total_iters) == (1 / 3, 1.0, 5)
