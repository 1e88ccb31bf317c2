"""The one driver (`fit_models`) for one model, K models and ensembles: K models and ensembles resume
bit-exactly from their checkpoints, an ensemble's members are what `fit_many` trains for their seeds
and its metrics are their combined probabilities, the selection by training loss keeps the weights
of that epoch (and resumes with them), and the cosine schedule runs the lr torch would."""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
import pytest

from jax_lstm import data, optim, training
from jax_lstm.training import tasks

TINY = dict(model="lstm", hidden_size=6, num_layers=1, batch_size=32, log_every=0, lr=0.01)


def _vowels():
    return data.japanese_vowels()


def _same_histories(a, b) -> None:
    assert [dataclasses.replace(r, seconds=0.0) for r in a] == [
        dataclasses.replace(r, seconds=0.0) for r in b
    ]


def _leaves_equal(a, b) -> bool:
    return all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def test_k_models_resume_bit_exactly(tmp_path):
    config = training.TrainConfig(**TINY, epochs=3)
    whole = training.fit_many(config, _vowels(), [0, 1], log=None)
    ckpt = tmp_path / "ckpt"
    training.fit_many(dataclasses.replace(config, epochs=2), _vowels(), [0, 1], checkpoint_dir=ckpt, log=None)
    resumed = training.fit_many(config, _vowels(), [0, 1], checkpoint_dir=ckpt, resume=True, log=None)
    for a, b in zip(whole, resumed, strict=True):
        _same_histories(a.history, b.history)
        assert _leaves_equal(a.state, b.state)
    with pytest.raises(
        ValueError, match=r"holds the models of seeds \[0, 1\], and this run trains one model"
    ):
        training.fit(config, _vowels(), checkpoint_dir=ckpt, resume=True, log=None)


def test_an_ensemble_is_its_members_combined(x64):
    config = training.TrainConfig(**{**TINY, "dtype": "float64"}, epochs=2, ensemble=3, seed=4)
    dataset = _vowels().astype("float64")
    (ensemble,) = training.fit_models(config, dataset, log=None)
    # Each member is what K models of its seeds give it (its own weights, batches and schedule).
    alone = training.fit_many(dataclasses.replace(config, ensemble=1), dataset, [4, 5, 6], log=None)
    assert [m.config.seed for m in ensemble.members] == [4, 5, 6]
    for member, single in zip(ensemble.members, alone, strict=True):
        assert [r.train_loss for r in member.history] == [r.train_loss for r in single.history]
        np.testing.assert_allclose(
            [r.test_loss for r in member.history], [r.test_loss for r in single.history], rtol=1e-13
        )
    # Its metrics are the mean of its members' softmax probabilities, computed here from their weights.
    dims = dataset.dims
    probabilities = np.mean(
        [
            training.predict.predictions(m.config, dims, m.variables(), dataset.x_test, dataset.lengths_test)
            for m in ensemble.members
        ],
        axis=0,
    )
    combined = training.predict.predictions(
        config, dims, ensemble.variables(), dataset.x_test, dataset.lengths_test
    )
    np.testing.assert_allclose(combined, probabilities, rtol=1e-13)
    last = ensemble.history[-1]
    expected_accuracy = np.mean(probabilities.argmax(-1) == dataset.y_test)
    expected_loss = -np.mean(np.log(probabilities[np.arange(len(dataset.y_test)), dataset.y_test]))
    assert last.test_accuracy == expected_accuracy
    assert last.test_loss == pytest.approx(expected_loss, rel=1e-12)
    assert last.train_loss == pytest.approx(np.mean([m.history[-1].train_loss for m in ensemble.members]))
    assert ensemble.test_accuracy == last.test_accuracy and ensemble.final is None
    # A combination of better and worse members, not one of them.
    assert len({m.history[-1].test_loss for m in ensemble.members}) == 3


def test_an_ensemble_resumes_bit_exactly_and_overlapping_ensembles_are_refused(tmp_path):
    config = training.TrainConfig(**TINY, epochs=3, ensemble=2, select="train-loss")
    (whole,) = training.fit_models(config, _vowels(), log=None)
    ckpt = tmp_path / "ckpt"
    training.fit_models(dataclasses.replace(config, epochs=2), _vowels(), checkpoint_dir=ckpt, log=None)
    (resumed,) = training.fit_models(config, _vowels(), checkpoint_dir=ckpt, resume=True, log=None)
    _same_histories(whole.history, resumed.history)
    assert whole.final == resumed.final and whole.final is not None
    assert [m.selected_epoch for m in whole.members] == [m.selected_epoch for m in resumed.members]
    assert _leaves_equal(whole.state, resumed.state)
    with pytest.raises(
        ValueError, match=r"the ensembles of seeds \[0, 1\] overlap.*give seeds 2 apart, e.g. \[0, 2\]"
    ):
        training.fit_models(config, _vowels(), [0, 1], log=None)
    runs = training.fit_models(dataclasses.replace(config, epochs=1), _vowels(), [0, 2], log=None)
    assert [[m.config.seed for m in r.members] for r in runs] == [[0, 1], [2, 3]]


