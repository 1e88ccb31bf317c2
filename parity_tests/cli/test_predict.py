"""`jax-lstm predict`: a model trained from the command line classifies .ts files it never saw, with
the accuracy training reported on the same file to the last digit; probabilities that sum to 1;
unlabelled files; ensembles; refusals before any work; checkpoints written before checkpoints
recorded their preprocessing (format 3 without it, format 2), handled as documented."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from pathlib import Path

import jax
import msgpack
import numpy as np
import pytest
from flax import serialization

import jax_lstm
from jax_lstm import data
from jax_lstm.cli import main
from jax_lstm.training import checkpoint, load_checkpoint, predict
from jax_lstm.training.history import to_dicts

TINY = ["--hidden-size", "4", "--num-layers", "1", "--quiet", "--no-compile-cache"]


def write_ts(
    path: Path, n: int, seed: int, channels: int = 2, labelled: bool = True, lengths=(6, 11)
) -> Path:
    """A small .ts problem: 3 classes told apart by frequency and level, unequal lengths."""
    rng = np.random.default_rng(seed)
    header = "@classLabel true a b c" if labelled else "@classLabel false"
    lines = [f"@problemName toy\n@dimensions {channels}\n@equalLength false\n{header}\n@data"]
    for i in range(n):
        label = i % 3
        steps = int(rng.integers(lengths[0], lengths[1] + 1))
        t = np.arange(steps)
        dims = [
            np.sin((label + 1) * 0.6 * t + c) + label + 0.3 * rng.standard_normal(steps)
            for c in range(channels)
        ]
        cells = [",".join(f"{v:.5f}" for v in d) for d in dims]
        lines.append(":".join(cells + (["abc"[label]] if labelled else [])))
    path.write_text("\n".join(lines) + "\n")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny lstm trained from the CLI on TRAIN.ts, evaluated on TEST.ts, checkpointed."""
    root = tmp_path_factory.mktemp("predict")
    files = {
        "train": write_ts(root / "TRAIN.ts", 30, 0),
        "test": write_ts(root / "TEST.ts", 21, 1),
        "new": write_ts(root / "NEW.ts", 12, 2, labelled=False),
        "three": write_ts(root / "THREE.ts", 5, 3, channels=3),
    }
    ckpt, metrics = root / "run1", root / "train.json"
    args = ["train", "--data", str(files["train"]), "--test-data", str(files["test"]), *TINY]
    assert main([*args, "--epochs", "2", "--checkpoint-dir", str(ckpt), "--metrics-json", str(metrics)]) == 0
    return root, files, ckpt, json.loads(metrics.read_text())


def test_predict_on_the_test_file_gives_trainings_accuracy_exactly(trained, capsys):
    root, files, ckpt, metrics = trained
    out, scores = root / "pred.csv", root / "pred.json"
    args = ["predict", "--checkpoint-dir", str(ckpt), "--data", str(files["test"]), "--output", str(out)]
    capsys.readouterr()
    assert main([*args, "--metrics-json", str(scores)]) == 0
    printed = capsys.readouterr().out
    recorded = json.loads(scores.read_text())
    assert recorded["accuracy"] == metrics["test_accuracy"]  # to the last digit
    assert f"accuracy {100 * metrics['test_accuracy']:.2f}% ({recorded['correct']} of 21 series)" in printed
    rows = read_csv(out)
    assert list(rows[0]) == ["index", "label", "prob_a", "prob_b", "prob_c", "true_label"]
    ts = data.load_ts(files["test"])
    assert [int(r["index"]) for r in rows] == list(range(21))
    assert [r["true_label"] for r in rows] == ts.labels  # file order
    probabilities = np.asarray([[float(r[f"prob_{c}"]) for c in "abc"] for r in rows])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert [r["label"] for r in rows] == ["abc"[k] for k in probabilities.argmax(axis=1)]
    assert recorded["correct"] == sum(r["label"] == r["true_label"] for r in rows)
    # The Python predictor gives the same probabilities, to the last bit (the CSV holds repr floats).
    predictor = jax_lstm.load(ckpt)
    np.testing.assert_array_equal(predictor.predict_proba(ts.series), probabilities)
    assert list(predictor.classes_) == ["a", "b", "c"] and predictor.config.hidden_size == 4
    assert predictor.missing == {}


