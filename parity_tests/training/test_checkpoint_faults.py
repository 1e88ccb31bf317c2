"""Checkpoint faults: a damaged, truncated or foreign latest checkpoint is refused (one
CheckpointError naming the file) or falls back to the previous one, saying so; never resumed silently.
kill -9 at random points of a save loop (a fresh saver process each round) always leaves a directory
that loads, bit-exact.

The states here are plain numpy trees saved with the real `checkpoint.save`: what is tested is the
file, not training (which `test_training` resumes bit-exactly from a checkpoint).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest

from jax_lstm import optim
from jax_lstm.atomic import temporary_name
from jax_lstm.data import Dataset
from jax_lstm.training import TrainConfig, checkpoint

CONFIG = TrainConfig(hidden_size=4, num_layers=1, epochs=100, log_every=0)
PLATEAU = optim.PlateauState(lr=1e-3, best=float("inf"), num_bad_epochs=0, cooldown_counter=0, last_epoch=0)
WAIT_S = 600  # a bound on each wait for a child process, so that a hang fails instead of blocking


def _dataset() -> Dataset:
    x = np.zeros((4, 3, 2), np.float32)
    return Dataset("tiny", x, np.array([0, 1, 0, 1]), x, np.array([0, 1, 0, 1]), ("a", "b"))


def _state(epoch: int, size: int = 8) -> dict[str, np.ndarray]:
    """The deterministic state saved after `epoch`: every value tells its epoch."""
    rng = np.random.default_rng(epoch)
    return {"w": rng.standard_normal((size, size)).astype(np.float32), "step": np.int32(epoch)}


def _target(size: int = 8):
    def target(config_fields, data, seeds):
        template = {"w": np.zeros((size, size), np.float32), "step": np.int32(0)}
        return TrainConfig(**config_fields), template, optim.PlateauState

    return target


def _save(directory: Path, epoch: int, size: int = 8) -> Path:
    return checkpoint.save(directory, _state(epoch, size), [PLATEAU], epoch, [[]], CONFIG, _dataset())


def _assert_state(loaded, epoch: int, size: int = 8) -> None:
    assert loaded.epoch == epoch
    expected = _state(epoch, size)
    np.testing.assert_array_equal(np.asarray(loaded.state["w"]), expected["w"])
    assert int(loaded.state["step"]) == epoch


@pytest.fixture
def two_epochs(tmp_path) -> Path:
    directory = tmp_path / "ckpt"
    _save(directory, 1)
    _save(directory, 2)
    assert sorted(p.name for p in directory.iterdir()) == [
        checkpoint.CHECKPOINT_NAME,
        checkpoint.PREVIOUS_NAME,
    ]
    _assert_state(checkpoint.load(directory, _target()), 2)
    return directory


def _damage_and_load(directory: Path, damage) -> tuple[object, list[str]]:
    latest = directory / checkpoint.CHECKPOINT_NAME
    latest.write_bytes(damage(latest.read_bytes()))
    lines: list[str] = []
    return checkpoint.load(directory, _target(), log=lines.append), lines


def _flip(offset_fraction: float):
    def damage(raw: bytes) -> bytes:
        i = min(int(offset_fraction * len(raw)), len(raw) - 1)
        return raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1 :]

    return damage


def _truncate(fraction: float):
    return lambda raw: raw[: int(fraction * len(raw))]


def _foreign(kind: str):
    return {
        "json": lambda raw: json.dumps({"epoch": 3}).encode(),
        "msgpack list": lambda raw: msgpack.packb([1, 2, 3]),
        "msgpack map of another program": lambda raw: msgpack.packb({"format": "other/1", "state": {}}),
        "old format": lambda raw: msgpack.packb({"format": "jax-lstm-checkpoint/1", "epoch": 2}),
        "empty": lambda raw: b"",
        "zip (a torch .pt)": lambda raw: b"PK\x03\x04" + bytes(100),
    }[kind]


DAMAGE = {
    **{f"byte flip at {f:.0%}": _flip(f) for f in (0.0, 0.01, 0.05, 0.3, 0.6, 0.99, 1.0)},
    **{f"truncated to {f:.0%}": _truncate(f) for f in (0.0, 0.1, 0.5, 0.99)},
    **{
        f"foreign: {k}": _foreign(k)
        for k in (
            "json",
            "msgpack list",
            "msgpack map of another program",
            "old format",
            "empty",
            "zip (a torch .pt)",
        )
    },
}


@pytest.mark.parametrize("damage", list(DAMAGE.values()), ids=list(DAMAGE))
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(two_epochs, damage):
    loaded, lines = _damage_and_load(two_epochs, damage)
    _assert_state(loaded, 1)  # the previous checkpoint, bit-exact
    assert loaded.path.name == checkpoint.PREVIOUS_NAME
    assert loaded.replaces == two_epochs / checkpoint.CHECKPOINT_NAME
    assert len(lines) == 1
    assert "checkpoint.msgpack is corrupt or from an incompatible version" in lines[0]
    assert f"falling back to {two_epochs / checkpoint.PREVIOUS_NAME} (epoch 1)" in lines[0]


@pytest.mark.parametrize(
    "damage", [DAMAGE["byte flip at 30%"], DAMAGE["truncated to 50%"], DAMAGE["foreign: old format"]]
)
def test_without_a_previous_checkpoint_damage_is_one_clear_error(two_epochs, damage):
    (two_epochs / checkpoint.PREVIOUS_NAME).unlink()
    with pytest.raises(checkpoint.CheckpointError) as info:
        _damage_and_load(two_epochs, damage)
    message = str(info.value)
    assert message.startswith(
        f"{two_epochs / checkpoint.CHECKPOINT_NAME} is corrupt or from an incompatible version"
    )


def test_both_damaged_reports_the_latest(two_epochs):
    for name in (checkpoint.CHECKPOINT_NAME, checkpoint.PREVIOUS_NAME):
        (two_epochs / name).write_bytes(b"\x00garbage")
    with pytest.raises(checkpoint.CheckpointError, match=r"ckpt/checkpoint.msgpack is corrupt"):
        checkpoint.load(two_epochs, _target())


def test_a_checkpoint_of_another_shape_is_incompatible(two_epochs):
    with pytest.raises(checkpoint.CheckpointError, match="does not fit its config"):
        checkpoint.load(two_epochs / checkpoint.CHECKPOINT_NAME, _target(size=9))


def test_a_crash_between_the_two_renames_leaves_the_newest_as_previous(two_epochs):
    (two_epochs / checkpoint.CHECKPOINT_NAME).unlink()
    lines: list[str] = []
    _assert_state(checkpoint.load(two_epochs, _target(), log=lines.append), 1)
    assert "is missing" in lines[0]


def test_leftover_temporaries_of_dead_processes_are_removed(two_epochs):
    latest = two_epochs / checkpoint.CHECKPOINT_NAME
    dead = subprocess.run(
        [sys.executable, "-u", "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    stale = temporary_name(latest, int(dead.stdout))
    stale.write_bytes(b"half a checkpoint")
    alive = temporary_name(latest, os.getppid())  # a save another live process may be writing now
    alive.write_bytes(b"being written")
    assert checkpoint.remove_leftovers(two_epochs) == [stale]
    assert not stale.exists() and alive.exists()


# --- kill -9 during saves ----------------------------------------------------------------------

# One saver process per round, spawned (not forked: a fork copies a process whose libraries may run
# threads, and a copy that hangs is a hang of the test): it resumes from the directory, checking
# what it read, and saves epoch after epoch until it is killed.
_SAVER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from parity_tests.training.test_checkpoint_faults import _save, SIZE
    from jax_lstm.training import checkpoint
    from pathlib import Path

    directory = Path(sys.argv[1])
    checkpoint.remove_leftovers(directory)  # as fit does at the start of a run
    epoch = 0
    for path in (directory / checkpoint.CHECKPOINT_NAME, directory / checkpoint.PREVIOUS_NAME):
        if path.exists():
            epoch = max(epoch, int(checkpoint._read_payload(path)["epoch"]))
    print("from", epoch, flush=True)
    while True:
        epoch += 1
        _save(directory, epoch, SIZE)
        print("saved", epoch, flush=True)
    """
)
SIZE = 256  # a quarter of a megabyte per save: long enough for kills to land inside one
ROUNDS = 8


