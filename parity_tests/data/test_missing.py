"""Missing values in .ts files: the fills' values step by step, padding read as padding, what a
channel missing throughout a series takes, and that `from_ts_files` trains on exactly the series a
user would have filled by hand."""

from __future__ import annotations

import numpy as np
import pytest

from jax_lstm import data

nan = np.nan


def test_interpolation_is_linear_between_neighbours_and_holds_the_ends():
    x = np.array([[nan, 1.0], [2.0, nan], [nan, nan], [8.0, 4.0], [nan, 5.0]])
    (filled,), report = data.fill_series([x], "interpolate")
    np.testing.assert_array_equal(filled, [[2.0, 1.0], [2.0, 2.0], [5.0, 3.0], [8.0, 4.0], [8.0, 5.0]])
    assert (report.values, report.series, report.trimmed) == (5, 1, 0)
    assert np.isnan(x).sum() == 5  # the input is not written to


def test_ffill_carries_the_last_value_and_backfills_only_the_start():
    x = np.array([[nan, 0.0], [3.0, 0.0], [nan, 0.0], [nan, 0.0], [7.0, 0.0], [nan, 0.0]])
    (filled,), report = data.fill_series([x], "ffill")
    np.testing.assert_array_equal(filled[:, 0], [3.0, 3.0, 3.0, 3.0, 7.0, 7.0])
    assert (report.values, report.trimmed) == (4, 0)
    # One channel: a missing last step is missing on every channel, so it is padding.
    (short,), report = data.fill_series([x[:, :1]], "ffill")
    np.testing.assert_array_equal(short[:, 0], [3.0, 3.0, 3.0, 3.0, 7.0])
    assert (report.values, report.trimmed) == (3, 1)


def test_trailing_steps_missing_on_every_channel_are_padding():
    x = np.array([[1.0, 2.0], [nan, 3.0], [nan, nan], [nan, nan]])
    (filled,), report = data.fill_series([x], "interpolate")
    np.testing.assert_array_equal(filled, [[1.0, 2.0], [1.0, 3.0]])  # two steps long
    assert (report.values, report.series, report.trimmed) == (1, 1, 2)
    # Padding alone (no gap inside) shortens the series and fills nothing.
    (short,), report = data.fill_series([np.array([[1.0], [2.0], [nan]])], "ffill")
    assert short.shape == (2, 1) and (report.values, report.series, report.trimmed) == (0, 0, 1)


def test_a_channel_missing_throughout_takes_the_given_means_and_clean_series_pass_unchanged():
    clean = np.array([[1.0, 10.0], [3.0, 30.0]])
    gappy = np.array([[5.0, nan], [nan, nan], [7.0, nan]])
    out, report = data.fill_series([clean, gappy], "interpolate", np.array([4.0, 20.0]))
    assert out[0] is clean
    np.testing.assert_array_equal(out[1], [[5.0, 20.0], [6.0, 20.0], [7.0, 20.0]])
    assert (report.values, report.series, report.empty) == (4, 1, None)
    (left,), _ = data.fill_series([gappy], "ffill")  # without means it stays NaN, the rest filled
    np.testing.assert_array_equal(left[:, 0], [5.0, 5.0, 7.0])
    assert np.isnan(left[:, 1]).all()


def test_a_series_with_no_value_is_named_and_infinities_are_not_filled():
    out, report = data.fill_series([np.ones((2, 1)), np.full((3, 2), nan)], "interpolate")
    assert report.empty == 1 and np.isnan(out[1]).all()
    for method in ("interpolate", "ffill"):
        (kept,), report = data.fill_series([np.array([[np.inf], [nan], [1.0]])], method)
        assert report.values == 1 and np.isposinf(kept[0, 0]), method
        np.testing.assert_array_equal(kept[1:, 0], [1.0, 1.0])  # filled from the finite value
    with pytest.raises(ValueError, match="fill must be one of"):
        data.fill_series([np.ones((2, 1))], "mean")


def _write(path, rows, labels):
    cells = [
        ":".join(",".join(r) for r in row) + f":{label}" for row, label in zip(rows, labels, strict=True)
    ]
    path.write_text(
        "@problemName gaps\n@dimensions 2\n@classLabel true a b\n@data\n" + "\n".join(cells) + "\n"
    )
    return path


def test_from_ts_files_gives_the_dataset_of_the_series_filled_by_hand(tmp_path):
    gappy = [
        [["1", "?", "3", "4"], ["0", "1", "NaN", "1"]],
        [["2", "2", "?", "?"], ["?", "?", "?", "?"]],
        [["5", "4", "3", "?"], ["1", "0", "1", "?"]],  # a padded series: three steps
        [["0", "1", "0", "1"], ["2", "3", "2", "3"]],
    ]
    by_hand = [  # unstandardised, a channel missing throughout takes 0
        [["1", "2", "3", "4"], ["0", "1", "1", "1"]],
        [["2", "2"], ["0", "0"]],  # its last two steps are missing on both channels: padding
        [["5", "4", "3"], ["1", "0", "1"]],
        [["0", "1", "0", "1"], ["2", "3", "2", "3"]],
    ]
    labels = ["a", "b", "a", "b"]
    train = _write(tmp_path / "gaps_TRAIN.ts", gappy, labels)
    test = _write(tmp_path / "gaps_TEST.ts", gappy[::-1], labels)
    hand = (
        _write(tmp_path / "hand_TRAIN.ts", by_hand, labels),
        _write(tmp_path / "hand_TEST.ts", by_hand[::-1], labels),
    )
    ours, theirs = (
        data.from_ts_files(train, test, standardize=False),
        data.from_ts_files(*hand, standardize=False),
    )
    for field in ("x_train", "x_test", "lengths_train", "lengths_test", "y_train", "y_test"):
        np.testing.assert_array_equal(getattr(ours, field), getattr(theirs, field), err_msg=field)
    np.testing.assert_array_equal(ours.lengths_train, [4, 2, 3, 4])
    assert ours.notes == (
        "train: 4 missing values in 2 series filled by linear interpolation; 3 trailing steps missing "
        "on every channel read as padding",
        "test: 4 missing values in 2 series filled by linear interpolation; 3 trailing steps missing "
        "on every channel read as padding",
    )
    assert theirs.notes == ()
    # Standardised: the statistics are those of the values there are (the filled channel left out),
    # and the channel missing throughout is exactly 0, the training mean, in both splits.
    standardised = data.from_ts_files(train, test)
    values = np.array([0, 1, 1, 1, 1, 0, 1, 2, 3, 2, 3], np.float64)  # the second channel's
    np.testing.assert_allclose(standardised.preprocessing.mean[1], values.mean(), rtol=1e-15)
    np.testing.assert_allclose(standardised.preprocessing.scale[1], values.std(), rtol=1e-15)
    expected = ((values - standardised.preprocessing.mean[1]) / standardised.preprocessing.scale[1]).astype(
        np.float32
    )
    steps = {0: 4, 2: 3, 3: 4}  # the series holding them, and their lengths
    got = np.concatenate([standardised.x_train[i, :n, 1] for i, n in steps.items()])
    np.testing.assert_array_equal(got, expected)
    assert (standardised.x_train[1, :, 1] == 0).all() and (standardised.x_test[2, :, 1] == 0).all()
    with pytest.raises(data.DataError, match=r"gaps_TRAIN.ts:5: series 0 has a missing value"):
        data.from_ts_files(train, test, fill=None)