def test_unlabelled_file_and_smaller_batches(trained, capsys):
    root, files, ckpt, _ = trained
    out = root / "new.csv"
    capsys.readouterr()
    args = ["predict", "--checkpoint-dir", str(ckpt), "--data", str(files["new"]), "--output", str(out)]
    assert main([*args, "--batch-size", "5"]) == 0
    printed = capsys.readouterr().out
    rows = read_csv(out)
    assert len(rows) == 12 and "true_label" not in rows[0]
    counts = {c: sum(r["label"] == c for r in rows) for c in "abc"}
    summary = ", ".join(f"{c} {n}" for c, n in counts.items() if n)
    assert f"predicted classes: {summary}" in printed
    assert "predicted 5/12 series" in printed and "predicted 10/12 series" in printed  # progress
    # The same series, labelled, read by the predictor in one chunk: the same labels.
    series = data.load_ts(files["new"]).series
    predicted = jax_lstm.load(ckpt).predict(series)
    assert [r["label"] for r in rows] == list(predicted)


def test_series_the_model_cannot_take_are_refused_before_any_work(trained, capsys):
    root, files, ckpt, _ = trained
    out = root / "refused.csv"
    base = ["predict", "--checkpoint-dir", str(ckpt), "--output", str(out)]
    capsys.readouterr()
    assert main([*base, "--data", str(files["three"])]) == 2
    error = capsys.readouterr().err
    assert (
        "THREE.ts: the series have 3 channels (features), but the model was trained on series of 2" in error
    )
    assert not out.exists()
    for extra, message in (
        (["--data", str(files["test"]), "--batch-size", "0"], "--batch-size must be at least 1"),
        (["--data", str(root / "missing.ts")], "missing.ts: no such file"),
    ):
        assert main([*base, *extra]) == 2
        assert message in capsys.readouterr().err
    bad_output = ["predict", "--checkpoint-dir", str(ckpt), "--data", str(files["test"]), "--output", "p.txt"]
    assert main(bad_output) == 2
    assert "must end in .csv" in capsys.readouterr().err
    empty = root / "empty_dir"
    empty.mkdir()
    assert (
        main(["predict", "--checkpoint-dir", str(empty), "--data", str(files["test"]), "--output", str(out)])
        == 2
    )
    assert "no checkpoint at" in capsys.readouterr().err


def test_longer_series_than_an_fcn_model_was_built_for_are_refused_by_name(tmp_path, capsys):
    train = data.load_ts(write_ts(tmp_path / "TRAIN.ts", 12, 0, lengths=(5, 7)))
    clf = jax_lstm.LSTMSequenceClassifier(model="lstm-fcn", epochs=1, hidden_size=2)
    clf.fit(train.series, train.labels).save(tmp_path / "fcn")
    longer = write_ts(tmp_path / "LONG.ts", 4, 5, lengths=(6, 9))
    lengths = [len(s) for s in data.load_ts(longer).series]
    first = next(i for i, n in enumerate(lengths) if n > 7)
    out = tmp_path / "p.csv"
    status = main(
        ["predict", "--checkpoint-dir", str(tmp_path / "fcn"), "--data", str(longer), "--output", str(out)]
    )
    assert status == 2
    error = capsys.readouterr().err
    assert f"LONG.ts:{6 + first}: series {first} has {lengths[first]} steps" in error
    assert "lstm-fcn was built for series of at most 7 steps" in error and not out.exists()


def test_an_ensemble_predicts_with_the_mean_of_its_members_probabilities(trained, tmp_path, capsys):
    _, files, _, _ = trained
    ckpt, metrics = tmp_path / "ens", tmp_path / "m.json"
    args = ["train", "--data", str(files["train"]), "--test-data", str(files["test"]), *TINY, "--epochs", "1"]
    assert (
        main([*args, "--ensemble", "2", "--checkpoint-dir", str(ckpt), "--metrics-json", str(metrics)]) == 0
    )
    trained_accuracy = json.loads(metrics.read_text())["test_accuracy"]
    out, scores = tmp_path / "p.csv", tmp_path / "p.json"
    args = ["predict", "--checkpoint-dir", str(ckpt), "--data", str(files["test"]), "--output", str(out)]
    status = main([*args, "--metrics-json", str(scores)])
    assert status == 0
    assert json.loads(scores.read_text())["accuracy"] == trained_accuracy
    predictor = jax_lstm.load(ckpt)
    assert predictor.config.ensemble == 2
    series = data.load_ts(files["test"]).series
    x, lengths = predictor.prepare(*data.pad_series(series))
    one = dataclasses.replace(predictor.config, ensemble=1)
    members = [
        predict.predictions(
            one, predictor.dims, jax.tree.map(lambda a, e=e: a[e], predictor.variables), x, lengths
        )
        for e in range(2)
    ]
    np.testing.assert_allclose(predictor.predict_proba(series), np.mean(members, axis=0), rtol=0, atol=1e-15)


