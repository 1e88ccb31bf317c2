"""Datasets and batching, shared by the JAX and torch training loops (numpy only, no torch, no JAX).

Both sides draw their batches from `batch_order`, so a JAX run and a torch run see identical batches
in identical order. Datasets hold right-padded (N, T, F) arrays with per-sequence lengths when the
series have unequal lengths.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.resources
import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "DataError",
    "Dataset",
    "TsData",
    "batch_order",
    "digits",
    "epoch_mean",
    "from_series",
    "from_ts_files",
    "japanese_vowels",
    "japanese_vowels_ts",
    "load_ts",
    "micro_batch_bounds",
    "pad_series",
    "synthetic",
]


class DataError(ValueError):
    """Input data that cannot be trained on; the message says what is wrong and where."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A train/test split of multivariate series.

    x_*: (N, T, F) float arrays, right-padded when lengths_* is given; y_*: (N,) int labels in
    [0, num_classes); lengths_*: (N,) valid lengths or None when every series spans T steps.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    lengths_train: np.ndarray | None = None
    lengths_test: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[-1])

    def describe(self) -> str:
        if self.lengths_train is None:
            span = f"length {self.x_train.shape[1]}"
        else:
            both = [self.lengths_train] + ([self.lengths_test] if self.lengths_test is not None else [])
            lengths = np.concatenate(both)
            span = f"lengths {int(lengths.min())}-{int(lengths.max())}"
        return (
            f"{self.name}: {len(self.x_train)} train / {len(self.x_test)} test series, "
            f"{self.num_features} features, {span}, {self.num_classes} classes"
        )

    def astype(self, dtype: str) -> Dataset:
        return dataclasses.replace(self, x_train=self.x_train.astype(dtype), x_test=self.x_test.astype(dtype))

    def validate(self, require_test: bool = True) -> Dataset:
        """Raises DataError, before any training, for data that would give NaNs or torch errors.

        With ``require_test=False`` an empty test split is allowed (training without evaluation).
        """
        splits = [("train", self.x_train, self.y_train, self.lengths_train)]
        if require_test or len(self.y_test):
            splits.append(("test", self.x_test, self.y_test, self.lengths_test))
        for split, x, y, lengths in splits:
            if x.ndim != 3:
                raise DataError(f"{split} data must be (samples, time, features), got shape {x.shape}")
            if len(x) == 0:
                raise DataError(f"the {split} split is empty: it needs at least one series")
            if x.shape[1] == 0:
                raise DataError(f"the {split} series have length 0: every series needs at least one step")
            if len(y) != len(x):
                raise DataError(f"{split}: {len(x)} series but {len(y)} labels")
            if not np.issubdtype(y.dtype, np.integer):
                raise DataError(f"{split} labels must be integers, got {y.dtype}")
            bad = (y < 0) | (y >= self.num_classes)
            if bad.any():
                i = int(np.argmax(bad))
                raise DataError(
                    f"{split} label {int(y[i])} (series {i}) is out of range for {self.num_classes} "
                    f"classes: labels must be in [0, {self.num_classes - 1}] "
                    f"(torch would fail with 'Target {int(y[i])} is out of bounds')"
                )
            if lengths is not None:  # before the values check, which masks the padding by them
                if lengths.shape != (len(x),):
                    raise DataError(f"{split} lengths must have shape ({len(x)},), got {lengths.shape}")
                if lengths.min() < 1 or lengths.max() > x.shape[1]:
                    raise DataError(
                        f"{split} lengths must be in [1, {x.shape[1]}], got {int(lengths.min())} to "
                        f"{int(lengths.max())}"
                    )
            finite = np.isfinite(x) if lengths is None else np.isfinite(_valid_values(x, lengths))
            if not finite.all():
                where = np.argwhere(~finite)[0]
                raise DataError(
                    f"{split} data contains NaN or inf (first at series {int(where[0])}); "
                    "fill or drop missing values before training"
                )
        if self.x_train.shape[-1] != self.x_test.shape[-1]:
            raise DataError(
                f"train series have {self.x_train.shape[-1]} features but test series have "
                f"{self.x_test.shape[-1]}: both splits must have the same channels"
            )
        if len(self.x_train) < 2:
            raise DataError(
                f"the train split has {len(self.x_train)} series: training needs at least 2 "
                "(BatchNorm and a shuffled split need more than one)"
            )
        return self


