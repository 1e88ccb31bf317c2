"""Datasets: the .ts reader, the embedded JapaneseVowels files, and the errors bad data gets."""

from __future__ import annotations

import dataclasses
import gzip
import importlib.resources

import numpy as np
import pytest

from jax_lstm import data

HEADER = """# a comment
@problemName Toy
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength {equal}
@classLabel true a b c
@data
"""


def write_ts(tmp_path, name, rows, equal="false", header=HEADER):
    path = tmp_path / name
    path.write_text(header.format(equal=equal) + "\n".join(rows) + "\n")
    return path


def test_reads_unequal_length_multivariate_series(tmp_path):
    path = write_ts(tmp_path, "x.ts", ["1,2,3:4,5,6:a", "7,8:9,10:c", "?,1:2,3:b"])
    ts = data.load_ts(path)
    assert ts.problem_name == "Toy" and ts.class_labels == ("a", "b", "c")
    assert [s.shape for s in ts.series] == [(3, 2), (2, 2), (2, 2)]
    np.testing.assert_array_equal(ts.series[0], [[1, 4], [2, 5], [3, 6]])  # (T, F): channels are columns
    assert np.isnan(ts.series[2][0, 0])  # '?' is a missing value
    assert ts.labels == ["a", "c", "b"]


def test_ts_pair_becomes_a_padded_dataset(tmp_path):
    train = write_ts(tmp_path, "train.ts", ["1,2,3:4,5,6:a", "7,8:9,10:c", "1:2:b", "3,3:3,4:a"])
    test = write_ts(tmp_path, "test.ts", ["1,2,3,4:4,5,6,7:b"])
    ds = data.from_ts_files(train, test, standardize=False)
    assert ds.x_train.shape == (4, 4, 2) and ds.x_test.shape == (1, 4, 2)
    np.testing.assert_array_equal(ds.lengths_train, [3, 2, 1, 2])
    np.testing.assert_array_equal(ds.y_train, [0, 2, 1, 0])  # declared order a, b, c
    assert (ds.x_train[1, 2:] == 0).all()  # right padding is zero
    ds.validate()


