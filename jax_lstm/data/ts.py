"""The sktime/UEA ``.ts`` classification file format: reading, and turning a file pair into a Dataset."""

from __future__ import annotations

import dataclasses
import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from jax_lstm.data.dataset import DataError, Dataset, Preprocessing, from_series, pad_series
from jax_lstm.data.missing import FILL_METHODS, Filled, fill_series

__all__ = ["TsData", "from_ts_data", "from_ts_files", "load_ts"]


@dataclasses.dataclass(frozen=True)
class TsData:
    """The contents of one sktime/UEA ``.ts`` file."""

    series: list[np.ndarray]  # each (T_i, F)
    labels: list[str] | None  # None: an unlabelled file (``@classLabel false``)
    class_labels: tuple[str, ...] | None  # as declared by @classLabel, in declared order
    problem_name: str
    path: str = ""  # the file it was read from
    lines: tuple[int, ...] = ()  # the 1-based line of each series in that file

    def where(self, i: int) -> str:
        """Series `i` as messages name it: ``"FILE:LINE: series I"`` (the line where known)."""
        line = f"{self.lines[i]}: " if i < len(self.lines) else " "
        return f"{self.path}:{line}series {i}"

    def check_missing(self) -> None:
        """Raises DataError at the first missing value (``?`` or ``NaN``) or infinity, naming the
        file, line and series as they are in the file (before any standardisation could spread it)."""
        for i, x in enumerate(self.series):
            missing = np.argwhere(~np.isfinite(x))
            if len(missing):
                step, channel = (int(v) for v in missing[0])
                where = self.where(i)
                at = f"(dimension {channel + 1}, step {step + 1})"
                if np.isnan(x[step, channel]):
                    raise DataError(
                        f"{where} has a missing value {at}: fill them (--fill interpolate or ffill) "
                        "or drop them from the file"
                    )
                raise DataError(f"{where} has an infinite value {at}: correct or drop that series")

    def fill_missing(self, method: str | None, means: np.ndarray | None = None) -> tuple[TsData, Filled]:
        """The file with its missing values filled by `method` (`jax_lstm.data.fill_series`:
        trailing steps missing on every channel dropped as padding, gaps filled from the series'
        own values, a channel with none at all given ``means``, or left NaN without them); None
        fills nothing. What is left (with None, every missing value; else infinities) is for
        `check_missing` to refuse. Raises DataError for a series with no value at all."""
        if method is None:
            return self, Filled()
        series, filled = fill_series(self.series, method, means)
        if filled.empty is not None:
            raise DataError(
                f"{self.where(filled.empty)} has no values (every one missing): drop it from the file"
            )
        return dataclasses.replace(self, series=series), filled

    @property
    def labelled(self) -> bool:
        """Whether every series has a class label (``@classLabel true``)."""
        return self.labels is not None

    def require_labels(self) -> None:
        """Raises DataError for an unlabelled file where training or scoring needs labels."""
        if self.labels is None:
            raise DataError(
                f"{self.path or self.problem_name} has no class labels (@classLabel false): training needs "
                "labelled series; `jax-lstm predict` classifies unlabelled ones"
            )


def _open_text(path: Path) -> list[str]:
    """The file's lines; DataError naming the file (and line) for what is not UTF-8 text."""
    if path.is_dir():
        raise DataError(f"{path} is a directory; pass a .ts file (e.g. {path / 'TRAIN.ts'})")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                raw = handle.read()
        else:
            raw = path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(f"{path}: not a valid gzip file ({err or type(err).__name__})") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err})") from None
    if b"\0" in raw:
        line = raw[: raw.index(b"\0")].count(b"\n") + 1
        raise DataError(f"{path}:{line}: a binary file (NUL byte), not a .ts text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); .ts files are UTF-8: "
            "convert it, e.g. iconv -f latin1 -t utf-8"
        ) from None
    # Split on newlines only, so line numbers are those of an editor (and of the messages above).
    return text.split("\n")


