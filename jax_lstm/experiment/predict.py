"""Classifying new series with a trained model (``jax-lstm predict``): the request checked, the
checkpoint's classifier loaded (`jax_lstm.predictor.Predictor`), the .ts file read and checked
against it before any work, its series classified in chunks, and one CSV row per series written
atomically (``index``, ``label``, ``prob_<class>`` for every class, ``true_label`` when the file has
labels), with the accuracy printed (a labelled file) or a summary of the predicted classes.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from jax_lstm import data as datasets
from jax_lstm.atomic import write_atomically
from jax_lstm.data import DataError
from jax_lstm.experiment import outputs
from jax_lstm.experiment.requests import check_output_file
from jax_lstm.predictor import MissingPreprocessingError, Predictor
from jax_lstm.training import CheckpointError
from jax_lstm.training.checkpoint import read_description
from jax_lstm.training.predict import predictions

__all__ = ["PredictRequest", "enable_dtype", "prediction_rows", "run_predict"]


@dataclasses.dataclass(frozen=True)
class PredictRequest:
    """A prediction run (``jax-lstm predict``): the checkpoint, the series, where the rows go."""

    checkpoint_dir: str
    data: str  # FILE.ts (labelled or @classLabel false)
    output: str  # PREDICTIONS.csv
    batch_size: int | None = None  # series per chunk; None: the config's eval_batch_size
    seed: int | None = None  # the run of a checkpoint of K runs (--seeds)
    train_data: str | None = None  # TRAIN.ts: a checkpoint without its preprocessing, refitted
    no_standardize: bool = False  # a checkpoint without its preprocessing, trained unstandardised
    fill: str | None = "interpolate"  # missing values (`jax_lstm.data.FILL_METHODS`); None refuses
    metrics_json: str | None = None
    quiet: bool = False

    def check(self) -> None:
        """Refuses what cannot work before the checkpoint or the file is read."""
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.train_data and self.no_standardize:
            raise ValueError(
                "--train-data refits the standardisation and --no-standardize skips it: pass one"
            )
        if not Path(self.data).exists():
            raise DataError(f"{self.data}: no such file")
        check_output_file(self.output, "--output", (".csv",))
        if self.metrics_json:
            check_output_file(self.metrics_json, "--metrics-json", (".json",))

    def load(self) -> Predictor:
        """The checkpoint's classifier (after `enable_dtype`)."""
        return Predictor.load(
            self.checkpoint_dir,
            seed=self.seed,
            train_data=self.train_data,
            standardize=False if self.no_standardize else None,
            log=None if self.quiet else print,
        )


def enable_dtype(checkpoint_dir: str) -> None:
    """Switches JAX's 64-bit mode on for a checkpoint trained in float64 (as ``--dtype float64``
    does for training), before any array exists."""
    import jax

    config, _ = read_description(checkpoint_dir)
    if config.get("dtype") == "float64" and not jax.config.read("jax_enable_x64"):
        jax.config.update("jax_enable_x64", True)


def _check_series(predictor: Predictor, ts: datasets.TsData) -> None:
    """Refuses the file before any work, naming the first series the model cannot take."""
    features = ts.series[0].shape[1]
    if features != predictor.dims.num_features:
        predictor.check(features, 0, f"{ts.path}: the series")
    if predictor.fixed_length:
        lengths = np.asarray([len(s) for s in ts.series])
        if lengths.max() > predictor.dims.seq_len:
            i = int(np.argmax(lengths > predictor.dims.seq_len))
            predictor.check(features, int(lengths[i]), ts.path, ts.where(i))
    predictor.check(features, 0, ts.path)  # the preprocessing must be known


def prediction_rows(
    probabilities: np.ndarray, classes: np.ndarray, true_labels: list[str] | None = None
) -> tuple[list[str], list[list[Any]]]:
    """The CSV's header and rows: ``index``, ``label``, ``prob_<class>`` per class, ``true_label``."""
    names = [str(c) for c in classes]
    header = ["index", "label", *[f"prob_{c}" for c in names]]
    if true_labels is not None:
        header.append("true_label")
    predicted = np.argmax(probabilities, axis=1)
    rows = []
    for i, (row, k) in enumerate(zip(probabilities, predicted, strict=True)):
        cells: list[Any] = [i, names[k], *(repr(float(p)) for p in row)]
        if true_labels is not None:
            cells.append(true_labels[i])
        rows.append(cells)
    return header, rows


