"""One run per checkpoint directory (`jax_lstm.training.dirlock`): a second run is refused with the
first one named, a dead run's lock is taken over, a foreign host's and an unreadable lock only on
request, only the owner releases, and of N runs that start together exactly one gets the lock.

Other runs are real processes. They run the lock module's file alone (it needs only the standard
library; a child that imports the package would spend seconds importing JAX), unbuffered, and the
test waits on what they print or put on a queue, never on how long something takes: every wait has
a bound only so that a hang fails instead of blocking the suite.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jax_lstm.training import dirlock
from jax_lstm.training.dirlock import LOCK_NAME, DirectoryLockedError, Holder

WAIT_S = 120  # a bound on every wait for another process, not an expected duration

# Loads dirlock.py by its path as module `dirlock` (prepended to each child's code).
_LOAD = textwrap.dedent(
    f"""
    import importlib.util, sys
    _spec = importlib.util.spec_from_file_location("dirlock", {dirlock.__file__!r})
    dirlock = importlib.util.module_from_spec(_spec)
    sys.modules["dirlock"] = dirlock
    _spec.loader.exec_module(dirlock)
    """
)


def _child(code: str, *args: str) -> subprocess.Popen:
    """A Python child running `code` after loading the lock module, unbuffered, lines on pipes."""
    return subprocess.Popen(
        [sys.executable, "-u", "-c", _LOAD + textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _finish(child: subprocess.Popen) -> tuple[str, str]:
    try:
        return child.communicate(timeout=WAIT_S)
    finally:
        child.kill()


def _write_lock(directory: Path, **fields) -> bytes:
    holder = {
        "pid": 1,
        "host": socket.gethostname(),
        "started": "2024-01-01T00:00:00+00:00",
        "command": "jax-lstm train --epochs 9",
        **fields,
    }
    payload = json.dumps(holder).encode()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / LOCK_NAME).write_bytes(payload)
    return payload


def _holder_on_disk(directory: Path) -> Holder:
    holder = Holder.from_json((directory / LOCK_NAME).read_bytes())
    assert holder is not None
    return holder


# A child that takes the lock, says so, holds it until told on stdin, then releases it.
_HOLD = """
    lock = dirlock.acquire(sys.argv[1], ["jax-lstm", "train", "--checkpoint-dir", sys.argv[1]])
    print("locked", lock.holder.pid, flush=True)
    sys.stdin.readline()
    print("released", lock.release(), flush=True)
