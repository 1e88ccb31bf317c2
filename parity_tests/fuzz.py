"""Fuzzing every entry point: random flags, spoiled files and wrong arguments against one property.

    python -m parity_tests.fuzz --examples 1000 [--seed 0] [--report fuzz.json] [--only cli|api]

The property, for the command line (``jax-lstm train | forecast | export | predict | parity``): exit 0, or
exactly one ``jax-lstm: error: ...`` line on stderr with status 2 (bad input), 3 (diverged) or 4
(an output could not be written); 1 only where a comparison with torch disagrees (``parity``,
``--compare-torch``); argparse's own usage error (status 2, its ``prog: error:`` line) is told
apart and reported as such. Never a traceback, a NaN in the metrics of a run that exited 0, or a
hang (every case is bounded; a timeout is a failure). For the Python API (`jax_lstm.training.fit`,
`jax_lstm.forecasting.fit_forecaster`, `jax_lstm.LSTMSequenceClassifier`, `jax_lstm.from_torch`, the
layers' and cells' ``apply``): a result (finite where its inputs were), or an exception of a
documented class (a ValueError, TypeError or KeyError subclass, such as DataError or
CheckpointError; TrainingDivergedError for a diverged run) raised by jax_lstm's own code (not one
that leaked out of numpy, JAX or Flax), whose message names the argument where the case knows which
one it spoiled.

The harness knows the interface only: flags, exit statuses, the error line, public functions. Most
command-line cases run in this process (`jax_lstm.cli.main` returns the status; stdout and stderr
are captured), a share as real subprocesses. Each distinct problem is reported once, with the
smallest command or Python snippet that shows it (flags dropped one by one while it still does).
Spoiled files live in a workspace (a temporary directory, or ``--workspace DIR``) under names that
say how they were spoiled; `Workspace` rebuilds them from the same seed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ERROR_PREFIX = "jax-lstm: error: "
USAGE_ERROR = re.compile(r"^jax-lstm(?: [a-z]+)?: error: ")  # argparse's own line
CASE_TIMEOUT_S = 300  # a bound per case (a compile on a loaded machine included); beyond it: a hang
DOCUMENTED = (ValueError, TypeError, KeyError)


# --- outcomes ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Problem:
    """One violation of the property by one case."""

    entry: str  # "jax-lstm train", "fit", "LSTM.apply", ...
    kind: str  # "traceback", "exit status", "error lines", "nan", "timeout", "undocumented exception",
    # "leaked internal error", "unclear message"
    detail: str  # the exception or the offending output, one line
    repro: str  # the command or Python snippet
    files: dict[str, str] = dataclasses.field(default_factory=dict)  # spoiled file -> how

    def signature(self) -> tuple[str, str, str]:
        detail = re.sub(r"/[^\s'\",:;)]+", "<path>", self.detail)
        detail = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", detail)
        return self.entry, self.kind, detail[:120]


@dataclasses.dataclass
class Outcome:
    """What a case did: its status or exception, and its output."""

    status: int | None = None  # exit status (command line) or None (Python)
    stdout: str = ""
    stderr: str = ""
    error: BaseException | None = None  # an exception that escaped (Python), or main's
    error_frames: list[str] = dataclasses.field(default_factory=list)  # the traceback's files, innermost last
    value: Any = None
    timed_out: bool = False


class CaseTimeout(BaseException):
    """Raised in this process when a case runs past its bound (a BaseException: no `except
    Exception` in the code under test swallows it)."""


@contextlib.contextmanager
def _bounded(seconds: float):
    """Raises CaseTimeout in the main thread after `seconds` (SIGALRM; no bound elsewhere)."""
    if not hasattr(signal, "setitimer") or not _in_main_thread():
        yield
        return

    def expire(signum, frame):
        raise CaseTimeout(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _frames(err: BaseException) -> list[str]:
    return [frame.filename for frame in traceback.extract_tb(err.__traceback__)]


def _ours(filename: str, entry: str = "") -> bool:
    """Whether an exception raised in `filename` is jax_lstm's own. For the estimator,
    scikit-learn's input validation counts too: its messages are the ones scikit-learn's estimator
    checks ask for."""
    path = Path(filename).resolve()
    if entry == "estimator" and "sklearn" in path.parts and "validation.py" in path.parts:
        return True
    return any(part in ("jax_lstm", "torch_ref") for part in path.parts) and "site-packages" not in path.parts


# Messages that are a library's or Python's own, naming no argument of ours.
RAW_MESSAGE = re.compile(
    r"ufunc '|not supported between instances|could not convert|unhashable type|has no attribute|"
    r"index -?\d+ is out of bounds|operands could not be broadcast|cannot reshape array|invalid literal for|"
    r"object arrays are not supported|setting an array element with a sequence|dot_general|Tracer|jaxpr"
)


def _restore_process_state(x64: bool) -> None:
    """What a CLI run may switch on for the process (``--dtype float64``), back as it was."""
    import jax

    if jax.config.read("jax_enable_x64") != x64:
        jax.config.update("jax_enable_x64", x64)


def run_cli_in_process(argv: list[str], timeout: float = CASE_TIMEOUT_S) -> Outcome:
    """`jax_lstm.cli.main(argv)` here, stdout and stderr captured."""
    import jax

    from jax_lstm.cli import main

    out, err = io.StringIO(), io.StringIO()
    outcome = Outcome()
    x64 = jax.config.read("jax_enable_x64")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _bounded(timeout):
                outcome.status = main(argv)
    except SystemExit as exit_:  # argparse (usage errors, --help)
        code = exit_.code
        outcome.status = code if isinstance(code, int) else (0 if code is None else 2)
    except CaseTimeout:
        outcome.timed_out = True
    except BaseException as caught:  # an exception main let out: a traceback for a user
        outcome.error, outcome.error_frames = caught, _frames(caught)
    finally:
        _restore_process_state(x64)
    outcome.stdout, outcome.stderr = out.getvalue(), err.getvalue()
    return outcome


def run_cli_subprocess(argv: list[str], env: dict[str, str], timeout: float = CASE_TIMEOUT_S) -> Outcome:
    """``python -u -m jax_lstm.cli argv`` as a child, unbuffered, bounded by `timeout`."""
    command = [sys.executable, "-u", "-m", "jax_lstm.cli", *argv]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        return Outcome(timed_out=True, stdout=str(expired.stdout or ""), stderr=str(expired.stderr or ""))
    return Outcome(status=done.returncode, stdout=done.stdout, stderr=done.stderr)


def _non_finite_metrics(payload: Any) -> list[str]:
    """The paths of NaN or infinite numbers in a metrics JSON that should be finite: losses and
    scores (a forecaster's test accuracy is NaN by design and written as null)."""
    bad = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")
        elif isinstance(node, float) and not math.isfinite(node):
            if not re.search(r"(accuracy|best|ratio)", path):  # NaN accuracy: no test split
                bad.append(path)

    walk(payload, "")
    return bad


def _bad_predictions(path: Path) -> list[tuple[str, str]]:
    """What is wrong with the CSV a successful `jax-lstm predict` wrote: [(kind, detail)]."""
    if not path.is_file():
        return [("predictions", f"exit 0 but no predictions at {path}")]
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return [("predictions", f"exit 0 but {path} has no rows")]
    for row in rows:
        probs = {k.removeprefix("prob_"): float(v) for k, v in row.items() if k.startswith("prob_")}
        if not probs or not all(math.isfinite(p) and 0 <= p <= 1 for p in probs.values()):
            return [("nan", f"exit 0 with probabilities {probs} in {path}")]
        if abs(sum(probs.values()) - 1) > 1e-5 or row["label"] != max(probs, key=probs.__getitem__):
            return [("predictions", f"exit 0 with row {row} in {path}")]
    return []


def judge_cli(argv: list[str], outcome: Outcome, metrics: Path | None = None) -> list[tuple[str, str]]:
    """The property's verdict on one command-line case: [(kind, detail)], empty when it holds."""
    if outcome.timed_out:
        return [("timeout", f"no exit within {CASE_TIMEOUT_S} s")]
    if outcome.error is not None:
        return [("traceback", f"{type(outcome.error).__name__}: {_first_line(outcome.error)}")]
    err = outcome.stderr
    if "Traceback (most recent call last)" in err:
        last = [line for line in err.strip().splitlines() if line and not line.startswith(" ")]
        return [("traceback", last[-1] if last else "a traceback")]
    status, problems = outcome.status, []
    errors = [line for line in err.splitlines() if line.startswith(ERROR_PREFIX)]
    comparing = argv[:1] == ["parity"] or "--compare-torch" in argv
    if status == 0:
        if errors:
            problems.append(("error lines", f"exit 0 with {errors[0]}"))
        for line in outcome.stdout.splitlines():
            if re.search(r"\b(loss|MASE|accuracy)\b.*\b(nan|inf)\b", line, re.IGNORECASE):
                problems.append(("nan", f"exit 0 but printed: {line.strip()[:160]}"))
                break
        if argv[:1] == ["predict"] and "--output" in argv:
            problems += _bad_predictions(Path(argv[argv.index("--output") + 1]))
        if metrics is not None and metrics.exists():
            try:
                payload = json.loads(metrics.read_text())
            except ValueError as bad:
                problems.append(("nan", f"exit 0 but the metrics JSON does not parse: {bad}"))
            else:
                bad_paths = _non_finite_metrics(payload)
                if bad_paths:
                    problems.append(("nan", f"exit 0 with non-finite metrics at {bad_paths[0]}"))
    elif status == 1 and comparing:
        pass  # a comparison with torch that disagrees: documented
    elif status == 2 and not errors and "usage:" in err and USAGE_ERROR.match(err.strip().splitlines()[-1]):
        pass  # argparse's usage error (a bad flag or value): its own format, one error line
    elif status in (2, 3, 4):
        if len(errors) != 1:
            what = f"{len(errors)} error lines" if errors else "no 'jax-lstm: error:' line"
            problems.append(("error lines", f"status {status} with {what}: {err.strip()[-200:]!r}"))
        elif RAW_MESSAGE.search(errors[0]):
            problems.append(("unclear message", errors[0][:200]))
    else:
        problems.append(("exit status", f"status {status}: {err.strip()[-200:]!r}"))
    return problems


def judge_python(outcome: Outcome, names: tuple[str, ...] = (), entry: str = "") -> list[tuple[str, str]]:
    """The property's verdict on one Python case of `entry`; `names`: the argument it spoiled (any
    of these words should appear in the message)."""
    from jax_lstm.training import TrainingDivergedError

    if outcome.timed_out:
        return [("timeout", f"no return within {CASE_TIMEOUT_S} s")]
    err = outcome.error
    if err is None:
        bad = _non_finite(outcome.value)
        return [("nan", f"returned non-finite values: {bad}")] if bad else []
    detail = f"{type(err).__name__}: {_first_line(err)}"
    if isinstance(err, TrainingDivergedError):
        return []
    if not isinstance(err, DOCUMENTED):
        return [("undocumented exception", detail)]
    # Where it was raised: a frame of jax_lstm's (or the case's own source, "<string>"), or of a
    # library the input reached unchecked.
    innermost = outcome.error_frames[-1] if outcome.error_frames else ""
    signature_error = isinstance(err, TypeError) and "unexpected keyword argument" in str(err)
    if innermost and not innermost.startswith("<") and not _ours(innermost, entry) and not signature_error:
        return [("leaked internal error", f"{detail} (raised in {_short(innermost)})")]
    if RAW_MESSAGE.search(str(err)):
        return [("unclear message", f"{detail} (a library's message, naming no argument)")]
    message = str(err).lower()
    if names and not any(name.lower() in message for name in names):
        return [("unclear message", f"{detail} (names none of {list(names)})")]
    return []


def _short(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("site-packages", "jax_lstm", "torch_ref", "lib"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) + 1 :])
    return filename


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""


