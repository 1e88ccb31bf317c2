"""Runs as the command line asks for them, owned by the library: a request (`TrainRequest`,
`ForecastRequest`, built from flags by `flags` or by hand), checked before any work, its data read
and its config resolved once, trained through `jax_lstm.training`, compared with its torch twin when
asked (`torch_side`, the one module of `jax_lstm` that reaches `torch_ref`), and its outputs written
through one metrics writer; an expected failure is a `RunError` with its exit status
(`outputs.exit_status`). The `jax-lstm` command parses flags and calls `run_training`,
`run_forecast` or `run_predict` (a trained classifier on new series, `PredictRequest`).
"""

from jax_lstm.experiment.forecast import run_forecast
from jax_lstm.experiment.outputs import RunError, exit_status
from jax_lstm.experiment.predict import PredictRequest, run_predict
from jax_lstm.experiment.requests import ForecastRequest, OutputPathError, TrainRequest, check_output_file
from jax_lstm.experiment.train import run_training

__all__ = [
    "ForecastRequest",
    "OutputPathError",
    "PredictRequest",
    "RunError",
    "TrainRequest",
    "check_output_file",
    "exit_status",
    "run_forecast",
    "run_predict",
    "run_training",
]
