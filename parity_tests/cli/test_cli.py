"""The commands: `jax-lstm parity` (it reports, and it can fail), `jax-lstm train`, `jax-lstm export`,
`python -m torch_ref train`."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch

import jax_lstm.testing
from jax_lstm.cli import main
from torch_ref import MultiDimLSTM, report
from torch_ref.__main__ import main as torch_main


def test_parity_command_passes_and_prints_the_table(capsys):
    status = main(["parity", "--cases", "proj_bidirectional", "--dtype", "float32", "float64"])
    out = capsys.readouterr().out
    assert status == 0
    assert "jax " in out and "torch " in out  # versions and devices are printed
    assert "proj_bidirectional_2_layers" in out and "grad/" in out
    assert "all 2 runs within tolerance" in out


def test_parity_report_fails_when_a_difference_exceeds_its_tolerance(monkeypatch):
    impossible = jax_lstm.testing.Tolerance(rtol=0.0, atol=0.0)
    monkeypatch.setitem(report.TOLERANCES, "float32", {"forward": impossible, "grad": impossible})
    out = io.StringIO()
    status = report.run_parity_report(dtypes=["float32"], name_filter="article_layer", out=out)
    assert status == 1
    assert "FAIL" in out.getvalue() and "leaves outside their tolerance" in out.getvalue()


def test_unknown_case_filter_is_an_error(capsys):
    assert main(["parity", "--cases", "no-such-case", "--dtype", "float32"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "jax-lstm: error: no parity case name contains 'no-such-case'; "
        "the cases are listed by `jax-lstm parity`\n"
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seed", "-1"], "--seed must be in [0, 2**64)"),
        (["--device", "tpu9"], "--device 'tpu9' is not a torch device this machine has"),
    ],
)
def test_parity_flags_are_checked_before_any_case_runs(capsys, flags, message):
    assert main(["parity", "--cases", "seq_len_1_batch_1", "--dtype", "float32", *flags]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"jax-lstm: error: {message}")


# --- jax-lstm train / export, python -m torch_ref train ----------------------------------------

SMALL = ["--dataset", "synthetic", "--hidden-size", "16", "--num-layers", "1", "--quiet"]


def test_train_writes_metrics_plot_and_checkpoints_and_resumes(tmp_path, capsys):
    metrics, plot, ckpt = tmp_path / "m.json", tmp_path / "curves.png", tmp_path / "ckpt"
    args = ["train", *SMALL, "--metrics-json", str(metrics), "--checkpoint-dir", str(ckpt)]
    assert main([*args, "--epochs", "2", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "synthetic: 800 train / 200 test series, 5 features" in out
    assert "JAX: test accuracy" in out
    payload = json.loads(metrics.read_text())
    assert [e["epoch"] for e in payload["epochs"]] == [1, 2]
    for record in payload["epochs"]:
        assert {"train_loss", "test_loss", "test_accuracy", "lr"} <= set(record)
        assert 0.6 < record["train_loss"] < 0.8  # random binary labels: about ln 2
    assert payload["test_accuracy"] == payload["epochs"][-1]["test_accuracy"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main([*args, "--epochs", "3", "--resume"]) == 0
    assert "resuming from" in capsys.readouterr().out
    resumed = json.loads(metrics.read_text())
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2, 3]
    assert resumed["epochs"][:2] == payload["epochs"]

    exported = tmp_path / "model.pt"
    assert main(["export", str(ckpt), str(exported)]) == 0
    model = MultiDimLSTM(5, 16, 1, 2)
    model.load_state_dict(torch.load(exported), strict=True)


def test_compare_torch_reports_agreement_and_records_both_sides(tmp_path, capsys):
    metrics = tmp_path / "m.json"
    status = main(["train", *SMALL, "--epochs", "2", "--compare-torch", "--metrics-json", str(metrics)])
    out = capsys.readouterr().out
    assert status == 0
    assert "train loss (torch)" in out and ": agree" in out
    payload = json.loads(metrics.read_text())
    assert len(payload["torch"]["epochs"]) == 2
    assert payload["comparison"]["agree"] is True
    assert payload["comparison"]["max_rel_diff_train_loss"] < 1e-5
    jax_losses = [e["train_loss"] for e in payload["epochs"]]
    torch_losses = [e["train_loss"] for e in payload["torch"]["epochs"]]
    np.testing.assert_allclose(jax_losses, torch_losses, rtol=1e-5)


def test_eval_every_tests_the_same_epochs_on_both_sides(tmp_path, capsys):
    metrics, plot = tmp_path / "m.json", tmp_path / "curves.png"
    argv = ["train", *SMALL, "--epochs", "3", "--eval-every", "2", "--compare-torch"]
    assert main([*argv, "--metrics-json", str(metrics), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "test split every 2 epochs" in out and ": agree" in out
    payload = json.loads(metrics.read_text())
    for side in (payload["epochs"], payload["torch"]["epochs"]):
        assert [e["test_accuracy"] is None for e in side] == [True, False, False]
    assert payload["comparison"]["max_abs_diff_test_accuracy"] == 0.0
    assert payload["comparison"]["max_rel_diff_test_loss"] < 1e-5
    assert payload["test_accuracy"] == payload["epochs"][-1]["test_accuracy"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["train", *SMALL, "--eval-every", "0"]) == 2
    assert "eval_every must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # the forecast has no test split to evaluate
        main(["forecast", "--eval-every", "2"])
    assert refused.value.code == 2 and "unrecognized arguments: --eval-every" in capsys.readouterr().err


def test_torch_reference_command_runs_the_same_flags(tmp_path, capsys):
    metrics = tmp_path / "t.json"
    assert torch_main(["train", *SMALL, "--epochs", "1", "--metrics-json", str(metrics)]) == 0
    assert "PyTorch: test accuracy" in capsys.readouterr().out
    payload = json.loads(metrics.read_text())
    assert len(payload["epochs"]) == 1 and "torch" in payload["environment"]


def test_train_refuses_bad_input_before_training(tmp_path, capsys):
    bad = tmp_path / "bad.ts"
    bad.write_text("@dimensions 2\n@classLabel true a b\n@data\n1,2:3,4:a\n1,2:b\n")
    cases = [
        (["--data", str(bad)], "--data and --test-data go together"),
        (["--data", str(bad), "--test-data", str(bad)], "bad.ts:5: expected 2 dimensions"),
        (["--data", str(tmp_path / "none.ts"), "--test-data", str(bad)], "none.ts: no such file"),
        (["--dataset", "synthetic", "--batch-size", "0"], "batch_size must be at least 1"),
        (["--dataset", "synthetic", "--seed", "-1"], "seed must be in [0, 2**64)"),
        (["--dataset", "synthetic", "--resume"], "--resume needs --checkpoint-dir"),
    ]
    for extra, message in cases:
        assert main(["train", *extra]) == 2
        captured = capsys.readouterr()
        assert message in captured.err
        assert "Epoch" not in captured.out  # nothing was trained
    # torch_ref's command shares the flags and refuses the same way.
    for extra, message in cases[3:5]:
        assert torch_main(["train", *extra]) == 2
        assert message in capsys.readouterr().err


def test_torch_reference_checkpoints_atomically_and_resumes(tmp_path):
    ckpt, metrics = tmp_path / "ckpt", tmp_path / "m.json"
    args = [
        "train",
        *SMALL,
        "--hidden-size",
        "4",
        "--checkpoint-dir",
        str(ckpt),
        "--metrics-json",
        str(metrics),
    ]
    assert torch_main([*args, "--epochs", "1"]) == 0
    assert [p.name for p in ckpt.iterdir()] == ["torch_checkpoint.pt"]  # no temporary file left
    first = json.loads(metrics.read_text())["epochs"]
    assert torch_main([*args, "--epochs", "2", "--resume"]) == 0
    resumed = json.loads(metrics.read_text())["epochs"]
    assert [e["epoch"] for e in resumed] == [1, 2]
    assert resumed[0] == first[0]  # read back from the checkpoint, its timing included


def test_interrupted_metrics_write_keeps_the_old_file_and_leaves_no_debris(tmp_path, monkeypatch):
    from jax_lstm import atomic, reporting

    path = reporting.write_json(tmp_path / "m.json", {"run": 1})

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while the new file was half written")

    monkeypatch.setattr(atomic.os, "fsync", crash)
    try:
        reporting.write_json(path, {"run": 2})
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the write was not interrupted")
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"run": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_comparison_of_runs_survives_a_zero_torch_loss():
    from jax_lstm import reporting
    from jax_lstm.training import EpochRecord

    def history(*losses):
        return [EpochRecord(i + 1, x, x, 1.0, 1e-3, 0.0) for i, x in enumerate(losses)]

    jax_runs, torch_runs = history(0.0, 2e-3), history(0.0, 0.0)
    summary = reporting.comparison(jax_runs, torch_runs)
    assert summary["max_rel_diff_train_loss"] == 2e-3 / 1e-300  # large and finite, no ZeroDivisionError
    table = reporting.comparison_table(jax_runs, torch_runs).splitlines()
    assert "0.00e+00" in table[1] and "2.00e+297" in table[2]


def test_comparison_leaves_out_epochs_neither_side_tested_and_flags_one_only_one_did():
    from jax_lstm import reporting
    from jax_lstm.training import EpochRecord

    nan = float("nan")

    def history(*tests):
        return [EpochRecord(i + 1, 0.5, x, 0.5 if x == x else nan, 1e-3, 0.0) for i, x in enumerate(tests)]

    both = reporting.comparison(history(nan, 0.25, 0.5), history(nan, 0.25, 0.5))
    assert both["max_rel_diff_test_loss"] == 0.0 and both["max_abs_diff_test_accuracy"] == 0.0
    one = reporting.comparison(history(nan, 0.25, 0.5), history(0.3, 0.25, 0.5))
    assert one["max_rel_diff_test_loss"] == math.inf and one["max_abs_diff_test_accuracy"] == math.inf
    table = reporting.comparison_table(history(nan, 0.25), history(nan, 0.25)).splitlines()
    assert table[1].split()[4:6] == ["-", "-"] and "50.00%" in table[2]
