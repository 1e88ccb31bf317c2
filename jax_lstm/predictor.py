"""A trained classifier, loaded from its checkpoint, classifying new series as training saw its own.

    predictor = jax_lstm.load("run1")           # the --checkpoint-dir of `jax-lstm train`
    predictor.predict(series)                   # (n,) class names; predict_proba: (n, C)
    predictor.classes_, predictor.config        # the classes in order, the TrainConfig it was trained with

`series` are taken as the scikit-learn estimator takes them: a (n, T, F) array, a list of (T_i, F)
arrays of any lengths, or a (n, T) array of univariate series. They go through what the training
series went through, from the checkpoint (`checkpoint.data_description`): the per-channel
standardisation fitted on the training split (in float64, before the cast to the model's dtype),
zero padding to the length the model was built for (or to the longest series, for a model that
takes any length), lengths where the training series had them; then the model in eval mode, in
chunks (`training.predict.predictions`). An ensemble predicts with the mean of its members'
probabilities; a checkpoint of K runs (``--seeds``) predicts with the run of the seed asked for.

A checkpoint written before checkpoints recorded their preprocessing loads, says so
(`Predictor.missing`), and predicts only once told how its training series were scaled: the
training file (``train_data``, whose statistics are refitted exactly as training fitted them) or
``standardize=False``.

`Predictor.export` writes the inference function with `jax.export` (`jax_lstm.exported` loads and
runs it with nothing of the training code).
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from sklearn.utils.validation import check_array

from jax_lstm import data, exported
from jax_lstm.atomic import write_atomically
from jax_lstm.data import Dims, Preprocessing
from jax_lstm.models import registry
from jax_lstm.training import TrainConfig, load_checkpoint, make_model
from jax_lstm.training.checkpoint import Checkpoint, read_description
from jax_lstm.training.predict import predictions

__all__ = ["MissingPreprocessingError", "Predictor", "Series", "as_series", "load", "select_variables"]

# Series as the estimator takes them: (n, T, F) or (n, T) arrays, or a list of (T_i, F) arrays.
Series = ArrayLike | Sequence[ArrayLike]


class MissingPreprocessingError(ValueError):
    """A checkpoint that does not say how its training series were scaled, asked to predict."""


def as_series(
    series: Series, name: str, min_samples: int = 1, dtype: DTypeLike = np.float64
) -> tuple[np.ndarray, np.ndarray | None]:
    """(n, T, F) array of `dtype` and (n,) lengths (None when every series is full length).

    Arrays go through scikit-learn's `check_array` (3-D allowed), so sparse, complex, object, empty
    and non-finite input get scikit-learn's own messages. A list of 2-D arrays of different
    lengths is padded (its lengths returned). A 2-D array (n, T) is n univariate series.
    """
    if isinstance(series, list | tuple) and series and all(np.ndim(s) == 2 for s in series):
        shapes = {np.shape(s) for s in series}
        if len(shapes) > 1:
            # check_array on each series: NaN/inf, dtype and emptiness, named by series index.
            checked = [
                check_array(s, dtype=dtype, input_name=f"{name}: series {i}") for i, s in enumerate(series)
            ]
            if len({s.shape[1] for s in checked}) > 1:
                raise ValueError(
                    f"{name}: series have different feature counts {sorted({s.shape[1] for s in checked})}"
                )
            x, lengths = data.pad_series(checked)
            return x.astype(dtype), lengths
    if isinstance(series, str | bytes):
        raise ValueError(
            f"{name}: X must be series (an (n, time, features) array or a list of (time, features) "
            f"arrays), got a {type(series).__name__}"
        )
    try:
        x = check_array(series, allow_nd=True, dtype=dtype, ensure_min_samples=min_samples, input_name="X")
    except ValueError as err:
        if "X" in str(err):
            raise
        # numpy's conversion messages ("could not convert string to float") do not say which input.
        raise ValueError(f"{name}: X cannot be read as numbers: {err}") from err
    if x.ndim == 2:
        x = x[:, :, None]  # (n, T): univariate series
    if x.ndim != 3:
        raise ValueError(
            f"{name}: expected a (n_series, time, features) array or a list of (time, features) "
            f"arrays, got an array of shape {x.shape}"
        )
    if x.shape[2] == 0:
        raise ValueError(f"{name}: 0 feature(s) (shape={x.shape}) while a minimum of 1 is required.")
    return x, None


def select_variables(loaded: Checkpoint, seed: int | None = None) -> tuple[TrainConfig, dict[str, Any]]:
    """The config and Flax variables a loaded checkpoint predicts with: the weights its selection
    kept (``--select``), else the last epoch's; for K runs (``--seeds``) the run of `seed`; an
    ensemble's members stacked (E, ...). ValueError naming the seeds when K runs and no seed (or
    another one) is given."""
    config = loaded.config
    state = loaded.state if loaded.selection is None else loaded.selection["state"]
    variables = state.variables()
    if loaded.seeds is None:
        if seed is not None and seed != config.seed:
            raise ValueError(f"{loaded.path} holds one model, of seed {config.seed}, not of seed {seed}")
        return config, variables
    size = config.ensemble
    runs = loaded.seeds[::size]  # each run's seed: the first of its members
    if seed is None and len(runs) == 1:
        seed = runs[0]
    if seed not in runs:
        what = "ensembles" if size > 1 else "models"
        asked = "no seed was given" if seed is None else f"not of seed {seed}"
        raise ValueError(
            f"{loaded.path} holds {len(runs)} {what} (seeds {runs}) and {asked}: choose one with --seed S "
            "(seed=S)"
        )
    g = runs.index(seed)
    if size > 1:
        chosen = jax.tree.map(lambda leaf: leaf[g * size : (g + 1) * size], variables)
    else:
        chosen = jax.tree.map(lambda leaf: leaf[g], variables)
    return dataclasses.replace(config, seed=seed), chosen


@dataclasses.dataclass(frozen=True, eq=False)
class Predictor:
    """A trained classifier and what its training series went through.

    Attributes:
      config: the `TrainConfig` it was trained with (``seed``: the run it predicts with).
      dims: its `Dims` (features, classes, the padded length ``seq_len`` it was built for).
      variables: its Flax variables (an ensemble's members stacked (E, ...)).
      classes_: (C,) the class names, in the order of the probabilities' columns.
      preprocessing: the standardisation of new series (None: none, as in training).
      variable_length: the training series had different lengths (padded, with lengths).
      missing: what its checkpoint lacks, written before it was recorded ({field: what}).
      path, epoch: the checkpoint file it came from and its epochs.
    """

    config: TrainConfig
    dims: Dims
    variables: dict[str, Any]
    classes_: np.ndarray
    preprocessing: Preprocessing | None
    variable_length: bool = True
    missing: dict[str, str] = dataclasses.field(default_factory=dict)
    path: Path | None = None
    epoch: int = 0
    # False: the checkpoint does not say how its series were scaled, and nobody has said since.
    preprocessing_known: bool = True

    @property
    def n_features_in_(self) -> int:
        return self.dims.num_features

    @property
    def fixed_length(self) -> bool:
        """Whether the model takes series of at most its padded length only (the FCN models, whose
        LSTM steps over the variables with the whole series as its input)."""
        return "seq_len" in registry.get(self.config.model).dims_args(self.dims)

    def check(self, num_features: int, longest: int, where: str = "series", which: str = "a series") -> None:
        """Refuses, before any work, series the model cannot take: another channel count, longer
        than a fixed-length model's length, or any when the preprocessing is unknown. `where` names
        the series in the messages, `which` the longest one."""
        if num_features != self.dims.num_features:
            raise ValueError(
                f"{where} have {num_features} channels (features), but the model was trained on series of "
                f"{self.dims.num_features}: give series of the same channels, in the same order"
            )
        if self.fixed_length and longest > self.dims.seq_len:
            raise ValueError(
                f"{which} has {longest} steps, but {self.config.model} was built for series "
                f"of at most {self.dims.seq_len} steps (its LSTM steps over the variables, each step a "
                "whole series): truncate or resample them, or train on series this long"
            )
        if not self.preprocessing_known:
            raise MissingPreprocessingError(_unknown_preprocessing(self.path))

    def prepare(
        self, x: np.ndarray, lengths: np.ndarray | None, where: str = "series"
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(n, T, F) series (right-padded, `lengths` (n,) or None) -> the model's input: standardised
        in float64 as training did, zero-padded to the model's length (or to the longest series),
        cast to the config's dtype; lengths where training had them or a series is shorter."""
        x = np.asarray(x, np.float64)
        n, steps, features = x.shape
        full = np.full(n, steps, np.int32) if lengths is None else np.asarray(lengths, np.int32)
        self.check(features, int(full.max()) if n else 0, where)
        length = max(self.dims.seq_len, int(full.max()) if n else steps)
        if length > steps:
            x = np.concatenate([x, np.zeros((n, length - steps, features))], axis=1)
        elif length < steps:  # padding beyond the longest series
            x = x[:, :length]
        if self.preprocessing is not None:
            x = self.preprocessing.apply(x, full)
        elif lengths is not None:
            x = np.where((np.arange(length)[None, :] < full[:, None])[..., None], x, 0.0)
        needs_lengths = self.variable_length or bool((full < length).any())
        return x.astype(self.config.dtype), (full if needs_lengths else None)

    def predict_proba(
        self, series: Series, batch_size: int | None = None, progress: Callable[[int], Any] | None = None
    ) -> np.ndarray:
        """(n, C) class probabilities (float64, rows sum to 1), columns in the order of
        ``classes_``; an ensemble's the mean of its members'. `batch_size`: series per chunk
        (default the config's ``eval_batch_size``, as training evaluated); `progress(rows)` after each."""
        x, lengths = self.prepare(*as_series(series, "predict"))
        return predictions(self.config, self.dims, self.variables, x, lengths, batch_size, progress)

    def predict(self, series: Series, batch_size: int | None = None) -> np.ndarray:
        """(n,) predicted classes (values of ``classes_``)."""
        return self.classes_[np.argmax(self.predict_proba(series, batch_size), axis=1)]

    def export(self, path: str | Path, batch_size: int | None = None) -> Path:
        """Writes the inference function as a `jax.export` artefact (``.jaxexport``): the model's
        eval-mode logits for a batch of prepared series as serialised StableHLO, with and without
        lengths, its weights, the preprocessing and the class names beside it, one file
        (`jax_lstm.exported.load_exported` runs it). `batch_size`: a fixed batch (the loader
        pads the last chunk), or None for a symbolic one (any batch). The series' length is
        symbolic too, except for a fixed-length model and a model whose program fixes it
        (`ModelEntry.symbolic_length`, the 2-D MDLSTM's): those take series up to the training
        length."""
        if not self.preprocessing_known:
            raise MissingPreprocessingError(_unknown_preprocessing(self.path))
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"the export's batch size must be at least 1, got {batch_size}")
        model = make_model(self.config, self.dims)
        ensemble = self.config.ensemble
        leaves, tree = jax.tree.flatten(self.variables)

        def logits(weights, x, lengths=None):
            variables = jax.tree.unflatten(tree, weights)
            members = [variables]
            if ensemble > 1:
                members = [jax.tree.map(lambda leaf, e=e: leaf[e], variables) for e in range(ensemble)]
            outs = [model.apply(m, x, train=False, lengths=lengths) for m in members]
            return jnp.stack(outs)  # (E, B, C)

        # Symbolic sizes share one scope: a symbolic batch "b" and, for a model of any length, a
        # symbolic length "t" (a fixed-length model's is its own, and so is the length of a model
        # whose program cannot leave it symbolic: its artefact takes series up to that length).
        fixed_length = self.fixed_length or not registry.get(self.config.model).symbolic_length
        if batch_size is None and not fixed_length:
            batch, length = jax.export.symbolic_shape("b, t")
        elif batch_size is None:
            (batch,), length = jax.export.symbolic_shape("b"), self.dims.seq_len
        elif not fixed_length:
            batch, (length,) = batch_size, jax.export.symbolic_shape("t")
        else:
            batch, length = batch_size, self.dims.seq_len
        weights = [jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype) for a in leaves]
        x = jax.ShapeDtypeStruct((batch, length, self.dims.num_features), jnp.dtype(self.config.dtype))
        lengths = jax.ShapeDtypeStruct((batch,), jnp.int32)
        with_lengths = jax.export.export(jax.jit(logits))(weights, x, lengths)
        full = jax.export.export(jax.jit(lambda w, x: logits(w, x)))(weights, x)
        meta = {
            "format": exported.FORMAT,
            "task": "classification",
            "model": self.config.model,
            "classes": [str(c) for c in self.classes_],
            "num_features": self.dims.num_features,
            "seq_len": self.dims.seq_len,
            "fixed_length": fixed_length,
            "variable_length": self.variable_length,
            "batch_size": batch_size,
            "dtype": self.config.dtype,
            "ensemble": ensemble,
            "num_weights": len(leaves),
            "preprocessing": data.preprocessing_record(self.preprocessing),
            "epochs": self.epoch,
        }
        arrays = {f"weight_{i}": np.asarray(a) for i, a in enumerate(leaves)}
        arrays["with_lengths"] = np.frombuffer(bytes(with_lengths.serialize()), np.uint8)
        arrays["full_length"] = np.frombuffer(bytes(full.serialize()), np.uint8)
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return write_atomically(path, buffer.getvalue())

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        seed: int | None = None,
        train_data: str | Path | Sequence[np.ndarray] | np.ndarray | None = None,
        standardize: bool | None = None,
        log: Callable[[str], None] | None = None,
    ) -> Predictor:
        """The classifier in `directory` (a ``--checkpoint-dir``, or the .msgpack file).

        Args:
          seed: the run to predict with, for a checkpoint of K runs (``--seeds``).
          train_data, standardize: only for a checkpoint that does not record its preprocessing
            (written before it was recorded): the training .ts file (or its series), whose
            per-channel statistics are refitted as training fitted them; or ``standardize=False``
            for a model trained on series as they are (``--no-standardize``).
          log: where a fallback to the previous checkpoint is said.

        Raises:
          CheckpointError: no checkpoint, or a corrupt one. ValueError: a forecaster's checkpoint,
            a seed it does not hold, train_data or standardize given where the checkpoint says.
        """
        fields, _ = read_description(directory)
        if fields.get("dtype") == "float64" and not jax.config.read("jax_enable_x64"):
            raise ValueError(
                f"{directory} was trained in float64: switch JAX's 64-bit mode on before loading it "
                "(jax.config.update('jax_enable_x64', True))"
            )
        loaded = load_checkpoint(directory, log)
        entry = registry.get(loaded.config.model)
        if entry.task != "classification":
            raise ValueError(
                f"{loaded.path} holds a {entry.task} model ({entry.name}); load it with "
                "jax_lstm.forecasting.load_forecaster, or forecast with jax-lstm forecast --from-checkpoint"
            )
        config, variables = select_variables(loaded, seed)
        description = loaded.data
        missing = loaded.missing
        known = True
        if "preprocessing" in description:
            if train_data is not None or standardize is not None:
                raise ValueError(
                    f"{loaded.path} records how its training series were scaled; train_data and "
                    "standardize are for checkpoints written before that was recorded"
                )
            preprocessing = Preprocessing.from_dict(description["preprocessing"])
        elif train_data is not None:
            if standardize is False:
                raise ValueError(
                    "train_data refits the standardisation; do not pass standardize=False with it"
                )
            preprocessing = _refit(train_data)
        elif standardize is False:
            preprocessing = None
        else:
            preprocessing, known = None, False
        estimator = loaded.annotations.get("estimator", {})
        classes = np.asarray(estimator.get("classes", description["classes"]))
        return cls(
            config=config,
            dims=loaded.dims,
            variables=jax.device_get(variables),
            classes_=classes,
            preprocessing=preprocessing,
            variable_length=bool(description.get("variable_length", True)),
            missing=missing,
            path=loaded.path,
            epoch=loaded.epoch,
            preprocessing_known=known,
        )


def _refit(train_data) -> Preprocessing:
    """The standardisation training fitted: the statistics of the training file's series (or of
    the series given) over their valid steps."""
    if isinstance(train_data, str | Path):
        ts = data.load_ts(train_data)
        ts.check_missing()
        x, lengths = data.pad_series(ts.series)
    else:
        x, lengths = as_series(train_data, "train_data")
    return Preprocessing.fit(x, lengths)


def _unknown_preprocessing(path: Path | None) -> str:
    return (
        f"{path or 'the checkpoint'} was written before checkpoints recorded their preprocessing: it does "
        "not say whether (or how) its training series were standardised, so new series cannot be scaled "
        "as training scaled them. Give the training file it was trained on (--train-data TRAIN.ts; "
        "train_data=...), whose statistics are refitted exactly, or --no-standardize (standardize=False) "
        "if it was trained with --no-standardize"
    )


def load(directory: str | Path, **options: Any) -> Predictor:
    """`Predictor.load`: the classifier of a checkpoint directory, ready to predict."""
    return Predictor.load(directory, **options)
