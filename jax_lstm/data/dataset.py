"""`Dataset`, the padded (N, T, F) form every training loop takes, and the helpers that build it.

Datasets hold right-padded (N, T, F) arrays with per-sequence lengths when the series have unequal
lengths. numpy only: no torch, no JAX.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jax_lstm.data.dims import Dims, SeriesSizes

__all__ = [
    "DATASET_DEFAULTS",
    "DataError",
    "Dataset",
    "Preprocessing",
    "channel_statistics",
    "from_series",
    "pad_series",
    "preprocessing_record",
    "standardize_channels",
    "validation_split",
]


class DataError(ValueError):
    """Input data that cannot be trained on; the message says what is wrong and where."""


@dataclasses.dataclass(frozen=True, eq=False)
class Preprocessing:
    """The per-channel standardisation fitted on a training split: ``(x - mean) / scale`` on the
    valid steps (padding stays 0). mean, scale: (F,) float64. A dataset whose series were not
    standardised has none (``Dataset.preprocessing`` None).

    Checkpoints record it (`as_dict`), so that new series are scaled exactly as training scaled its
    own: in float64, before the cast to the model's dtype.
    """

    mean: np.ndarray  # (F,) float64
    scale: np.ndarray  # (F,) float64, > 0

    @classmethod
    def fit(cls, x: np.ndarray, lengths: np.ndarray | None = None) -> Preprocessing:
        """The statistics of (N, T, F) series over their valid steps (`channel_statistics`)."""
        mean, scale = channel_statistics(np.asarray(x, np.float64), lengths)
        return cls(np.asarray(mean, np.float64), np.asarray(scale, np.float64))

    def apply(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """(N, T, F) -> standardised (N, T, F) float64, padding 0 (`standardize_channels`)."""
        return standardize_channels(np.asarray(x, np.float64), lengths, self.mean, self.scale)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: floats written by repr, so `from_dict` gives back the same float64 values."""
        return {"kind": "standardize", "mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> Preprocessing | None:
        """The record of `as_dict` (None for ``{"kind": "none"}``); ValueError for anything else."""
        kind = fields.get("kind")
        if kind == "none":
            return None
        if kind != "standardize":
            raise ValueError(f"unknown preprocessing {kind!r}")
        return cls(np.asarray(fields["mean"], np.float64), np.asarray(fields["scale"], np.float64))


def preprocessing_record(preprocessing: Preprocessing | None) -> dict[str, Any]:
    """What a checkpoint records of a dataset's preprocessing: its statistics, or that there was none."""
    return {"kind": "none"} if preprocessing is None else preprocessing.as_dict()


# What a run on a real dataset (JapaneseVowels, a .ts file, the estimator's series) uses where
# neither the caller nor the model's recipe says otherwise: 30 epochs of batches of 16, the better of
# the settings measured by `python -m benchmarks.accuracy` (benchmarks/results/accuracy.json).
DATASET_DEFAULTS = {"epochs": 30, "batch_size": 16}


@dataclasses.dataclass(frozen=True)
class Dataset(SeriesSizes):
    """A train/test split of multivariate series.

    x_*: (N, T, F) float arrays, right-padded when lengths_* is given; y_*: (N,) int labels in
    [0, num_classes); lengths_*: (N,) valid lengths or None when every series spans T steps.
    ``*_validation``: series held out of the training data (`validation_split`) to choose the
    epoch by; None when there is no validation split. ``defaults``: the training settings this data
    asks for where neither the caller nor the model's recipe sets them (`resolve_config`), e.g. the
    article's 10 epochs of 32 for its synthetic data; by default `DATASET_DEFAULTS`.
    ``preprocessing``: the standardisation the x arrays went through (fitted on the training split),
    None when they are as given; checkpoints record it, so new series can be scaled the same way.
    ``notes``: what reading the files did to the series beyond that (missing values filled), one line
    each, for a run to print.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    lengths_train: np.ndarray | None = None
    lengths_test: np.ndarray | None = None
    x_validation: np.ndarray | None = None
    y_validation: np.ndarray | None = None
    lengths_validation: np.ndarray | None = None
    # TrainConfig fields this data asks for where neither the caller nor the model's recipe sets them.
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=lambda: dict(DATASET_DEFAULTS))
    preprocessing: Preprocessing | None = None
    notes: tuple[str, ...] = ()

    @property
    def dims(self) -> Dims:
        """The sizes a model of this data is built for: features, classes, padded length."""
        return Dims(self.num_features, self.num_classes, None, self.seq_len)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def output_shape(self) -> None:
        """None: a classifier's output is its num_classes logits (`WindowDataset` has (H, T))."""
        return None

    def describe(self) -> str:
        if self.lengths_train is None:
            span = f"length {self.x_train.shape[1]}"
        else:
            both = [self.lengths_train] + ([self.lengths_test] if self.lengths_test is not None else [])
            lengths = np.concatenate(both)
            span = f"lengths {int(lengths.min())}-{int(lengths.max())}"
        held = "" if self.y_validation is None else f" (+{len(self.y_validation)} validation)"
        return (
            f"{self.name}: {len(self.x_train)} train{held} / {len(self.x_test)} test series, "
            f"{self.num_features} features, {span}, {self.num_classes} classes"
        )

    def astype(self, dtype: str) -> Dataset:
        validation = None if self.x_validation is None else self.x_validation.astype(dtype)
        return dataclasses.replace(
            self,
            x_train=self.x_train.astype(dtype),
            x_test=self.x_test.astype(dtype),
            x_validation=validation,
        )

    def validate(self, require_test: bool = True) -> Dataset:
        """Raises DataError, before any training, for data that would give NaNs or torch errors.

        With ``require_test=False`` an empty test split is allowed (training without evaluation).
        """
        splits = [("train", self.x_train, self.y_train, self.lengths_train)]
        if require_test or len(self.y_test):
            splits.append(("test", self.x_test, self.y_test, self.lengths_test))
        if self.x_validation is not None:
            splits.append(("validation", self.x_validation, self.y_validation, self.lengths_validation))
        for split, x, y, lengths in splits:
            for what, value in (("data", x), ("labels", y)):
                if not isinstance(value, np.ndarray):
                    raise DataError(
                        f"{split} {what} must be a numpy array, got {type(value).__name__}; "
                        "convert it first (np.asarray)"
                    )
            if x.ndim != 3:
                raise DataError(f"{split} data must be (samples, time, features), got shape {x.shape}")
            if not np.issubdtype(x.dtype, np.floating):
                raise DataError(
                    f"{split} data must be floating point, got dtype {x.dtype}; convert it first "
                    "(x.astype(np.float32))"
                )
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
                    "fill or drop missing values before training (jax_lstm.data.fill_series fills "
                    "them as `jax-lstm train` does a .ts file's)"
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

    A constant channel gets a scale of 1, so standardising it gives zeros rather than NaN. NaNs
    (a .ts file's channels missing throughout a series, `jax_lstm.data.fill_series`) are left out;
    a channel with no other value gets mean 0 and scale 1.
    """
    values = x.reshape(-1, x.shape[-1]) if lengths is None else _valid_values(x, lengths)
    if np.isnan(values).any():
        known = ~np.isnan(values)
        count, zeros = known.sum(axis=0), np.zeros(values.shape[1])
        mean = np.divide(np.where(known, values, 0.0).sum(axis=0), count, out=zeros.copy(), where=count > 0)
        squares = (np.where(known, values - mean, 0.0) ** 2).sum(axis=0)
        std = np.sqrt(np.divide(squares, count, out=zeros.copy(), where=count > 0))
        return mean, np.where(std > 0, std, 1.0)
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
    preprocessing: Preprocessing | None = None,
) -> Dataset:
    """A Dataset from lists of (T_i, F) series and string labels, padded, labels mapped to ints,
    standardised unless `standardize` is False: with `preprocessing`'s statistics where given, else
    with those of the training split."""
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
    if not standardize:
        preprocessing = None
    else:
        # Fitted on the training split only.
        preprocessing = preprocessing or Preprocessing.fit(x_train, len_train)
        x_train = preprocessing.apply(x_train, len_train)
        x_test = preprocessing.apply(x_test, len_test)
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
        preprocessing=preprocessing,
    )


def _label_key(label: str):
    """Sorts numeric labels numerically ("2" before "10"), others as text."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def validation_split(dataset: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """Holds out a stratified `fraction` of the training series as a validation split.

    Each class gives ``round(fraction * n_c)`` of its n_c training series (drawn with `seed`), and
    keeps at least one for training; the test split is untouched. The returned dataset's
    ``*_validation`` arrays are the held-out series, which the training loop evaluates after every
    epoch to choose an epoch by, so the test split never chooses anything.

    Raises DataError, before any training, for a fraction outside (0, 1), a class that would be left
    without training series, or a split that would hold out nothing.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise DataError(f"the validation split must be a fraction in (0, 1), e.g. 0.2, got {fraction!r}")
    if dataset.x_validation is not None:
        raise DataError(f"{dataset.name} already has a validation split")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))
    held: list[np.ndarray] = []
    for label in range(dataset.num_classes):
        members = np.flatnonzero(dataset.y_train == label)
        count = round(fraction * len(members))
        if count and count >= len(members):
            raise DataError(
                f"a validation split of {fraction:g} would leave class {dataset.classes[label]!r} "
                f"without training series (it has {len(members)}); use a smaller fraction or more data"
            )
        held.append(rng.permutation(members)[:count])
    validation = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    if not len(validation):
        raise DataError(
            f"a validation split of {fraction:g} of {len(dataset.y_train)} training series holds out "
            "no series; use a larger fraction"
        )
    keep = np.setdiff1d(np.arange(len(dataset.y_train)), validation)

    def rows(a: np.ndarray | None, index: np.ndarray) -> np.ndarray | None:
        return None if a is None else a[index]

    return dataclasses.replace(
        dataset,
        x_train=dataset.x_train[keep],
        y_train=dataset.y_train[keep],
        lengths_train=rows(dataset.lengths_train, keep),
        x_validation=dataset.x_train[validation],
        y_validation=dataset.y_train[validation],
        lengths_validation=rows(dataset.lengths_train, validation),
    )