def _non_finite(value: Any) -> str | None:
    """Where a returned tree holds NaN/inf floats (None: nowhere)."""
    import jax

    try:
        leaves = jax.tree.leaves(value)
    except Exception:  # not a tree: nothing to check
        return None
    for i, leaf in enumerate(leaves):
        try:
            array = np.asarray(leaf)
        except Exception:
            continue
        if array.dtype.kind in "fc" and array.size and not np.all(np.isfinite(array)):
            return f"leaf {i} of shape {array.shape}"
    return None


# --- the workspace: tiny valid files and their spoiled copies --------------------------------------

TS_HEADER = """@problemName Tiny
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength false
@classLabel true a b c
@data
"""


def tiny_ts(rows: int, seed: int) -> str:
    """`rows` series of 2 channels, lengths 3..8, labels a/b/c tied to the data."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(rows):
        label = i % 3
        channels = rng.normal(label - 1.0, 1.0, size=(2, int(rng.integers(3, 9))))
        lines.append(":".join(",".join(f"{v:.4f}" for v in ch) for ch in channels) + f":{'abc'[label]}")
    return TS_HEADER + "\n".join(lines) + "\n"


def unlabelled(ts: str) -> str:
    """A `tiny_ts` text as an unlabelled file (@classLabel false, no label after each series)."""
    head, body = ts.split("@data\n")
    rows = [line.rsplit(":", 1)[0] for line in body.splitlines()]
    return head.replace("@classLabel true a b c", "@classLabel false") + "@data\n" + "\n".join(rows) + "\n"


def tiny_csv(rows: int, seed: int) -> str:
    """A daily table of `rows` days: a date column and two numeric columns with a weekly season."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2020-01-01")
    lines = ["date,temp,rain"]
    for i in range(rows):
        temp = 10 + 5 * math.sin(2 * math.pi * i / 7) + rng.normal()
        lines.append(f"{start + i},{temp:.3f},{abs(rng.normal()):.3f}")
    return "\n".join(lines) + "\n"


# Generic damage to any file's bytes: (name, function of (bytes, rng)).
def _cut(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(max(1, len(data)))]


def _flip(data: bytes, rng: random.Random) -> bytes:
    spoiled = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if spoiled:
            spoiled[rng.randrange(len(spoiled))] ^= 1 << rng.randrange(8)
    return bytes(spoiled)


BYTE_DAMAGE: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "cut short": _cut,
    "bytes flipped": _flip,
    "empty": lambda data, rng: b"",
    "binary": lambda data, rng: bytes(rng.randrange(256) for _ in range(512)),
    "utf-16": lambda data, rng: data.decode("latin-1").encode("utf-16"),
    "doubled": lambda data, rng: data + data,
}


def _replace_line(text: str, prefix: str, new: str) -> str:
    return "\n".join(new if line.startswith(prefix) else line for line in text.splitlines()) + "\n"


TS_DAMAGE: dict[str, Callable[[str, random.Random], str]] = {
    "no @data": lambda t, rng: t.replace("@data\n", ""),
    "header only": lambda t, rng: t[: t.index("@data") + 6],
    "dimensions 3": lambda t, rng: _replace_line(t, "@dimensions", "@dimensions 3"),
    "no class labels": lambda t, rng: _replace_line(t, "@classLabel", "@classLabel false"),
    "unknown label": lambda t, rng: t.replace(":a\n", ":zz\n", 1),
    "a nan value": lambda t, rng: t.replace(",", ",nan,", 1),
    "a missing value": lambda t, rng: t.replace(",", ",?,", 1),
    "a text value": lambda t, rng: t.replace(",", ",abc,", 1),
    "a huge value": lambda t, rng: t.replace(",", ",1e308,", 1),
    "one channel dropped": lambda t, rng: re.sub(r"\n[^:@\n]+:", "\n", t, count=1),
    "equal length claimed": lambda t, rng: _replace_line(t, "@equalLength", "@equalLength true"),
    "no header": lambda t, rng: t[t.index("@data") + 6 :],
    "one class only": lambda t, rng: re.sub(r":[bc]\n", ":a\n", t),
    "crlf": lambda t, rng: t.replace("\n", "\r\n"),
}

