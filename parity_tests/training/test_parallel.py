"""The speed paths: data parallelism over devices, many models in one program, the benchmark suite.

Each must compute what the plain single-device path computes (itself checked against torch):
to rounding where sums are split across devices, bit for bit where the work is only rearranged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jax_lstm import data, training
from jax_lstm.cli import main
from jax_lstm.data import Dims
from jax_lstm.training import parallel

ROOT = Path(__file__).resolve().parent.parent


def test_the_suite_runs_with_two_devices():
    assert len(jax.devices()) == 2  # conftest; otherwise the data-parallel tests prove nothing
    assert training.data_parallel_mesh().size == 2


def _vowels(n_train=96, n_test=40):
    full = data.japanese_vowels()
    return dataclasses.replace(
        full,
        x_train=full.x_train[:n_train],
        y_train=full.y_train[:n_train],
        lengths_train=full.lengths_train[:n_train],
        x_test=full.x_test[:n_test],
        y_test=full.y_test[:n_test],
        lengths_test=full.lengths_test[:n_test],
    )


def _rows(dataset, rows) -> training.Batch:
    """Training rows of `dataset` as a host batch, as the loop gathers them."""
    return training.Batch(
        dataset.x_train[rows], dataset.y_train[rows].astype(np.int32), dataset.lengths_train[rows]
    )


@pytest.mark.parametrize("model", ["lstm", "bn-lstm"])
def test_data_parallel_step_equals_the_single_device_step(x64, model):
    """One step on a padded batch of 32 split over 2 devices: gradients, BatchNorm statistics (over
    the valid steps of both halves) and the loss are the whole batch's."""
    config = training.TrainConfig(model=model, hidden_size=12, dtype="float64", log_every=0)
    dataset = _vowels().astype("float64")
    mesh = training.data_parallel_mesh()
    net = training.make_model(config, dataset.dims)
    state = training.create_train_state(config, dataset.dims)
    single = training.make_train_step(net, training.make_optimizer(config))
    split = training.make_train_step(net, training.make_optimizer(config), mesh=mesh)
    batch = _rows(dataset, slice(3, 35))
    assert split.key_for(32) == "sharded"
    a, metrics_a = single("single", state, batch)
    b, metrics_b = split("sharded", state, parallel.place(batch, mesh, split=True))
    assert split.compiled_programs("sharded") == 1  # it really ran split
    np.testing.assert_allclose(float(metrics_b["loss"]), float(metrics_a["loss"]), rtol=1e-14)
    for x, y in zip(jax.tree.leaves(b), jax.tree.leaves(a), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-11, atol=1e-14)


def test_small_or_uneven_batches_are_not_split():
    config = training.TrainConfig(hidden_size=8, num_layers=1, log_every=0)
    dataset = _vowels()
    mesh = training.data_parallel_mesh()
    step = training.make_train_step(
        training.make_model(config, Dims(12, 9)), training.make_optimizer(config), mesh=mesh
    )
    state = parallel.place(training.create_train_state(config, Dims(12, 9)), mesh, split=False)
    for size in (31, 16, 2):  # odd, or under MIN_ROWS_PER_DEVICE rows per device
        key = step.key_for(size)
        assert key == "single"
        state, _ = step(key, state, parallel.place(_rows(dataset, slice(0, size)), mesh, split=False))
    assert step.key_for(32) == "sharded"
    assert step.compiled_programs("sharded") == 0 and step.compiled_programs("single") == 3


def test_data_parallel_forward_equals_the_single_device_forward():
    config = training.TrainConfig(model="bn-lstm", hidden_size=8, log_every=0)
    dataset = _vowels()
    net = training.make_model(config, Dims(12, 9))
    variables = training.initial_variables(config, Dims(12, 9))
    split = training.make_forward(net, training.data_parallel_mesh())
    whole = training.make_forward(net)
    x, lengths = dataset.x_train[:64], dataset.lengths_train[:64]
    np.testing.assert_allclose(
        split(variables, x, lengths), whole(variables, x, lengths), rtol=1e-6, atol=1e-6
    )