def test_selection_by_training_loss_keeps_that_epochs_weights(tmp_path):
    """At a learning rate this high the training loss on random labels jumps (measured: its lowest at
    epoch 4 of 5, 2% below the last), so its lowest is not the last
    epoch's; the weights kept are that epoch's (the run stopped there gives them), and a resumed run
    keeps the same."""
    config = training.TrainConfig(**{**TINY, "lr": 1.0}, epochs=5, select="train-loss", patience=10)
    dataset = data.synthetic(num_samples=200, seq_len=8)
    result = training.fit(config, dataset, log=None)
    losses = [r.train_loss for r in result.history]
    best = int(np.argmin(losses)) + 1
    assert result.selected_epoch == best and result.reported.train_loss == min(losses)
    stopped_there = training.fit(dataclasses.replace(config, epochs=best, select="last"), dataset, log=None)
    assert _leaves_equal(result.state.params, stopped_there.state.params)
    assert best < len(losses), losses  # the setting is chosen so that the loss jumps after its best
    ckpt = tmp_path / "ckpt"
    training.fit(dataclasses.replace(config, epochs=best + 1), dataset, checkpoint_dir=ckpt, log=None)
    resumed = training.fit(config, dataset, checkpoint_dir=ckpt, resume=True, log=None)
    assert resumed.selected_epoch == best and _leaves_equal(resumed.state.params, result.state.params)


def test_cosine_runs_torchs_learning_rates_per_epoch():
    config = training.TrainConfig(**TINY, epochs=6, schedule="cosine", warmup_epochs=2, eta_min=1e-4)
    result = training.fit(config, _vowels(), log=None)
    schedule = optim.cosine_schedule(6, warmup_epochs=2, eta_min=1e-4)
    state, expected = schedule.init(config.lr), []
    for _ in range(6):
        expected.append(state.lr)
        state = schedule.update(state)
    assert [r.lr for r in result.history] == expected
    assert expected[0] == pytest.approx(config.lr / 3) and expected[2] == pytest.approx(config.lr)
    with pytest.raises(ValueError, match="warmup_epochs warms up the cosine schedule"):
        training.TrainConfig(**TINY, epochs=6, warmup_epochs=2).validate()


def test_a_forecasting_ensemble_predicts_the_mean_of_its_members(x64):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6, 2))
    y = rng.standard_normal((40, 2, 1))
    dataset = data.WindowDataset("w", x[:30], y[:30], x[30:], y[30:])
    config = training.TrainConfig(
        model="lstm-forecaster",
        hidden_size=4,
        num_layers=1,
        epochs=2,
        batch_size=8,
        ensemble=2,
        dtype="float64",
    )
    (result,) = training.fit_models(config, dataset, log=None)
    members = [
        training.predict.predictions(m.config, dataset.dims, m.variables(), dataset.x_validation)
        for m in result.members
    ]
    combined = training.predict.predictions(config, dataset.dims, result.variables(), dataset.x_validation)
    np.testing.assert_allclose(combined, np.mean(members, axis=0), rtol=1e-14)
    mse = np.mean(np.square(combined - dataset.y_validation).reshape(10, -1), axis=1).mean()
    assert result.history[-1].val_loss == pytest.approx(mse, rel=1e-12)
    assert math.isnan(result.history[-1].test_loss)  # no test split: the test period is scored apart
    assert tasks.get("forecasting").labelled is False


def _tested(history) -> list[int]:
    return [r.epoch for r in history if not math.isnan(r.test_loss)]


def test_the_test_split_every_few_epochs_changes_nothing_but_what_is_reported(capsys):
    """eval_every 3 over 5 epochs: the test split after epochs 3 and 5 only; training is the same
    bit for bit, and the kept epoch (the lowest training loss, epoch 4 at this rate, see
    `test_selection_by_training_loss_keeps_that_epochs_weights`) is measured once the run is over:
    what evaluating after it gives."""
    config = training.TrainConfig(**{**TINY, "lr": 1.0}, epochs=5, select="train-loss", patience=10)
    dataset = data.synthetic(num_samples=200, seq_len=8)
    every = training.fit(config, dataset, log=None)
    sparse = training.fit(dataclasses.replace(config, eval_every=3), dataset, log=print)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Epoch [")]
    assert [("test" in line) for line in lines] == [False, False, True, False, True]
    assert [r.train_loss for r in sparse.history] == [r.train_loss for r in every.history]
    assert _leaves_equal(sparse.state, every.state)
    chosen = every.selected_epoch
    assert sparse.selected_epoch == chosen and chosen not in (3, 5)  # kept where nothing was tested
    assert _tested(sparse.history) == sorted({3, 5, chosen})
    for epoch in _tested(sparse.history):
        assert sparse.history[epoch - 1] == dataclasses.replace(
            every.history[epoch - 1], seconds=sparse.history[epoch - 1].seconds
        )
    assert sparse.test_accuracy == every.test_accuracy and not math.isnan(sparse.test_accuracy)

    # K models, each its own kept epoch; an ensemble's members and its final evaluation.
    seeds = [0, 1]
    many = [
        training.fit_many(dataclasses.replace(config, eval_every=e), dataset, seeds, log=None) for e in (1, 3)
    ]
    for a, b in zip(*many, strict=True):
        assert _tested(b.history) == sorted({3, 5, a.selected_epoch})
        assert b.reported == dataclasses.replace(a.reported, seconds=b.reported.seconds)
    ensembles = [
        training.fit_models(dataclasses.replace(config, eval_every=e, ensemble=2), dataset, log=None)[0]
        for e in (1, 3)
    ]
    assert ensembles[1].final == ensembles[0].final and ensembles[1].final is not None
    for a, b in zip(ensembles[0].members, ensembles[1].members, strict=True):
        assert b.reported == dataclasses.replace(a.reported, seconds=b.reported.seconds)
    assert _tested(ensembles[1].history) == [3, 5]  # the ensemble's own epochs: as evaluated
