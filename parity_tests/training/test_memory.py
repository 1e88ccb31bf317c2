"""The memory estimate (`jax_lstm.training.memory`) against what XLA allocates, and the refusal of a
run that cannot fit before anything is allocated.

The measure is XLA's own buffer assignment for the compiled programs the loop runs
(``jax.jit(step).lower(state, batch).compile().memory_analysis()``): the bytes of the arguments
(the state and one batch), the outputs (the new state) and every temporary, which is exactly what
the device must hold during a step, with no allocator caching, Python objects or runtime threads in
it (which a resident-set-size delta would mix in, differently on every run). A train step's peak is
its arguments + outputs + temporaries; an evaluation's is the same for the eval program plus the
Adam moments, which stay alive beside it. The estimate has to land within a factor of 2 of each.
"""

from __future__ import annotations

import dataclasses
import time
import tracemalloc

import jax
import jax.numpy as jnp
import pytest

from jax_lstm.models import registry
from jax_lstm.training import TrainConfig, create_train_state, make_model, make_optimizer, memory, tasks
from jax_lstm.training.memory import InsufficientMemoryError
from jax_lstm.training.steps import Batch, eval_step_fn, train_step_fn

MiB = 2**20


@dataclasses.dataclass(frozen=True)
class Case:
    config: TrainConfig
    dims: registry.Dims
    num_test: int


CASES = {
    "lstm": Case(TrainConfig(hidden_size=32, num_layers=2, batch_size=16), registry.Dims(3, 4, None, 40), 64),
    "gru, scan": Case(
        TrainConfig(hidden_size=24, num_layers=2, batch_size=16, cell="gru"), registry.Dims(3, 4, None, 40), 8
    ),
    "attention": Case(
        TrainConfig(model="attention-lstm", hidden_size=16, num_layers=1, batch_size=16),
        registry.Dims(3, 4, None, 40),
        8,
    ),
    # Patches of 8 steps: the recurrence runs 40 steps of 24 features, not 320 of 3.
    "lstm, patches": Case(
        TrainConfig(hidden_size=32, num_layers=2, batch_size=16, patch=8), registry.Dims(3, 4, None, 320), 64
    ),
    "attention, patches": Case(
        TrainConfig(model="attention-lstm", hidden_size=16, num_layers=1, batch_size=16, patch=8),
        registry.Dims(3, 4, None, 320),
        8,
    ),
    "mlstm-fcn": Case(
        TrainConfig(model="mlstm-fcn", hidden_size=8, num_layers=1, batch_size=8),
        registry.Dims(3, 4, None, 30),
        32,
    ),
}


def _batch(case: Case, rows: int) -> Batch:
    dims, dtype = case.dims, jnp.dtype(case.config.dtype)
    if dims.output_shape is not None:
        y = jnp.zeros((rows, *dims.output_shape), dtype)
    else:
        y = jnp.zeros((rows,), jnp.int32)
    lengths = jnp.full((rows,), dims.seq_len, jnp.int32)  # padded series, as the .ts datasets have
    return Batch(jnp.zeros((rows, dims.seq_len, dims.num_features), dtype), y, lengths)


def _bytes(analysis) -> int:
    return analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes


def _measured(case: Case, num_train: int) -> tuple[int, int]:
    """(train step peak, evaluation peak) in bytes, from the compiled programs' memory analysis."""
    config, dims = case.config, case.dims
    model = make_model(config, dims)
    state = create_train_state(config, dims)
    task = tasks.get(registry.get(config.model).task)
    step = jax.jit(train_step_fn(model, make_optimizer(config), config.accumulate, task=task))
    train = _bytes(
        step.lower(state, _batch(case, min(config.batch_size, num_train))).compile().memory_analysis()
    )
    evaluate = jax.jit(eval_step_fn(model, task))
    chunk = _batch(case, min(config.eval_batch_size, case.num_test))
    moments = sum(leaf.nbytes for leaf in jax.tree.leaves(state.opt_state))
    evaluation = _bytes(evaluate.lower(state.variables(), chunk).compile().memory_analysis()) + moments
    return train, evaluation


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_estimate_is_within_a_factor_of_2_of_what_xla_allocates(case):
    num_train = 100
    estimate = memory.estimate(case.config, case.dims, num_train, case.num_test)
    train, evaluation = _measured(case, num_train)
    ratios = {
        "train step": (estimate.state + estimate.train_step) / train,
        "evaluation": (estimate.state + estimate.evaluation) / evaluation,
        "peak": estimate.total / max(train, evaluation),
    }
    assert all(0.5 <= r <= 2 for r in ratios.values()), (ratios, estimate.breakdown(), train, evaluation)


