"""Whole training runs against torch, and the training loop's own guarantees.

From the same initial weights and the same batches, the JAX run follows the torch run epoch by epoch:
per-epoch losses and final parameters (BatchNorm running statistics included) within 1e-8 relative
in float64, losses within 1e-5 relative in float32 (`testing.ARTICLE_RUN_RTOL`; measured: 2e-16 at the
article's learning rate, 2.3e-10 at lr 0.05, and 2.2e-7 in float32).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_lstm
from jax_lstm import atomic, data, optim, training
from jax_lstm.data import Dims
from jax_lstm.training import checkpoint, tasks
from parity_tests.runs import assert_runs_agree, run_both
from torch_ref.train import torch_twin


@pytest.mark.parametrize(
    "model, data_parallel",
    [("lstm", None), ("bn-lstm", None), ("lstm", False)],
    ids=["lstm_2_devices", "bn_lstm_2_devices", "lstm_1_device"],
)
def test_article_experiment_float64_follows_torch(x64, model, data_parallel):
    """The article's experiment as written: 10 epochs, 1000 x 20 x 5, H=128, 2 layers, batch 32,
    with each batch split over the suite's two devices (as `jax-lstm` runs) and on one device."""
    config = training.TrainConfig(model=model, dtype="float64", log_every=0)
    dataset = data.synthetic().astype("float64")
    jax_result, torch_result = run_both(config, dataset, data_parallel=data_parallel)
    assert len(jax_result.history) == 10
    assert_runs_agree(jax_result, torch_result, "float64", check_params=True)
    if model == "bn-lstm":
        assert int(jax_result.state.batch_stats["bn"]["num_batches_tracked"]) == 250


@pytest.mark.parametrize("model", ["lstm", "bn-lstm"])
def test_article_experiment_float32_follows_torch(model):
    config = training.TrainConfig(model=model, log_every=0)
    jax_result, torch_result = run_both(config, data.synthetic())
    assert_runs_agree(jax_result, torch_result, "float32", check_params=False)
    assert jax_result.test_accuracy == torch_result.test_accuracy


@pytest.mark.parametrize("model, epochs", [("lstm", 10), ("bn-lstm", 7)])
def test_learning_rate_reductions_follow_torch(x64, model, epochs):
    """A run where the plateau scheduler cuts the rate mid-training, with variable lengths,
    accumulation and weight decay in play: still the same run as torch's in float64.

    Training amplifies rounding differences at a rate set by the learning rate. Measured on this
    setup: at lr 0.05 the float64 gap stays near 1e-10 over 10 epochs, at lr 0.2 it reaches 1e-6 in
    7, at lr 0.5 2e-5 in 8 (0.1 without the scheduler's cuts). That is chaos, not a semantic
    difference (it grows from 1e-16, and the article's lr 1e-3 stays at 1e-16 for all 10 epochs),
    so this test uses lr 0.05, where the scheduler acts (epochs chosen so that it does) and the gap
    stays small.
    """
    config = training.TrainConfig(
        model=model,
        hidden_size=12,
        num_layers=2,
        epochs=epochs,
        lr=0.05,
        patience=0,
        batch_size=16,
        accumulate=2,
        weight_decay=1e-3,
        dtype="float64",
        log_every=0,
    )
    dataset = _small_japanese_vowels().astype("float64")
    jax_result, torch_result = run_both(config, dataset)
    lrs = [h.lr for h in jax_result.history]
    assert lrs[-1] < lrs[0], f"the scheduler should have cut the rate mid-run: {lrs}"
    assert_runs_agree(jax_result, torch_result, "float64", check_params=True)


def _small_japanese_vowels() -> data.Dataset:
    full = data.japanese_vowels()
    keep_train, keep_test = slice(0, 270, 3), slice(0, 370, 5)
    return dataclasses.replace(
        full,
        x_train=full.x_train[keep_train],
        y_train=full.y_train[keep_train],
        lengths_train=full.lengths_train[keep_train],
        x_test=full.x_test[keep_test],
        y_test=full.y_test[keep_test],
        lengths_test=full.lengths_test[keep_test],
    )