def _line_reader(stream, describe):
    """``next_line()`` -> the next line of `stream` (read by a thread), "" at its end; fails after
    WAIT_S with what ``describe()`` says of the child."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()

    def next_line() -> str:
        try:
            return lines.get(timeout=WAIT_S)
        except queue.Empty:
            raise AssertionError(f"the saver said nothing for {WAIT_S} s; {describe()}") from None

    return next_line


def _describe(child: subprocess.Popen, err: Path) -> str:
    """What a failure message should say of `child`: its kernel state while it runs (R, S, D...)
    and where it waits, then what it wrote to stderr."""
    state = "ended" if child.poll() is not None else "running"
    if state == "running":
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{child.pid}/stat").read_text()
            state = f"state {stat[stat.rindex(')') + 2]}"
            state += f", waiting in {Path(f'/proc/{child.pid}/wchan').read_text() or '?'}"
    return f"pid {child.pid}, {state}, returncode {child.returncode}; stderr: {err.read_text()[-2000:]!r}"


def test_kill_9_at_random_points_of_a_save_loop_always_leaves_a_loadable_directory(tmp_path):
    directory = tmp_path / "ckpt"
    root = str(Path(__file__).resolve().parents[2])
    rng = random.Random(0)
    last_epoch = 0
    for round_ in range(ROUNDS):
        err = tmp_path / f"saver-{round_}.err"
        with open(err, "w") as stderr:
            saver = subprocess.Popen(
                [sys.executable, "-u", "-c", _SAVER.format(root=root), str(directory)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        describe = lambda saver=saver, err=err: _describe(saver, err)  # noqa: E731
        next_line = _line_reader(saver.stdout, describe)
        try:
            words = next_line().split()
            assert words[:1] == ["from"], (words, describe())
            resumed_from = int(words[1])
            assert resumed_from >= last_epoch  # resuming never goes back past what was loadable
            saved = 0
            while saved < 1 + rng.randrange(3):  # let it save a few, then kill it mid-way
                line = next_line()
                assert line.startswith("saved"), (line, describe())
                saved += 1
            time.sleep(rng.uniform(0.0, 0.03))  # where in a save the kill lands; the checks hold anywhere
            saver.send_signal(signal.SIGKILL)
            try:
                saver.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"SIGKILL did not end the saver in {WAIT_S} s; {describe()}") from None
            line = next_line()
            while line.startswith("saved"):  # written before the kill, read after it
                line = next_line()
            assert line == "", (line, describe())  # the end of its output
            assert saver.returncode == -signal.SIGKILL, describe()
        finally:
            if saver.poll() is None:
                saver.kill()
                saver.wait(timeout=WAIT_S)
            saver.stdout.close()
        loaded = checkpoint.load(directory, _target(SIZE), log=lambda line: None)
        assert loaded.epoch >= max(last_epoch, resumed_from)
        _assert_state(loaded, loaded.epoch, SIZE)  # bit-exact: what resuming would continue from
        last_epoch = loaded.epoch
    assert last_epoch >= ROUNDS
    checkpoint.remove_leftovers(directory)
    assert all(not p.name.startswith(".") for p in directory.iterdir())


def test_set_aside_keeps_a_corrupt_checkpoint_out_of_the_rotation(two_epochs):
    loaded, _ = _damage_and_load(two_epochs, DAMAGE["byte flip at 30%"])
    aside = checkpoint.set_aside(loaded.replaces)
    assert aside.name == "checkpoint.corrupt.msgpack"
    _save(two_epochs, 2)  # the run goes on from epoch 1
    _assert_state(checkpoint.load(two_epochs, _target()), 2)
    (two_epochs / checkpoint.CHECKPOINT_NAME).unlink()
    _assert_state(checkpoint.load(two_epochs, _target(), log=lambda line: None), 1)  # the good one kept
    shutil.rmtree(two_epochs)