CSV_DAMAGE: dict[str, Callable[[str, random.Random], str]] = {
    "header only": lambda t, rng: t.splitlines()[0] + "\n",
    "a missing value": lambda t, rng: t.replace(",", ",,", 3)[: len(t)],
    "a text value": lambda t, rng: re.sub(r"\n([^,\n]+),[^,\n]+", r"\n\1,abc", t, count=1),
    "no time column": lambda t, rng: "\n".join(line.split(",", 1)[1] for line in t.splitlines()) + "\n",
    "dates shuffled": lambda t, rng: "\n".join(
        [t.splitlines()[0], *rng.sample(t.splitlines()[1:], len(t.splitlines()) - 1)]
    ),
    "a constant column": lambda t, rng: re.sub(r",([^,\n]+)\n", ",1.0\n", t),
    "three rows": lambda t, rng: "\n".join(t.splitlines()[:4]) + "\n",
    "duplicate header": lambda t, rng: t.replace("date,temp,rain", "date,temp,temp", 1),
    "an infinite value": lambda t, rng: re.sub(r"\n([^,\n]+),[^,\n]+", r"\n\1,inf", t, count=1),
    "semicolons": lambda t, rng: t.replace(",", ";"),
}


class Workspace:
    """Valid tiny inputs (.ts pair, .csv table, a classification and a forecasting checkpoint) and
    spoiled copies, made on demand under `root` with names that say how they were spoiled."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.train_ts = self._write("train.ts", tiny_ts(30, 0))
        self.test_ts = self._write("test.ts", tiny_ts(12, 1))
        self.unlabelled_ts = self._write("unlabelled.ts", unlabelled(tiny_ts(7, 2)))
        self.csv = self._write("table.csv", tiny_csv(160, 2))
        self._count = 0
        self._checkpoints: dict[str, Path] = {}

    def _write(self, name: str, text: str | bytes) -> Path:
        path = self.root / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return path

    def fresh(self, stem: str) -> Path:
        """A new path under the workspace (nothing there yet)."""
        self._count += 1
        return self.root / f"{stem}-{self._count}"

    def spoiled(self, original: Path, damage: str, rng: random.Random) -> Path:
        """A copy of `original` damaged by `damage` (a key of BYTE_DAMAGE, TS_DAMAGE or CSV_DAMAGE)."""
        data = original.read_bytes()
        if damage in BYTE_DAMAGE:
            spoiled = BYTE_DAMAGE[damage](data, rng)
        else:
            table = TS_DAMAGE if original.suffix == ".ts" else CSV_DAMAGE
            spoiled = table[damage](data.decode(), rng).encode()
        path = self.fresh(f"{original.stem}~{damage.replace(' ', '-')}")
        path = path.with_name(path.name + original.suffix)
        path.write_bytes(spoiled)
        return path

    def checkpoint(self, kind: str) -> Path:
        """A valid checkpoint directory of one epoch: "train" (synthetic data), "ts" (a classifier of
        the .ts pair, which `predict` can take) or "forecast"."""
        if kind not in self._checkpoints:
            directory = self.root / f"valid-{kind}-checkpoint"
            shutil.rmtree(directory, ignore_errors=True)
            if kind == "train":
                argv = ["train", "--dataset", "synthetic", "--hidden-size", "2", "--num-layers", "1"]
            elif kind == "ts":
                argv = ["train", "--data", str(self.train_ts), "--test-data", str(self.test_ts)]
                argv += ["--hidden-size", "2", "--num-layers", "1"]
            else:
                argv = ["forecast", "--data", str(self.csv), "--time-column", "date", "--hidden-size", "2"]
            argv += ["--epochs", "1", "--quiet", "--checkpoint-dir", str(directory)]
            outcome = run_cli_in_process(argv)
            if outcome.status != 0:
                raise RuntimeError(f"could not make a {kind} checkpoint: {outcome.stderr or outcome.error}")
            self._checkpoints[kind] = directory
        return self._checkpoints[kind]

    def checkpoint_copy(self, kind: str, damage: str | None, rng: random.Random) -> Path:
        """A copy of a valid checkpoint directory, its latest file damaged (`damage`: a key of
        BYTE_DAMAGE, "latest missing", "both missing", "only a stray file"; None: intact)."""
        from jax_lstm.training import checkpoint as ckpt

        source = self.checkpoint(kind)
        directory = self.fresh(f"{kind}-checkpoint~{(damage or 'intact').replace(' ', '-')}")
        shutil.copytree(source, directory)
        latest = directory / ckpt.CHECKPOINT_NAME
        if damage in BYTE_DAMAGE:
            latest.write_bytes(BYTE_DAMAGE[damage](latest.read_bytes(), rng))
        elif damage == "latest missing":
            latest.unlink()
        elif damage == "both missing":
            for child in directory.iterdir():
                child.unlink()
        elif damage == "only a stray file":
            for child in directory.iterdir():
                child.unlink()
            (directory / "notes.txt").write_text("not a checkpoint")
        return directory


# --- choices ---------------------------------------------------------------------------------------


class Pick:
    """The choices a case is drawn from: `RandomPick` for the long run (every case independent, so
    the run spreads wide), `HypothesisPick` for the test (hypothesis drives it and shrinks a failure)."""

    def one(self, options: Sequence[Any]) -> Any:
        raise NotImplementedError

    def int(self, low: int, high: int) -> int:
        raise NotImplementedError

    def flag(self) -> bool:
        return self.int(0, 1) == 1

    def some(self, options: Sequence[Any], most: int) -> list[Any]:
        """Up to `most` distinct options, in a random order."""
        chosen: list[Any] = []
        for _ in range(self.int(0, most)):
            left = [option for option in options if option not in chosen]
            if left:
                chosen.append(self.one(left))
        return chosen


class RandomPick(Pick):
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def one(self, options: Sequence[Any]) -> Any:
        return options[self.rng.randrange(len(options))]

    def int(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)


class HypothesisPick(Pick):
    def __init__(self, data: Any) -> None:
        from hypothesis import strategies

        self.data, self.st = data, strategies

    def one(self, options: Sequence[Any]) -> Any:
        return self.data.draw(self.st.sampled_from(list(options)))

    def int(self, low: int, high: int) -> int:
        return self.data.draw(self.st.integers(low, high))


# --- command-line cases --------------------------------------------------------------------------

INTS = ["-1", "0", "1", "2", "3", "99999999999999999999"]
FLOATS = ["0", "-1", "1e-3", "0.5", "1", "nan", "inf", "-inf", "1e308", "1e-320"]
FRACTIONS = ["0", "0.2", "0.5", "0.99", "1", "-0.1", "nan", "1e-9"]
ABSURD_SIZE = "1000000"  # numpy refuses the arrays at once (no memory is touched)
# Values argparse itself refuses (its usage error), drawn for a flag now and then only: a case that
# stops there reaches nothing else.
BAD_SYNTAX = {"int": ["x", "1.5", ""], "float": ["x", ""], "choice": ["nope"]}
SYNTAX_ERROR_ONE_IN = 25

# Values that are fine on their own, for the cases that mean to get past the checks and run.
SOUND = {
    "--epochs": ["1", "2"], "--batch-size": ["2", "7", "64"], "--hidden-size": ["1", "2", "3"],
    "--num-layers": ["1", "2"], "--lr": ["1e-3", "0.5", "1"], "--clip": ["0", "0.5", "1"],
    "--patience": ["0", "1", "2"], "--factor": ["0.5"], "--min-lr": ["0"], "--weight-decay": ["0", "1e-3"],
    "--accumulate": ["1", "2"], "--dropout": ["0", "0.5"], "--validation-split": ["0.2", "0.5"],
    "--seed": ["0", "1"], "--seeds": ["1", "2"], "--horizon": ["1", "3"], "--lookback": ["2", "14"],
    "--test-size": ["10", "30"], "--val-fraction": ["0.2"], "--season": ["1", "7"],
    "--patch": ["1", "2", "3"],
}  # fmt: skip

TRAIN_FLAGS: dict[str, tuple[str, list[str]] | None] = {  # flag -> (type, values); None: a switch
    "--dataset": ("choice", ["japanese-vowels", "synthetic", "digits"]),
    "--model": ("choice", ["lstm", "bn-lstm", "lstm-fcn", "mlstm-fcn", "attention-lstm"]),
    "--cell": ("choice", ["lstm", "gru", "rnn"]),
    "--patch": ("int", ["1", "2", "3", "7", "0", "-1", "1000000"]),
    "--epochs": ("int", ["1", "1", "2", "0", "-1"]),
    "--batch-size": ("int", ["1", "2", "7", "64", "0", "-3", "1000000000"]),
    "--hidden-size": ("int", ["1", "2", "3", "0", "-2", ABSURD_SIZE]),
    "--num-layers": ("int", ["1", "2", "0", "-1"]),
    "--lr": ("float", FLOATS),
    "--clip": ("float", FLOATS),
    "--patience": ("int", INTS),
    "--factor": ("float", FLOATS),
    "--min-lr": ("float", FLOATS),
    "--weight-decay": ("float", FLOATS),
    "--accumulate": ("int", ["1", "2", "3", "0", "-1", "1000"]),
    "--dropout": ("float", FLOATS),
    "--validation-split": ("float", FRACTIONS),
    "--seed": ("int", ["0", "1", "-1", "18446744073709551616"]),
    "--dtype": ("choice", ["float32", "float64"]),
    "--seeds": ("int", ["1", "2", "3", "0", "-1"]),
    "--implementation": ("choice", ["fused", "scan", "cudnn"]),
    "--no-standardize": None,
    "--quiet": None,
    "--no-compile-cache": None,
    "--compare-torch": None,
    "--resume": None,
    "--overwrite": None,
}
FORECAST_FLAGS: dict[str, tuple[str, list[str]] | None] = {
    "--horizon": ("int", ["1", "3", "7", "0", "-1", "200", "1000000"]),
    "--lookback": ("int", ["1", "2", "14", "0", "-1", "500", "1000000"]),
    "--test-size": ("int", ["1", "10", "30", "0", "-5", "159", "100000"]),
    "--val-fraction": ("float", FRACTIONS),
    "--season": ("int", ["1", "7", "0", "-1", "1000"]),
    "--fill": ("choice", ["ffill", "interpolate"]),
    "--epochs": ("int", ["1", "1", "2", "0", "-1"]),
    "--batch-size": ("int", ["1", "4", "32", "0", "-1", "1000000000"]),
    "--hidden-size": ("int", ["1", "2", "0", "-1", ABSURD_SIZE]),
    "--num-layers": ("int", ["1", "2", "0", "-1"]),
    "--lr": ("float", FLOATS),
    "--clip": ("float", FLOATS),
    "--patience": ("int", INTS),
    "--dropout": ("float", FLOATS),
    "--seed": ("int", ["0", "3", "-1"]),
    "--dtype": ("choice", ["float32", "float64"]),
    "--quiet": None,
    "--no-compile-cache": None,
    "--compare-torch": None,
    "--resume": None,
}


@dataclasses.dataclass
class CliCase:
    """One command line, with the spoiled files it names (path -> how it was spoiled)."""

    argv: list[str]
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    metrics: Path | None = None
    subprocess: bool = False

    @property
    def entry(self) -> str:
        return f"jax-lstm {self.argv[0]}" if self.argv else "jax-lstm"

    def command(self) -> str:
        import shlex

        return "jax-lstm " + shlex.join(self.argv)


def _draw_flags(pick: Pick, table: dict[str, tuple[str, list[str]] | None], most: int) -> list[str]:
    """Up to `most` flags of `table` with values; a third of the cases only sound values."""
    sound = pick.int(0, 2) == 0
    argv: list[str] = []
    for name in pick.some(sorted(table), most):
        kind = table[name]
        if kind is None:
            argv.append(name)
            continue
        syntax, values = kind
        if sound:
            value = pick.one(SOUND.get(name, values))
        else:
            value = pick.one(BAD_SYNTAX[syntax] if pick.int(1, SYNTAX_ERROR_ONE_IN) == 1 else values)
        # "--lr=-1": argparse takes a separate "-1" for a flag
        argv += [f"{name}={value}"] if value.startswith("-") or not value else [name, value]
    return argv


def _output_path(pick: Pick, ws: Workspace, suffix: str, flag: str) -> tuple[str, dict[str, str]]:
    kind = pick.one(["good", "good", "good", "wrong suffix", "a directory", "under a file"])
    if kind == "good":
        return str(ws.fresh("out").with_suffix(suffix)), {}
    if kind == "wrong suffix":
        return str(ws.fresh("out").with_suffix(".txt")), {}
    if kind == "a directory":
        directory = ws.fresh("dir")
        directory.mkdir()
        return str(directory), {str(directory): f"{flag}: an existing directory"}
    return str(ws.train_ts / f"x{suffix}"), {str(ws.train_ts): f"{flag}: a path under a file"}


def _ts_path(pick: Pick, ws: Workspace, rng: random.Random, original: Path) -> tuple[str, dict[str, str]]:
    kind = pick.one(["valid", "valid", "bytes", "structure", "missing", "directory", "csv"])
    if kind == "valid":
        return str(original), {}
    if kind == "missing":
        return str(ws.root / "no-such.ts"), {}
    if kind == "directory":
        return str(ws.root), {str(ws.root): "a directory given as a .ts file"}
    if kind == "csv":
        return str(ws.csv), {str(ws.csv): "a CSV table given as a .ts file"}
    damage = pick.one(sorted(BYTE_DAMAGE if kind == "bytes" else TS_DAMAGE))
    path = ws.spoiled(original, damage, rng)
    return str(path), {str(path): f"{original.name}, {damage}"}


def _checkpoint_dir(pick: Pick, ws: Workspace, rng: random.Random, kind: str) -> tuple[str, dict[str, str]]:
    choice = pick.one(["fresh", "fresh", "intact", "intact other kind", "damaged", "a file", "under a file"])
    if choice == "fresh":
        return str(ws.fresh("ckpt")), {}
    if choice == "a file":
        return str(ws.csv), {str(ws.csv): "--checkpoint-dir: a file"}
    if choice == "under a file":
        return str(ws.csv / "ckpt"), {str(ws.csv): "--checkpoint-dir: under a file"}
    other = {"train": "forecast", "ts": "forecast", "forecast": "train"}[kind]
    damages = [*sorted(BYTE_DAMAGE), "latest missing", "both missing", "only a stray file"]
    damage = None if choice.startswith("intact") else pick.one(damages)
    source = other if choice == "intact other kind" else kind
    path = ws.checkpoint_copy(source, damage, rng)
    return str(path), {str(path): f"a {source} checkpoint, {damage or 'intact'}"}


def draw_cli_case(pick: Pick, ws: Workspace) -> CliCase:
    """A random command line of one of the five subcommands."""
    rng = random.Random(pick.int(0, 2**31))  # how files are spoiled: drawn like the rest
    command = pick.one(["train", "train", "train", "forecast", "forecast", "export", "predict", "parity"])
    files: dict[str, str] = {}
    metrics = None
    if command == "train":
        argv = ["train", *_draw_flags(pick, TRAIN_FLAGS, 7)]
        if "--epochs" not in argv:
            argv += ["--epochs", "1"]  # the recipes' defaults are long runs
        if "--hidden-size" not in argv:
            argv += ["--hidden-size", "2"]
        if pick.flag():
            for flag, original in (("--data", ws.train_ts), ("--test-data", ws.test_ts)):
                if pick.int(0, 9) < 9:
                    path, more = _ts_path(pick, ws, rng, original)
                    argv += [flag, path]
                    files |= more
        extra = pick.one(["", "", "metrics", "checkpoint", "both", "plot", "attention", "dist"])
        if extra in ("metrics", "both"):
            path, more = _output_path(pick, ws, ".json", "--metrics-json")
            argv += ["--metrics-json", path]
            metrics, files = Path(path), files | more
        if extra in ("checkpoint", "both"):
            path, more = _checkpoint_dir(pick, ws, rng, "train")
            argv, files = [*argv, "--checkpoint-dir", path], files | more
        if extra == "plot":
            path, more = _output_path(pick, ws, ".png", "--plot")
            argv, files = [*argv, "--plot", path], files | more
        if extra == "attention":
            path, more = _output_path(pick, ws, ".png", "--plot-attention")
            argv, files = [*argv, "--plot-attention", path], files | more
        if extra == "dist":  # combinations refused before joining anything (joining would wait)
            argv += pick.one(
                [
                    ["--coordinator", "127.0.0.1:1"],
                    ["--num-processes", "2"],
                    ["--coordinator", "nohost", "--num-processes", "2", "--process-id", "0"],
                    ["--coordinator", "127.0.0.1:1", "--num-processes", "0", "--process-id", "0"],
                    ["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "2"],
                    ["--coordinator", "127.0.0.1:1", "--num-processes", "1", "--process-id", "0"],
                    ["--distributed-timeout", "0", "--coordinator", "127.0.0.1:1"],
                    ["--distributed-timeout", "nan"],
                ]
            )
    elif command == "forecast":
        argv = ["forecast", *_draw_flags(pick, FORECAST_FLAGS, 7)]
        if "--epochs" not in argv:
            argv += ["--epochs", "1"]
        if "--hidden-size" not in argv:
            argv += ["--hidden-size", "2"]
        data = pick.one(["seattle", "csv", "csv", "bytes", "structure", "missing", "ts"])
        if data == "csv":
            argv += ["--data", str(ws.csv)]
        elif data in ("bytes", "structure"):
            damage = pick.one(sorted(BYTE_DAMAGE if data == "bytes" else CSV_DAMAGE))
            path = ws.spoiled(ws.csv, damage, rng)
            argv += ["--data", str(path)]
            files[str(path)] = f"table.csv, {damage}"
        elif data == "missing":
            argv += ["--data", str(ws.root / "no-such.csv")]
        elif data == "ts":
            argv += ["--data", str(ws.train_ts)]
            files[str(ws.train_ts)] = "a .ts file given as the table"
        if data != "seattle" and pick.int(0, 4) > 0:
            argv += ["--time-column", "date"]  # the table's; left out at times
        if data != "seattle" and pick.flag():
            argv += pick.one(
                [
                    ["--time-column", "date"],
                    ["--time-column", "temp"],
                    ["--time-column", "nope"],
                    ["--targets", "temp"],
                    ["--targets", "temp,rain"],
                    ["--targets", "nope"],
                    ["--targets", ","],
                    ["--features", "rain"],
                    ["--features", "date"],
                    ["--targets", "temp", "--features", "rain"],
                ]
            )
        extra = pick.one(["", "metrics", "checkpoint", "plot"])
        if extra == "metrics":
            path, more = _output_path(pick, ws, ".json", "--metrics-json")
            argv, metrics, files = [*argv, "--metrics-json", path], Path(path), files | more
        if extra == "checkpoint":
            path, more = _checkpoint_dir(pick, ws, rng, "forecast")
            argv, files = [*argv, "--checkpoint-dir", path], files | more
        if extra == "plot":
            path, more = _output_path(pick, ws, ".png", "--plot")
            argv, files = [*argv, "--plot", path], files | more
    elif command == "export":
        kind = pick.one(["train", "forecast"])
        directory, files = _checkpoint_dir(pick, ws, rng, kind)
        target, more = _output_path(pick, ws, ".pt", "export target")
        argv, files = ["export", directory, target], files | more
        if pick.int(0, 9) == 0:
            argv = argv[: pick.int(1, 2)]  # an argument missing
    elif command == "predict":
        originals = [ws.test_ts, ws.unlabelled_ts, ws.train_ts]
        if pick.int(0, 2) == 0:  # valid inputs, so that the paths past the checks are fuzzed too
            directory, series = str(ws.checkpoint("ts")), str(pick.one(originals))
            target, more = str(ws.fresh("out").with_suffix(".csv")), {}
        else:
            kind = pick.one(["ts", "ts", "ts", "train", "forecast"])
            if kind == "ts" and pick.flag():
                directory = str(ws.checkpoint("ts"))  # predicting only reads it
            else:
                directory, files = _checkpoint_dir(pick, ws, rng, kind)
            series, more = _ts_path(pick, ws, rng, pick.one(originals))
            target, more_out = _output_path(pick, ws, ".csv", "--output")
            more |= more_out
        argv = ["predict", "--checkpoint-dir", directory, "--data", series, "--output", target]
        files |= more
        argv += pick.one(
            [
                [],
                [],
                ["--quiet"],
                ["--batch-size", "1"],
                ["--batch-size", "0"],
                ["--batch-size", "x"],
                ["--seed", "0"],
                ["--seed", "3"],
                ["--no-standardize"],
                ["--train-data", str(ws.train_ts)],
                ["--train-data", str(ws.csv)],
            ]
        )
        if pick.int(0, 3) == 0:
            path, more = _output_path(pick, ws, ".json", "--metrics-json")
            argv, metrics, files = [*argv, "--metrics-json", path], Path(path), files | more
        if pick.int(0, 9) == 0:
            argv = argv[: pick.int(1, len(argv) - 1)]  # flags cut short
    else:
        argv = [
            "parity",
            "--cases",
            pick.one(["seq_len_1_batch_1", "packed_all_length_1", "zzz"]),
        ]
        argv += pick.one([[], [], ["--dtype", "float32"], ["--dtype", "float32", "float64"]])
        argv += pick.one([[], ["--implementation", "scan"], ["--implementation", "cudnn"]])
        argv += pick.one([[], ["--device", "cpu"], ["--device", "tpu9"], ["--verbose"]])
        argv += pick.one([[], ["--seed", "1"], ["--seed", "-1"], ["--seed", "x"]])
    if pick.int(0, 19) == 0:
        argv += pick.one([["--no-such-flag"], ["stray"], ["--epochs"], ["--help"]])
    return CliCase(argv, files, metrics)


# --- Python API cases ----------------------------------------------------------------------------
# Each case is Python source run in `api_namespace()`: the source is the reproduction.

API_PRELUDE = """\
import numpy as np, jax, jax.numpy as jnp, jax_lstm
from jax_lstm import data, training
from jax_lstm.training import TrainConfig, fit
from parity_tests.fuzz import tiny_dataset, tiny_frame, state_dict_of
"""


def _with(array: np.ndarray, index: Any, value: Any) -> np.ndarray:
    array = array.astype(np.result_type(array, np.asarray(value)))
    array[index] = value
    return array


def tiny_dataset(spoil: str = "", seed: int = 0, n: int = 12, steps: int = 5, features: int = 2):
    """A classification Dataset of `n` padded series (3 classes), with one `spoil` (see SPOILS)."""
    from jax_lstm.data import Dataset

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, features)).astype(np.float32)
    y = np.arange(n) % 3
    lengths = rng.integers(1, steps + 1, size=n).astype(np.int32)
    half = n // 2
    fields: dict[str, Any] = {
        "name": "tiny", "x_train": x, "y_train": y, "x_test": x[:half], "y_test": y[:half],
        "classes": ("a", "b", "c"), "lengths_train": lengths, "lengths_test": lengths[:half],
    }  # fmt: skip
    one = np.ones(n, np.int32)
    changes: dict[str, dict[str, Any]] = {
        "": {},
        "nan in x": {"x_train": _with(x, (0, 0, 0), np.nan)},
        "inf in test x": {"x_test": _with(x[:half], (1, 0, 1), np.inf)},
        "label out of range": {"y_train": _with(y, 0, 7)},
        "negative label": {"y_test": _with(y[:half], 0, -1)},
        "float labels": {"y_train": y + 0.5},
        "2-D x": {"x_train": x[:, :, 0]},
        "4-D x": {"x_train": x[..., None]},
        "fewer labels": {"y_train": y[:-1]},
        "feature mismatch": {"x_test": np.zeros((half, steps, features + 1), np.float32)},
        "zero length": {"lengths_train": _with(lengths, 0, 0)},
        "too long": {"lengths_train": _with(lengths, 0, steps + 3)},
        "lengths wrong size": {"lengths_train": lengths[:-2]},
        "empty train": {"x_train": x[:0], "y_train": y[:0], "lengths_train": lengths[:0]},
        "empty test": {"x_test": x[:0], "y_test": y[:0], "lengths_test": lengths[:0]},
        "no classes": {"classes": ()},
        "int x": {"x_train": x.astype(np.int64)},
        "object x": {"x_train": x.astype(object)},
        "list x": {"x_train": x.tolist()},
        "one step": {
            "x_train": x[:, :1],
            "x_test": x[:half, :1],
            "lengths_train": one,
            "lengths_test": one[:half],
        },
        "huge values": {"x_train": _with(x, (0, 0, 0), 3e38)},
    }
    return Dataset(**(fields | changes[spoil]))


SPOILS = (
    "", "", "", "nan in x", "inf in test x", "label out of range", "negative label", "float labels", "2-D x",
    "4-D x", "fewer labels", "feature mismatch", "zero length", "too long", "lengths wrong size",
    "empty train", "empty test", "no classes", "int x", "object x", "list x", "one step", "huge values",
)  # fmt: skip


def tiny_frame(spoil: str = "", rows: int = 120):
    """A daily DataFrame (date, temp, rain), with one spoil: "nan", "constant", "text", "short",
    "no numbers", "inf", "duplicate dates"."""
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2020-01-01", periods=rows, freq="D"),
            "temp": 10 + 5 * np.sin(2 * np.pi * np.arange(rows) / 7) + rng.normal(size=rows),
            "rain": np.abs(rng.normal(size=rows)),
        }
    )
    if spoil == "nan":
        frame.loc[5, "temp"] = np.nan
    elif spoil == "inf":
        frame.loc[5, "rain"] = np.inf
    elif spoil == "constant":
        frame["rain"] = 1.0
    elif spoil == "text":
        frame["temp"] = frame["temp"].astype(object)
        frame.loc[3, "temp"] = "warm"
    elif spoil == "short":
        frame = frame.iloc[:6]
    elif spoil == "no numbers":
        frame = frame[["date"]]
    elif spoil == "duplicate dates":
        frame.loc[4, "date"] = frame.loc[3, "date"]
    return frame


def state_dict_of(model: str, spoil: str = "", hidden: int = 3):
    """A torch state dict (numpy arrays) of a registered model's twin or of "lstm-layer" /
    "gru-cell", with one spoil: "drop key", "extra key", "wrong shape", "int dtype", "a string",
    "a nested dict", "scalar", "renamed", "empty", "not a mapping"."""
    from jax_lstm import interop
    from jax_lstm.models import registry
    from jax_lstm.training import TrainConfig

    if model in registry.names():
        config = TrainConfig(model=model, hidden_size=hidden, num_layers=1)
        dims = registry.Dims(2, 3, None if registry.get(model).task == "classification" else (3, 1), 6)
        entry = registry.get(model)
        flat = interop.flatten_variables(registry.initial_variables(entry, config, dims))
    elif model == "lstm-layer":
        flat = {"weight_ih_l0": np.zeros((4 * hidden, 2)), "weight_hh_l0": np.zeros((4 * hidden, hidden)),
                "bias_ih_l0": np.zeros(4 * hidden), "bias_hh_l0": np.zeros(4 * hidden)}  # fmt: skip
    else:
        flat = {"weight_ih": np.zeros((3 * hidden, 2)), "weight_hh": np.zeros((3 * hidden, hidden)),
                "bias_ih": np.zeros(3 * hidden), "bias_hh": np.zeros(3 * hidden)}  # fmt: skip
    flat = {key: np.asarray(value) for key, value in flat.items()}
    keys = sorted(flat)
    if spoil == "drop key":
        flat.pop(keys[len(keys) // 2])
    elif spoil == "extra key":
        flat["surprise.weight"] = np.zeros(3)
    elif spoil == "wrong shape":
        flat[keys[0]] = np.zeros((*flat[keys[0]].shape, 2))
    elif spoil == "int dtype":
        flat[keys[-1]] = flat[keys[-1]].astype(np.int64)
    elif spoil == "a string":
        flat[keys[0]] = "weights"
    elif spoil == "a nested dict":
        flat[keys[0]] = {"x": flat[keys[0]]}
    elif spoil == "scalar":
        flat[keys[0]] = np.float32(1.0)
    elif spoil == "renamed":
        flat = {f"module.{key}": value for key, value in flat.items()}
    elif spoil == "empty":
        flat = {}
    elif spoil == "not a mapping":
        return list(flat.values())
    return flat


@dataclasses.dataclass
class ApiCase:
    entry: str
    source: str  # run after API_PRELUDE; the last line's value (``result = ...``) is checked
    names: tuple[str, ...] = ()  # the spoiled argument: its message should name one of these


CONFIG_VALUES: dict[str, list[Any]] = {
    "hidden_size": [2, 3, 0, -1, 2.5, "2", None, True],
    "num_layers": [1, 2, 0, -1, 1.0, None],
    "epochs": [1, 1, 0, -2, 1.5, "1"],
    "batch_size": [2, 4, 0, -1, 10**9, 3.5, None],
    "lr": [1e-3, 0.0, -1.0, float("nan"), float("inf"), 1e30, "0.1", None],
    "clip": [1.0, None, 0.0, -1.0, float("nan")],
    "patience": [2, -1, 0, 1.5],
    "factor": [0.1, 0.0, 1.0, 2.0, float("nan")],
    "min_lr": [0.0, -1.0, 1.0, float("nan")],
    "weight_decay": [0.0, -1.0, float("inf")],
    "accumulate": [1, 2, 0, 100],
    "dropout": [0.0, 0.5, 1.0, -0.5, 2.0, float("nan")],
    "seed": [0, 1, -1, 2**64, 1.5, "0"],
    "dtype": ["float32", "float16", "int32", None],
    "model": ["lstm", "bn-lstm", "attention-lstm", "lstm-fcn", "lstm-forecaster", "nope", None],
    "cell": ["lstm", "gru", "rnn", "lstmcell", None],
    "implementation": ["fused", "scan", "cudnn", "nope"],
    "eval_batch_size": [1, 1024, 0, -1],
    "log_every": [0, 1, -1],
}
VALID_CONFIG = {"hidden_size": 2, "num_layers": 1, "epochs": 1, "batch_size": 4, "log_every": 0}


def _config_source(pick: Pick) -> tuple[str, tuple[str, ...]]:
    """A TrainConfig(...) call of valid small settings with up to three fields drawn at random;
    and the fields drawn."""
    fields = pick.some(sorted(CONFIG_VALUES), 3)
    settings = dict(VALID_CONFIG)
    for field in fields:
        settings[field] = pick.one(CONFIG_VALUES[field])
    return f"TrainConfig({_keywords(settings)})", tuple(fields)


def _keywords(settings: dict[str, Any]) -> str:
    text = ", ".join(f"{key}={value!r}" for key, value in settings.items())
    return text.replace("=nan", "=float('nan')").replace("=inf", "=float('inf')")


FORECAST_SPOILS = ("", "", "nan", "inf", "constant", "text", "short", "no numbers", "duplicate dates")
FORECAST_SETTINGS: dict[str, list[Any]] = {
    "horizon": [None, 1, 3, 0, -1, 500, 2.5],
    "lookback": [None, 2, 7, 0, -3, 10**6],
    "test_size": [None, 0, 10, 10**6, -1],
    "val_fraction": [0.1, 1.5, 0.0, float("nan")],
    "targets": [None, ["nope"], [], ["temp"]],
    "time_column": ["date", "date", "temp", "nope"],
    "lr": [1e-3, -1.0],
    "batch_size": [4, 0],
}
ESTIMATOR_X = (
    "np.random.default_rng(0).normal(size=(12, 5, 2))",
    "np.random.default_rng(0).normal(size=(12, 10))",
    "np.random.default_rng(0).normal(size=(12,))",
    "[np.ones((3, 2)), np.ones((5, 2))] * 6",
    "np.full((12, 5, 2), np.nan)",
    "np.zeros((0, 5, 2))",
    "np.ones((12, 5, 2), dtype=complex)",
    "'a string'",
)
ESTIMATOR_Y = ("np.arange(12) % 3", "np.array(['a', 'b'] * 6)", "np.zeros(12)", "np.arange(5)", "None")
ESTIMATOR_SETTINGS: dict[str, list[Any]] = {
    "hidden_size": [2, 0],
    "epochs": [1, -1],
    "model": ["lstm", "nope", "attention-lstm"],
    "cell": ["lstm", "x"],
    "lr": [None, float("nan")],
    "batch_size": [None, 0],
    "random_state": [0, -1],
    "dropout": [None, 3.0],
}
ESTIMATOR_NEW_X = ("x", "x[:2]", "np.ones((2, 5, 3))", "np.ones((2, 9, 2))", "np.ones((5, 2))")
STATE_DICT_MODELS = (
    "lstm",
    "bn-lstm",
    "attention-lstm",
    "mlstm-fcn",
    "lstm-forecaster",
    "mdlstm",
    "lstm-layer",
    "gru-cell",
)
STATE_DICT_SPOILS = (
    "", "drop key", "extra key", "wrong shape", "int dtype", "a string", "a nested dict", "scalar", "renamed",
    "empty", "not a mapping",
)  # fmt: skip
LAYER_ARGS = (
    "3", "3, num_layers=2", "3, bidirectional=True", "3, batch_first=True", "0", "-1", "3, num_layers=0",
    "3, dropout=1.5", "3, proj_size=5", "3, proj_size=2", "2.5", "'3'",
)  # fmt: skip
LAYER_INPUTS = ("(5, 2, 4)", "(5, 4)", "(0, 2, 4)", "(5, 0, 4)", "(5, 2, 0)", "(2, 3, 4, 5)", "()")
LAYER_APPLY = (
    "x", "x[:, :1]", "x.astype(jnp.int32)", "x.astype(jnp.float16)", "x.astype(jnp.complex64)",
    "jnp.ones((5, 2, 6))", "x[..., None]", "np.asarray(x).tolist()",
)  # fmt: skip
LAYER_MORE = (
    "", "", ", lengths=jnp.array([5, 2])", ", lengths=jnp.array([9, 2])", ", lengths=jnp.array([0, 1])",
    ", lengths=jnp.array([1.5, 2.0])", ", initial_state=jnp.zeros((1, 2, 3))", ", deterministic=False",
)  # fmt: skip
CELL_INPUTS = ("(2, 4)", "(4,)", "(0, 4)", "(2, 0)", "(2, 3, 4)", "()")
CELL_STATES = (
    "", ", jnp.zeros((2, 3))", ", jnp.zeros((2, 5))", ", (jnp.zeros((2, 3)), jnp.zeros((2, 3)))",
    ", jnp.zeros((3,))", ", jnp.zeros((2, 3), jnp.int32)",
)  # fmt: skip
CELL_APPLY = ("x", "x.astype(jnp.int8)", "jnp.ones((2, 7))", "x[None]", "x * jnp.nan")


def draw_api_case(pick: Pick) -> ApiCase:
    """A random call of one of the Python entry points."""
    entry = pick.one(["fit", "fit", "fit_forecaster", "estimator", "from_torch", "layer", "layer", "cell"])
    if entry == "fit":
        config, names = _config_source(pick)
        spoil = pick.one(SPOILS)
        source = f"result = fit({config}, tiny_dataset({spoil!r}), log=None).history"
        # A spoiled field is named in the message; with spoiled data too, either may be reported.
        return ApiCase("fit", source, () if spoil else names)
    if entry == "fit_forecaster":
        settings = {"time_column": "date", "epochs": 1, "hidden_size": 2}
        for field in pick.some(sorted(FORECAST_SETTINGS), 2):
            settings[field] = pick.one(FORECAST_SETTINGS[field])
        spoil = pick.one(FORECAST_SPOILS)
        source = (
            "from jax_lstm.forecasting import fit_forecaster\n"
            f"result = fit_forecaster(tiny_frame({spoil!r}), {_keywords(settings)}).evaluate().overall"
        )
        return ApiCase("fit_forecaster", source)
    if entry == "estimator":
        settings = {"hidden_size": 2, "num_layers": 1, "epochs": 1}
        for field in pick.some(sorted(ESTIMATOR_SETTINGS), 2):
            settings[field] = pick.one(ESTIMATOR_SETTINGS[field])
        source = (
            f"x = {pick.one(ESTIMATOR_X)}\n"
            f"model = jax_lstm.LSTMSequenceClassifier({_keywords(settings)})\n"
            f"model.fit(x, {pick.one(ESTIMATOR_Y)})\n"
            f"result = model.predict_proba({pick.one(ESTIMATOR_NEW_X)})"
        )
        return ApiCase("estimator", source)
    if entry == "from_torch":
        model, spoil = pick.one(STATE_DICT_MODELS), pick.one(STATE_DICT_SPOILS)
        named = pick.one([None, None, "lstm", "bn-lstm", "lstm-fcn", "nope"])
        source = f"result = jax_lstm.from_torch(state_dict_of({model!r}, {spoil!r}), model={named!r})"
        return ApiCase("from_torch", source)
    if entry == "layer":
        cls, args = pick.one(["LSTM", "GRU", "RNN"]), pick.one(LAYER_ARGS)
        if cls != "LSTM":
            args = args.replace(", proj_size=2", "").replace(", proj_size=5", ", nonlinearity='sin'")
        source = (
            f"layer = jax_lstm.{cls}({args})\nx = jnp.ones({pick.one(LAYER_INPUTS)})\n"
            "variables = layer.init(jax.random.key(0), x)\n"
            f"result = layer.apply(variables, {pick.one(LAYER_APPLY)}{pick.one(LAYER_MORE)}, "
            "rngs={'dropout': jax.random.key(1)})"
        )
        return ApiCase(f"{cls}.apply", source)
    cls = pick.one(["LSTMCell", "GRUCell", "RNNCell"])
    source = (
        f"cell = jax_lstm.{cls}({pick.one(['3', '0', '-2', '3.0'])})\nx = jnp.ones({pick.one(CELL_INPUTS)})\n"
        "variables = cell.init(jax.random.key(0), x)\n"
        f"result = cell.apply(variables, {pick.one(CELL_APPLY)}{pick.one(CELL_STATES)})"
    )
    return ApiCase(f"{cls}.apply", source)


def run_api_case(case: ApiCase, timeout: float = CASE_TIMEOUT_S) -> Outcome:
    import jax

    namespace: dict[str, Any] = {}
    outcome = Outcome()
    x64 = jax.config.read("jax_enable_x64")
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            exec(API_PRELUDE, namespace)
            with _bounded(timeout):
                exec(case.source, namespace)
        outcome.value = namespace.get("result")
    except CaseTimeout:
        outcome.timed_out = True
    except BaseException as caught:
        if isinstance(caught, KeyboardInterrupt):
            raise
        outcome.error, outcome.error_frames = caught, _frames(caught)
    finally:
        _restore_process_state(x64)
    if outcome.value is not None and "x * jnp.nan" in case.source:
        outcome.value = None  # NaN in, NaN out: torch's behaviour for a layer, not a defect
    return outcome


# --- the driver ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Report:
    """Every distinct problem seen (the smallest reproduction of each) and what was run."""

    cases: int = 0
    by_entry: dict[str, int] = dataclasses.field(default_factory=dict)
    outcomes: dict[str, int] = dataclasses.field(default_factory=dict)  # "exit 2", "ValueError", "ok"
    problems: dict[tuple[str, str, str], Problem] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    def add(self, problem: Problem) -> None:
        key = problem.signature()
        known = self.problems.get(key)
        if known is None or len(problem.repro) < len(known.repro):
            self.problems[key] = problem

    def to_json(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "seconds": round(self.seconds, 1),
            "by_entry": self.by_entry,
            "outcomes": self.outcomes,
            "problems": [dataclasses.asdict(p) for p in self.problems.values()],
        }


def _outcome_label(outcome: Outcome) -> str:
    if outcome.timed_out:
        return "timeout"
    if outcome.error is not None:
        return type(outcome.error).__name__
    return "ok" if outcome.status in (None, 0) else f"exit {outcome.status}"


def minimise(case: CliCase, signature: tuple[str, str, str], ws: Workspace) -> CliCase:
    """Drops flags (with their values) one at a time while the case still shows the problem."""

    def still(argv: list[str]) -> bool:
        outcome = run_cli_in_process(argv)
        return any(
            Problem(case.entry, kind, detail, "").signature() == signature
            for kind, detail in judge_cli(argv, outcome, case.metrics)
        )

    argv = list(case.argv)
    i = 1
    while i < len(argv):
        width = (
            2 if argv[i].startswith("--") and i + 1 < len(argv) and not argv[i + 1].startswith("--") else 1
        )
        trial = argv[:i] + argv[i + width :]
        if argv[i].startswith("--") and still(trial):
            argv = trial
        else:
            i += width
    files = {path: how for path, how in case.files.items() if path in argv}
    return dataclasses.replace(case, argv=argv, files=files)


class Fuzzer:
    """Runs cases and collects problems: `cli_case` and `api_case` each run and judge one."""

    def __init__(self, workspace: Path, subprocess_share: float = 0.0, minimise_cli: bool = True) -> None:
        self.ws = Workspace(workspace)
        self.report = Report()
        self.subprocess_share = subprocess_share
        self.minimise_cli = minimise_cli
        self.last = ""  # the last case's outcome, one line
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        }

    def _count(self, entry: str, outcome: Outcome) -> None:
        self.report.cases += 1
        self.report.by_entry[entry] = self.report.by_entry.get(entry, 0) + 1
        label = f"{entry}: {_outcome_label(outcome)}"
        self.report.outcomes[label] = self.report.outcomes.get(label, 0) + 1

    def cli_case(self, case: CliCase, as_subprocess: bool = False) -> list[Problem]:
        outcome = run_cli_subprocess(case.argv, self.env) if as_subprocess else run_cli_in_process(case.argv)
        self._count(case.entry + (" (subprocess)" if as_subprocess else ""), outcome)
        errors = [line for line in outcome.stderr.splitlines() if "error:" in line]
        self.last = f"{_outcome_label(outcome)} {errors[-1] if errors else ''}".strip()
        problems = []
        for kind, detail in judge_cli(case.argv, outcome, case.metrics):
            problem = Problem(case.entry, kind, detail, case.command(), case.files)
            if self.minimise_cli and not as_subprocess and problem.signature() not in self.report.problems:
                smaller = minimise(case, problem.signature(), self.ws)
                problem = dataclasses.replace(problem, repro=smaller.command(), files=smaller.files)
            self.report.add(problem)
            problems.append(problem)
        return problems

    def api_case(self, case: ApiCase) -> list[Problem]:
        outcome = run_api_case(case)
        self._count(case.entry, outcome)
        self.last = _outcome_label(outcome) + (f": {_first_line(outcome.error)}" if outcome.error else "")
        problems = []
        for kind, detail in judge_python(outcome, case.names, case.entry):
            problem = Problem(case.entry, kind, detail, case.source)
            self.report.add(problem)
            problems.append(problem)
        return problems


def run_one(fuzzer: Fuzzer, pick: Pick, only: str | None = None) -> tuple[str, list[Problem]]:
    """Draws one case with `pick`, runs and judges it; returns its one-line description and problems."""
    kind = only or ("cli" if pick.int(0, 9) < 6 else "api")
    if kind == "cli":
        case = draw_cli_case(pick, fuzzer.ws)
        as_subprocess = pick.int(0, 999) < 1000 * fuzzer.subprocess_share
        problems = fuzzer.cli_case(case, as_subprocess)
        return case.command() + (" [subprocess]" if as_subprocess else ""), problems
    api = draw_api_case(pick)
    return f"{api.entry}: {api.source.splitlines()[-1]}", fuzzer.api_case(api)


def fuzz(
    fuzzer: Fuzzer,
    examples: int,
    seed: int = 0,
    only: str | None = None,
    stop_at: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Runs `examples` independent random cases (drawn from `seed`) through `fuzzer`, recording
    every problem rather than stopping at the first; stops early at `stop_at` (time.monotonic())."""
    import jax

    start = time.monotonic()
    rng = random.Random(seed)
    for _ in range(examples):
        if stop_at is not None and time.monotonic() > stop_at:
            break
        line, problems = run_one(fuzzer, RandomPick(random.Random(rng.getrandbits(64))), only)
        if progress is not None:
            verdict = "; ".join(f"PROBLEM {p.kind}: {p.detail}" for p in problems) or fuzzer.last
            progress(f"[{fuzzer.report.cases}] {line[:240]}\n    -> {verdict[:240]}")
        if fuzzer.report.cases % 50 == 0:
            jax.clear_caches()  # every case builds new programs; keep the process's memory flat
    fuzzer.report.seconds += time.monotonic() - start
    return fuzzer.report