def test_fit_many_equals_one_fit_per_seed(x64):
    """Each model of a multi-model run is the run `fit` gives that seed, scheduler included (the
    learning rate is cut for one seed and not the other here). The learning rate is high enough for
    the scheduler to act, which also makes training amplify rounding differences (the two programs
    fuse operations differently): measured 2.5e-8 apart after 6 epochs in float64."""
    config = training.TrainConfig(
        model="bn-lstm",
        hidden_size=8,
        num_layers=1,
        epochs=6,
        lr=0.3,
        patience=0,
        batch_size=16,
        dtype="float64",
        log_every=0,
    )
    dataset = _vowels().astype("float64")
    seeds = [3, 4]
    many = training.fit_many(config, dataset, seeds, log=None)
    traces = []
    for seed, result in zip(seeds, many, strict=True):
        alone = training.fit(dataclasses.replace(config, seed=seed), dataset, log=None)
        for a, b in zip(jax.tree.leaves(result.state), jax.tree.leaves(alone.state), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
        assert [h.lr for h in result.history] == [h.lr for h in alone.history]
        np.testing.assert_allclose(
            [h.train_loss for h in result.history], [h.train_loss for h in alone.history], rtol=1e-8
        )
        assert result.config.seed == seed
        traces.append([h.lr for h in result.history])
    assert traces[0] != traces[1]  # each model has its own scheduler


def test_fit_many_on_one_device_equals_the_single_runs(x64):
    config = training.TrainConfig(
        model="bn-lstm", hidden_size=8, num_layers=1, epochs=2, batch_size=16, dtype="float64", log_every=0
    )
    dataset = _vowels().astype("float64")
    many = training.fit_many(config, dataset, [0, 1], log=None, data_parallel=False)
    alone = training.fit(dataclasses.replace(config, seed=1), dataset, log=None, data_parallel=False)
    for a, b in zip(jax.tree.leaves(many[1].state), jax.tree.leaves(alone.state), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("data_parallel", [None, False], ids=["a model per device", "one device"])
def test_fit_many_of_fcn_models_equals_one_fit_per_seed(x64, data_parallel):
    """The convolutions, BatchNorm and squeeze-excite inside the loop over the models (and split over
    the devices) give each model its own `fit`, to float64 rounding."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 10, 2))
    y = np.arange(20) % 3
    dataset = data.Dataset("tiny", x[:16], y[:16], x[16:], y[16:], ("a", "b", "c"))
    config = training.TrainConfig(
        model="mlstm-fcn", hidden_size=4, num_layers=1, epochs=2, batch_size=8, dtype="float64", log_every=0
    )
    many = training.fit_many(config, dataset, [0, 1], log=None, data_parallel=data_parallel)
    for seed, result in zip([0, 1], many, strict=True):
        alone = training.fit(dataclasses.replace(config, seed=seed), dataset, log=None, data_parallel=False)
        for a, b in zip(jax.tree.leaves(result.state), jax.tree.leaves(alone.state), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(
            [h.test_loss for h in result.history], [h.test_loss for h in alone.history], rtol=1e-12
        )


@pytest.mark.parametrize("many", [False, True], ids=["fit", "fit_many"])
def test_nothing_recompiles_on_a_mesh_when_the_learning_rate_changes(monkeypatch, many):
    """The scheduler's new rate keeps the sharding of the state it replaces, and `fit_many` replaces
    it only when it changed: one sharded program for the whole run. At lr 1e-6 an epoch moves the
    loss far less than the scheduler's 1e-4 threshold, so with patience 0 the rate is cut after the
    second epoch (the first always improves on +inf)."""
    steps = []
    make_train_step = training.make_train_step

    def spy(*args, **kwargs):
        steps.append(make_train_step(*args, **kwargs))
        return steps[-1]

    monkeypatch.setattr(training.loop, "make_train_step", spy)
    config = training.TrainConfig(hidden_size=8, num_layers=1, epochs=3, lr=1e-6, patience=0, log_every=0)
    if many:
        results = training.fit_many(config, _vowels(), [0, 1], log=None, data_parallel=True)
    else:
        results = [training.fit(config, _vowels(), log=None, data_parallel=True)]
    for result in results:
        lrs = [h.lr for h in result.history]
        assert lrs[0] == lrs[1] == 1e-6 and lrs[2] == pytest.approx(1e-7)
    (step,) = steps
    assert step.compiled_programs("sharded") == 1 and step.compiled_programs("single") == 0


def test_fit_many_refuses_bad_seed_lists():
    config = training.TrainConfig(hidden_size=4, num_layers=1, epochs=1, log_every=0)
    with pytest.raises(ValueError, match="distinct"):
        training.fit_many(config, _vowels(), [1, 1])
    with pytest.raises(ValueError, match="at least one seed"):
        training.fit_many(config, _vowels(), [])


def test_cli_seeds_trains_several_models(tmp_path, capsys):
    metrics = tmp_path / "m.json"
    args = ["train", "--dataset", "synthetic", "--hidden-size", "8", "--num-layers", "1", "--epochs", "2"]
    assert main([*args, "--seeds", "3", "--quiet", "--metrics-json", str(metrics)]) == 0
    out = capsys.readouterr().out
    assert "3 runs (seeds 0, 1, 2) trained at once" in out and "test accuracy mean" in out
    payload = json.loads(metrics.read_text())
    assert [m["seed"] for m in payload["models"]] == [0, 1, 2]
    assert all(len(m["epochs"]) == 2 for m in payload["models"])
    assert payload["test_accuracy_mean"] == pytest.approx(
        np.mean([m["test_accuracy"] for m in payload["models"]])
    )
    assert main([*args, "--seeds", "2", "--compare-torch"]) == 2
    assert "does not combine with --compare-torch" in capsys.readouterr().err


def test_jax_lstm_uses_every_core():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    code = (
        "from jax_lstm.runtime import use_all_cores; use_all_cores(); import jax; print(len(jax.devices()))"
    )
    out = subprocess.run(
        [sys.executable, "-u", "-c", code], env=env, capture_output=True, text=True, check=True, timeout=600
    )
    assert int(out.stdout) == min(os.cpu_count(), 8)


def test_benchmark_suite_quick_mode_runs_and_writes_its_reports(tmp_path):
    """Seconds on tiny shapes; it asserts the reports' content, nothing about speed."""
    result = subprocess.run(
        [sys.executable, "-u", "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,  # a bound on a hang, not a speed check
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "benchmark.json").read_text())
    assert report["mode"] == "quick" and report["environment"]["torch"]
    kinds = {row["kind"] for row in report["results"]}
    assert kinds == {"train step", "inference", "batch sweep", "length sweep", "many models"}
    for row in report["results"]:
        for side in ("jax", "torch"):
            assert row[side]["median_s"] > 0 and row[side]["min_s"] <= row[side]["median_s"]
        assert row["jax"]["compile_s"] >= 0
        assert row["speedup"] == pytest.approx(row["torch"]["median_s"] / row["jax"]["median_s"])
    assert report["whole_run"]["jax_s"] > 0 and report["many_models"]["torch_s"] > 0
    table = (tmp_path / "benchmark.md").read_text()
    assert "| train step: tiny |" in table
    assert "| train step: GRU: tiny |" in table and "| inference: GRU: tiny |" in table
    assert (tmp_path / "speedup.png").read_bytes()[:4] == b"\x89PNG"


def test_data_parallel_true_says_why_a_run_cannot_be_split():
    """True insists: where the work cannot be split it is an error naming the reason, not a silent
    single-device run (None then falls back to one device)."""
    bn_accumulate = training.TrainConfig(
        model="bn-lstm", accumulate=2, hidden_size=8, num_layers=1, batch_size=64
    )
    with pytest.raises(ValueError, match="BatchNorm's micro-batch statistics"):
        training.Run.build(bn_accumulate, _vowels(), data_parallel=True)
    assert training.Run.build(bn_accumulate, _vowels(), data_parallel=None).mesh is None
    assert training.Run.build(dataclasses.replace(bn_accumulate, accumulate=1), _vowels()).mesh.size == 2
    with pytest.raises(ValueError, match="3 models do not divide over 2 devices"):
        training.mesh_for(True, 32, models=3)
    assert training.mesh_for(None, 32, models=3) is None
    assert training.mesh_for(True, 32, models=2).size == 2
