"""One run per checkpoint directory: a lock file, ``<dir>/run.lock``, taken before any work.

The lock is a small JSON file naming the run that holds it: its process id, host name, start time
(ISO 8601), command line, and, where the system says, the process's start time in clock ticks since
boot and the boot's id (so that a reused process id or a reboot are told from the same run). A
random token tells this lock from any other with the same process id.

Taking it is atomic: the JSON is written to a temporary file, flushed to disk, and hard-linked to
``run.lock``; `os.link` fails if ``run.lock`` exists, so of several runs that start together exactly
one gets it, and no run ever sees a lock half written. (On a file system without hard links,
``O_CREAT | O_EXCL`` creates it and the content follows; a crash between the two leaves an empty
lock, see below.)

A lock that is already there is judged by its holder:

- a live process on this host (the same process id, the same process start time where /proc says):
  the directory is in use, `DirectoryLockedError`;
- a process of this host that is gone (`os.kill(pid, 0)` finds none, the process id now belongs
  to a process started at another time, or the lock is from an earlier boot): the run crashed or
  was killed, and the lock is taken over with a one-line note (``Lock.note``, and `log`);
- a process on another host, which this host cannot check: `DirectoryLockedError`, unless
  ``take_over_foreign=True`` (the user says that run is gone);
- an unreadable lock (empty, not JSON, fields missing: written by something else, damaged, or a
  crash between creating and writing it where links are not available): it names no holder, so it
  is treated as a foreign one: refused, unless ``take_over_foreign=True``.

Take-overs are serialised by an advisory lock (`fcntl.flock`) on ``<dir>/.run.lock.guard``, which
the kernel releases when its holder dies: two runs that find the same stale lock never both take it
over. (Without `fcntl`, on Windows, take-overs are not serialised; creating a fresh lock still is.)
`Lock.release` removes the file only while it is still this lock (its token), so a run whose lock
was taken over never removes its successor's.

Only the standard library: the lock is taken before JAX starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import json
import os
import secrets
import shlex
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; take-overs are not serialised
    fcntl = None  # type: ignore[assignment]

__all__ = ["GUARD_NAME", "LOCK_NAME", "DirectoryLockedError", "Holder", "Lock", "acquire", "read"]

LOCK_NAME = "run.lock"
GUARD_NAME = ".run.lock.guard"
_FIELDS = ("pid", "host", "started", "command")


class DirectoryLockedError(ValueError):
    """The directory is in use by another run (or holds a lock that cannot be judged safely).

    ``holder`` is that run (`Holder`), or None when the lock file cannot be read; the message names
    it (process id, host, start time, command) and what to do.
    """

    def __init__(self, message: str, holder: Holder | None = None) -> None:
        super().__init__(message)
        self.holder = holder


@dataclasses.dataclass(frozen=True)
class Holder:
    """The run that holds (or held) a lock: what ``run.lock`` says."""

    pid: int
    host: str
    started: str  # ISO 8601 with the UTC offset, when the lock was taken
    command: str  # the command line, shell-quoted
    process_start: int | None = None  # /proc/<pid>/stat field 22 (clock ticks since boot), or None
    boot_id: str | None = None  # /proc/sys/kernel/random/boot_id, or None
    token: str = ""  # random, tells this lock from another of the same pid

    def describe(self) -> str:
        return f"process {self.pid} on host {self.host}, started {self.started}: {self.command}"

    def to_json(self) -> bytes:
        return (json.dumps(dataclasses.asdict(self), indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, payload: bytes) -> Holder | None:
        """The holder a lock file's bytes name; None for anything that is not such a file."""
        try:
            fields = json.loads(payload.decode())
        except (UnicodeDecodeError, ValueError):
            return None
        if not isinstance(fields, dict) or any(name not in fields for name in _FIELDS):
            return None
        pid, start = fields["pid"], fields.get("process_start")
        if isinstance(pid, bool) or not isinstance(pid, int) or pid < 1:
            return None
        if not all(isinstance(fields[name], str) for name in ("host", "started", "command")):
            return None
        if start is not None and (isinstance(start, bool) or not isinstance(start, int)):
            return None
        boot_id, token = fields.get("boot_id"), fields.get("token", "")
        if (boot_id is not None and not isinstance(boot_id, str)) or not isinstance(token, str):
            return None
        return cls(pid, fields["host"], fields["started"], fields["command"], start, boot_id, token)