def load_ts(path: str | Path) -> TsData:
    """Reads a sktime/UEA ``.ts`` classification file (equal or unequal length, multivariate).

    A file with ``@classLabel false`` holds series without labels (``labels`` None), e.g. new series
    to classify. ``?`` marks a missing value and becomes NaN (training refuses NaN, with a message). Raises
    DataError naming the file and line for anything malformed. ``.ts.gz`` files are read as well.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    lines = _open_text(path)
    dimensions: int | None = None
    class_labels: tuple[str, ...] | None = None
    has_labels = False
    declared = False  # a @classLabel line was seen (true or false)
    problem = path.stem
    series: list[np.ndarray] = []
    labels: list[str] = []
    series_lines: list[int] = []
    in_data = False

    def fail(number: int, message: str):
        raise DataError(f"{path}:{number}: {message}")

    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                fail(number, f"expected a @tag header line or @data, got {line[:40]!r}")
            tag, _, rest = line.partition(" ")
            tag = tag.lower()
            rest = rest.strip()
            if tag == "@data":
                in_data = True
                if not declared:
                    fail(
                        number,
                        "no '@classLabel true ...' (or '@classLabel false') header: only classification "
                        "files are supported",
                    )
            elif tag == "@problemname":
                problem = rest
            elif tag == "@timestamps" and rest.lower() == "true":
                fail(number, "time-stamped .ts files are not supported")
            elif tag == "@dimensions":
                if not (rest.isascii() and rest.isdigit()) or int(rest) < 1:
                    fail(number, f"@dimensions must be a positive integer, got {rest!r}")
                dimensions = int(rest)
            elif tag == "@classlabel":
                words = rest.split()
                if not words or words[0].lower() not in ("true", "false"):
                    fail(number, "@classLabel must be followed by true or false")
                declared = True
                if words[0].lower() == "true":
                    if len(words) < 2:
                        fail(number, "@classLabel true needs the list of class labels")
                    has_labels = True
                    class_labels = tuple(words[1:])
            elif tag == "@targetlabel" and rest.lower().startswith("true"):
                fail(number, "regression .ts files (@targetlabel) are not supported")
            continue
        parts = line.split(":")
        if has_labels:
            label, channels = parts[-1].strip(), parts[:-1]
        else:
            label, channels = "", parts
        if not channels:
            fail(number, f"a series needs its values before the class label, got only {line[:40]!r}")
        if dimensions is None:
            dimensions = len(channels)
        if len(channels) != dimensions:
            expected = (
                f"{dimensions} dimensions and a class label" if has_labels else f"{dimensions} dimensions"
            )
            fail(number, f"expected {expected}, got {len(channels)} dimensions")
        if class_labels is not None and label not in class_labels:
            fail(number, f"class label {label!r} is not among the declared labels {list(class_labels)}")
        values = []
        for d, channel in enumerate(channels):
            try:
                values.append([math.nan if v.strip() == "?" else float(v) for v in channel.split(",")])
            except ValueError:
                fail(number, f"dimension {d + 1} holds a value that is not a number")
        length = len(values[0])
        for d, v in enumerate(values):
            if len(v) != length:
                fail(number, f"dimension {d + 1} has {len(v)} values but dimension 1 has {length}")
        series.append(np.asarray(values, dtype=np.float64).T)  # (T_i, F)
        labels.append(label)
        series_lines.append(number)
    if not in_data:
        raise DataError(f"{path}: no @data line: not a .ts file")
    if not series:
        raise DataError(f"{path}: no series after @data")
    return TsData(
        series, labels if has_labels else None, class_labels, problem, str(path), tuple(series_lines)
    )


def from_ts_files(
    train_path: str | Path,
    test_path: str | Path,
    standardize: bool = True,
    fill: str | None = "interpolate",
) -> Dataset:
    """A Dataset from a pair of UEA ``.ts`` files, standardised per channel on the training split.

    `fill` (one of `FILL_METHODS`) is what becomes of missing values (``?`` or ``NaN``):
    ``"interpolate"`` (linear between the nearest values) or ``"ffill"`` within each series, a
    channel missing throughout a series taking the training split's mean of it (0 after
    standardisation; 0 without it); None refuses them. Trailing steps missing on every channel are
    read as padding unless `fill` is None. ``Dataset.notes`` says what was filled.
    """
    if fill not in FILL_METHODS:
        raise ValueError(f"fill must be one of {FILL_METHODS}, got {fill!r}")
    train, test = load_ts(train_path), load_ts(test_path)
    train.require_labels()
    test.require_labels()
    if train.series[0].shape[-1] != test.series[0].shape[-1]:
        raise DataError(
            f"{train_path} has {train.series[0].shape[-1]} dimensions but {test_path} has "
            f"{test.series[0].shape[-1]}: train and test files must have the same channels"
        )
    train, train_filled = train.fill_missing(fill)
    test, test_filled = test.fill_missing(fill)
    preprocessing = None
    if fill and any(np.isnan(x).any() for x in (*train.series, *test.series)):
        # Channels missing throughout a series take the training mean, as `jax-lstm predict` fills
        # them from a checkpoint's statistics: with the statistics of the values there are.
        x, lengths = pad_series(train.series)
        preprocessing = Preprocessing.fit(x, lengths) if standardize else None
        means = np.zeros(x.shape[-1]) if preprocessing is None else preprocessing.mean
        train, test = (dataclasses.replace(ts, series=_fill_nan(ts.series, means)) for ts in (train, test))
    train.check_missing()  # what filling leaves: infinities
    test.check_missing()
    dataset = from_ts_data(train, test, standardize, preprocessing)
    notes = [f.describe(split, fill) for split, f in (("train", train_filled), ("test", test_filled)) if fill]
    return dataclasses.replace(dataset, notes=tuple(n for n in notes if n))


def _fill_nan(series: list[np.ndarray], means: np.ndarray) -> list[np.ndarray]:
    return [np.where(np.isnan(x), means, x) if np.isnan(x).any() else x for x in series]


def from_ts_data(
    train: TsData, test: TsData, standardize: bool = True, preprocessing: Preprocessing | None = None
) -> Dataset:
    """A Dataset from a train and a test `TsData`, labels in the declared order, standardised per channel
    on the training split unless `standardize` is False (with `preprocessing`'s statistics where given)."""
    train.require_labels()
    test.require_labels()
    return from_series(
        train.problem_name,
        (train.series, train.labels),
        (test.series, test.labels),
        classes=train.class_labels,
        standardize=standardize,
        preprocessing=preprocessing,
    )
