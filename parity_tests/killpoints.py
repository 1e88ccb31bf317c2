"""Faults during a run: a training run killed with SIGKILL at a random moment, then ``--resume``; its
final metrics must equal an uninterrupted run's exactly (floats compared with ==).

    python -m parity_tests.killpoints --runs 20 [--seed 0] [--kinds classification forecasting seeds]

For each kind of run (``jax-lstm train`` on the article's synthetic data; ``jax-lstm forecast`` on a
tiny table; ``jax-lstm train --seeds 2``) an uninterrupted run gives the reference metrics
(``--metrics-json``). Each kill point, drawn from a seeded RNG, is a number of epoch lines to see
on the child's unbuffered stdout (0: kill during start-up, before the first epoch ends) and a
delay after that line, a random fraction of an epoch's duration as the child's own epoch lines
measure it: the kill lands anywhere in an epoch, a checkpoint save included. The run is then
resumed in the same directory (started afresh when no checkpoint was written yet, as a user would)
and its metrics compared with the reference, every value but timings and the environment. With
``--in-process`` the reference and the resumed runs run in the script's own process, which saves a
start-up each (as `parity_tests/training/test_killpoints.py` does).

Every wait on a child has a bound; a child that passes it counts as a failure (a hang).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import io
import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 600  # a bound on each wait for a child; beyond it the run counts as hung
EPOCH_LINE = re.compile(r"^Epoch \[(\d+)/(\d+)\] ")
# Values that differ between two identical runs: wall-clock times and where it ran.
UNCOMPARED = ("seconds", "environment")


def tiny_table(path: Path, rows: int = 160, seed: int = 2) -> Path:
    """A daily table (date, temp, rain) with a weekly season."""
    from parity_tests.fuzz import tiny_csv

    path.write_text(tiny_csv(rows, seed))
    return path


@dataclasses.dataclass(frozen=True)
class Kind:
    """One kind of training run: its command line without the output flags."""

    name: str
    argv: tuple[str, ...]


def kinds(table: Path, epochs: int) -> dict[str, Kind]:
    small = ("--hidden-size", "4", "--num-layers", "1", "--epochs", str(epochs), "--no-compile-cache")
    train = ("train", "--dataset", "synthetic", "--quiet", *small)
    return {
        "classification": Kind("classification", train),
        # Without --quiet: forecast's --quiet drops the epoch lines the kill points count.
        "forecasting": Kind(
            "forecasting", ("forecast", "--data", str(table), "--time-column", "date", *small)
        ),
        "seeds": Kind("seeds", (*train, "--seeds", "2")),
    }


@dataclasses.dataclass
class Run:
    """What one command did: its status, output, and the metrics it wrote (None: none)."""

    status: int | None
    stdout: str
    stderr: str
    metrics: dict[str, Any] | None
    epoch_lines: int = 0
    killed: bool = False
    timed_out: bool = False


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}


def _read_metrics(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_in_process(argv: list[str], metrics: Path) -> Run:
    """`jax_lstm.cli.main(argv)` here (stdout and stderr captured): no process start-up."""
    import jax

    from jax_lstm.cli import main

    out, err = io.StringIO(), io.StringIO()
    x64 = jax.config.read("jax_enable_x64")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(argv)
    finally:
        if jax.config.read("jax_enable_x64") != x64:
            jax.config.update("jax_enable_x64", x64)
    lines = sum(1 for line in out.getvalue().splitlines() if EPOCH_LINE.match(line))
    return Run(status, out.getvalue(), err.getvalue(), _read_metrics(metrics), lines)


def run_child(argv: list[str], metrics: Path, log: Path) -> Run:
    """``python -u -m jax_lstm.cli argv`` to completion, bounded by WAIT_S."""
    command = [sys.executable, "-u", "-m", "jax_lstm.cli", *argv]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        return Run(None, "", "", None, timed_out=True)
    log.write_text(done.stdout + done.stderr)
    lines = sum(1 for line in done.stdout.splitlines() if EPOCH_LINE.match(line))
    return Run(done.returncode, done.stdout, done.stderr, _read_metrics(metrics), lines)


PIPE_BYTES = 4096  # the pipe of a held child (`run_and_kill(hold=True)`): one page, Linux's least


def run_and_kill(
    argv: list[str],
    metrics: Path,
    log: Path,
    after_lines: int,
    delay_fraction: float,
    epoch_s: tuple[float, float],
    hold: bool = False,
) -> Run:
    """Starts ``jax-lstm argv`` as a child and kills it (SIGKILL) once it has printed `after_lines`
    epoch lines, `delay_fraction` of an epoch after the last of them. The epoch's duration: from
    the child's own last two lines; after its first line, the reference run's second epoch
    (`epoch_s`: its first and second epochs' seconds). With `after_lines` 0: after its first line of
    output (the run's header, printed once the data is read), `delay_fraction` of the reference's
    first epoch, its compilation included. A child that ends first is left to end.

    With `hold`, its stdout is a pipe of PIPE_BYTES that is read no further once the kill point is
    reached: the child can print at most that many bytes more before it waits on the pipe, so a run
    with more epochs than that many lines is killed mid-run whatever the machine's speed.
    """
    command = [sys.executable, "-u", "-m", "jax_lstm.cli", *argv]
    read_end, write_end = os.pipe()
    if hold and hasattr(fcntl, "F_SETPIPE_SZ"):
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    with open(log, "w") as err:
        child = subprocess.Popen(command, stdout=write_end, stderr=err, env=_env(), cwd=ROOT)
    os.close(write_end)
    lines: queue.Queue = queue.Queue()
    stop = threading.Event()  # set once the child is dead: read what is left

    def read() -> None:
        # Byte by byte, so that nothing past the kill point's line is taken out of the pipe; with
        # `hold` the reader itself stops there, until the child is dead.
        line, epochs, first = bytearray(), 0, True
        while True:
            byte = os.read(read_end, 1)
            if not byte:
                break
            line += byte
            if byte != b"\n":
                continue
            text = line.decode(errors="replace")
            line.clear()
            epochs += bool(EPOCH_LINE.match(text))
            lines.put((time.monotonic(), text))
            if hold and first and epochs >= after_lines:
                first = False
                stop.wait()
        lines.put((time.monotonic(), None))

    reader = threading.Thread(target=read, daemon=True)
    seen: list[float] = []  # when each epoch line arrived
    output: list[str] = []
    ended = timed_out = False
    reader.start()
    try:
        while (len(seen) < after_lines or not output) and not ended:
            try:
                at, line = lines.get(timeout=WAIT_S)
            except queue.Empty:
                timed_out = True
                break
            if line is None:
                ended = True
            else:
                output.append(line)
                if EPOCH_LINE.match(line):
                    seen.append(at)
        if not ended and not timed_out:
            if len(seen) >= 2:
                epoch = seen[-1] - seen[-2]
            else:
                epoch = epoch_s[1] if seen else epoch_s[0]
            time.sleep(delay_fraction * epoch)  # where in the epoch the kill lands; any place is valid
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        stop.set()
    reader.join(timeout=WAIT_S)
    os.close(read_end)
    while not lines.empty():  # what the reader still passed on
        _, line = lines.get()
        if line is not None:
            output.append(line)
            seen += [0.0] if EPOCH_LINE.match(line) else []
    killed = child.returncode == -signal.SIGKILL
    return Run(
        child.returncode,
        "".join(output),
        log.read_text(),
        _read_metrics(metrics),
        len(seen),
        killed,
        timed_out,
    )


def comparable(metrics: Any) -> Any:
    """The metrics without the values two identical runs do not share (timings, environment)."""
    if isinstance(metrics, dict):
        return {k: comparable(v) for k, v in metrics.items() if k not in UNCOMPARED}
    if isinstance(metrics, list):
        return [comparable(v) for v in metrics]
    return metrics


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two metrics trees differ, exactly (floats with ==; NaN equals NaN)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}: only in one" for k in sorted(set(a) ^ set(b))]
        for key in sorted(set(a) & set(b)):
            out += differences(a[key], b[key], f"{path}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items vs {len(b)}"]
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")
        ]
    same = a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)
    return [] if same else [f"{path}: {a!r} != {b!r}"]


@dataclasses.dataclass
class KillPoint:
    kind: str
    after_lines: int
    delay_fraction: float
    killed: bool = False  # False: the run had ended before the kill
    lines_seen: int = 0
    resumed: str = ""  # "resumed after epoch N", "started afresh", or what went wrong
    differences: list[str] = dataclasses.field(default_factory=list)
    failure: str = ""

    @property
    def ok(self) -> bool:
        return not self.failure and not self.differences


def _outputs(workdir: Path) -> tuple[Path, Path]:
    return workdir / "ckpt", workdir / "metrics.json"


def reference(kind: Kind, workdir: Path, in_process: bool = False) -> Run:
    """The uninterrupted run of `kind` in `workdir` (with a checkpoint directory, as the killed
    runs have)."""
    ckpt, metrics = _outputs(workdir)
    argv = [*kind.argv, "--checkpoint-dir", str(ckpt), "--metrics-json", str(metrics)]
    if in_process:
        return run_in_process(argv, metrics)
    return run_child(argv, metrics, workdir / "reference.log")


def kill_and_resume(
    kind: Kind,
    workdir: Path,
    after_lines: int,
    delay_fraction: float,
    expected: dict[str, Any],
    resume_in_process: bool = False,
    hold: bool = False,
) -> KillPoint:
    """One kill point: run `kind` in a fresh `workdir`, kill it, resume it, compare with `expected`."""
    from jax_lstm.training import checkpoint

    point = KillPoint(kind.name, after_lines, delay_fraction)
    ckpt, metrics = _outputs(workdir)
    argv = [*kind.argv, "--checkpoint-dir", str(ckpt), "--metrics-json", str(metrics)]
    seconds = [float(epoch["seconds"]) for epoch in expected.get("epochs", [])] + [1.0, 1.0]
    killed = run_and_kill(
        argv, metrics, workdir / "killed.log", after_lines, delay_fraction, (seconds[0], seconds[1]), hold
    )
    point.killed, point.lines_seen = killed.killed, killed.epoch_lines
    if killed.timed_out:
        point.failure = f"the run to be killed did not finish or print within {WAIT_S} s"
        return point
    if not killed.killed:  # it ended first: its own metrics are the ones to compare
        if killed.status != 0 or killed.metrics is None:
            point.failure = (
                f"the run to be killed failed by itself (status {killed.status}): {killed.stderr[-300:]}"
            )
        else:
            point.resumed = "not resumed: it ended before the kill"
            point.differences = differences(comparable(killed.metrics), comparable(expected))
        return point
    metrics.unlink(missing_ok=True)  # the resumed run must write its own
    again = [*argv, "--resume"] if checkpoint.exists(ckpt) else argv
    point.resumed = "resumed" if checkpoint.exists(ckpt) else "started afresh (no checkpoint yet)"
    if resume_in_process:
        resumed = run_in_process(again, metrics)
    else:
        resumed = run_child(again, metrics, workdir / "resumed.log")
    found = re.search(r"resuming from \S+ after epoch (\d+)", resumed.stdout)
    if found:
        point.resumed = f"resumed after epoch {found.group(1)}"
    if resumed.timed_out or resumed.status != 0 or resumed.metrics is None:
        point.failure = f"the resumed run failed (status {resumed.status}): {resumed.stderr.strip()[-300:]}"
        return point
    point.differences = differences(comparable(resumed.metrics), comparable(expected))
    return point


def draw_points(rng: random.Random, epochs: int, runs: int) -> list[tuple[int, float]]:
    """`runs` kill points: (epoch lines to see, 0..epochs - 1; delay as a fraction of an epoch)."""
    return [(rng.randrange(epochs), rng.random()) for _ in range(runs)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m parity_tests.killpoints", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=20, help="kill points per kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--kinds", nargs="+", default=["classification", "forecasting", "seeds"])
    parser.add_argument("--report", type=Path, help="write every kill point as JSON here")
    parser.add_argument("--keep", type=Path, help="keep the run directories here (default: a temporary dir)")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the reference and the resumed runs in this process (the killed one is always a child)",
    )
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    points: list[KillPoint] = []
    unsupported: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        root = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="killpoints-")))
        root.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("JAX_LSTM_CACHE", str(root / "xla-cache"))
        table = tiny_table(root / "table.csv")
        for name in args.kinds:
            kind = kinds(table, args.epochs)[name]
            base = root / name / "reference"
            base.mkdir(parents=True, exist_ok=True)
            expected = reference(kind, base, in_process=args.in_process)
            if expected.status != 0 or expected.metrics is None:
                error = [line for line in expected.stderr.splitlines() if "error" in line]
                unsupported[name] = (
                    f"status {expected.status}: {error[-1] if error else expected.stderr[-300:]}"
                )
                print(f"{name}: not supported: {unsupported[name]}", flush=True)
                continue
            for i, (after, delay) in enumerate(draw_points(rng, args.epochs, args.runs)):
                workdir = root / name / f"kill-{i}"
                shutil.rmtree(workdir, ignore_errors=True)
                workdir.mkdir(parents=True)
                point = kill_and_resume(kind, workdir, after, delay, expected.metrics, args.in_process)
                points.append(point)
                verdict = "equal" if point.ok else (point.failure or f"{len(point.differences)} differences")
                where = "killed" if point.killed else "ended before the kill"
                print(
                    f"{name} #{i}: after {after} epoch lines + {delay:.2f} epoch: {where} "
                    f"({point.lines_seen} lines seen), {point.resumed}: {verdict}",
                    flush=True,
                )
                for line in point.differences[:5]:
                    print(f"    {line}", flush=True)
    failures = [p for p in points if not p.ok]
    killed = sum(p.killed for p in points)
    print(
        f"\n{len(points)} kill points ({killed} killed mid-run, {len(points) - killed} ended first), "
        f"{len(failures)} failures; not supported: {unsupported or 'none'}",
        flush=True,
    )
    if args.report:
        payload = {"points": [dataclasses.asdict(p) for p in points], "unsupported": unsupported}
        args.report.write_text(json.dumps(payload, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