def _valid_values(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The (N_valid, F) values of a right-padded (N, T, F) array: padding excluded."""
    mask = np.arange(x.shape[1])[None, :] < lengths[:, None]
    return x[mask]


def batch_order(num_samples: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The shuffled batches of one epoch: index arrays of `batch_size` (the last may be shorter).

    A pure function of (seed, epoch), so a resumed run and the torch reference draw the same
    batches as an uninterrupted JAX run (DataLoader(shuffle=True) semantics, drop_last=False).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    permutation = np.random.default_rng([seed, epoch]).permutation(num_samples)
    return [permutation[i : i + batch_size] for i in range(0, num_samples, batch_size)]


def micro_batch_bounds(batch: int, accumulate: int) -> list[tuple[int, int]]:
    """Splits a batch of `batch` rows into `accumulate` contiguous, near-equal micro-batches."""
    parts = min(accumulate, batch)
    edges = [round(batch * j / parts) for j in range(parts + 1)]
    return list(itertools.pairwise(edges))


def epoch_mean(batch_losses: Sequence[float], batch_sizes: Sequence[int]) -> float:
    """The epoch's training loss: the per-sample mean of batch-mean losses, in float64."""
    losses = np.asarray(batch_losses, dtype=np.float64)
    sizes = np.asarray(batch_sizes, dtype=np.float64)
    return float(np.sum(losses * sizes) / np.sum(sizes))


def _split(x, y, seed: int, lengths=None):
    from sklearn.model_selection import train_test_split

    arrays = [x, y] if lengths is None else [x, y, lengths]
    parts = train_test_split(*arrays, test_size=0.2, random_state=seed)
    return parts


def synthetic(
    seed: int = 0,
    num_samples: int = 1000,
    seq_len: int = 20,
    num_features: int = 5,
    num_classes: int = 2,
    split_seed: int = 42,
) -> Dataset:
    """The article's data (section 3.1): Gaussian noise (1000, 20, 5) with random binary labels.

    Split with ``train_test_split(test_size=0.2, random_state=42)`` as in the article. There is
    nothing to learn in it: test accuracy hovers around chance.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num_samples, seq_len, num_features)).astype(np.float32)
    # The article's `.astype(np.long)`: np.long is gone from numpy >= 1.24, int64 is what it meant.
    y = rng.integers(0, num_classes, size=num_samples).astype(np.int64)
    x_train, x_test, y_train, y_test = _split(x, y, split_seed)
    classes = tuple(str(c) for c in range(num_classes))
    return Dataset("synthetic", x_train, y_train, x_test, y_test, classes)


def digits(split_seed: int = 42) -> Dataset:
    """scikit-learn's 8x8 handwritten digits read as 8 timesteps (rows) of 8 features, 10 classes.

    Pixel values 0..16 are scaled to [0, 1]. Ships with scikit-learn: no download.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)  # (1797, 8, 8)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = _split(x, y, split_seed)
    return Dataset("digits", x_train, y_train, x_test, y_test, tuple(str(c) for c in range(10)))


@dataclasses.dataclass(frozen=True)
class TsData:
    """The contents of one sktime/UEA ``.ts`` file."""

    series: list[np.ndarray]  # each (T_i, F)
    labels: list[str]
    class_labels: tuple[str, ...] | None  # as declared by @classLabel, in declared order
    problem_name: str


def _open_text(path: Path) -> list[str]:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return handle.read().splitlines()
    return path.read_text(encoding="utf-8").splitlines()


