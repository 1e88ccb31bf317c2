"""`jax_lstm.load` and the estimator's `save`/`load`: one checkpoint format from the command line,
the Python predictor and the scikit-learn estimator, with the same predictions in every direction;
the series forms the estimator takes; what a checkpoint records of its data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import jax_lstm
from jax_lstm import data
from jax_lstm.cli import main
from jax_lstm.estimator import LSTMSequenceClassifier
from jax_lstm.training import checkpoint, load_checkpoint


def _toy(n: int, seed: int, channels: int = 2, lengths=(5, 9)) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    series, labels = [], []
    for i in range(n):
        steps = int(rng.integers(lengths[0], lengths[1] + 1))
        t = np.arange(steps)[:, None]
        series.append(
            np.sin((i % 3 + 1) * t + np.arange(channels))
            + i % 3
            + 0.2 * rng.standard_normal((steps, channels))
        )
        labels.append(i % 3 * 10)  # integer labels: the estimator keeps their values
    return series, np.asarray(labels)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("predictor")
    series, labels = _toy(24, 0)
    clf = LSTMSequenceClassifier(hidden_size=4, num_layers=1, epochs=2, random_state=3).fit(series, labels)
    clf.save(root / "clf")
    return root, clf, _toy(9, 1)[0]


def test_the_estimator_saves_a_checkpoint_the_predictor_and_the_estimator_load(fitted):
    root, clf, new = fitted
    expected = clf.predict_proba(new)
    predictor = jax_lstm.load(root / "clf")
    np.testing.assert_array_equal(predictor.predict_proba(new), expected)
    assert list(predictor.classes_) == [0, 10, 20]  # the labels' own values, from the annotation
    np.testing.assert_array_equal(predictor.predict(new), clf.predict(new))
    restored = LSTMSequenceClassifier.load(root / "clf")
    np.testing.assert_array_equal(restored.predict_proba(new), expected)
    # Its parameters are the resolved config's (the fitted one's None: "the recipe's", resolved).
    params = restored.get_params()
    for name in ("hidden_size", "num_layers", "model", "epochs", "batch_size", "lr", "clip", "cell"):
        assert params[name] == clf.config_[name], name
    assert params["random_state"] == 3 and params["standardize"] is True
    np.testing.assert_array_equal(restored.mean_, clf.mean_)
    # The checkpoint records the standardisation fitted on the training series, in float64.
    loaded = load_checkpoint(root / "clf")
    assert loaded.data["preprocessing"]["kind"] == "standardize"
    np.testing.assert_array_equal(np.asarray(loaded.data["preprocessing"]["mean"]), clf.mean_)
    assert loaded.data["variable_length"] is True and loaded.data["seq_len"] == 9
    assert checkpoint.missing(loaded.data) == {}
    # Saving again refuses to overwrite unless asked.
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        restored.save(root / "clf")
    restored.save(root / "clf", overwrite=True)
    np.testing.assert_array_equal(jax_lstm.load(root / "clf").predict_proba(new), expected)


def test_series_forms_as_the_estimator_takes_them(fitted):
    root, _, new = fitted
    predictor = jax_lstm.load(root / "clf")
    as_list = predictor.predict_proba(new)
    # A 3-D array of equal-length series and the same series as a list agree.
    same = np.stack([s[:5] for s in new])
    np.testing.assert_array_equal(predictor.predict_proba(same), predictor.predict_proba(list(same)))
    assert as_list.shape == (9, 3)
    with pytest.raises(ValueError, match="have 3 channels"):
        predictor.predict(np.ones((2, 5, 3)))
    # A 2-D array: univariate series, refused by a model of two channels by name.
    with pytest.raises(ValueError, match="have 1 channels"):
        predictor.predict(np.ones((2, 5)))


def test_a_model_trained_from_the_cli_in_a_pipeline_and_back(tmp_path, capsys):
    series, labels = _toy(24, 2)
    names = [str(v) for v in labels]

    def ts(path, rows, tags):
        lines = [
            "@problemName toy",
            "@dimensions 2",
            "@equalLength false",
            "@classLabel true 0 10 20",
            "@data",
        ]
        for s, tag in zip(rows, tags, strict=True):
            lines.append(":".join(",".join(f"{v:.6f}" for v in s[:, c]) for c in range(2)) + f":{tag}")
        path.write_text("\n".join(lines) + "\n")
        return path

    train = ts(tmp_path / "TRAIN.ts", series[:18], names[:18])
    test = ts(tmp_path / "TEST.ts", series[18:], names[18:])
    args = [
        "train",
        "--data",
        str(train),
        "--test-data",
        str(test),
        "--hidden-size",
        "4",
        "--num-layers",
        "1",
    ]
    assert main([*args, "--epochs", "1", "--quiet", "--checkpoint-dir", str(tmp_path / "run")]) == 0
    clf = LSTMSequenceClassifier.load(tmp_path / "run")
    assert list(clf.classes_) == ["0", "10", "20"] and clf.hidden_size == 4 and clf.standardize
    test_series = data.load_ts(test).series
    pipeline = Pipeline([("identity", FunctionTransformer(lambda x: x)), ("clf", clf)])
    np.testing.assert_array_equal(
        pipeline.predict(test_series), jax_lstm.load(tmp_path / "run").predict(test_series)
    )
    # The estimator's parameters are the run's: a clone trains the same model again.
    refit = clone(clf).fit(data.load_ts(train).series, data.load_ts(train).labels)
    assert refit.config_["hidden_size"] == 4 and refit.config_["epochs"] == 1
    clf.save(tmp_path / "back")
    np.testing.assert_array_equal(
        jax_lstm.load(tmp_path / "back").predict_proba(test_series),
        jax_lstm.load(tmp_path / "run").predict_proba(test_series),
    )


def test_checkpoint_descriptions_say_what_older_ones_lack():
    old_classifier = {"name": "x", "num_features": 2, "classes": ["a"], "num_train": 3}
    assert set(checkpoint.missing(old_classifier)) == {"seq_len", "preprocessing", "variable_length"}
    old_forecaster = {"name": "x", "num_features": 2, "output_shape": [2, 1], "num_train": 3, "seq_len": 4}
    assert set(checkpoint.missing(old_forecaster)) == {"preprocessing", "table"}
    assert data.Preprocessing.from_dict({"kind": "none"}) is None
    fitted = data.Preprocessing.fit(np.arange(12.0).reshape(2, 3, 2) / 7)
    again = data.Preprocessing.from_dict(fitted.as_dict())
    np.testing.assert_array_equal(again.mean, fitted.mean)  # JSON floats round-trip exactly
    np.testing.assert_array_equal(again.scale, fitted.scale)