def _csv(header: list[str], rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _progress(total: int, quiet: bool):
    """A tqdm bar on a terminal; otherwise a line at every tenth of the series (none when quiet)."""
    if quiet:
        return None, lambda: None
    factory = outputs.progress_factory()
    if factory is not None:
        bar = factory(total, 0)
        return bar.update, bar.close
    done = [0, 0]  # rows so far, tenths printed

    def line(rows: int) -> None:
        done[0] += rows
        tenth = 10 * done[0] // total
        if tenth > done[1] and done[0] < total:
            done[1] = tenth
            print(f"predicted {done[0]}/{total} series", flush=True)

    return line, lambda: None


def run_predict(request: PredictRequest) -> int:
    """Runs `request`; returns 0. Expected failures raise `outputs.RunError`: bad input (flags,
    files, a checkpoint that cannot be used, series the model cannot take) 2, the CSV or metrics
    that could not be written 4."""
    try:
        request.check()
        enable_dtype(request.checkpoint_dir)
        predictor = request.load()
        ts = datasets.load_ts(request.data)
        # A channel missing throughout a series takes the training mean, as in training.
        pre = predictor.preprocessing
        means = np.zeros(predictor.dims.num_features) if pre is None else pre.mean
        if ts.series[0].shape[-1] != len(means):
            means = None  # `_check_series` names the mismatch
        ts, filled = ts.fill_missing(request.fill, means)
        _check_series(predictor, ts)  # the channels first: they decide whether `means` fit
        ts.check_missing()
    except (DataError, CheckpointError, MissingPreprocessingError, ValueError, FileNotFoundError) as err:
        raise outputs.RunError(str(err)) from err
    config = predictor.config
    what = f"ensemble of {config.ensemble}, " if config.ensemble > 1 else ""
    print(
        f"{predictor.path}: {config.model} ({what}seed {config.seed}) after {predictor.epoch} epochs, "
        f"{predictor.dims.num_features} channels, classes {[str(c) for c in predictor.classes_]}"
    )
    lengths_read = np.asarray([len(s) for s in ts.series])
    labelled = "labelled" if ts.labelled else "unlabelled"
    print(
        f"{ts.path}: {len(ts.series)} {labelled} series, lengths {lengths_read.min()}-{lengths_read.max()}",
        flush=True,
    )
    if request.fill and filled.describe(ts.path, request.fill):
        print(filled.describe(ts.path, request.fill))
    x, lengths = datasets.pad_series(ts.series)
    x, lengths = predictor.prepare(x, lengths, ts.path)
    update, close = _progress(len(x) * max(1, config.ensemble), request.quiet)
    try:
        probabilities = predictions(
            config, predictor.dims, predictor.variables, x, lengths, request.batch_size, update
        )
    finally:
        close()
    header, rows = prediction_rows(probabilities, predictor.classes_, ts.labels)
    names = [str(c) for c in predictor.classes_]
    predicted = [names[k] for k in np.argmax(probabilities, axis=1)]
    record: dict[str, Any] = {
        "task": "prediction",
        "checkpoint": str(predictor.path),
        "data": ts.path,
        "series": len(rows),
        "classes": names,
        "predicted": dict(Counter(predicted)),
    }
    if ts.labelled:
        correct = sum(p == t for p, t in zip(predicted, ts.labels, strict=True))
        accuracy = correct / len(rows)
        unknown = sorted(set(ts.labels) - set(names))
        if unknown:
            print(f"note: labels {unknown} never occur in training; their series count as misclassified")
        print(f"accuracy {100 * accuracy:.2f}% ({correct} of {len(rows)} series)")
        record.update({"accuracy": accuracy, "correct": correct})
    else:
        counts = Counter(predicted)
        summary = ", ".join(f"{c} {counts[c]}" for c in names if counts[c])
        print(f"predicted classes: {summary}")
    try:
        write_atomically(request.output, _csv(header, rows))
    except OSError as err:
        raise outputs.RunError(
            f"could not write {request.output}: {err.strerror or err}", outputs.EXIT_WRITE_FAILED
        ) from err
    print(f"predictions written to {request.output}")
    outputs.write_outputs(request.metrics_json, record)
    sys.stdout.flush()
    return 0
