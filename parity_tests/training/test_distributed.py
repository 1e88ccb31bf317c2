"""Training across processes (`jax_lstm.runtime.initialize_distributed`): several `jax-lstm train`
processes on localhost, one CPU device each, talking through Gloo, against the single-process run
with as many devices.

Every run is a subprocess bounded by a timeout; ports come from binding port 0. The data is a tiny
.ts file: 136 training series (two batches of 64 that split over the devices, then a last batch of 8
that runs replicated) and 64 test series (one evaluation chunk that splits).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jax_lstm.cli import main
from jax_lstm.testing import TRAINING_LOSS_RTOL

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 600  # a bound on a wave of processes (a hang fails); normally a small fraction
LOST_TIMEOUT_S = 8  # --distributed-timeout of the failure tests

HEADER = """@problemName Tiny
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength false
@classLabel true a b c
@data
"""


def _write_ts(path: Path, rows: int, seed: int) -> Path:
    """`rows` series of 2 channels and lengths 3..8, labels a/b/c tied to the data (learnable)."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(rows):
        label = i % 3
        length = int(rng.integers(3, 9))
        channels = rng.normal(label - 1.0, 1.0, size=(2, length))
        lines.append(
            ":".join(",".join(f"{v:.6f}" for v in channel) for channel in channels) + f":{'abc'[label]}"
        )
    path.write_text(HEADER + "\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def data_args(tmp_path_factory) -> list[str]:
    directory = tmp_path_factory.mktemp("tiny")
    train = _write_ts(directory / "train.ts", 136, 0)
    test = _write_ts(directory / "test.ts", 64, 1)
    return ["--data", str(train), "--test-data", str(test)]


def _train_args(data_args: list[str], *extra: str, batch_size: int = 64) -> list[str]:
    model = ["--hidden-size", "6", "--num-layers", "1", "--batch-size", str(batch_size), "--lr", "0.01"]
    # The plateau schedule: its rates do not depend on the run's length, so a 2-epoch run and the
    # first 2 epochs of a 3-epoch run (or one resumed to 3) take the same steps; the cosine's would not.
    model += ["--schedule", "plateau"]
    return ["train", *data_args, *model, *extra]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Process:
    """One `python -m jax_lstm.cli` child with `devices` CPU devices; output to files (no pipe to
    fill up). Compiled programs are kept in `cache` when given (a later single-process run of the
    same programs skips compiling), else not at all."""

    def __init__(self, args: list[str], devices: int, log_dir: Path, name: str, cache: Path | None = None):
        env = dict(
            os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", PYTHONUNBUFFERED="1"
        )
        if cache is None:
            args = [*args, "--no-compile-cache"]
        else:
            env["JAX_LSTM_CACHE"] = str(cache)
        self.out_path, self.err_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.popen = subprocess.Popen(
                [sys.executable, "-u", "-m", "jax_lstm.cli", *args], cwd=ROOT, env=env, stdout=out, stderr=err
            )

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(
                f"{self.out_path.stem} still running after {timeout} s:\n{self.err}"
            ) from None

    @property
    def out(self) -> str:
        return self.out_path.read_text()

    @property
    def err(self) -> str:
        return self.err_path.read_text()[-3000:]


def _group(args: list[str], processes: int, log_dir: Path, name: str) -> list[_Process]:
    """`processes` children joined at a fresh localhost port, one device each."""
    coordinator = f"127.0.0.1:{_free_port()}"
    joined = [*args, "--coordinator", coordinator, "--num-processes", str(processes)]
    return [_Process([*joined, "--process-id", str(i)], 1, log_dir, f"{name}-{i}") for i in range(processes)]


def _finish(children: list[_Process]) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        for child in children:
            status = child.wait(max(1.0, deadline - time.monotonic()))
            assert status == 0, f"{child.out_path.stem} exited {status}:\n{child.err}"
    finally:
        for child in children:
            if child.popen.poll() is None:
                child.popen.kill()


def _epochs(path: Path, key: str = "epochs") -> list[dict]:
    return json.loads(path.read_text())[key]


def _losses(epochs: list[dict]) -> np.ndarray:
    return np.array([[e["train_loss"], e["test_loss"]] for e in epochs])


@pytest.fixture(scope="module")
def float64_runs(tmp_path_factory, data_args):
    """One process with 2 devices for 3 epochs, beside 2 processes for 2 epochs with a checkpoint;
    then that checkpoint resumed for the third epoch in one process."""
    tmp = tmp_path_factory.mktemp("float64")
    args = _train_args(data_args, "--dtype", "float64")
    ckpt = tmp / "ckpt"
    one = ["--epochs", "3", "--quiet", "--metrics-json", str(tmp / "one.json")]
    two = ["--epochs", "2", "--checkpoint-dir", str(ckpt), "--metrics-json", str(tmp / "two.json")]
    reference = _Process([*args, *one], 2, tmp, "one", cache=tmp / "cache")
    processes = _group([*args, *two], 2, tmp, "two")
    _finish([reference, *processes])
    resume = ["--epochs", "3", "--checkpoint-dir", str(ckpt), "--resume", "--quiet"]
    resumed = _Process(
        [*args, *resume, "--metrics-json", str(tmp / "resumed.json")], 2, tmp, "resumed", tmp / "cache"
    )
    _finish([resumed])
    return tmp, processes


def test_two_processes_train_as_one_process_with_two_devices(float64_runs):
    tmp, (first, second) = float64_runs
    one, two = _losses(_epochs(tmp / "one.json"))[:2], _losses(_epochs(tmp / "two.json"))
    np.testing.assert_allclose(two, one, rtol=1e-12, atol=0)
    assert one[1, 0] < one[0, 0]  # it trained
    # Process 0 reports; process 1 prints only prefixed lines.
    assert "Epoch [2/2] train loss" in first.out and "[process" not in first.out
    # Gloo's C++ code prints its connection line to the file descriptor itself, past Python.
    lines = [line for line in second.out.splitlines() if line.strip() and not line.startswith("[Gloo]")]
    assert lines and all(line.startswith("[process 1] ") for line in lines)
    assert any("Epoch [2/2] train loss" in line for line in lines)


def test_a_two_process_checkpoint_resumes_on_one_process_bit_exactly(float64_runs):
    tmp, _ = float64_runs
    one, resumed = _epochs(tmp / "one.json"), _epochs(tmp / "resumed.json")
    assert len(resumed) == 3
    for key in ("train_loss", "test_loss", "test_accuracy", "lr"):
        assert [e[key] for e in resumed] == [e[key] for e in one], key


def test_seeds_over_two_processes_equal_the_single_process_run(tmp_path, data_args):
    """--seeds 2 in float32: one model on each process's device, against both on one process
    (batches of 68: two per epoch, one program)."""
    args = _train_args(data_args, "--epochs", "2", "--seeds", "2", "--quiet", batch_size=68)
    reference = _Process([*args, "--metrics-json", str(tmp_path / "one.json")], 2, tmp_path, "one")
    two = _group([*args, "--metrics-json", str(tmp_path / "two.json")], 2, tmp_path, "two")
    _finish([reference, *two])
    # --quiet: nothing from process 1 but Gloo's own connection line
    assert [line for line in two[1].out.splitlines() if not line.startswith("[Gloo]")] == []
    one, split = (json.loads((tmp_path / f"{n}.json").read_text())["models"] for n in ("one", "two"))
    assert [m["seed"] for m in split] == [0, 1]
    for a, b in zip(split, one, strict=True):
        np.testing.assert_allclose(
            _losses(a["epochs"]), _losses(b["epochs"]), rtol=TRAINING_LOSS_RTOL["float32"]
        )
        assert a["test_accuracy"] == pytest.approx(b["test_accuracy"], abs=1 / 64 + 1e-9)


def test_a_killed_process_stops_the_other_within_the_timeout(tmp_path, data_args):
    args = _train_args(data_args, "--epochs", "500", "--distributed-timeout", str(LOST_TIMEOUT_S))
    survivor, victim = _group(args, 2, tmp_path, "lost")
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while "Epoch [1/500] train loss" not in victim.out:
            assert victim.popen.poll() is None and survivor.popen.poll() is None, survivor.err + victim.err
            assert time.monotonic() < deadline, "the run never finished an epoch"
            time.sleep(0.1)
        victim.popen.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        status = survivor.wait(LOST_TIMEOUT_S + 30)
        elapsed = time.monotonic() - killed
    finally:
        for child in (survivor, victim):
            if child.popen.poll() is None:
                child.popen.kill()
    assert status != 0
    assert elapsed < LOST_TIMEOUT_S + 30
    # Ours when the collective fails in Python; JAX's when the heartbeat times out first.
    named = "lost contact with process 1" in survivor.err or re.search(
        r"unhealthy \(stopped sending heartbeats\):\s*1\b", survivor.err
    )
    assert named, survivor.err


def test_a_process_that_cannot_reach_the_coordinator_stops_with_a_clear_error(tmp_path, data_args):
    port = _free_port()  # nothing listens there
    child = _Process(
        [
            *_train_args(data_args),
            "--coordinator",
            f"127.0.0.1:{port}",
            "--num-processes",
            "2",
            "--process-id",
            "1",
            "--distributed-timeout",
            "2",
        ],
        1,
        tmp_path,
        "alone",
    )
    assert child.wait(RUN_TIMEOUT_S) == 4
    assert f"process 1 could not reach the coordinator at 127.0.0.1:{port} within 2 s" in child.err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"], "must be HOST:PORT"),
        (["--coordinator", "host:70000", "--num-processes", "2", "--process-id", "0"], "must be HOST:PORT"),
        (["--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"], r"must be in 0\.\.1 for 2"),
        (["--coordinator", "h:1", "--num-processes", "2", "--process-id", "-1"], r"must be in 0\.\.1"),
        (["--coordinator", "h:1", "--num-processes", "0", "--process-id", "0"], "at least 1"),
        (["--coordinator", "h:1"], "go together"),
        (
            [
                "--coordinator",
                "h:1",
                "--num-processes",
                "2",
                "--process-id",
                "0",
                "--distributed-timeout",
                "0",
            ],
            "timeout must be positive",
        ),
        (["--distributed", "--num-processes", "2"], "go together"),
    ],
)
def test_bad_distributed_flags_are_refused_before_any_work(capsys, data_args, flags, message):
    assert main([*_train_args(data_args), *flags]) == 2
    assert re.search(message, capsys.readouterr().err)