"""


def test_a_second_run_is_refused_naming_the_first_and_gets_the_lock_once_it_is_released(tmp_path):
    directory = tmp_path / "ckpt"
    holder = _child(_HOLD, str(directory))
    try:
        words = holder.stdout.readline().split()
        assert words[0] == "locked", holder.stderr.read()
        pid = int(words[1])
        assert pid == holder.pid
        with pytest.raises(DirectoryLockedError) as caught:
            dirlock.acquire(directory, "jax-lstm train")
        message = str(caught.value)
        host = socket.gethostname()
        assert f"{directory} is in use by another run: process {pid} on host {host}" in message
        assert f"jax-lstm train --checkpoint-dir {directory}" in message
        assert f"kill {pid}" in message and "another checkpoint directory" in message
        assert caught.value.holder.pid == pid and caught.value.holder.started in message
        assert _holder_on_disk(directory).pid == pid  # the refusal changed nothing
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().split() == ["released", "True"]
    finally:
        _finish(holder)
    assert holder.returncode == 0
    with dirlock.acquire(directory, "jax-lstm train") as lock:
        assert lock.note is None and _holder_on_disk(directory).token == lock.holder.token
    assert not (directory / LOCK_NAME).exists()


def test_a_run_in_another_process_is_refused_while_this_one_holds_the_lock(tmp_path):
    directory = tmp_path / "ckpt"
    with dirlock.acquire(directory, ["jax-lstm", "train", "--seed", "3"]):
        child = _child(
            """
            try:
                dirlock.acquire(sys.argv[1], "second")
                print("acquired")
            except dirlock.DirectoryLockedError as err:
                print("refused", err.holder.pid, err)
            """,
            str(directory),
        )
        out, err = _finish(child)
    assert child.returncode == 0, err
    assert out.startswith(f"refused {os.getpid()} ") and "jax-lstm train --seed 3" in out


def _exited_process() -> tuple[int, int | None]:
    """The pid of a process that has exited, and its start time (/proc) while it ran."""
    child = _child("import os; print(os.getpid(), dirlock._process_start(os.getpid()))")
    out, err = _finish(child)
    assert child.returncode == 0, err
    pid, start = out.split()
    return int(pid), None if start == "None" else int(start)


def test_the_lock_of_a_dead_process_is_taken_over_with_a_note(tmp_path):
    directory = tmp_path / "ckpt"
    pid, start = _exited_process()
    _write_lock(directory, pid=pid, process_start=start)
    notes: list[str] = []
    lock = dirlock.acquire(directory, "jax-lstm train --resume", log=notes.append)
    assert notes == [lock.note]
    assert lock.note.startswith(f"took over the lock of process {pid} on host {socket.gethostname()}")
    assert lock.note.endswith("(it was no longer running)") and "\n" not in lock.note
    assert lock.replaced.pid == pid
    on_disk = _holder_on_disk(directory)
    assert on_disk.pid == os.getpid() and on_disk.command == "jax-lstm train --resume"
    assert lock.release() and not (directory / LOCK_NAME).exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times need /proc")
def test_a_live_process_id_that_belongs_to_another_process_now_is_taken_over(tmp_path):
    directory = tmp_path / "ckpt"
    child = _child("print('up', flush=True); sys.stdin.readline()")  # a live process, not the holder
    try:
        assert child.stdout.readline().strip() == "up"
        start = dirlock._process_start(child.pid)
        assert start is not None
        _write_lock(directory, pid=child.pid, process_start=start - 1)  # the holder started earlier
        lock = dirlock.acquire(directory, "jax-lstm train")
        assert f"process id {child.pid} now belongs to another process" in lock.note
        lock.release()
        _write_lock(directory, pid=child.pid, process_start=start)  # the very process: in use
        with pytest.raises(DirectoryLockedError, match=f"kill {child.pid}"):
            dirlock.acquire(directory, "jax-lstm train")
    finally:
        child.stdin.write("\n")
        child.stdin.flush()
        _finish(child)


def test_a_lock_from_before_the_last_reboot_is_taken_over(tmp_path):
    directory = tmp_path / "ckpt"
    if dirlock._boot_id() is None:
        pytest.skip("no boot id on this system")
    _write_lock(directory, pid=os.getpid(), boot_id="an-earlier-boot")  # a live pid, but another boot
    lock = dirlock.acquire(directory, "jax-lstm train")
    assert lock.note.endswith("(it was from before this machine's last reboot)")
    lock.release()


def test_a_foreign_hosts_lock_is_taken_over_only_on_request(tmp_path):
    directory = tmp_path / "ckpt"
    payload = _write_lock(directory, pid=os.getpid(), host="node-17.example")
    with pytest.raises(DirectoryLockedError) as caught:
        dirlock.acquire(directory, "jax-lstm train")
    message = str(caught.value)
    assert f"process {os.getpid()} on host node-17.example, started 2024-01-01T00:00:00+00:00" in message
    assert "jax-lstm train --epochs 9" in message and f"(this is {socket.gethostname()})" in message
    assert "--overwrite (take_over_foreign=True)" in message and f"delete {directory / LOCK_NAME}" in message
    assert (directory / LOCK_NAME).read_bytes() == payload
    lock = dirlock.acquire(directory, "jax-lstm train --overwrite", take_over_foreign=True)
    assert "node-17.example" in lock.note and "take_over_foreign" in lock.note
    assert _holder_on_disk(directory).host == socket.gethostname()
    lock.release()


CORRUPT = {
    "empty": b"",
    "cut short": b'{"pid": 12, "host": "a", "sta',
    "binary": bytes(range(256)),
    "a JSON list": b"[1, 2, 3]",
    "fields missing": b'{"pid": 12, "host": "a"}',
    "pid not a number": b'{"pid": "12", "host": "a", "started": "x", "command": "y"}',
    "pid zero": b'{"pid": 0, "host": "a", "started": "x", "command": "y"}',
}


@pytest.mark.parametrize("payload", CORRUPT.values(), ids=CORRUPT.keys())
def test_an_unreadable_lock_is_refused_unless_taken_over_on_request(tmp_path, payload):
    directory = tmp_path / "ckpt"
    directory.mkdir()
    (directory / LOCK_NAME).write_bytes(payload)
    with pytest.raises(DirectoryLockedError, match="names no run") as caught:
        dirlock.acquire(directory, "jax-lstm train")
    assert caught.value.holder is None and "--overwrite (take_over_foreign=True)" in str(caught.value)
    assert ("is empty" in str(caught.value)) == (payload == b"")
    with pytest.raises(DirectoryLockedError, match="names no run"):
        dirlock.read(directory)
    assert (directory / LOCK_NAME).read_bytes() == payload
    lock = dirlock.acquire(directory, "jax-lstm train", take_over_foreign=True)
    assert lock.note.startswith("took over an unreadable lock") and lock.replaced is None
    assert dirlock.read(directory).token == lock.holder.token
    lock.release()


def test_the_lock_file_is_json_naming_the_run(tmp_path):
    lock = dirlock.acquire(tmp_path / "new" / "dir", ["jax-lstm", "train", "--data", "my file.ts"])
    fields = json.loads((tmp_path / "new" / "dir" / LOCK_NAME).read_text())
    assert fields["pid"] == os.getpid() and fields["host"] == socket.gethostname()
    assert fields["command"] == "jax-lstm train --data 'my file.ts'"
    assert fields["started"][:2] == "20" and fields["started"][-6] in "+-"  # ISO with its UTC offset
    assert [p.name for p in (tmp_path / "new" / "dir").iterdir()] == [LOCK_NAME]  # no temporary left
    lock.release()


def test_only_the_owner_releases(tmp_path):
    directory = tmp_path / "ckpt"
    lock = dirlock.acquire(directory, "jax-lstm train")
    assert lock.held()
    successor = _write_lock(directory, pid=os.getpid(), token="someone-else")  # as after a take-over
    assert not lock.held()
    assert lock.release() is False
    assert (directory / LOCK_NAME).read_bytes() == successor
    (directory / LOCK_NAME).unlink()

    lock = dirlock.acquire(directory, "jax-lstm train")
    impostor = dirlock.Lock(lock.path, Holder(lock.holder.pid + 1, "h", "t", "c", token=lock.holder.token))
    assert impostor.release() is False  # another process's lock object (e.g. a forked child's)
    assert lock.held()
    assert lock.release() is True and lock.release() is False and not lock.held()
    assert not (directory / LOCK_NAME).exists()


def test_a_failure_inside_the_with_block_releases_the_lock(tmp_path):
    directory = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt), dirlock.acquire(directory, "jax-lstm train"):
        assert (directory / LOCK_NAME).exists()
        raise KeyboardInterrupt
    assert not (directory / LOCK_NAME).exists()
    assert dirlock.read(directory) is None


def test_a_lock_that_changed_after_it_was_judged_stale_is_not_removed(tmp_path, monkeypatch):
    """Between judging a stale lock and removing it, another run may have taken it over and written
    its own: that one is not removed, and this run is refused."""
    directory = tmp_path / "ckpt"
    pid, start = _exited_process()
    _write_lock(directory, pid=pid, process_start=start)
    judged = dirlock._take_over_reason
    successor = Holder(os.getpid(), socket.gethostname(), "2024-01-02T00:00:00+00:00", "successor", token="s")

    def judge_then_replace(path, *args):
        reason = judged(path, *args)
        if dirlock.read(path.parent).pid == pid:  # the first judgment: another run comes in now
            tmp = path.with_name("successor.tmp")
            tmp.write_bytes(successor.to_json())
            os.replace(tmp, path)
        return reason

    monkeypatch.setattr(dirlock, "_take_over_reason", judge_then_replace)
    with pytest.raises(DirectoryLockedError, match="successor"):
        dirlock.acquire(directory, "jax-lstm train")
    assert dirlock.read(directory) == successor


@pytest.mark.skipif(dirlock.fcntl is None, reason="take-overs are serialised with fcntl.flock")
def test_a_take_over_waits_for_the_guard_and_then_judges_the_lock_it_finds(tmp_path):
    """A run that finds a stale lock while another takes it over (holding the guard) judges the lock
    that other run left, not the stale one it saw."""
    import fcntl

    directory = tmp_path / "ckpt"
    pid, start = _exited_process()
    _write_lock(directory, pid=pid, process_start=start)
    guard = os.open(directory / dirlock.GUARD_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(guard, fcntl.LOCK_EX)  # this test is the run taking it over
    child = _child(
        """
        print("trying", flush=True)
        try:
            dirlock.acquire(sys.argv[1], "second")
            print("acquired")
        except dirlock.DirectoryLockedError as err:
            print("refused", err.holder.pid)
        """,
        str(directory),
    )
    try:
        assert child.stdout.readline().strip() == "trying"
        _write_lock(directory, pid=os.getpid(), command="the run that took it over")
    finally:
        os.close(guard)  # releases the guard
    out, err = _finish(child)
    assert child.returncode == 0, err
    assert out.split() == ["refused", str(os.getpid())]


# --- N runs at once ------------------------------------------------------------------------------

# Each racer: says it is ready, waits for the start, tries the lock, reports, and (the winner) holds
# it until the test has every report, so that no late racer could get it after a release.
_RACER = textwrap.dedent(
    """
    import os
    try:
        ready.put(os.getpid())
        if start.wait(timeout):
            try:
                lock = dirlock.acquire(directory, f"racer {os.getpid()}")
                results.put(("won", os.getpid(), lock.note))
                done.wait(timeout)
                lock.release()
            except dirlock.DirectoryLockedError as err:
                results.put(("lost", os.getpid(), err.holder.pid if err.holder else None))
    except BaseException as err:
        results.put(("error", os.getpid(), repr(err)))
    """
)


def _race(directory: Path, racers: int) -> list[tuple]:
    # Spawned, not forked: the test process runs JAX's threads, which a fork would copy mid-work.
    context = multiprocessing.get_context("spawn")
    ready, results = context.Queue(), context.Queue()
    start, done = context.Event(), context.Event()
    namespace = {
        "ready": ready, "results": results, "start": start, "done": done,
        "directory": str(directory), "timeout": WAIT_S,
    }  # fmt: skip
    processes = [context.Process(target=exec, args=(_LOAD + _RACER, dict(namespace))) for _ in range(racers)]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=WAIT_S)
        start.set()
        reports = [results.get(timeout=WAIT_S) for _ in processes]
    finally:
        done.set()
        for process in processes:
            process.join(timeout=WAIT_S)
            if process.is_alive():
                process.kill()
    assert all(p.exitcode == 0 for p in processes), [p.exitcode for p in processes]
    assert not [r for r in reports if r[0] == "error"], reports
    return reports


def test_of_n_runs_started_together_exactly_one_gets_the_lock(tmp_path):
    directory = tmp_path / "ckpt"
    reports = _race(directory, 6)
    winners = [r for r in reports if r[0] == "won"]
    assert len(winners) == 1, reports
    assert winners[0][2] is None  # a fresh lock: nothing taken over
    assert {r[2] for r in reports if r[0] == "lost"} == {winners[0][1]}  # each loser named the winner
    assert not (directory / LOCK_NAME).exists()  # released by the winner


def test_of_n_runs_that_find_the_same_stale_lock_exactly_one_takes_it_over(tmp_path):
    directory = tmp_path / "ckpt"
    pid, start = _exited_process()
    _write_lock(directory, pid=pid, process_start=start)
    reports = _race(directory, 6)
    winners = [r for r in reports if r[0] == "won"]
    assert len(winners) == 1, reports
    # The winner took the stale lock over, or found it removed by a racer that took it over under
    # the guard and then lost the fresh lock's creation to it: either way the stale one is gone.
    note = winners[0][2]
    assert note is None or note.startswith(f"took over the lock of process {pid} "), note
    assert {r[2] for r in reports if r[0] == "lost"} == {winners[0][1]}
