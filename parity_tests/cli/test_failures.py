"""`jax-lstm train` when a run fails midway: Ctrl-C (exit 130, one line, the checkpoint intact), a
diverged loss (exit 3, the metrics measured so far written and marked), a checkpoint that cannot be
written (exit 4), and a checkpoint directory that already holds a run (refused, or --overwrite)."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import jax.numpy as jnp

from jax_lstm.cli import main
from jax_lstm.training import checkpoint, load_checkpoint, tasks

TINY = ["--dataset", "synthetic", "--hidden-size", "4", "--num-layers", "1", "--quiet", "--no-compile-cache"]


# A bound on each wait for the child, so that a hang fails the test instead of blocking the suite;
# nothing waits for a duration.
WAIT_S = 600
EPOCHS = 100_000  # more than the child can print into a pipe nobody reads (see the test)
TARGET = f"Epoch [2/{EPOCHS}] "  # the epoch line after which the test reads no more
MOST_LINES = 200  # the lines before the target line, at most (a header, then epoch 1's)
# `python -m jax_lstm.cli` with Python's own Ctrl-C handler, whatever the test inherited: a process
# started in the background by a shell without job control (`cmd &`, nohup, some CI runners) has
# SIGINT ignored, and Python then leaves it ignored in its children, which would train on through
# the interrupt and exit 0.
INTERRUPTIBLE = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'jax-lstm'; runpy.run_module('jax_lstm.cli', run_name='__main__', alter_sys=True)"
)


def _lines(stream) -> queue.Queue:
    """The lines of `stream` on a queue, read by a thread until the one holding TARGET (then the
    thread stops reading: the rest stays in the pipe), or MOST_LINES of them; None at the end."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for count, line in enumerate(stream, start=1):
            lines.put(line)
            if TARGET in line or count >= MOST_LINES:  # `in`: a line may follow unterminated output
                return
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_ctrl_c_exits_130_with_one_line_and_the_checkpoint_intact(tmp_path):
    ckpt = tmp_path / "ckpt"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1"}
    # Once the test stops reading, the pipe fills after a few hundred more epoch lines and the child
    # waits on it: it cannot finish its EPOCHS, so the interrupt always finds it training.
    process = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-c",
            INTERRUPTIBLE,
            "train",
            *TINY,
            "--epochs",
            str(EPOCHS),
            "--checkpoint-dir",
            str(ckpt),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    try:
        lines = _lines(process.stdout)
        for _ in range(MOST_LINES):  # the epoch line comes after its checkpoint is written
            line = lines.get(timeout=WAIT_S)
            assert line is not None, f"the run ended before its second epoch: {process.stderr.read()}"
            if TARGET in line:
                break
        assert TARGET in line, f"no line with {TARGET!r} among the first {MOST_LINES}"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=WAIT_S)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("jax-lstm: error: interrupted at epoch "), err
    running, saved = (int(word.rstrip(";")) for word in (last.split()[5], last.split()[-1]))
    assert last.endswith(f"last checkpoint at epoch {saved}") and saved >= 2 and running in (saved, saved + 1)
    assert load_checkpoint(ckpt).epoch == saved  # intact: it loads, at the epoch the message names


def test_divergence_writes_the_metrics_measured_and_claims_no_checkpoint(tmp_path, capsys, monkeypatch):
    nan_loss = dataclasses.replace(
        tasks.CLASSIFICATION, loss=lambda logits, labels: jnp.nan * jnp.sum(logits)
    )
    monkeypatch.setitem(tasks.TASKS, "classification", nan_loss)
    metrics, ckpt = tmp_path / "m.json", tmp_path / "ckpt"
    args = ["train", *TINY, "--epochs", "2", "--metrics-json", str(metrics), "--checkpoint-dir", str(ckpt)]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert err.startswith("jax-lstm: error: the training loss became nan at epoch 1, step 1")
    assert f"No checkpoint was written to {ckpt}." in err and "last good checkpoint" not in err
    payload = json.loads(metrics.read_text())
    assert payload["diverged"] is True and payload["stopped"] == "diverged"
    assert payload["epochs"] == [] and payload["test_accuracy"] is None
    assert not checkpoint.exists(ckpt)


def test_a_failed_checkpoint_write_is_one_message_and_keeps_the_metrics(tmp_path, capsys, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save", disk_full)
    metrics, ckpt = tmp_path / "m.json", tmp_path / "ckpt"
    args = ["train", *TINY, "--epochs", "2", "--metrics-json", str(metrics), "--checkpoint-dir", str(ckpt)]
    assert main(args) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(
        f"jax-lstm: error: could not write the checkpoint in {ckpt}: No space left on device"
    )
    assert "No checkpoint was written" in err and f"The 1 completed epochs are in {metrics}" in err
    payload = json.loads(metrics.read_text())
    assert [e["epoch"] for e in payload["epochs"]] == [1] and payload["stopped"] == "write failed"
    assert payload["diverged"] is False
    assert 0.6 < payload["epochs"][0]["train_loss"] < 0.8  # measured: random binary labels, about ln 2
