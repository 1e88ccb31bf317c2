"""What a run is asked for (`TrainRequest`, `ForecastRequest`), checked before any work and prepared:
the data read once, then the config resolved once from the data (`resolve_config`).

A request holds plain values (file names, flags' values, `TrainConfig` fields given), so a script
builds one as easily as the command line does (`jax_lstm.experiment.flags`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jax_lstm import data as datasets
from jax_lstm.atomic import check_can_create
from jax_lstm.data import Dataset
from jax_lstm.models import registry
from jax_lstm.training import TrainConfig, resolve_config
from jax_lstm.training.checkpoint import check_directory
from jax_lstm.training.config import SEED_RANGE, seed_in_range

__all__ = [
    "BUILTIN_DATASETS",
    "ForecastRequest",
    "OutputPathError",
    "TrainRequest",
    "check_output_file",
]

BUILTIN_DATASETS = ("japanese-vowels", "synthetic", "digits")


class OutputPathError(ValueError):
    """An output path that cannot be written: refused before any work."""


def check_output_file(
    path: str | Path, flag: str, suffixes: tuple[str, ...], what: str | None = None
) -> Path:
    """Refuses, before any work, an output file path that is a directory, lies under a file, sits in
    a directory that is not writable, or lacks one of `suffixes` (the format that will be written;
    `what` names it where the first suffix alone would not, e.g. a choice of formats)."""
    path = Path(path)
    if path.is_dir() or str(path).endswith(os.sep):
        example = path / f"out{suffixes[0]}"
        raise OutputPathError(f"{flag} {path} is a directory; give a file name, e.g. {example}")
    if path.suffix.lower() not in suffixes:
        raise OutputPathError(
            f"{flag} {path}: writes {what or suffixes[0][1:].upper()}, so the name must end in "
            f"{' or '.join(suffixes)} (e.g. {path.with_suffix(suffixes[0])})"
        )
    try:
        check_can_create(path, f"{flag} {path}")
    except ValueError as err:
        raise OutputPathError(str(err)) from None
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(f"{flag} {path} exists and is not writable")
    return path


@dataclasses.dataclass(frozen=True)
class _Outputs:
    """What every run may write and how it may end (shared by both requests)."""

    checkpoint_dir: str | None = None
    resume: bool = False
    overwrite: bool = False
    metrics_json: str | None = None
    plot: str | None = None
    compare_torch: bool = False
    quiet: bool = False

    def check_outputs(self) -> None:
        """Flag combinations that cannot work and every output path, before any data is read."""
        if self.resume and not self.checkpoint_dir:
            raise ValueError("--resume needs --checkpoint-dir")
        if self.overwrite and not self.checkpoint_dir:
            raise ValueError("--overwrite needs --checkpoint-dir (it starts over in that directory)")
        if self.compare_torch and self.resume:
            raise ValueError("--compare-torch starts both sides from the same weights; it cannot --resume")
        if self.metrics_json:
            check_output_file(self.metrics_json, "--metrics-json", (".json",))
        if self.plot:
            check_output_file(self.plot, "--plot", (".png",))
        if self.checkpoint_dir:
            check_directory(self.checkpoint_dir, resume=self.resume, overwrite=self.overwrite)


@dataclasses.dataclass(frozen=True)
class TrainRequest(_Outputs):
    """A classification run (``jax-lstm train``): the model, the data, the settings given (`TrainConfig`
    fields; None: the recipe's), K seeds, and the outputs."""

    model: str = "lstm"
    dataset: str = "japanese-vowels"  # a built-in dataset (BUILTIN_DATASETS), unless `data` is given
    data: str | None = None  # TRAIN.ts
    test_data: str | None = None  # TEST.ts
    standardize: bool = True
    fill: str | None = "interpolate"  # a .ts file's missing values (`jax_lstm.data.FILL_METHODS`)
    validation_split: float | None = None
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    seeds: int = 1  # K models, seeds seed .. seed+K-1, trained at once
    plot_attention: str | None = None

    def check(self) -> None:
        """Refuses what cannot work, before any data is read or work is done."""
        if self.seeds < 1:
            raise ValueError(f"--seeds must be at least 1, got {self.seeds}")
        if self.seeds > 1:
            clashing = [
                flag
                for flag, used in (
                    ("--compare-torch", self.compare_torch),
                    ("--plot", self.plot),
                    ("--plot-attention", self.plot_attention),
                )
                if used
            ]
            if clashing:
                raise ValueError(
                    f"--seeds trains several models at once; it does not combine with {clashing[0]}"
                )
        if self.plot_attention:
            entry = registry.get(self.model)
            if not entry.attention:
                with_attention = [n for n in registry.names("classification") if registry.get(n).attention]
                raise ValueError(
                    f"--plot-attention draws attention weights, and model {self.model!r} has none: "
                    f"use --model {' or '.join(with_attention)}"
                )
            check_output_file(self.plot_attention, "--plot-attention", (".png",))
        registry.get(self.model)  # an unknown model is named before any data is read
        seed = self.settings.get("seed")
        if seed is not None and not seed_in_range(seed):  # before it draws the data of a seed
            raise ValueError(SEED_RANGE.format(seed))
        self.check_outputs()

    def given_settings(self) -> dict[str, Any]:
        """The TrainConfig fields the request sets (None: the recipe's): its settings, the
        selection a validation split implies, no step lines when quiet."""
        given = dict(self.settings)
        if self.validation_split is not None and given.get("select") is None:
            given["select"] = "validation"
        if self.quiet:
            given.setdefault("log_every", 0)
        return given

    def load_data(self) -> Dataset:
        """The Dataset asked for (raises DataError on bad files), with its validation split."""
        if self.data or self.test_data:
            if not (self.data and self.test_data):
                raise datasets.DataError("--data and --test-data go together: pass both .ts files")
            dataset = datasets.from_ts_files(
                self.data, self.test_data, standardize=self.standardize, fill=self.fill
            )
        elif self.dataset == "synthetic":
            dataset = datasets.synthetic(seed=int(self.settings.get("seed") or 0))
        elif self.dataset == "digits":
            dataset = datasets.digits()
        elif self.dataset == "japanese-vowels":
            dataset = datasets.japanese_vowels(standardize=self.standardize)
        else:
            raise ValueError(f"dataset must be one of {BUILTIN_DATASETS}, got {self.dataset!r}")
        dataset.validate()
        if self.validation_split is not None:
            seed = int(self.settings.get("seed") or 0)
            dataset = datasets.validation_split(dataset, self.validation_split, seed=seed)
        return dataset

    def prepare(self) -> tuple[Dataset, TrainConfig]:
        """Checks, reads the data, and resolves the config once, from the data."""
        self.check()
        dataset = self.load_data()
        return dataset, resolve_config(self.model, dataset, **self.given_settings())

    def seed_list(self, ensemble: int = 1) -> list[int] | None:
        """The K runs' seeds (None: one run): seed, seed + E, ... for ensembles of E members, each
        taking E seeds."""
        if self.seeds == 1:
            return None
        seed = int(self.settings.get("seed") or 0)
        return [seed + ensemble * k for k in range(self.seeds)]


@dataclasses.dataclass(frozen=True)
class ForecastRequest(_Outputs):
    """A forecasting run (``jax-lstm forecast``): the table and its periods, the settings given
    (`TrainConfig` fields; None: the forecaster's recipe), and the outputs."""

    data: str | None = None  # FILE.csv; None: the embedded Seattle weather
    time_column: str | None = None
    targets: tuple[str, ...] | None = None
    features: tuple[str, ...] | None = None
    fill: str | None = None
    season: int | None = None
    horizon: int | None = None
    lookback: int | None = None
    test_size: int | None = None
    val_fraction: float | None = None
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    output: str | None = None  # FUTURE.csv: the H steps after the table's last row, with intervals
    intervals: tuple[float, ...] = (0.8, 0.95)  # the levels of the prediction intervals
    from_checkpoint: str | None = None  # DIR: forecast with its model, without training

    def check(self) -> None:
        """Refuses what cannot work, before the table is read."""
        if self.output:
            check_output_file(self.output, "--output", (".csv",))
        if self.from_checkpoint:
            self._check_from_checkpoint()
            return
        if not self.data:
            given = [
                flag for flag, value in (("--time-column", self.time_column), ("--fill", self.fill)) if value
            ]
            if given:
                raise ValueError(f"{given[0]} describes a --data file; pass --data FILE.csv with it")
        if self.season is not None and self.season < 1:
            raise ValueError(f"--season must be at least 1, got {self.season}")
        self.check_outputs()

    def _check_from_checkpoint(self) -> None:
        """--from-checkpoint forecasts with the checkpoint's model as trained: the flags that shape
        a model, its periods or its training are refused by name."""
        # Flags with argparse defaults (seed, dtype) are the checkpoint's own and not asked for here.
        given = [
            f"--{name.replace('_', '-')}"
            for name, value in self.settings.items()
            if value is not None and name not in ("seed", "dtype")
        ]
        given += [
            flag
            for flag, value in (
                ("--targets", self.targets),
                ("--features", self.features),
                ("--season", self.season),
                ("--horizon", self.horizon),
                ("--lookback", self.lookback),
                ("--test-size", self.test_size),
                ("--val-fraction", self.val_fraction),
                ("--checkpoint-dir", self.checkpoint_dir),
                ("--resume", self.resume),
                ("--overwrite", self.overwrite),
                ("--metrics-json", self.metrics_json),
                ("--plot", self.plot),
                ("--compare-torch", self.compare_torch),
            )
            if value
        ]
        if given:
            raise ValueError(
                f"--from-checkpoint forecasts with the trained model as it is, without training: {given[0]} "
                "does not apply (the model's columns, horizon and lookback are the checkpoint's)"
            )
        if not self.output:
            raise ValueError(
                "--from-checkpoint writes the forecast of the next steps: give --output FUTURE.csv"
            )

    def load_table(self):
        """The table asked for (`jax_lstm.forecasting.Table`)."""
        from jax_lstm import forecasting as fc

        targets = None if self.targets is None else list(self.targets)
        features = None if self.features is None else list(self.features)
        if self.data:
            table = fc.read_table(
                self.data, time_column=self.time_column, targets=targets, features=features, fill=self.fill
            )
        else:
            table = fc.seattle_weather(targets=targets, features=features)
        if self.season is not None:
            table = dataclasses.replace(table, season=self.season)
        return table