def test_k_models_hold_k_states_and_one_models_activations():
    config = TrainConfig(hidden_size=16, num_layers=1, batch_size=8)
    dims = registry.Dims(3, 4, None, 20)
    one, three = (memory.estimate(config, dims, 50, 10, models=k) for k in (1, 3))
    assert three.parameters == 3 * one.parameters and three.adam_moments == 3 * one.adam_moments
    assert three.new_state == 3 * one.new_state and three.batch == 3 * one.batch
    assert three.activations == one.activations and three.gradients == one.gradients
    on_two_devices = memory.estimate(config, dims, 50, 10, models=3, devices=2)
    assert on_two_devices.activations == 2 * one.activations


def test_the_parts_follow_the_layout_and_the_settings():
    config = TrainConfig(hidden_size=16, num_layers=1, batch_size=8)
    dims = registry.Dims(3, 4, None, 20)
    base = memory.estimate(config, dims, 50, 10)
    params = 4 * 16 * (3 + 16) + 2 * 4 * 16 + 4 * 16 + 4  # the LSTM's four tensors and the head
    assert base.parameters == 4 * params and base.adam_moments == 2 * 4 * params
    assert base.gradients == 4 * params and base.new_state == 3 * 4 * params
    assert base.batch == 8 * (20 * 3 * 4 + 4 + 4)  # x (T, F) float32, its length and its label
    wide = memory.estimate(dataclasses.replace(config, batch_size=16), dims, 50, 10)
    assert wide.activations == pytest.approx(2 * base.activations, rel=0.01)
    assert memory.estimate(config, dims, 5, 10).batch == 5 * base.batch // 8  # fewer series than a batch
    assert memory.estimate(config, dims, 50, 0).evaluation == 0  # nothing to evaluate
    forecaster = TrainConfig(model="lstm-forecaster", hidden_size=16, num_layers=1, batch_size=8)
    windows = memory.estimate(forecaster, registry.Dims(3, 6, (3, 2), 20), 50, 10)
    assert windows.batch == 8 * (20 * 3 * 4 + 4 + 6 * 4)  # its targets (H, T) are floats
    scan = memory.estimate(dataclasses.replace(config, implementation="scan"), dims, 50, 10)
    assert scan.activations > base.activations
    with jax.enable_x64(True):
        double = memory.estimate(dataclasses.replace(config, dtype="float64"), dims, 50, 10)
    assert double.parameters == 2 * base.parameters


def test_the_convolutional_branch_is_counted_apart_and_grows_with_the_series():
    config = TrainConfig(model="lstm-fcn", hidden_size=8, num_layers=1, batch_size=8)
    short, long = (memory.estimate(config, registry.Dims(3, 4, None, t), 50, 10) for t in (30, 60))
    assert short.layer_activations > 10 * short.recurrent_activations  # 128-256-128 filters per step
    assert long.layer_activations == pytest.approx(2 * short.layer_activations, rel=0.01)
    plain = memory.estimate(
        TrainConfig(hidden_size=8, num_layers=1, batch_size=8), registry.Dims(3, 4, None, 30), 50, 10
    )
    assert plain.layer_activations < plain.recurrent_activations


def test_a_missing_series_length_is_refused():
    with pytest.raises(ValueError, match=r"seq_len=dataset\.seq_len"):
        memory.estimate(TrainConfig(), registry.Dims(3, 4), 10, 10)