def load_ts(path: str | Path) -> TsData:
    """Reads a sktime/UEA ``.ts`` classification file (equal or unequal length, multivariate).

    ``?`` marks a missing value and becomes NaN (training refuses NaN, with a message). Raises
    DataError naming the file and line for anything malformed. ``.ts.gz`` files are read as well.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    lines = _open_text(path)
    dimensions: int | None = None
    class_labels: tuple[str, ...] | None = None
    has_labels = False
    problem = path.stem
    series: list[np.ndarray] = []
    labels: list[str] = []
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
                if not has_labels:
                    fail(number, "no '@classLabel true ...' header: only classification files are supported")
            elif tag == "@problemname":
                problem = rest
            elif tag == "@timestamps" and rest.lower() == "true":
                fail(number, "time-stamped .ts files are not supported")
            elif tag == "@dimensions":
                if not rest.isdigit() or int(rest) < 1:
                    fail(number, f"@dimensions must be a positive integer, got {rest!r}")
                dimensions = int(rest)
            elif tag == "@classlabel":
                words = rest.split()
                if not words or words[0].lower() not in ("true", "false"):
                    fail(number, "@classLabel must be followed by true or false")
                if words[0].lower() == "true":
                    if len(words) < 2:
                        fail(number, "@classLabel true needs the list of class labels")
                    has_labels = True
                    class_labels = tuple(words[1:])
            elif tag == "@targetlabel" and rest.lower().startswith("true"):
                fail(number, "regression .ts files (@targetlabel) are not supported")
            continue
        parts = line.split(":")
        label = parts[-1].strip()
        channels = parts[:-1]
        if dimensions is None:
            dimensions = len(channels)
        if len(channels) != dimensions:
            fail(
                number, f"expected {dimensions} dimensions and a class label, got {len(channels)} dimensions"
            )
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
    if not in_data:
        raise DataError(f"{path}: no @data line: not a .ts file")
    if not series:
        raise DataError(f"{path}: no series after @data")
    return TsData(series, labels, class_labels, problem)


def pad_series(series: Sequence[np.ndarray], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Right-pads (T_i, F) series with zeros to (N, T, F); returns it and the (N,) int32 lengths.

    The padded array has the series' common floating dtype (float32 stays float32).
    """
    series = [np.asarray(s) for s in series]
    if not series or any(s.ndim != 2 for s in series):
        raise DataError("pad_series needs a non-empty list of 2-D (time, features) arrays")
    if len({s.shape[-1] for s in series}) != 1:
        raise DataError(f"series have different feature counts: {sorted({s.shape[-1] for s in series})}")
    lengths = np.asarray([len(s) for s in series], dtype=np.int32)
    total = int(lengths.max()) if length is None else length
    dtype = np.result_type(np.float32, *series)
    x = np.zeros((len(series), total, series[0].shape[-1]), dtype=dtype)
    for i, s in enumerate(series):
        x[i, : len(s)] = s
    return x, lengths