def _with_gaps(source: Path, target: Path) -> Path:
    """`source` with every fifth value of its second channel, and the first channel of every
    fourth series throughout, written as ``?``."""
    lines = source.read_text().split("\n")
    start = lines.index("@data") + 1
    for i in range(start, len(lines)):
        if not lines[i]:
            continue
        *channels, label = lines[i].split(":")
        second = channels[1].split(",")
        channels[1] = ",".join("?" if k % 5 == 2 else v for k, v in enumerate(second))
        if (i - start) % 4 == 1:
            channels[0] = ",".join("?" for _ in channels[0].split(","))
        lines[i] = ":".join([*channels, label])
    target.write_text("\n".join(lines))
    return target


def _write_series(target: Path, series: list[np.ndarray], labels: list[str]) -> Path:
    rows = [":".join(",".join(repr(float(v)) for v in x[:, c]) for c in range(x.shape[1])) for x in series]
    head = "@problemName toy\n@dimensions 2\n@equalLength false\n@classLabel true a b c\n@data\n"
    target.write_text(head + "\n".join(f"{r}:{label}" for r, label in zip(rows, labels, strict=True)) + "\n")
    return target


def test_missing_values_are_filled_as_by_hand_in_train_and_predict(trained, tmp_path, capsys):
    """Training on files with gaps is training on the files filled by `fill_series` (unstandardised,
    the same metrics to the last digit); predict fills a file as training did (standardised: the
    accuracy training reported on it, to the last digit), and refuses it with ``--fill none``."""
    _, files, _, _ = trained
    gappy = {k: _with_gaps(files[k], tmp_path / f"gappy_{k}.ts") for k in ("train", "test")}
    train_ts, test_ts = (data.load_ts(gappy[k]) for k in ("train", "test"))
    zeros = np.zeros(2)  # unstandardised, a channel missing throughout a series takes 0
    hand = {
        k: _write_series(
            tmp_path / f"hand_{k}.ts", data.fill_series(ts.series, "interpolate", zeros)[0], ts.labels
        )
        for k, ts in (("train", train_ts), ("test", test_ts))
    }
    results = {}
    for name, pair, extra in (
        ("gappy", gappy, ["--no-standardize"]),
        ("hand", hand, ["--no-standardize"]),
        ("standardised", gappy, []),
    ):
        metrics = tmp_path / f"{name}.json"
        args = [
            "train",
            "--data",
            str(pair["train"]),
            "--test-data",
            str(pair["test"]),
            *TINY,
            "--epochs",
            "2",
        ]
        capsys.readouterr()
        ckpt = ["--checkpoint-dir", str(tmp_path / name), "--metrics-json", str(metrics)]
        assert main([*args, *extra, *ckpt]) == 0
        results[name] = (json.loads(metrics.read_text()), capsys.readouterr().out)

    def losses(metrics):
        return [{k: v for k, v in e.items() if k != "seconds"} for e in metrics["epochs"]]

    (gappy_metrics, printed), (hand_metrics, hand_printed) = results["gappy"], results["hand"]
    assert losses(gappy_metrics) == losses(hand_metrics)  # every epoch's, to the last digit
    assert gappy_metrics["test_accuracy"] == hand_metrics["test_accuracy"]
    filled = data.fill_series(train_ts.series, "interpolate")[1]
    assert filled.values > 0 and filled.series == len(train_ts.series)
    assert f"train: {filled.values} missing values in {filled.series} series filled by linear" in printed
    assert filled.describe("train", "interpolate") in printed
    assert "missing values" not in hand_printed
    out, scores = tmp_path / "p.csv", tmp_path / "p.json"
    args = ["predict", "--checkpoint-dir", str(tmp_path / "standardised"), "--data", str(gappy["test"])]
    assert main([*args, "--output", str(out), "--metrics-json", str(scores)]) == 0
    assert "gappy_test.ts: " in capsys.readouterr().out
    assert json.loads(scores.read_text())["accuracy"] == results["standardised"][0]["test_accuracy"]
    probabilities = np.asarray([[float(r[f"prob_{c}"]) for c in "abc"] for r in read_csv(out)])
    predictor = jax_lstm.load(tmp_path / "standardised")
    by_mean = data.fill_series(test_ts.series, "interpolate", predictor.preprocessing.mean)[0]
    np.testing.assert_array_equal(predictor.predict_proba(by_mean), probabilities)
    assert main([*args, "--output", str(out), "--fill", "none"]) == 2
    assert "gappy_test.ts:6: series 0 has a missing value (dimension 2, step 3)" in capsys.readouterr().err