def format_report(report: Report) -> str:
    lines = [f"{report.cases} cases in {report.seconds:.0f} s; {len(report.problems)} distinct problems"]
    for entry, count in sorted(report.by_entry.items()):
        lines.append(f"  {entry}: {count}")
    for i, problem in enumerate(report.problems.values(), start=1):
        lines.append(f"\n{i}. {problem.entry}: {problem.kind}: {problem.detail}")
        lines.append(textwrap.indent(problem.repro, "     "))
        for path, how in problem.files.items():
            lines.append(f"     ({Path(path).name}: {how})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity_tests.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["cli", "api"])
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long")
    parser.add_argument("--subprocess-share", type=float, default=0.05, help="command lines run as children")
    parser.add_argument(
        "--workspace", type=Path, help="keep the spoiled files here (default: a temporary dir)"
    )
    parser.add_argument("--report", type=Path, help="write the problems as JSON here")
    parser.add_argument("--verbose", action="store_true", help="one line per case")
    args = parser.parse_args(argv)
    os.environ.setdefault("JAX_LSTM_CACHE", str(Path(tempfile.gettempdir()) / "jax-lstm-fuzz-cache"))
    with contextlib.ExitStack() as stack:
        workspace = args.workspace or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fuzz-")))
        fuzzer = Fuzzer(workspace, args.subprocess_share)
        stop_at = None if args.minutes is None else time.monotonic() + 60 * args.minutes
        log = (lambda line: print(line, flush=True)) if args.verbose else None
        report = fuzz(fuzzer, args.examples, args.seed, args.only, stop_at, log)
        print(format_report(report), flush=True)
        if args.report:
            args.report.write_text(json.dumps(report.to_json(), indent=1))
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
