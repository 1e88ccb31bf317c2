"""Faults during a run (`parity_tests.killpoints`), bounded: a few runs killed with SIGKILL at a
checkpoint boundary, resumed, and compared with an uninterrupted run exactly.

The child's stdout is a one-page pipe that is read no further once the kill point's epoch line has
come, so the child waits on it after a few dozen more lines; the runs have more epochs than that,
so every kill lands mid-run, whatever the machine's speed. The reference and the resumed runs run
in this process (`jax_lstm.cli.main`), the killed one as a child. The long run, with kills at random
moments inside epochs: ``python -m parity_tests.killpoints --runs 20``.
"""

from __future__ import annotations

import pytest

from parity_tests import killpoints
from parity_tests.killpoints import Kind

# More epochs than the lines a held child can print after the kill point (PIPE_BYTES of lines of
# about 70 bytes or more), so the kill always finds it training.
EPOCHS = 80


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return killpoints.tiny_table(tmp_path_factory.mktemp("table") / "table.csv")


@pytest.fixture(scope="module")
def runs(table):
    return killpoints.kinds(table, EPOCHS)


@pytest.fixture(scope="module")
def reference(runs, tmp_path_factory):
    """The uninterrupted run's metrics of a kind, run once per module."""
    done: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in done:
            run = killpoints.reference(runs[name], tmp_path_factory.mktemp(name), in_process=True)
            assert run.status == 0 and run.metrics is not None, run.stderr
            done[name] = run.metrics
        return done[name]

    return get


@pytest.mark.parametrize(
    ("name", "after_lines"),
    [("classification", 0), ("classification", 2), ("forecasting", 1)],
    ids=["classification at start-up", "classification after epoch 2", "forecasting after epoch 1"],
)
def test_a_run_killed_and_resumed_ends_exactly_as_an_uninterrupted_one(
    runs, reference, tmp_path, name, after_lines
):
    kind = runs[name]
    expected = reference(name)
    assert len(expected["epochs"]) == EPOCHS
    workdir = tmp_path / "killed"
    workdir.mkdir()
    point = killpoints.kill_and_resume(
        kind, workdir, after_lines, 0.0, expected, resume_in_process=True, hold=True
    )
    assert point.killed, point  # mid-run: the held pipe leaves it no way to finish first
    assert point.lines_seen >= after_lines and not point.failure, point
    if after_lines:
        assert point.resumed.startswith("resumed after epoch "), point
        assert int(point.resumed.split()[-1]) >= after_lines  # never behind the line it printed
    assert point.differences == [], point.differences[:10]


def test_the_comparison_sees_a_difference_in_the_last_bit():
    a = {"epochs": [{"train_loss": 0.6931471805599453, "seconds": 1.0}], "environment": {"jax": "x"}}
    b = {"epochs": [{"train_loss": 0.6931471805599454, "seconds": 2.0}], "environment": {"jax": "y"}}
    assert killpoints.differences(killpoints.comparable(a), killpoints.comparable(b)) == [
        ".epochs[0].train_loss: 0.6931471805599453 != 0.6931471805599454"
    ]
    assert killpoints.differences(killpoints.comparable(a), killpoints.comparable(a)) == []


def test_a_run_killed_after_its_last_checkpoint_can_be_resumed(runs, tmp_path):
    kind = Kind("classification", tuple(a if a != str(EPOCHS) else "2" for a in runs["classification"].argv))
    ckpt, metrics = tmp_path / "ckpt", tmp_path / "metrics.json"
    argv = [*kind.argv, "--checkpoint-dir", str(ckpt), "--metrics-json", str(metrics)]
    assert killpoints.run_in_process(argv, metrics).status == 0
    metrics.unlink()  # as if killed between the last checkpoint and the metrics
    resumed = killpoints.run_in_process([*argv, "--resume"], metrics)
    assert resumed.status == 0, resumed.stderr


def test_k_models_killed_and_resumed_end_as_uninterrupted_ones(runs, reference, tmp_path):
    kind = runs["seeds"]
    expected = reference("seeds")
    (tmp_path / "killed").mkdir()
    point = killpoints.kill_and_resume(kind, tmp_path / "killed", 1, 0.0, expected, True, hold=True)
    assert point.ok, point
