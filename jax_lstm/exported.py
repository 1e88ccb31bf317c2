"""Running a ``.jaxexport`` artefact (``jax-lstm export DIR model.jaxexport``) with numpy and jax only.

    model = jax_lstm.load_exported("model.jaxexport")
    model.predict(series); model.predict_proba(series); model.classes_

The artefact is one numpy ``.npz`` file: the model's eval-mode logits as serialised StableHLO
(`jax.export`; one program for series with lengths, one for full-length series), its weights (the
programs' first argument, in order), and ``meta`` (JSON: the class names, the preprocessing fitted
on the training split, the length the model was built for, the batch size it was exported for).
This module imports nothing of jax_lstm, so it runs where the training code is not installed (copy
this file beside the artefact): it prepares series exactly as `jax_lstm.predictor.Predictor`
prepares them (float64 standardisation, zero padding, lengths where training had them) and
combines an ensemble's members as it does (the mean of their softmax, in float64), so its
probabilities are the predictor's.

Without this module, five lines of jax run it (x: (B, T, F) standardised and zero-padded, lengths
(B,) int32)::

    import json, numpy as np; from jax import export
    art = np.load("model.jaxexport"); meta = json.loads(art["meta"].tobytes())
    run = export.deserialize(bytearray(art["with_lengths"].tobytes()))
    weights = [art[f"weight_{i}"] for i in range(meta["num_weights"])]
    logits = run.call(weights, x, lengths)  # (E, B, C): softmax each member's, then their mean
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["FORMAT", "ExportedClassifier", "load_exported"]

# (n, T, F) or (n, T) arrays, or a list of (T_i, F) arrays (jax_lstm.predictor.Series).
Series = ArrayLike | list[ArrayLike] | tuple[ArrayLike, ...]

FORMAT = "jax-lstm-export/1"


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=-1, keepdims=True)


def _series(series: Series) -> tuple[np.ndarray, np.ndarray | None]:
    """(n, T, F) float64 and (n,) lengths (None: every series full length) of a (n, T, F) array, a
    list of (T_i, F) arrays, or a (n, T) array of univariate series."""
    if isinstance(series, list | tuple) and series and all(np.ndim(s) == 2 for s in series):
        arrays = [np.asarray(s, np.float64) for s in series]
        if len({a.shape for a in arrays}) > 1:
            if len({a.shape[1] for a in arrays}) > 1:
                raise ValueError(
                    f"series have different feature counts {sorted({a.shape[1] for a in arrays})}"
                )
            lengths = np.asarray([len(a) for a in arrays], np.int32)
            x = np.zeros((len(arrays), int(lengths.max()), arrays[0].shape[1]))
            for i, a in enumerate(arrays):
                x[i, : len(a)] = a
            return x, lengths
    x = np.asarray(series, np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or not x.size:
        raise ValueError(f"expected (n, time, features) series, got shape {x.shape}")
    return x, None


class ExportedClassifier:
    """A loaded ``.jaxexport`` classifier: `predict_proba`, `predict`, `classes_`, `meta`."""

    def __init__(self, arrays: Any) -> None:
        from jax import export

        self.meta: dict[str, Any] = json.loads(arrays["meta"].tobytes().decode("utf-8"))
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} artefact (format {self.meta.get('format')!r})")
        self.weights = [arrays[f"weight_{i}"] for i in range(self.meta["num_weights"])]
        self._with_lengths = export.deserialize(bytearray(arrays["with_lengths"].tobytes()))
        self._full_length = export.deserialize(bytearray(arrays["full_length"].tobytes()))
        self.classes_ = np.asarray(self.meta["classes"])
        pre = self.meta["preprocessing"]
        self.mean = None if pre["kind"] == "none" else np.asarray(pre["mean"], np.float64)
        self.scale = None if pre["kind"] == "none" else np.asarray(pre["scale"], np.float64)

    def prepare(self, series: Series) -> tuple[np.ndarray, np.ndarray | None]:
        """Series -> the programs' input, as the predictor prepares them: (B, T, F), lengths or None."""
        x, lengths = _series(series)
        n, steps, features = x.shape
        meta = self.meta
        full = np.full(n, steps, np.int32) if lengths is None else lengths
        if features != meta["num_features"]:
            raise ValueError(
                f"series have {features} channels (features), but the model was trained on series of "
                f"{meta['num_features']}"
            )
        longest = int(full.max())
        if meta["fixed_length"] and longest > meta["seq_len"]:
            raise ValueError(
                f"a series has {longest} steps, but the model was built for series of at most "
                f"{meta['seq_len']}"
            )
        length = max(meta["seq_len"], longest)
        if length > steps:
            x = np.concatenate([x, np.zeros((n, length - steps, features))], axis=1)
        mask = (np.arange(length)[None, :] < full[:, None])[..., None]
        if self.mean is not None:
            x = np.where(mask, (x - self.mean) / self.scale, 0.0)
        elif lengths is not None:
            x = np.where(mask, x, 0.0)
        needs_lengths = meta["variable_length"] or bool((full < length).any())
        return x.astype(meta["dtype"]), (full if needs_lengths else None)

    def logits(self, x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
        """(E, B, C) float64 logits of prepared series, in chunks of the exported batch size (the
        last chunk padded with empty rows) or at once for a symbolic batch."""
        size = self.meta["batch_size"] or len(x)
        run = self._full_length if lengths is None else self._with_lengths
        parts = []
        for lo in range(0, len(x), size):
            chunk = x[lo : lo + size]
            rows = len(chunk)
            chunk_lengths = None if lengths is None else lengths[lo : lo + size]
            if rows < size:  # a fixed batch: pad with rows of length 1 and drop their outputs
                chunk = np.concatenate([chunk, np.zeros((size - rows, *chunk.shape[1:]), chunk.dtype)])
                if chunk_lengths is not None:
                    chunk_lengths = np.concatenate([chunk_lengths, np.ones(size - rows, np.int32)])
            args = (self.weights, chunk) if chunk_lengths is None else (self.weights, chunk, chunk_lengths)
            parts.append(np.asarray(run.call(*args), np.float64)[:, :rows])
        return np.concatenate(parts, axis=1)

    def predict_proba(self, series: Series) -> np.ndarray:
        """(n, C) class probabilities (an ensemble's: the mean of its members' softmax)."""
        logits = self.logits(*self.prepare(series))
        return np.mean([_softmax(member) for member in logits], axis=0)

    def predict(self, series: Series) -> np.ndarray:
        """(n,) predicted class names."""
        return self.classes_[np.argmax(self.predict_proba(series), axis=1)]


def load_exported(path: str | Path) -> ExportedClassifier:
    """The artefact at `path`, ready to predict (`ExportedClassifier`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    with np.load(path, allow_pickle=False) as arrays:
        return ExportedClassifier(arrays)
