"""The article's extensions from the command line and the estimator: LSTM-FCN, MLSTM-FCN and
attention-LSTM with their recipes, checkpoints, export, --compare-torch, --plot-attention and
--validation-split."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import jax_lstm
from jax_lstm import data, reporting, training
from jax_lstm.cli import build_parser, main
from jax_lstm.experiment import flags
from jax_lstm.models import registry
from torch_ref import MLSTMFCN
from torch_ref.__main__ import main as torch_main


def _write_ts(path: Path, n: int, channels: int, seed: int, lengths=(8, 12)) -> Path:
    """A small learnable .ts problem: 3 classes told apart by their frequency, unequal lengths."""
    rng = np.random.default_rng(seed)
    lines = [f"@problemName tiny\n@dimensions {channels}\n@equalLength false\n@classLabel true a b c\n@data"]
    for i in range(n):
        label = i % 3
        steps = int(rng.integers(lengths[0], lengths[1] + 1))
        t = np.arange(steps)
        dims = [np.sin((label + 1) * 0.6 * t + c) + 0.1 * rng.standard_normal(steps) for c in range(channels)]
        lines.append(":".join(",".join(f"{v:.4f}" for v in d) for d in dims) + f":{'abc'[label]}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_ts")
    return {
        "train": _write_ts(root / "TRAIN.ts", 30, 2, 0),
        "test": _write_ts(root / "TEST.ts", 15, 2, 1),
        "other": _write_ts(root / "OTHER.ts", 30, 3, 2),  # three channels
    }


def _data(files, key="train"):
    return ["--data", str(files[key]), "--test-data", str(files["test" if key == "train" else key])]


class _Sizes:
    """What `resolve_config` reads off a dataset: its training and test series, padded length, defaults."""

    def __init__(self, num_train: int, seq_len: int, num_test: int | None = None):
        self.y_train, self.seq_len, self.defaults = np.zeros(num_train), seq_len, dict(data.DATASET_DEFAULTS)
        self.y_test = np.zeros(num_train if num_test is None else num_test)


def test_recipes_fill_only_what_no_flag_sets():
    def config(*argv, num_train=0, seq_len=0, num_test=None):
        request = flags.train_request(build_parser().parse_args(["train", *argv]))
        sizes = _Sizes(num_train, seq_len, num_test)
        return training.resolve_config(request.model, sizes, **request.given_settings())

    fcn = config("--model", "mlstm-fcn", "--data", "x.ts")
    assert (fcn.hidden_size, fcn.num_layers, fcn.dropout, fcn.clip) == (8, 1, 0.8, None)
    assert (fcn.patience, fcn.min_lr, fcn.batch_size) == (5, 1e-4, 16)
    assert fcn.factor == pytest.approx(2 ** (-1 / 3))
    assert (fcn.schedule, fcn.eta_min, fcn.warmup_epochs, fcn.select) == ("cosine", 0.0, 0, "train-loss")
    plateau = config("--model", "lstm-fcn", "--schedule", "plateau", "--select", "last")
    assert (plateau.schedule, plateau.select, plateau.patience) == ("plateau", "last", 5)
    # batches_per_epoch: about ten batches an epoch, of 8 to 16 series (a flag stands)
    sizes = [
        config("--model", "lstm-fcn", "--data", "x.ts", num_train=n).batch_size
        for n in (5, 40, 100, 159, 160, 4000)
    ]
    assert sizes == [8, 8, 10, 15, 16, 16]
    assert config("--model", "lstm-fcn", "--batch-size", "32", num_train=100).batch_size == 32
    # the rule is the FCN models' only
    assert config("--model", "lstm", "--data", "x.ts", num_train=100).batch_size == 16
    # min_steps: a set of 40 series makes 5 steps (of 8) an epoch, so 1500 steps take 300 epochs ...
    assert config("--model", "lstm-fcn", "--data", "x.ts", num_train=40, seq_len=100).epochs == 300
    # ... unless the work (series x steps x epochs) would pass max_work: 22e6 / (40 x 2000) = 275
    assert config("--model", "lstm-fcn", "--data", "x.ts", num_train=40, seq_len=2000).epochs == 275
    # OSULeaf's 200 series of 427 steps (13 steps of 16 an epoch): 116 epochs make the 1500 updates;
    # ACSF1's 100 of 1460 (10 steps of 10): 150 epochs, 21.9e6 of work
    assert config("--model", "lstm-fcn", "--data", "x.ts", num_train=200, seq_len=427).epochs == 116
    assert config("--model", "lstm-fcn", "--data", "x.ts", num_train=100, seq_len=1460).epochs == 150
    assert config("--model", "lstm-fcn", "--data", "x.ts", num_train=100, seq_len=2000).epochs == 110
    # never below the recipe's 40 epochs
    assert config("--model", "lstm-fcn", "--data", "x.ts", num_train=200, seq_len=4000).epochs == 40
    assert config("--model", "lstm-fcn", "--data", "x.ts", num_train=4000).epochs == 40
    assert config("--model", "lstm-fcn", "--epochs", "3", num_train=40).epochs == 3  # a flag stands
    flagged = config("--model", "lstm-fcn", "--hidden-size", "5", "--clip", "2", "--dropout", "0")
    assert (flagged.hidden_size, flagged.clip, flagged.dropout) == (5, 2.0, 0.0)
    # EVAL_SHARE: the test split after every epoch while evaluating it costs at most half the
    # training's time (a third of a training pass a series); the dev sets' splits (train, test):
    # JapaneseVowels (270, 370), OSULeaf (200, 242), ACSF1, Coffee, Trace (equal) all every epoch
    for model in ("lstm-fcn", "mlstm-fcn", "lstm", "bn-lstm", "attention-lstm", "mdlstm"):
        every = [
            config("--model", model, num_train=n, seq_len=50, num_test=m).eval_every
            for n, m in ((270, 370), (200, 242), (100, 100), (100, 150), (100, 151), (40, 1380), (0, 9))
        ]
        assert every == [1, 1, 1, 1, 2, 23, 1], model
    long = config("--model", "lstm-fcn", num_train=40, seq_len=50, num_test=1380)
    assert long.evaluates(23) and long.evaluates(46) and not long.evaluates(24)
    assert long.evaluates(long.epochs) and long.epochs % 23  # the last epoch always
    assert config("--model", "lstm-fcn", "--eval-every", "1", num_train=40, num_test=1380).eval_every == 1
    assert config("--model", "lstm", "--eval-every", "4").eval_every == 4
    article = config()
    assert article.eval_every == 1  # the article's runs: every epoch
    assert (article.hidden_size, article.num_layers, article.clip, article.patience) == (128, 2, 1.0, 2)
    assert (article.epochs, article.batch_size, article.factor, article.min_lr) == (30, 16, 0.1, 0.0)


def test_mlstm_fcn_trains_checkpoints_resumes_and_exports(tiny, tmp_path, capsys):
    ckpt, metrics, exported = tmp_path / "ckpt", tmp_path / "m.json", tmp_path / "w.pt"
    args = ["train", "--model", "mlstm-fcn", *_data(tiny), "--quiet", "--checkpoint-dir", str(ckpt)]
    assert main([*args, "--epochs", "2", "--metrics-json", str(metrics)]) == 0
    out = capsys.readouterr().out
    assert "model mlstm-fcn: hidden 8, layers 1, dropout 0.8" in out
    assert "cosine to 0, select train-loss" in out
    first = json.loads(metrics.read_text())
    assert [e["epoch"] for e in first["epochs"]] == [1, 2]
    lowest = min(first["epochs"], key=lambda e: e["train_loss"])["epoch"]
    assert first["selected_epoch"] == lowest
    assert main([*args, "--epochs", "3", "--resume", "--metrics-json", str(metrics)]) == 0
    resumed = json.loads(metrics.read_text())
    assert resumed["epochs"][:2] == first["epochs"] and len(resumed["epochs"]) == 3

    # The same checkpoint against data with another channel count: refused, naming both counts.
    other = ["train", "--model", "mlstm-fcn", *_data(tiny, "other"), "--quiet", "--checkpoint-dir", str(ckpt)]
    capsys.readouterr()
    assert main([*other, "--epochs", "4", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "trained on series of 2 channels (features), and this data has 3" in err

    assert main(["export", str(ckpt), str(exported)]) == 0
    out = capsys.readouterr().out
    assert "a MLSTMFCN state dict after 3 epochs" in out
    state_dict = torch.load(exported)
    dataset = data.from_ts_files(tiny["train"], tiny["test"])
    twin = MLSTMFCN(2, dataset.seq_len, 3, 8, 1)
    twin.load_state_dict(state_dict, strict=True)  # the printed constructor's shapes
    assert (
        f"MLSTMFCN(input_size=2, seq_len={dataset.seq_len}, num_classes=3, hidden_size=8, num_layers=1, "
        "dropout=0.8, cell='lstm', filters=(128, 256, 128), kernel_sizes=(8, 5, 3), reduction=16)"
    ) in out


def test_compare_torch_agrees_for_lstm_fcn_in_float64(tiny, capsys):
    argv = ["train", "--model", "lstm-fcn", *_data(tiny), "--quiet", "--epochs", "2", "--dropout", "0"]
    assert main([*argv, "--dtype", "float64", "--compare-torch"]) == 0
    out = capsys.readouterr().out
    assert "agree" in out and "DISAGREE" not in out


def test_attention_plot_of_a_patched_model_draws_one_bar_per_patch(tiny, tmp_path, capsys, monkeypatch):
    drawn = {}
    original = reporting.plot_attention

    def spy(path, x, weights, lengths, titles, title=""):
        drawn.update(steps=x.shape[1], weights=weights.shape[1])
        return original(path, x, weights, lengths, titles, title)

    monkeypatch.setattr(reporting, "plot_attention", spy)
    plot = tmp_path / "patched.png"
    argv = ["train", "--model", "attention-lstm", *_data(tiny), "--quiet", "--epochs", "1", "--patch", "3"]
    assert main([*argv, "--hidden-size", "4", "--num-layers", "1", "--plot-attention", str(plot)]) == 0
    assert "patch 3" in capsys.readouterr().out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn["weights"] == -(-drawn["steps"] // 3)  # a weight per patch, drawn without error


def test_attention_plot_and_validation_split(tiny, tmp_path, capsys):
    plot, metrics = tmp_path / "attention.png", tmp_path / "m.json"
    argv = [
        "train",
        "--model",
        "attention-lstm",
        *_data(tiny),
        "--quiet",
        "--epochs",
        "4",
        "--hidden-size",
        "8",
    ]
    argv += ["--num-layers", "1", "--validation-split", "0.3", "--metrics-json", str(metrics)]
    assert main([*argv, "--plot-attention", str(plot)]) == 0
    out = capsys.readouterr().out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "21 train (+9 validation) / 15 test series" in out
    payload = json.loads(metrics.read_text())
    epochs = payload["epochs"]
    chosen = payload["selected_epoch"]
    best = max((e["val_accuracy"], -e["val_loss"]) for e in epochs)
    assert (epochs[chosen - 1]["val_accuracy"], -epochs[chosen - 1]["val_loss"]) == best
    assert payload["test_accuracy"] == epochs[chosen - 1]["test_accuracy"]  # the chosen epoch's
    assert f"at epoch {chosen} (chosen on the validation split)" in out


def test_validation_split_is_stratified_and_leaves_the_test_split_alone():
    dataset = data.japanese_vowels()
    split = data.validation_split(dataset, 0.2, seed=3)
    assert len(split.y_train) + len(split.y_validation) == len(dataset.y_train)
    counts = np.bincount(dataset.y_train, minlength=dataset.num_classes)
    held = np.bincount(split.y_validation, minlength=dataset.num_classes)
    np.testing.assert_array_equal(held, np.round(0.2 * counts).astype(int))
    np.testing.assert_array_equal(split.x_test, dataset.x_test)
    # disjoint: every training series lands on exactly one side
    rows = np.concatenate([split.x_train, split.x_validation]).reshape(len(dataset.y_train), -1)
    assert len(np.unique(rows, axis=0)) == len(
        np.unique(dataset.x_train.reshape(len(dataset.y_train), -1), axis=0)
    )
    again = data.validation_split(dataset, 0.2, seed=3)
    np.testing.assert_array_equal(again.y_validation, split.y_validation)
    with pytest.raises(data.DataError, match="already has a validation split"):
        data.validation_split(split, 0.2)


def test_fit_many_chooses_each_models_epoch_as_fit_does(tiny):
    dataset = data.validation_split(data.from_ts_files(tiny["train"], tiny["test"]), 0.3, seed=0)
    config = jax_lstm.TrainConfig(
        model="attention-lstm", hidden_size=4, num_layers=1, epochs=4, log_every=0, select="validation"
    )
    many = jax_lstm.fit_many(config, dataset, [0, 1], log=None)
    for seed, result in zip([0, 1], many, strict=True):
        alone = jax_lstm.fit(dataclasses.replace(config, seed=seed), dataset, log=None)
        assert result.selected_epoch == alone.selected_epoch is not None
        assert result.test_accuracy == alone.test_accuracy
        np.testing.assert_allclose(
            result.variables()["params"]["fc"]["weight"],
            alone.variables()["params"]["fc"]["weight"],
            rtol=1e-5,
        )


def test_seeds_train_fcn_models_at_once(tiny, capsys):
    argv = ["train", "--model", "lstm-fcn", *_data(tiny), "--quiet", "--epochs", "1", "--seeds", "2"]
    assert main(argv) == 0
    assert "2 runs (seeds 0, 1) trained at once: model lstm-fcn" in capsys.readouterr().out


def test_torch_reference_trains_the_new_models_and_refuses_a_validation_split(tiny, capsys):
    assert torch_main(["train", "--model", "attention-lstm", *_data(tiny), "--quiet", "--epochs", "1"]) == 0
    assert "model attention-lstm" in capsys.readouterr().out
    assert torch_main(["train", "--model", "lstm-fcn", *_data(tiny), "--validation-split", "0.2"]) == 2
    assert "the torch reference always reports the last epoch" in capsys.readouterr().err


def test_estimator_takes_every_classifier(tiny):
    dataset = data.from_ts_files(tiny["train"], tiny["test"], standardize=False)
    series = [dataset.x_train[i, : dataset.lengths_train[i]] for i in range(len(dataset.y_train))]
    labels = np.asarray(dataset.classes)[dataset.y_train]
    clf = jax_lstm.LSTMSequenceClassifier(model="mlstm-fcn", epochs=2)
    assert clf.get_params()["model"] == "mlstm-fcn"
    clf.fit(series, labels)
    assert clf.config_["hidden_size"] == 8 and clf.config_["clip"] is None  # the recipe's
    assert clf.predict(series[:4]).shape == (4,)
    short = [s[:5] for s in series[:3]]  # shorter than training: zero-padded up to seq_len
    assert clf.predict_proba(short).shape == (3, 3)
    too_long = [np.concatenate([series[0]] * 3)]
    with pytest.raises(ValueError, match="was built for series of at most"):
        clf.predict(too_long)
    for name in ("lstm-fcn", "attention-lstm"):
        fitted = jax_lstm.LSTMSequenceClassifier(model=name, epochs=1, hidden_size=4).fit(series, labels)
        assert fitted.config_["hidden_size"] == 4 and fitted.config_["model"] == name
        assert fitted.score(series, labels) == np.mean(fitted.predict(series) == labels)
    assert set(registry.names("classification")) >= {"lstm-fcn", "mlstm-fcn", "attention-lstm"}