def _step_setup(model="lstm", accumulate=1, dtype="float32"):
    """A fresh state, the single-device train step, and ``batch(rows)``: those training rows."""
    config = training.TrainConfig(
        model=model, hidden_size=16, accumulate=accumulate, dtype=dtype, log_every=0
    )
    dataset = data.synthetic(num_samples=64).astype(dtype)
    state = training.create_train_state(config, dataset.dims)
    programs = training.make_train_step(
        training.make_model(config, dataset.dims),
        training.make_optimizer(config),
        accumulate,
    )

    def step(state, batch):
        return programs("single", state, batch)

    def batch(rows):
        return training.Batch(
            jnp.asarray(dataset.x_train[rows]), jnp.asarray(dataset.y_train[rows], jnp.int32)
        )

    step.programs = programs
    return state, step, batch


@pytest.mark.parametrize("batch", [32, 30], ids=["even_micro_batches", "uneven_8_7_8_7"])
def test_gradient_accumulation_gives_the_large_batch_update(x64, batch):
    """4 micro-batches, even (8 each) or not (8, 7, 8, 7, weighted by their size): the update and
    the loss are the whole batch's."""
    state, big_step, rows = _step_setup(dtype="float64")
    _, small_step, _ = _step_setup(accumulate=4, dtype="float64")
    big, big_metrics = big_step(state, rows(slice(0, batch)))
    small, small_metrics = small_step(state, rows(slice(0, batch)))
    assert float(small_metrics["loss"]) == pytest.approx(float(big_metrics["loss"]), rel=1e-13)
    for a, b in zip(jax.tree.leaves(small.params), jax.tree.leaves(big.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)
    # ...and it was a real update, not a no-op.
    assert not np.allclose(big.params["fc"]["weight"], state.params["fc"]["weight"])


@pytest.mark.parametrize("model", ["lstm", "bn-lstm"])
def test_a_train_step_changes_every_parameter(model):
    state, step, rows = _step_setup(model)
    new, metrics = step(state, rows(slice(0, 32)))
    assert np.isfinite(float(metrics["loss"]))
    assert int(new.step) == 1
    for path, (before, after) in zip(
        jax.tree_util.tree_leaves_with_path(state.params),
        zip(jax.tree.leaves(state.params), jax.tree.leaves(new.params), strict=True),
        strict=True,
    ):
        changed = np.asarray(before) != np.asarray(after)
        assert changed.all(), f"{jax.tree_util.keystr(path[0])}: {(~changed).sum()} entries did not move"
    if model == "bn-lstm":
        stats = new.batch_stats["bn"]
        assert int(stats["num_batches_tracked"]) == 1
        assert not np.allclose(stats["running_mean"], 0) and not np.allclose(stats["running_var"], 1)


def test_jitted_step_does_not_recompile():
    state, step, rows = _step_setup()
    state, _ = step(state, rows(slice(0, 32)))
    state, _ = step(state, rows(slice(16, 48)))  # 51 training rows: another full batch
    assert step.programs.compiled_programs() == 1
    # A learning-rate change from the scheduler is data, not a new program.
    state = state.replace(opt_state=optim.set_learning_rate(state.opt_state, 1e-4))
    step(state, rows(slice(0, 32)))
    assert step.programs.compiled_programs() == 1


def test_nothing_recompiles_after_the_first_epoch():
    """270 series in batches of 32: a full and a shorter last batch are the only two programs."""
    config = training.TrainConfig(hidden_size=8, num_layers=1, epochs=3, patience=0, lr=0.3, log_every=0)
    dataset = data.japanese_vowels()
    run = training.Run.build(config, dataset, data_parallel=False)
    state = training.create_train_state(config, dataset.dims)
    plateaus = [run.scheduler.init(config.lr)]
    sizes = []
    for epoch in range(3):
        state, plateaus, _, _ = training.train_epoch(run, state, plateaus, epoch, log=None)
        sizes.append((run.train_step.compiled_programs(), run.eval_step.compiled_programs()))
    assert sizes[0] == (2, 1)
    assert sizes[1] == sizes[2] == sizes[0]


def test_resume_is_bit_exact(tmp_path):
    config = training.TrainConfig(
        model="bn-lstm",
        hidden_size=12,
        epochs=6,
        lr=0.3,
        patience=0,
        batch_size=16,
        accumulate=2,
        log_every=0,
    )
    dataset = _small_japanese_vowels()
    straight = training.fit(config, dataset, log=None)
    first = training.fit(dataclasses.replace(config, epochs=3), dataset, checkpoint_dir=tmp_path, log=None)
    assert len(first.history) == 3
    resumed = training.fit(config, dataset, checkpoint_dir=tmp_path, resume=True, log=None)
    assert len({h.lr for h in straight.history}) > 1  # the scheduler state mattered
    for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(straight.state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert resumed.plateau == straight.plateau

    def strip(history):
        return [dataclasses.replace(h, seconds=0.0) for h in history]

    assert strip(resumed.history) == strip(straight.history)


def test_checkpoint_exports_to_torch(tmp_path):
    config = training.TrainConfig(model="bn-lstm", hidden_size=8, epochs=1, log_every=0)
    dataset = _small_japanese_vowels()
    result = training.fit(config, dataset, checkpoint_dir=tmp_path, log=None)
    loaded = training.load_checkpoint(tmp_path)
    assert loaded.epoch == 1
    twin = torch_twin(config, dataset, loaded.variables())
    twin.eval()
    x = torch.from_numpy(dataset.x_test[:5])
    lengths = torch.from_numpy(dataset.lengths_test[:5].astype(np.int64))
    model = training.make_model(config, dataset.dims)
    expected = model.apply(result.variables(), dataset.x_test[:5], lengths=dataset.lengths_test[:5])
    np.testing.assert_allclose(twin(x, lengths).detach().numpy(), np.asarray(expected), atol=5e-6)


def test_interrupted_save_leaves_the_previous_checkpoint_readable(tmp_path, monkeypatch):
    config = training.TrainConfig(hidden_size=8, num_layers=1, epochs=1, log_every=0)
    dataset = _small_japanese_vowels()
    training.fit(config, dataset, checkpoint_dir=tmp_path, log=None)
    before = (tmp_path / checkpoint.CHECKPOINT_NAME).read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while the new checkpoint was half written")

    monkeypatch.setattr(atomic.os, "fsync", crash)  # dies after writing, before the rename
    with pytest.raises(KeyboardInterrupt):
        training.fit(
            dataclasses.replace(config, epochs=2), dataset, checkpoint_dir=tmp_path, resume=True, log=None
        )
    monkeypatch.undo()
    assert (tmp_path / checkpoint.CHECKPOINT_NAME).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [checkpoint.CHECKPOINT_NAME]  # no debris left
    assert training.load_checkpoint(tmp_path).epoch == 1


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    config = training.TrainConfig(hidden_size=8, num_layers=1, epochs=1, log_every=0)
    dataset = _small_japanese_vowels()
    training.fit(config, dataset, checkpoint_dir=tmp_path, log=None)
    before = (tmp_path / checkpoint.CHECKPOINT_NAME).read_bytes()
    nan_loss = dataclasses.replace(
        tasks.CLASSIFICATION, loss=lambda logits, labels: jnp.nan * jnp.sum(logits)
    )
    monkeypatch.setitem(tasks.TASKS, "classification", nan_loss)
    with pytest.raises(training.TrainingDivergedError, match=r"loss became nan at epoch 2, step 1"):
        training.fit(
            dataclasses.replace(config, epochs=3), dataset, checkpoint_dir=tmp_path, resume=True, log=None
        )
    assert (tmp_path / checkpoint.CHECKPOINT_NAME).read_bytes() == before


def test_resume_refuses_other_settings(tmp_path):
    config = training.TrainConfig(hidden_size=8, num_layers=1, epochs=1, log_every=0)
    dataset = _small_japanese_vowels()
    first = training.fit(config, dataset, checkpoint_dir=tmp_path, log=None)
    with pytest.raises(ValueError, match="hidden_size: checkpoint 8, now 9"):
        training.fit(
            dataclasses.replace(config, hidden_size=9, epochs=2),
            dataset,
            checkpoint_dir=tmp_path,
            resume=True,
        )
    # A complete run resumed (killed after its last checkpoint, before its outputs) gives its results.
    again = training.fit(config, dataset, checkpoint_dir=tmp_path, resume=True, log=None)
    assert again.history == first.history
    assert all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(again.state), jax.tree.leaves(first.state), strict=True)
    )
    training.fit(
        dataclasses.replace(config, epochs=2), dataset, checkpoint_dir=tmp_path, resume=True, log=None
    )
    with pytest.raises(
        ValueError, match="already holds 2 epochs, more than the 1 asked for; resume with --epochs 2"
    ):
        training.fit(config, dataset, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(training.CheckpointError, match="no checkpoint"):
        training.fit(
            dataclasses.replace(config, epochs=2), dataset, checkpoint_dir=tmp_path / "none", resume=True
        )
    variables = training.initial_variables(config, dataset.dims)
    with pytest.raises(ValueError, match="pass variables or resume, not both"):
        training.fit(
            dataclasses.replace(config, epochs=2),
            dataset,
            variables=variables,
            checkpoint_dir=tmp_path,
            resume=True,
        )


@pytest.mark.parametrize("model", ["lstm", "bn-lstm"])
def test_initial_variables_have_the_models_structure_and_torch_init(model):
    """`initial_variables` draws torch's init without running the model; its tree must be exactly
    what `model.init` builds, and its values inside torch's bounds, seeded and reproducible."""
    config = training.TrainConfig(model=model, hidden_size=64)
    variables = training.initial_variables(config, Dims(7, 3))
    reference = training.make_model(config, Dims(7, 3)).init(jax.random.PRNGKey(0), jnp.zeros((1, 1, 7)))
    assert jax.tree.structure(variables) == jax.tree.structure(reference)
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(reference), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
    bound = 1 / np.sqrt(64)
    for name, value in jax_lstm.interop.flatten_variables(variables).items():
        value = np.asarray(value)
        if name.startswith(("lstm.", "fc.")) and value.size >= 100:  # enough draws to span the range
            assert np.abs(value).max() <= bound and value.min() < -0.5 * bound < 0.5 * bound < value.max(), (
                name
            )
    again = training.initial_variables(config, Dims(7, 3))
    other = training.initial_variables(dataclasses.replace(config, seed=1), Dims(7, 3))
    first = np.asarray(variables["params"]["lstm"]["weight_hh_l1"])
    np.testing.assert_array_equal(first, np.asarray(again["params"]["lstm"]["weight_hh_l1"]))
    assert not np.array_equal(first, np.asarray(other["params"]["lstm"]["weight_hh_l1"]))


def test_train_states_share_one_optimizer_init_program():
    """`create_train_state` compiles the optimizer's init once per optimizer setting, not per call,
    and its state is the one `make_optimizer(config).init` gives."""
    configs = [
        training.TrainConfig(hidden_size=8, num_layers=1, seed=s, lr=lr) for s in (0, 1) for lr in (0.1, 0.2)
    ]
    init = training.state._optimizer_init(configs[0].weight_decay, configs[0].clip)
    before = init._cache_size()  # other tests may have compiled it for other shapes
    states = [training.create_train_state(c, Dims(3, 2)) for c in configs]
    assert init._cache_size() - before <= 1
    for config, state in zip(configs, states, strict=True):
        expected = training.make_optimizer(config).init(state.params)
        assert jax.tree.structure(state.opt_state) == jax.tree.structure(expected)
        for a, b in zip(jax.tree.leaves(state.opt_state), jax.tree.leaves(expected), strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = training.TrainConfig(hidden_size=8, num_layers=1, clip=None, weight_decay=0.1)
    expected = training.make_optimizer(other).init(training.create_train_state(other, Dims(3, 2)).params)
    assert jax.tree.structure(training.create_train_state(other, Dims(3, 2)).opt_state) == jax.tree.structure(
        expected
    )