def _process_start(pid: int) -> int | None:
    """The start time of process `pid` in clock ticks since boot (/proc/<pid>/stat field 22), or
    None where there is no /proc or no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces and parentheses itself.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of the whole line: 20th after the name's ")"
    except (IndexError, ValueError):
        return None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _this_process(command: str) -> Holder:
    started = datetime.datetime.now(datetime.UTC).astimezone().isoformat(timespec="seconds")
    pid = os.getpid()
    return Holder(
        pid, socket.gethostname(), started, command, _process_start(pid), _boot_id(), secrets.token_hex(8)
    )


def _gone(holder: Holder) -> str | None:
    """Why a holder of this host is certainly no longer running (the note's reason), or None when
    it may be."""
    if holder.boot_id is not None and _boot_id() not in (None, holder.boot_id):
        return "from before this machine's last reboot"
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return "no longer running"
    except PermissionError:
        pass  # a process of another user: alive
    if holder.process_start is not None:
        now = _process_start(holder.pid)
        if now is not None and now != holder.process_start:
            return f"no longer running (process id {holder.pid} now belongs to another process)"
    return None


def read(directory: str | Path) -> Holder | None:
    """The run that holds the lock of `directory`; None when there is no lock. Raises
    `DirectoryLockedError` for a lock file that cannot be read (see the module docstring)."""
    path = Path(directory) / LOCK_NAME
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        return None
    holder = Holder.from_json(payload)
    if holder is None:
        raise _unreadable(path, payload)
    return holder


@dataclasses.dataclass
class Lock:
    """A held lock on a directory: release it when the run ends (or use it as a context manager).

    ``note`` is the one line said when a stale lock was taken over (None otherwise), ``replaced``
    the run that had held it.
    """

    path: Path
    holder: Holder
    note: str | None = None
    replaced: Holder | None = None
    released: bool = False

    def held(self) -> bool:
        """Whether ``run.lock`` is still this lock (not released, not taken over)."""
        try:
            current = Holder.from_json(self.path.read_bytes())
        except OSError:
            return False
        return not self.released and current is not None and current.token == self.holder.token

    def release(self) -> bool:
        """Removes the lock file if it is still this lock; returns whether it did. A lock taken over
        by another run (which judged this one gone) stays, as does one released already. Only the
        process that took the lock releases it: a forked child's `release` does nothing."""
        if self.released or os.getpid() != self.holder.pid:
            return False
        self.released = True
        try:
            current = Holder.from_json(self.path.read_bytes())
        except FileNotFoundError:
            return False
        if current is None or current.token != self.holder.token:
            return False
        self.path.unlink(missing_ok=True)
        _sync_directory(self.path.parent)
        return True

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


def acquire(
    directory: str | Path,
    command: str | Sequence[str],
    *,
    take_over_foreign: bool = False,
    log: Callable[[str], None] | None = None,
) -> Lock:
    """Takes the lock of `directory` (created if missing) for a run of `command` (the command line,
    a string or argv), before the run does any work; returns the `Lock`.

    A stale lock of this host (its process is gone) is taken over, with a one-line note in
    ``Lock.note`` and through `log`. A lock of another host, or an unreadable one, is taken over only
    with `take_over_foreign` (for the CLI's ``--overwrite``): this host cannot tell whether that run is
    still going. A lock of a live process of this host is never taken over.

    Raises:
      DirectoryLockedError: another run holds the directory; the message names it and what to do.
      OSError: the directory cannot be created or written (check that first:
        `jax_lstm.training.checkpoint.check_directory`).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text = command if isinstance(command, str) else shlex.join(str(part) for part in command)
    mine = _this_process(text)
    path = directory / LOCK_NAME
    if _create(path, mine):
        return Lock(path, mine)
    with _guard(directory):
        # Judged under the guard: of several runs that found the same stale lock, the first takes
        # it over and the others find its fresh lock here.
        while True:
            try:
                with open(path, "rb") as handle:
                    payload, inode = handle.read(), os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:  # released meanwhile
                if _create(path, mine):
                    return Lock(path, mine)
                continue
            holder = Holder.from_json(payload)
            reason = _take_over_reason(path, holder, payload, mine, take_over_foreign)
            # Removed only if it is still the file judged (a release and a fresh lock may have
            # come in between); then created as a fresh lock is, exclusively.
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
            if _create(path, mine):
                what = "an unreadable lock" if holder is None else f"the lock of {holder.describe()}"
                note = f"took over {what} in {directory} ({reason})"
                if log is not None:
                    log(note)
                return Lock(path, mine, note, holder)


def _take_over_reason(
    path: Path, holder: Holder | None, payload: bytes, mine: Holder, take_over_foreign: bool
) -> str:
    """Why the lock found at `path` may be taken over; raises DirectoryLockedError when it may not."""
    if holder is None:
        if take_over_foreign:
            return "take_over_foreign: it names no run"
        raise _unreadable(path, payload)
    if holder.host != mine.host:
        if take_over_foreign:
            return f"take_over_foreign: host {holder.host} said to be done with it"
        raise DirectoryLockedError(
            f"{path.parent} is in use by another run: {holder.describe()}. That run is on another "
            f"host (this is {mine.host}), which cannot be checked from here. Wait for it to finish; if "
            "it is gone, take the directory over with --overwrite (take_over_foreign=True), or "
            f"delete {path}",
            holder,
        )
    reason = _gone(holder)
    if reason is not None:
        return f"it was {reason}"
    who = "this process" if holder.pid == mine.pid else f"process {holder.pid}"
    raise DirectoryLockedError(
        f"{path.parent} is in use by another run: {holder.describe()}. Wait for it to finish, stop "
        f"it (kill {holder.pid}), or use another checkpoint directory. ({who} still runs, so its "
        "lock is not taken over.)",
        holder,
    )


def _unreadable(path: Path, payload: bytes) -> DirectoryLockedError:
    what = "is empty" if not payload else "is not a lock this program wrote"
    return DirectoryLockedError(
        f"{path} {what}, so it names no run (damaged, or left by a crash while it was being "
        f"written). If no other run uses {path.parent}, take it over with --overwrite "
        f"(take_over_foreign=True), or delete {path}"
    )


def _create(path: Path, holder: Holder) -> bool:
    """Creates the lock file holding `holder`, exclusively: False if a lock exists already."""
    payload = holder.to_json()
    tmp = path.with_name(f".{path.name}.tmp-{holder.pid}-{holder.token}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails if the lock exists: its content is already whole
        except FileExistsError:
            return False
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            return _create_exclusive(path, payload)  # no hard links on this file system
    finally:
        tmp.unlink(missing_ok=True)
    _sync_directory(path.parent)
    return True


def _create_exclusive(path: Path, payload: bytes) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    _sync_directory(path.parent)
    return True


@contextlib.contextmanager
def _guard(directory: Path):
    """Holds the advisory lock that serialises take-overs of `directory`'s lock (none without fcntl)."""
    if fcntl is None:
        yield
        return
    fd = os.open(directory / GUARD_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel if this process dies
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _sync_directory(directory: Path) -> None:
    """Makes a link or unlink in `directory` durable."""
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(directory, os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
