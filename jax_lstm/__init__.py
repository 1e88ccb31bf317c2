"""jax-lstm: torch's recurrent family (LSTM, GRU, RNN and their cells) in JAX/Flax with exact parity,
the article's classifiers, and training as pure functions of a state.

`import jax_lstm` never imports torch; only `to_torch` needs it, and imports it when called.

A trained model in use: `load` (a checkpoint directory -> a `Predictor`, or a forecaster's
`Forecaster`), `load_exported` (a ``.jaxexport`` artefact, run with jax alone).
"""

from jax_lstm import data, functional
from jax_lstm.exported import load_exported
from jax_lstm.interop import from_torch, to_torch
from jax_lstm.models import (
    AttentionLSTMClassifier,
    BNLSTMClassifier,
    LSTMClassifier,
    LSTMFCNClassifier,
    LSTMForecaster,
    MDLSTMClassifier,
    MLSTMFCNClassifier,
)
from jax_lstm.nn import BatchNorm1d, Conv1d, Linear
from jax_lstm.optim import PlateauState, adam, clip_grad_norm, reduce_lr_on_plateau
from jax_lstm.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, LSTMSpec, MDLSTM2d, RNNCell, RNNSpec
from jax_lstm.training import EpochRecord, TrainConfig, TrainState, fit, fit_many

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "AttentionLSTMClassifier",
    "BNLSTMClassifier",
    "BatchNorm1d",
    "Conv1d",
    "EpochRecord",
    "GRUCell",
    "LSTMCell",
    "LSTMClassifier",
    "LSTMFCNClassifier",
    "LSTMForecaster",
    "LSTMSequenceClassifier",
    "LSTMSpec",
    "Linear",
    "MDLSTM2d",
    "MDLSTMClassifier",
    "MLSTMFCNClassifier",
    "PlateauState",
    "RNNCell",
    "RNNSpec",
    "TrainConfig",
    "TrainState",
    "adam",
    "clip_grad_norm",
    "data",
    "fit",
    "fit_many",
    "from_torch",
    "functional",
    "load",
    "load_exported",
    "reduce_lr_on_plateau",
    "to_torch",
]


def load(directory, **options):
    """The trained model of a checkpoint directory (``--checkpoint-dir``), ready to use: a
    classifier's `jax_lstm.predictor.Predictor` (``predict``, ``predict_proba``, ``classes_``,
    ``config``), or a forecaster's `jax_lstm.forecasting.Forecaster` (``predict()``: the steps after
    its table). `options` are `Predictor.load`'s (seed, train_data, standardize) or
    `jax_lstm.forecasting.load_forecaster`'s (table)."""
    from jax_lstm.models import registry
    from jax_lstm.predictor import Predictor
    from jax_lstm.training.checkpoint import read_description

    config, _ = read_description(directory)
    if registry.get(config["model"]).task == "forecasting":
        from jax_lstm.forecasting import load_forecaster

        return load_forecaster(directory, **options)
    return Predictor.load(directory, **options)


def __getattr__(name: str):
    # The scikit-learn estimator is imported on first use: scikit-learn's estimator machinery is
    # slow to import and most users of the layer never need it.
    if name == "LSTMSequenceClassifier":
        from jax_lstm.estimator import LSTMSequenceClassifier

        return LSTMSequenceClassifier
    raise AttributeError(f"module 'jax_lstm' has no attribute {name!r}")