def channel_statistics(x: np.ndarray, lengths: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation (F,) over the valid steps of (N, T, F) series.

    A constant channel gets a scale of 1, so standardising it gives zeros rather than NaN.
    """
    values = x.reshape(-1, x.shape[-1]) if lengths is None else _valid_values(x, lengths)
    std = values.std(axis=0)
    return values.mean(axis=0), np.where(std > 0, std, 1.0)


def standardize_channels(
    x: np.ndarray, lengths: np.ndarray | None, mean: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """(x - mean) / scale on the valid steps of (N, T, F) series; padding stays 0."""
    out = (x - mean) / scale
    if lengths is None:
        return out
    return np.where((np.arange(x.shape[1])[None, :] < lengths[:, None])[..., None], out, 0.0)


def from_series(
    name: str,
    train: tuple[Sequence[np.ndarray], Sequence[str]],
    test: tuple[Sequence[np.ndarray], Sequence[str]],
    classes: Sequence[str] | None = None,
    standardize: bool = True,
) -> Dataset:
    """A Dataset from lists of (T_i, F) series and string labels, padded, labels mapped to ints."""
    (train_series, train_labels), (test_series, test_labels) = train, test
    if not train_series or not test_series:
        raise DataError(f"{name}: the train and test splits both need at least one series")
    features = {s.shape[-1] for s in train_series}, {s.shape[-1] for s in test_series}
    if len(features[0] | features[1]) != 1:
        raise DataError(
            f"{name}: train series have {sorted(features[0])} features and test series "
            f"{sorted(features[1])}: both splits must have the same channels"
        )
    if classes is None:
        classes = sorted(set(train_labels), key=_label_key)
    classes = tuple(classes)
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(test_labels) - set(index))
    if unknown:
        raise DataError(f"{name}: test labels {unknown} never occur in training ({list(classes)})")
    length = max(max(len(s) for s in train_series), max(len(s) for s in test_series))
    x_train, len_train = pad_series(train_series, length)
    x_test, len_test = pad_series(test_series, length)
    if min(len_train.min(), len_test.min()) < 1:
        raise DataError(f"{name}: a series has length 0")
    if standardize:
        # Fitted on the training split only.
        mean, scale = channel_statistics(x_train, len_train)
        x_train = standardize_channels(x_train, len_train, mean, scale)
        x_test = standardize_channels(x_test, len_test, mean, scale)
    equal = (len_train == length).all() and (len_test == length).all()
    y_train = np.asarray([index[c] for c in train_labels], dtype=np.int64)
    y_test = np.asarray([index[c] for c in test_labels], dtype=np.int64)
    return Dataset(
        name,
        x_train.astype(np.float32),
        y_train,
        x_test.astype(np.float32),
        y_test,
        classes,
        None if equal else len_train,
        None if equal else len_test,
    )


def _label_key(label: str):
    """Sorts numeric labels numerically ("2" before "10"), others as text."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def from_ts_files(train_path: str | Path, test_path: str | Path, standardize: bool = True) -> Dataset:
    """A Dataset from a pair of UEA ``.ts`` files, standardised per channel on the training split."""
    train, test = load_ts(train_path), load_ts(test_path)
    if train.series[0].shape[-1] != test.series[0].shape[-1]:
        raise DataError(
            f"{train_path} has {train.series[0].shape[-1]} dimensions but {test_path} has "
            f"{test.series[0].shape[-1]}: train and test files must have the same channels"
        )
    return _from_ts(train, test, standardize)


def _from_ts(train: TsData, test: TsData, standardize: bool) -> Dataset:
    return from_series(
        train.problem_name,
        (train.series, train.labels),
        (test.series, test.labels),
        classes=train.class_labels,
        standardize=standardize,
    )


def japanese_vowels_ts() -> tuple[TsData, TsData]:
    """The embedded JapaneseVowels train and test files as read (series of different lengths,
    string labels "1".."9"), e.g. for `LSTMSequenceClassifier.fit(train.series, train.labels)`."""
    root = importlib.resources.files("jax_lstm") / "datasets"
    with (
        importlib.resources.as_file(root / "JapaneseVowels_TRAIN.ts.gz") as train,
        importlib.resources.as_file(root / "JapaneseVowels_TEST.ts.gz") as test,
    ):
        return load_ts(train), load_ts(test)


def japanese_vowels(standardize: bool = True) -> Dataset:
    """The UEA JapaneseVowels benchmark, shipped inside the package (no download).

    9 speakers (classes), 12 LPC cepstrum channels, lengths 7 to 29, 270 train / 370 test series
    (Kudo, Toyama and Shimbo 1999; UEA multivariate archive, Bagnall et al. 2018), standardised
    per channel with statistics of the training split.
    """
    return _from_ts(*japanese_vowels_ts(), standardize)
