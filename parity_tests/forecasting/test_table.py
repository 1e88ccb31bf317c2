"""Tables: reading CSVs, time labels and seasons, the embedded dataset, and every DataError."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from jax_lstm.data import DataError
from jax_lstm.forecasting import check_rows, infer_season, read_table, seattle_weather, table_from_frame


def write(tmp_path, text: str, name: str = "t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_times_columns_and_values(tmp_path):
    path = write(tmp_path, "date,a,b\n2020-01-01,1,10\n2020-01-02,2,20\n2020-01-03,3.5,30\n")
    table = read_table(path, time_column="date")
    assert table.columns == ("a", "b") and table.targets == ("a", "b")
    assert table.values.dtype == np.float64
    np.testing.assert_array_equal(table.values, [[1, 10], [2, 20], [3.5, 30]])
    assert isinstance(table.times, pd.DatetimeIndex) and table.times[2] == pd.Timestamp("2020-01-03")
    assert table.season == 7


def test_targets_are_inputs_even_when_not_listed_as_features(tmp_path):
    path = write(tmp_path, "a,b,c\n1,2,3\n4,5,6\n")
    table = read_table(path, targets=["c"], features=["a"])
    assert table.columns == ("a", "c")  # file order; b is neither a feature nor a target
    assert table.targets == ("c",)
    np.testing.assert_array_equal(table.target_values, [[3], [6]])
    np.testing.assert_array_equal(table.target_indices, [1])


def test_without_time_column_times_are_none(tmp_path):
    table = read_table(write(tmp_path, "a\n1\n2\n"))
    assert table.times is None and table.season is None


def test_gzipped_csv(tmp_path):
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("a,b\n1,2\n3,4\n")
    np.testing.assert_array_equal(read_table(path).values, [[1, 2], [3, 4]])


@pytest.mark.parametrize("label", ["1970 Q1", "1970Q1", "1970-Q1"])
def test_quarter_labels_become_a_quarterly_period_index(tmp_path, label):
    rows = [label.replace("1970", str(1970 + q // 4)).replace("Q1", f"Q{q % 4 + 1}") for q in range(6)]
    text = "when,x\n" + "".join(f"{r},{i}\n" for i, r in enumerate(rows))
    table = read_table(write(tmp_path, text), time_column="when")
    assert isinstance(table.times, pd.PeriodIndex)
    assert str(table.times[0]) == "1970Q1" and str(table.times[5]) == "1971Q2"
    assert table.season == 4


@pytest.mark.parametrize(
    ("times", "season"),
    [
        (pd.date_range("2020-01-01", periods=10, freq="D"), 7),
        (pd.date_range("2020-01-01", periods=10, freq="h"), 24),
        (pd.date_range("2020-01-05", periods=10, freq="W"), 52),
        (pd.date_range("2020-01-01", periods=10, freq="MS"), 12),
        (pd.date_range("2020-01-31", periods=10, freq="ME"), 12),  # month ends: 31, 29, 31, 30, ...
        (pd.date_range("2020-01-01", periods=10, freq="QS"), 4),
        (pd.DatetimeIndex(["2020-01-01", "2020-01-02", "2020-01-04", "2020-01-05"]), None),  # a gap
        (pd.date_range("2020-01-01", periods=10, freq="2D"), None),
        (pd.date_range("2020-01-01", periods=10, freq="YS"), None),
        (pd.Index([1990, 1991, 1992]), None),
    ],
)
def test_infer_season(times, season):
    assert infer_season(times) == season


def test_integer_time_labels_are_kept(tmp_path):
    table = read_table(write(tmp_path, "year,x\n1990,1\n1991,2\n1993,3\n"), time_column="year")
    assert list(table.times) == [1990, 1991, 1993] and table.season is None


def test_fill_ffill_and_interpolate(tmp_path):
    path = write(tmp_path, "a,b\n1,10\n,20\n3,\n4,40\n")
    np.testing.assert_array_equal(read_table(path, fill="ffill").values, [[1, 10], [1, 20], [3, 20], [4, 40]])
    np.testing.assert_array_equal(
        read_table(path, fill="interpolate").values, [[1, 10], [2, 20], [3, 30], [4, 40]]
    )


def test_fill_cannot_fill_a_leading_gap(tmp_path):
    path = write(tmp_path, "a,b\n,10\n2,20\n")
    for fill in ("ffill", "interpolate"):
        with pytest.raises(DataError, match=r"column 'a' at line 2: --fill .* start or end"):
            read_table(path, fill=fill)


def test_unknown_fill_method(tmp_path):
    with pytest.raises(ValueError, match="fill must be one of"):
        read_table(write(tmp_path, "a\n1\n"), fill="bfill")


def test_embedded_seattle_weather():
    table = seattle_weather()
    assert table.values.shape == (1461, 4)
    assert table.columns == ("precipitation", "temp_max", "temp_min", "wind")
    assert not np.isnan(table.values).any()
    assert table.times[0] == pd.Timestamp("2012-01-01") and table.times[-1] == pd.Timestamp("2015-12-31")
    assert table.season == 7
    # The first row of the source file, unchanged (the `weather` text column dropped).
    np.testing.assert_array_equal(table.values[0], [0.0, 12.8, 5.0, 4.7])
    assert (table.values[:, 1] >= table.values[:, 2]).all()  # temp_max >= temp_min every day
    assert seattle_weather(targets=["temp_max"]).targets == ("temp_max",)


# -- every DataError names the problem and the fix --------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        read_table(tmp_path / "nope.csv")


def test_directory(tmp_path):
    with pytest.raises(DataError, match="is a directory: give the path of a CSV file"):
        read_table(tmp_path)


def test_unreadable_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"a,b\n\xff\xfe\xfa,1\n")
    with pytest.raises(DataError, match=r"bad\.csv: cannot read it as CSV"):
        read_table(path)


def test_empty_file(tmp_path):
    with pytest.raises(DataError, match="the file is empty"):
        read_table(write(tmp_path, ""))


def test_header_only(tmp_path):
    with pytest.raises(DataError, match="no rows after the header"):
        read_table(write(tmp_path, "a,b\n"))


def test_missing_value_names_line_and_column(tmp_path):
    path = write(tmp_path, "date,a,b\n2020-01-01,1,2\n2020-01-02,3,4\n2020-01-03,5,\n2020-01-04,,\n")
    with pytest.raises(DataError, match=r"missing value in column 'b' at line 4: .*--fill ffill"):
        read_table(path, time_column="date")


def test_blank_line_counts_as_a_row_with_its_line_number(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n\n3,4\n\n\n")  # trailing blank lines are not data
    with pytest.raises(DataError, match="column 'a' at line 3"):
        read_table(path)


def test_unsorted_times_name_both_lines(tmp_path):
    path = write(tmp_path, "date,a\n2020-01-01,1\n2020-01-03,2\n2020-01-02,3\n")
    with pytest.raises(
        DataError, match=r"not sorted: 2020-01-02.* at line 4 comes after 2020-01-03.* at line 3"
    ):
        read_table(path, time_column="date")


def test_duplicated_times_name_both_lines(tmp_path):
    path = write(tmp_path, "q,a\n1970 Q1,1\n1970 Q2,2\n1970 Q2,3\n")
    with pytest.raises(DataError, match=r"duplicated time 1970Q2 at line 3 and line 4"):
        read_table(path, time_column="q")


def test_unreadable_time_label(tmp_path):
    path = write(tmp_path, "date,a\n2020-01-01,1\nsoon,2\n")
    with pytest.raises(DataError, match=r"time label 'soon' at line 3 is neither a date nor a quarter"):
        read_table(path, time_column="date")


def test_missing_time_label(tmp_path):
    with pytest.raises(DataError, match="missing time label at line 3"):
        read_table(write(tmp_path, "date,a\n2020-01-01,1\n,2\n"), time_column="date")


def test_non_numeric_column_without_time_column_suggests_it(tmp_path):
    path = write(tmp_path, "date,a\n2020-01-01,1\n2020-01-02,2\n")
    expected = r"columns 'date' \(line 2: '2020-01-01'\): if one holds the times, pass it as --time-column"
    with pytest.raises(DataError, match=expected):
        read_table(path)


def test_non_numeric_columns_are_named_with_their_first_bad_value(tmp_path):
    path = write(tmp_path, "date,a,kind,b\n2020-01-01,1,rain,2\n2020-01-02,2,sun,n/a?\n")
    with pytest.raises(
        DataError,
        match=r"'kind' \(line 2: 'rain'\), 'b' \(line 3: 'n/a\?'\): drop them from the file, or name",
    ):
        read_table(path, time_column="date")


def test_non_numeric_column_ignored_when_not_selected(tmp_path):
    path = write(tmp_path, "date,a,kind\n2020-01-01,1,rain\n2020-01-02,2,sun\n")
    assert read_table(path, time_column="date", targets=["a"], features=["a"]).columns == ("a",)
    with pytest.raises(DataError, match=r"column 'kind' is not numeric \(line 2: 'rain'\)"):
        read_table(path, time_column="date", targets=["a"], features=["kind"])


def test_unknown_targets_and_features_list_the_available_columns(tmp_path):
    path = write(tmp_path, "date,a,b\n2020-01-01,1,2\n")
    with pytest.raises(DataError, match=r"unknown targets \['c'\]; the available columns are \['a', 'b'\]"):
        read_table(path, time_column="date", targets=["c"])
    with pytest.raises(DataError, match=r"unknown features \['date'\].*the time column 'date' cannot be one"):
        read_table(path, time_column="date", features=["date"])
    with pytest.raises(DataError, match=r"no time column 'when'; the columns are \['date', 'a', 'b'\]"):
        read_table(path, time_column="when")
    with pytest.raises(DataError, match="targets is empty"):
        read_table(path, time_column="date", targets=[])


def test_frame_rows_are_named_by_position():
    frame = pd.DataFrame({"a": [1.0, np.nan]})
    with pytest.raises(DataError, match="column 'a' at row 1"):
        table_from_frame(frame)


def test_check_rows_says_the_numbers():
    check_rows(20, lookback=10, horizon=5, test_size=5)
    with pytest.raises(
        DataError, match=r"has 19 rows, but lookback 10 \+ horizon 5 \+ test period 5 need at least 20"
    ):
        check_rows(19, lookback=10, horizon=5, test_size=5)
    with pytest.raises(DataError, match=r"\+ validation 3 \+ test period 5 need at least 23"):
        check_rows(22, lookback=10, horizon=5, test_size=5, val_size=3)
    with pytest.raises(ValueError, match="lookback must be an integer >= 1"):
        check_rows(20, lookback=0, horizon=5, test_size=5)


@pytest.mark.parametrize(
    ("freq", "season"), [("Q", 4), ("M", 12), ("W", 52), ("D", 7), ("h", 24), ("min", None), ("2Q", None)]
)
def test_infer_season_of_period_indexes(freq, season):
    assert infer_season(pd.period_range("2000-01-01", periods=6, freq=freq)) == season
