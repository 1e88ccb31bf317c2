"""The `jax-lstm parity` command: it reports, and it can fail."""

from __future__ import annotations

import io

import jax_lstm.testing
from jax_lstm.cli import main
from torch_ref import report


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
    assert "no case name contains" in capsys.readouterr().out