def test_an_absurd_run_is_refused_before_anything_is_allocated_traced_or_compiled():
    compiles: list[str] = []

    def listen(event: str, *args, **kwargs) -> None:
        if "compil" in event or "trac" in event:
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    config = TrainConfig(hidden_size=2**20, num_layers=2, batch_size=32)  # 2**42 recurrent weights per layer
    dims = registry.Dims(12, 9, None, 29)
    tracemalloc.start()
    try:
        start = time.perf_counter()
        estimate = memory.estimate(config, dims, 270, 370)
        with pytest.raises(InsufficientMemoryError) as caught:
            memory.check(estimate, 23 * 2**30)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        jax.monitoring.unregister_event_duration_listener(listen)
    assert peak < MiB, f"the estimate allocated {peak} bytes"  # numpy's buffers are traced too
    assert not compiles, compiles
    message = str(caught.value)
    assert message.startswith(f"this run needs about {memory.human(estimate.total)}; this machine has 23 GiB")
    assert "TiB" in message.split(";")[0] and "the parameters with their Adam moments" in message
    assert message.endswith("lower --hidden-size or --num-layers (hidden_size, num_layers)")
    assert caught.value.estimate is estimate and caught.value.available == 23 * 2**30
    assert estimate.parameters > 2**44  # the parameters alone: TiBs
    print(f"estimate and refusal in {1e3 * seconds:.2f} ms")  # no bound on it: timing is not asserted


def test_check_warns_within_20_percent_and_is_silent_below():
    estimate = memory.estimate(
        TrainConfig(hidden_size=16, num_layers=1), registry.Dims(3, 4, None, 20), 50, 10
    )
    total = estimate.total
    assert memory.check(estimate, 2 * total) is None
    assert memory.check(estimate, None) is None  # no limit known
    warning = memory.check(estimate, int(total / 0.9))
    assert warning.startswith(f"warning: this run needs about {memory.human(total)} of the ")
    assert "(90%)" in warning and "lower --batch-size" in warning
    with pytest.raises(InsufficientMemoryError, match="lower --batch-size"):
        memory.check(estimate, total - 1)


def test_k_models_that_do_not_fit_are_told_to_train_fewer_at_once():
    estimate = memory.estimate(TrainConfig(hidden_size=256), registry.Dims(3, 4, None, 20), 50, 10, models=8)
    with pytest.raises(InsufficientMemoryError, match=r"or train fewer --seeds at once$"):
        memory.check(estimate, estimate.total // 2)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (512, "512 bytes"),
        (1536, "1.5 KiB"),
        (23 * 2**30, "23 GiB"),
        (14.6 * 2**40, "14.6 TiB"),
        (1000 * 2**20, "1000 MiB"),
        (3 * 2**60, "3 EiB"),
    ],
)
def test_sizes_are_written_in_binary_units(size, text):
    assert memory.human(size) == text


def test_the_available_memory_is_the_hosts_on_cpu():
    available = memory.available_bytes()
    assert jax.devices()[0].platform != "cpu" or available == pytest.approx(
        memory.host_available_bytes(), rel=0.5
    )
    assert available is None or available > 0
    with open("/proc/meminfo") as handle:
        total = int(next(line for line in handle if line.startswith("MemTotal:")).split()[1]) * 1024
    assert 0 < memory.host_available_bytes() <= total


if __name__ == "__main__":  # python -m parity_tests.training.test_memory: the ratios, case by case
    for name, case in CASES.items():
        estimate = memory.estimate(case.config, case.dims, 100, case.num_test)
        train, evaluation = _measured(case, 100)
        measured = memory.human(max(train, evaluation))
        print(
            f"{name:>10}: estimate {memory.human(estimate.total)}, measured {measured}"
            f" (train step {(estimate.state + estimate.train_step) / train:.2f}x, "
            f"evaluation {(estimate.state + estimate.evaluation) / evaluation:.2f}x)"
        )
