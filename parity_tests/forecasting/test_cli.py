"""`jax-lstm forecast`: the embedded default, a user's quarterly CSV, bad input, the metrics file, the
torch twin trained beside it, and bit-exact resume. Tiny models and few epochs keep it fast."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from jax_lstm import forecasting as fc
from jax_lstm.cli import main

TINY = ["--hidden-size", "6", "--quiet"]


def _quarterly_csv(path, rows: int = 200, seed: int = 0, missing: bool = False, shuffled: bool = False):
    """A seasonal AR(1) pair of quarterly series, labels "1970 Q1", ..."""
    rng = np.random.default_rng(seed)
    season = np.tile([1.0, -0.5, 0.8, -1.3], rows // 4 + 1)[:rows]
    a = np.zeros(rows)
    for t in range(1, rows):
        a[t] = 0.7 * a[t - 1] + rng.standard_normal()
    quarters = [f"{1970 + i // 4} Q{i % 4 + 1}" for i in range(rows)]
    frame = pd.DataFrame({"quarter": quarters, "sales": 10 + a + season, "price": 3 + 0.3 * a})
    if missing:
        frame.loc[5, "price"] = np.nan
    if shuffled:
        frame.iloc[[7, 8]] = frame.iloc[[8, 7]].to_numpy()
    frame.to_csv(path, index=False)
    return path


def _epochs_without_time(payload):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in payload["epochs"]]


def test_default_run_on_the_embedded_table_writes_metrics_and_plot(tmp_path, capsys):
    metrics, plot = tmp_path / "m.json", tmp_path / "f.png"
    args = ["forecast", *TINY, "--epochs", "1", "--metrics-json", str(metrics), "--plot", str(plot)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "seattle-weather: 1461 rows x 4 variables" in out
    assert "lookback 28, horizon 7" in out and "286 test windows" in out
    for row in ("LSTM", "naive", "seasonal_naive", "mean", "var"):
        assert any(line.startswith(row + " ") for line in out.splitlines()), row
    payload = json.loads(metrics.read_text())
    (epoch,) = payload["epochs"]
    assert set(epoch) >= {"train_loss", "val_loss", "lr"} and epoch["lr"] == 1e-3
    assert 0.3 < epoch["train_loss"] < 1.5 and 0.3 < epoch["val_loss"] < 1.5  # scaled targets
    targets = ["precipitation", "temp_max", "temp_min", "wind"]
    assert list(payload["per_target"]) == targets
    assert [h["step"] for h in payload["per_horizon"]] == list(range(1, 8))
    for metric in ("mae", "rmse", "mase"):
        per_target = [payload["per_target"][t][metric] for t in targets]
        if metric != "rmse":  # means of means over equal counts; RMSE is not
            assert payload[metric] == pytest.approx(np.mean(per_target), rel=1e-12)
            assert payload[metric] == pytest.approx(
                np.mean([h[metric] for h in payload["per_horizon"]]), rel=1e-12
            )
    # The baselines are the library's, on the same origins.
    data = fc.prepare(fc.seattle_weather(), lookback=28, horizon=7)
    expected = fc.evaluate_baselines(data)
    assert set(payload["baselines"]) == {"naive", "seasonal_naive", "mean", "var"}
    for name, result in expected.items():
        assert payload["baselines"][name]["mase"] == result.evaluation.overall["mase"]
        assert (
            payload["baselines"][name]["per_target"]["wind"]["mae"] == result.evaluation.per_target["mae"][3]
        )
    assert payload["baselines"]["var"]["mase"] < payload["baselines"]["naive"]["mase"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quarterly_csv_with_only_data_time_column_and_horizon_gets_adapted_defaults(tmp_path):
    table = fc.read_table(_quarterly_csv(tmp_path / "q.csv"), time_column="quarter")
    data, config = fc.plan(table, horizon=4)
    assert table.season == 4 and isinstance(table.times, pd.PeriodIndex)
    assert data.periods.sizes == (144, 16, 40)
    assert data.lookback == 16  # four horizons
    assert (config.batch_size, config.epochs) == (16, 80)  # 125 windows: 8 steps an epoch, ~640 steps
    assert (config.hidden_size, config.num_layers, config.model) == (32, 1, "lstm-forecaster")
    long_data, long_config = fc.plan(fc.seattle_weather(), horizon=7)
    assert long_data.lookback == 28 and (long_config.batch_size, long_config.epochs) == (32, 20)


def test_user_csv_runs_and_resumes_bit_exactly(tmp_path, capsys):
    path = _quarterly_csv(tmp_path / "q.csv")
    base = ["forecast", "--data", str(path), "--time-column", "quarter", "--horizon", "4", *TINY]
    full, part = tmp_path / "full.json", tmp_path / "part.json"
    assert main([*base, "--epochs", "3", "--metrics-json", str(full)]) == 0
    out = capsys.readouterr().out
    assert "season 4" in out and "lookback 16, horizon 4" in out
    assert "(2010Q1 .. 2019Q4)" in out  # the test period's 40 quarters
    ckpt = tmp_path / "ckpt"
    assert main([*base, "--epochs", "2", "--checkpoint-dir", str(ckpt)]) == 0
    assert (
        main([*base, "--epochs", "3", "--checkpoint-dir", str(ckpt), "--resume", "--metrics-json", str(part)])
        == 0
    )
    assert "resuming from" not in capsys.readouterr().out  # --quiet
    a, b = json.loads(full.read_text()), json.loads(part.read_text())
    assert _epochs_without_time(a) == _epochs_without_time(b)
    assert [a[k] for k in ("mae", "rmse", "mase")] == [b[k] for k in ("mae", "rmse", "mase")]
    assert a["per_horizon"] == b["per_horizon"] and len(a["per_horizon"]) == 4
    assert "skipped" not in a["baselines"]["seasonal_naive"]


def test_a_second_run_into_a_used_directory_is_told_of_flags_forecast_has(tmp_path, capsys):
    """The refusal's advice (--resume or --overwrite) names flags `forecast` takes, and both work."""
    path = _quarterly_csv(tmp_path / "q.csv", rows=80)
    ckpt = tmp_path / "ckpt"
    base = ["forecast", "--data", str(path), "--time-column", "quarter", "--horizon", "2", *TINY]
    base += ["--checkpoint-dir", str(ckpt)]
    assert main([*base, "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main([*base, "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jax-lstm: error: ") and "already holds a checkpoint" in err, err
    assert "--resume" in err and "--overwrite" in err
    resumed, fresh = tmp_path / "resumed.json", tmp_path / "fresh.json"
    assert main([*base, "--epochs", "2", "--resume", "--metrics-json", str(resumed)]) == 0
    assert main([*base, "--epochs", "1", "--overwrite", "--metrics-json", str(fresh)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    # The resumed run continued the first (epochs 1-2); the overwriting one started again (epoch 1).
    assert [e["epoch"] for e in json.loads(resumed.read_text())["epochs"]] == [1, 2]
    assert [e["epoch"] for e in json.loads(fresh.read_text())["epochs"]] == [1]


@pytest.mark.parametrize(
    "make, flags, message",
    [
        (dict(missing=True), [], r"missing value in column 'price' at line 7.*fill"),
        (dict(shuffled=True), [], "times are not sorted.*sort the rows by time"),
        (
            dict(rows=20),
            ["--horizon", "4", "--lookback", "13", "--val-fraction", "0"],
            r"the table has 20 rows, but lookback 13 \+ horizon 4 \+ test period 4 need at least 21",
        ),
        (dict(rows=20), ["--horizon", "4"], "validation period would have 2 rows.*--val-fraction"),
        (dict(), ["--horizon", "0"], "horizon must be an integer >= 1, got 0"),
        (dict(), ["--resume"], "--resume needs --checkpoint-dir"),
        (dict(), ["--targets", "sales,volume"], "volume"),
    ],
    ids=[
        "missing_without_fill",
        "unsorted_time",
        "too_few_rows",
        "too_short_validation",
        "zero_horizon",
        "resume_alone",
        "unknown_target",
    ],
)
def test_bad_input_is_a_clear_error_before_any_work(tmp_path, capsys, make, flags, message):
    path = _quarterly_csv(tmp_path / "bad.csv", **make)
    status = main(["forecast", "--data", str(path), "--time-column", "quarter", *flags])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("jax-lstm: error: ") and "Traceback" not in err
    assert re.search(message, err, flags=re.S), err


def test_fill_repairs_the_missing_value_and_flags_need_data(tmp_path, capsys):
    path = _quarterly_csv(tmp_path / "gap.csv", rows=60, missing=True)
    flags = ["--horizon", "2", "--lookback", "4", "--epochs", "1", *TINY]
    assert main(["forecast", "--data", str(path), "--time-column", "quarter", "--fill", "ffill", *flags]) == 0
    capsys.readouterr()
    assert main(["forecast", "--fill", "ffill"]) == 2
    assert "--fill describes a --data file" in capsys.readouterr().err


def test_compare_torch_trains_the_twin_on_the_same_batches(tmp_path, capsys, dtype):
    path = _quarterly_csv(tmp_path / "q.csv", rows=80)
    metrics = tmp_path / "m.json"
    args = ["forecast", "--data", str(path), "--time-column", "quarter", "--horizon", "2", "--lookback", "6"]
    args += [*TINY, "--epochs", "3", "--batch-size", "8", "--lr", "0.01", "--dtype", dtype, "--compare-torch"]
    assert main([*args, "--metrics-json", str(metrics)]) == 0
    out = capsys.readouterr().out
    assert "PyTorch twin: test MASE" in out and ": agree" in out
    payload = json.loads(metrics.read_text())
    ours, theirs = payload["epochs"], payload["torch"]["epochs"]
    assert len(ours) == len(theirs) == 3
    rtol = 1e-8 if dtype == "float64" else 1e-3
    for a, b in zip(ours, theirs, strict=True):
        for key in ("train_loss", "val_loss"):
            assert a[key] == pytest.approx(b[key], rel=rtol, abs=0)
        assert a["lr"] == b["lr"]
    assert ours[-1]["train_loss"] < ours[0]["train_loss"]  # it trained
    assert payload["torch"]["mase"] == pytest.approx(payload["mase"], rel=rtol)
    assert set(payload["torch"]) >= {"mae", "rmse", "mase", "per_target", "per_horizon"}
    assert payload["comparison"]["agree"] is True
    assert payload["comparison"]["max_rel_diff_train_loss"] <= rtol