def test_standardisation_is_fitted_on_training_steps_only(tmp_path):
    train = write_ts(tmp_path, "train.ts", ["1,3:10,30:a", "5:50:b"])
    test = write_ts(tmp_path, "test.ts", ["100,200:1000,2000:a"])
    ds = data.from_ts_files(train, test)
    valid = ds.x_train[np.arange(2)[:, None] * 0 + np.arange(2)[None, :] < ds.lengths_train[:, None]]
    np.testing.assert_allclose(valid.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(valid.std(0), 1, atol=1e-6)
    # train mean 3 and std sqrt(8/3) in channel 0: the test series is shifted by the train statistics
    np.testing.assert_allclose(ds.x_test[0, 0, 0], (100 - 3) / np.sqrt(8 / 3), rtol=1e-6)
    assert ds.x_train[1, 1, 0] == 0  # padding stays zero


@pytest.mark.parametrize(
    "rows, message",
    [
        (["1,2:3,4:a", "1,2:a"], r"x\.ts:11: expected 2 dimensions and a class label, got 1"),
        (["1,2:3:a"], r"x\.ts:10: dimension 2 has 1 values but dimension 1 has 2"),
        (["1,x:3,4:a"], r"x\.ts:10: dimension 1 holds a value that is not a number"),
        (["1,2:3,4:z"], r"x\.ts:10: class label 'z' is not among the declared labels"),
        ([], r"no series after @data"),
    ],
    ids=["wrong_dimension_count", "ragged_channels", "not_a_number", "unknown_label", "empty"],
)
def test_malformed_ts_files_name_the_line(tmp_path, rows, message):
    with pytest.raises(data.DataError, match=message):
        data.load_ts(write_ts(tmp_path, "x.ts", rows))


def test_ts_header_problems(tmp_path):
    with pytest.raises(data.DataError, match="no @data line"):
        data.load_ts(write_ts(tmp_path, "x.ts", [], header="@problemName X\n"))
    with pytest.raises(data.DataError, match="only classification files"):
        data.load_ts(write_ts(tmp_path, "x.ts", ["1:2"], header="@dimensions 1\n@data\n"))
    # Unlabelled files are read (for prediction), their values intact, and refused for training.
    unlabelled = write_ts(
        tmp_path, "u.ts", ["1,2:3,4", "5:6"], header="@dimensions 2\n@classLabel false\n@data\n"
    )
    read = data.load_ts(unlabelled)
    assert read.labels is None and not read.labelled
    np.testing.assert_array_equal(read.series[0], [[1, 3], [2, 4]])
    np.testing.assert_array_equal(read.series[1], [[5, 6]])
    with pytest.raises(data.DataError, match=r"u\.ts has no class labels \(@classLabel false\)"):
        data.from_ts_files(unlabelled, unlabelled)
    with pytest.raises(data.DataError, match="no such file"):
        data.load_ts(tmp_path / "missing.ts")


def test_train_and_test_files_must_have_the_same_channels(tmp_path):
    train = write_ts(tmp_path, "train.ts", ["1,2:3,4:a"])
    test = write_ts(
        tmp_path, "test.ts", ["1,2:3,4:5,6:a"], header=HEADER.replace("@dimensions 2", "@dimensions 3")
    )
    with pytest.raises(data.DataError, match=r"has 2 dimensions but .*test\.ts has 3"):
        data.from_ts_files(train, test)


def test_embedded_japanese_vowels_is_the_uea_benchmark():
    ds = data.japanese_vowels(standardize=False)
    assert ds.name == "JapaneseVowels"
    assert (len(ds.y_train), len(ds.y_test), ds.num_features, ds.num_classes) == (270, 370, 12, 9)
    lengths = np.concatenate([ds.lengths_train, ds.lengths_test])
    assert (lengths.min(), lengths.max()) == (7, 29)
    assert np.bincount(ds.y_train).tolist() == [30] * 9  # 30 utterances per speaker
    # The very first value of the archive's training file, unchanged.
    assert ds.x_train[0, 0, 0] == np.float32(1.860936)
    ds.validate()


def test_embedded_files_keep_their_source_and_citation():
    root = importlib.resources.files("jax_lstm") / "datasets"
    for name in ("JapaneseVowels_TRAIN.ts.gz", "JapaneseVowels_TEST.ts.gz"):
        text = gzip.decompress((root / name).read_bytes()).decode()
        assert "archive.ics.uci.edu" in text and "M. Kudo, J. Toyama and M. Shimbo. (1999)" in text


def test_synthetic_is_the_articles_setup():
    ds = data.synthetic()
    assert ds.x_train.shape == (800, 20, 5) and ds.x_test.shape == (200, 20, 5)
    assert ds.x_train.dtype == np.float32 and set(np.unique(ds.y_train)) == {0, 1}
    assert ds.lengths_train is None


def test_digits_are_8_steps_of_8_features():
    ds = data.digits()
    assert ds.x_train.shape[1:] == (8, 8) and ds.num_classes == 10
    assert 0 <= ds.x_train.min() and ds.x_train.max() <= 1


def test_batch_order_is_a_shuffled_partition_fixed_by_seed_and_epoch():
    batches = data.batch_order(70, 32, seed=3, epoch=1)
    assert [len(b) for b in batches] == [32, 32, 6]
    assert sorted(np.concatenate(batches).tolist()) == list(range(70))
    again = data.batch_order(70, 32, seed=3, epoch=1)
    assert all((a == b).all() for a, b in zip(batches, again, strict=True))
    assert not (data.batch_order(70, 32, seed=3, epoch=2)[0] == batches[0]).all()


@pytest.fixture
def small():
    return data.synthetic(num_samples=20)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda d: dataclasses.replace(d, y_train=d.y_train + 5),
            r"label \d+ \(series \d+\) is out of range for 2 classes",
        ),
        (lambda d: dataclasses.replace(d, y_test=d.y_test - 1), r"test label -1 .*out of range"),
        (
            lambda d: dataclasses.replace(
                d, x_train=np.where(np.arange(20)[None, :, None] == 3, np.nan, d.x_train)
            ),
            "NaN or inf",
        ),
        (lambda d: dataclasses.replace(d, x_test=d.x_test * np.inf), "test data contains NaN or inf"),
        (
            lambda d: dataclasses.replace(d, x_train=d.x_train[:0], y_train=d.y_train[:0]),
            "train split is empty",
        ),
        (lambda d: dataclasses.replace(d, x_train=d.x_train[:1], y_train=d.y_train[:1]), "needs at least 2"),
        (lambda d: dataclasses.replace(d, x_test=d.x_test[..., :3]), "5 features but test series have 3"),
        (lambda d: dataclasses.replace(d, x_train=d.x_train[:, :0]), "length 0"),
        (lambda d: dataclasses.replace(d, y_train=d.y_train[:-1]), "16 series but 15 labels"),
    ],
    ids=[
        "label_too_big",
        "negative_label",
        "nan",
        "inf",
        "empty",
        "too_short",
        "features",
        "zero_length",
        "label_count",
    ],
)
def test_bad_datasets_are_refused_before_training(small, change, message):
    with pytest.raises(data.DataError, match=message):
        change(small).validate()


@pytest.mark.parametrize(
    "lengths, message",
    [
        (np.full(15, 3), r"train lengths must have shape \(16,\), got \(15,\)"),
        (np.full((16, 1), 3), r"train lengths must have shape \(16,\), got \(16, 1\)"),
        (np.r_[np.full(15, 3), 0], r"train lengths must be in \[1, 20\], got 0 to 3"),
        (np.r_[np.full(15, 3), 21], r"train lengths must be in \[1, 20\], got 3 to 21"),
    ],
    ids=["short", "two_dimensional", "zero", "too_long"],
)
def test_bad_lengths_are_refused_with_a_data_error(small, lengths, message):
    """The lengths are checked before the values they mask (a wrong shape used to raise IndexError)."""
    with pytest.raises(data.DataError, match=message):
        dataclasses.replace(small, lengths_train=lengths).validate()
