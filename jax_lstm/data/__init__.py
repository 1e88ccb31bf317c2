"""Datasets, file readers and batching, shared by the JAX and torch training loops (numpy only)."""

from jax_lstm.data.batching import batch_order, epoch_mean, micro_batch_bounds
from jax_lstm.data.builtin import digits, japanese_vowels, japanese_vowels_ts, synthetic
from jax_lstm.data.dataset import (
    DATASET_DEFAULTS,
    DataError,
    Dataset,
    Preprocessing,
    channel_statistics,
    from_series,
    pad_series,
    preprocessing_record,
    standardize_channels,
    validation_split,
)
from jax_lstm.data.dims import Dims
from jax_lstm.data.missing import FILL_METHODS, Filled, fill_series
from jax_lstm.data.ts import TsData, from_ts_data, from_ts_files, load_ts
from jax_lstm.data.windows import TableSpec, WindowDataset

__all__ = [
    "DATASET_DEFAULTS",
    "FILL_METHODS",
    "DataError",
    "Dataset",
    "Dims",
    "Filled",
    "Preprocessing",
    "TableSpec",
    "TsData",
    "WindowDataset",
    "batch_order",
    "channel_statistics",
    "digits",
    "epoch_mean",
    "fill_series",
    "from_series",
    "from_ts_data",
    "from_ts_files",
    "japanese_vowels",
    "japanese_vowels_ts",
    "load_ts",
    "micro_batch_bounds",
    "pad_series",
    "preprocessing_record",
    "standardize_channels",
    "synthetic",
    "validation_split",
]