def _old_description(data_description: dict) -> dict:
    """The description a checkpoint held before preprocessing was recorded."""
    return {k: v for k, v in data_description.items() if k not in ("preprocessing", "variable_length")}


def _rewrite_without_preprocessing(source: Path, target: Path) -> None:
    """The same checkpoint as a format-3 file written before preprocessing was recorded."""
    loaded = load_checkpoint(source)
    checkpoint.save(
        target,
        loaded.state,
        loaded.schedules,
        loaded.epoch,
        loaded.histories,
        loaded.config,
        _old_description(loaded.data),
    )


def _format_2(source: Path, target: Path) -> None:
    """The same model as a checkpoint of format 2 (one model; "plateau" and "history"; no seq_len)."""
    loaded = load_checkpoint(source)
    description = {k: v for k, v in _old_description(loaded.data).items() if k != "seq_len"}
    payload = serialization.msgpack_serialize(
        {
            "state": serialization.to_state_dict(loaded.state),
            "plateau": loaded.schedules[0]._asdict(),
            "epoch": loaded.epoch,
            "history": json.dumps(to_dicts(loaded.history)),
            "config": json.dumps(dataclasses.asdict(loaded.config)),
            "data": json.dumps(description),
        }
    )
    envelope = {
        "format": "jax-lstm-checkpoint/2",
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": payload,
    }
    target.mkdir()
    (target / checkpoint.CHECKPOINT_NAME).write_bytes(msgpack.packb(envelope, use_bin_type=True))


@pytest.mark.parametrize(
    "make_old", [_rewrite_without_preprocessing, _format_2], ids=["format3-old", "format2"]
)
def test_a_checkpoint_without_its_preprocessing_is_refused_until_told(trained, tmp_path, capsys, make_old):
    _, files, ckpt, metrics = trained
    old = tmp_path / "old"
    make_old(ckpt, old)
    predictor = jax_lstm.load(old)
    assert "preprocessing" in predictor.missing and not predictor.preprocessing_known
    series = data.load_ts(files["test"]).series
    with pytest.raises(ValueError, match="written before checkpoints recorded their preprocessing"):
        predictor.predict(series)
    out, scores = tmp_path / "p.csv", tmp_path / "p.json"
    base = ["predict", "--checkpoint-dir", str(old), "--data", str(files["test"]), "--output", str(out)]
    capsys.readouterr()
    assert main(base) == 2
    assert "--train-data TRAIN.ts" in capsys.readouterr().err and not out.exists()
    # The training file: its statistics refitted exactly as training fitted them.
    assert main([*base, "--train-data", str(files["train"]), "--metrics-json", str(scores)]) == 0
    assert json.loads(scores.read_text())["accuracy"] == metrics["test_accuracy"]
    refitted = jax_lstm.load(old, train_data=files["train"])
    np.testing.assert_array_equal(refitted.predict_proba(series), jax_lstm.load(ckpt).predict_proba(series))
    # --no-standardize says the model saw its series as they are: they are then taken as they are.
    assert main([*base, "--no-standardize"]) == 0
    raw = jax_lstm.load(old, standardize=False)
    assert raw.preprocessing is None and raw.preprocessing_known
    with pytest.raises(ValueError, match="records how its training series were scaled"):
        jax_lstm.load(ckpt, standardize=False)
