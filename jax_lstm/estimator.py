"""`LSTMSequenceClassifier`: the LSTM classifier as a scikit-learn estimator.

    clf = LSTMSequenceClassifier(epochs=30).fit(X_train, y_train)   # X: (n, T, F) or a list of (T_i, F)
    clf.predict(X_test); clf.predict_proba(X_test); clf.score(X_test, y_test)
    clf.save("run1"); LSTMSequenceClassifier.load("run1")          # a checkpoint, as jax-lstm train's

Works in `cross_val_score`, `GridSearchCV` and `Pipeline`. Series may have different lengths (pass a
list of 2-D arrays); they are padded and run with PackedSequence semantics. A 2-D array (n, T) is
read as n univariate series of length T, the convention of time-series libraries.

`save` writes a checkpoint of the format ``jax-lstm train --checkpoint-dir`` writes (the trained
state, the config, the data description with its standardisation), so ``jax-lstm predict``,
``jax-lstm export`` and `jax_lstm.load` take it; `load` reads one back, from either. Predictions
go through `jax_lstm.predictor.Predictor`, the one path from series to probabilities.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from jax_lstm import data, training
from jax_lstm.models import registry
from jax_lstm.predictor import Predictor, as_series
from jax_lstm.training import checkpoint

__all__ = ["LSTMSequenceClassifier"]

# The estimator's parameters read back from a checkpoint's config (`load`): those that are
# TrainConfig fields of the same name.
_FROM_CONFIG = (
    "hidden_size",
    "num_layers",
    "model",
    "epochs",
    "batch_size",
    "lr",
    "clip",
    "patience",
    "weight_decay",
    "dropout",
    "cell",
    "ensemble",
    "schedule",
    "select",
    "patch",
)


class LSTMSequenceClassifier(ClassifierMixin, BaseEstimator):
    """Multivariate time-series classifier behind scikit-learn's estimator API: any classifier of the
    model registry (``model=``: the article's "lstm" and "bn-lstm", "lstm-fcn", "mlstm-fcn",
    "attention-lstm"), trained with Adam, optional gradient clipping and ReduceLROnPlateau.

    Parameters are `TrainConfig` fields (`jax-lstm train`'s flags of the same names). Those left at
    None are resolved exactly as the command resolves them for a .ts file
    (`jax_lstm.training.resolve_config`: the model's recipe over the data's defaults, e.g. the FCN
    models: hidden 8, 1 layer, dropout 0.8, no clipping, about ten batches an epoch of 8 to 16
    series, at least 40 epochs and 1500 updates within a bound on the work; the article's models:
    hidden 128, 2 layers, clip 1.0, 30 epochs of 16).
    ``random_state`` is the seed (None draws a fresh one), ``clip=0`` disables clipping (the flag's
    0), and ``verbose`` (1: epoch lines and a progress bar, 2: step lines too) replaces
    ``--quiet``. ``accumulate``, ``dtype`` and ``implementation`` are not exposed: they keep
    `TrainConfig`'s defaults (1, float32, fused). Series are standardised per channel with
    statistics fitted on the training data (``standardize=True``; the flag ``--no-standardize``).
    Labels may be any hashable values. ``cell`` ("lstm", "gru" or "rnn") picks the recurrent layer
    (`TrainConfig.cell`, the flag ``--cell``). ``ensemble=K`` trains K members at once (seeds
    random_state .. random_state + K - 1) and predicts with the mean of their probabilities;
    ``schedule`` ("plateau", "cosine") and ``select`` ("last", "train-loss") as the flags;
    ``patch`` (the article's models and attention-LSTM) the steps read as one (None: the recipe's,
    a recurrence of at most 32 steps).

    Attributes after `fit`: ``classes_`` (n_classes,), ``n_features_in_``, ``variables_`` (Flax
    variables, exportable with `jax_lstm.to_torch`), ``history_`` (per-epoch training loss and lr),
    ``mean_`` and ``scale_`` (F,) of the standardisation (float64, fitted over the valid steps),
    ``checkpoint_`` (what `save` writes).
    """

    def __init__(
        self,
        hidden_size: int | None = None,
        num_layers: int | None = None,
        model: str = "lstm",
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        clip: float | None = None,
        patience: int | None = None,
        weight_decay: float = 0.0,
        dropout: float | None = None,
        standardize: bool = True,
        random_state: int | None = 0,
        verbose: int = 0,
        cell: str = "lstm",
        ensemble: int | None = None,
        schedule: str | None = None,
        select: str | None = None,
        patch: int | None = None,
    ):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.model = model
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.clip = clip
        self.patience = patience
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.standardize = standardize
        self.random_state = random_state
        self.verbose = verbose
        self.cell = cell
        self.ensemble = ensemble
        self.schedule = schedule
        self.select = select
        self.patch = patch

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True  # (n, time, features)
        tags.input_tags.two_d_array = True  # (n, time): univariate series
        tags.non_deterministic = False
        return tags

    def _config(self, dataset: data.Dataset | None = None) -> training.TrainConfig:
        """The run's config, resolved as `jax-lstm train` resolves it (None: before the data is
        seen, so that a bad parameter is named first)."""
        # An int fixes weights and batch order; None draws a fresh seed (sklearn's convention).
        seed = self.random_state if self.random_state is not None else int(np.random.randint(2**31 - 1))
        # factor and min_lr are not parameters: always the recipe's.
        given = {field: getattr(self, field, None) for field in _PARAMETERS}
        registry.get(self.model)  # an unknown model: named, with the models there are
        return training.resolve_config(
            self.model, dataset, **given, seed=seed, log_every=10 if self.verbose > 1 else 0
        )

    def _preprocessing(self) -> data.Preprocessing | None:
        return data.Preprocessing(self.mean_, self.scale_) if self.standardize else None

    def _predictor(self) -> Predictor:
        """The fitted model as a `Predictor`: new series prepared as the training series were."""
        config = training.TrainConfig(**self.config_)
        dims = data.Dims(self.n_features_in_, len(self.classes_), None, self.seq_len_)
        return Predictor(
            config,
            dims,
            self.variables_,
            self.classes_,
            self._preprocessing(),
            variable_length=self.checkpoint_["data"]["variable_length"],
        )

    def fit(self, X, y) -> LSTMSequenceClassifier:
        """Trains on X: (n, T, F) array, list of (T_i, F) arrays, or (n, T) univariate; y: (n,) labels."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        self._config()  # bad parameters fail before the data is looked at
        x, lengths = as_series(X, "fit", min_samples=2)
        y = column_or_1d(y, warn=True)
        if len(y) != len(x):
            raise ValueError(f"fit: {len(x)} series but {len(y)} labels")
        check_classification_targets(y)
        try:
            self.classes_, y_index = np.unique(y, return_inverse=True)
        except TypeError as err:
            raise ValueError(
                f"fit: labels must be mutually comparable (all numbers or all strings): {err}"
            ) from err
        if len(self.classes_) < 2:
            raise ValueError(
                f"fit: need samples of at least 2 classes, got one class {self.classes_.tolist()}"
            )
        self.n_features_in_ = x.shape[-1]
        self.seq_len_ = x.shape[1]  # the FCN models' LSTM input size; predict pads shorter series
        fitted = data.Preprocessing.fit(x, lengths)
        self.mean_, self.scale_ = fitted.mean, fitted.scale
        preprocessing = self._preprocessing()
        if preprocessing is not None:
            x = preprocessing.apply(x, np.full(len(x), x.shape[1]) if lengths is None else lengths)
        x = x.astype(np.float32)
        empty = np.zeros((0, x.shape[1], x.shape[2]), np.float32)
        dataset = data.Dataset(
            "fit",
            x,
            y_index.astype(np.int64),
            empty,
            np.zeros(0, np.int64),
            tuple(str(c) for c in self.classes_),
            lengths,
            None if lengths is None else np.zeros(0, np.int32),
            preprocessing=preprocessing,
        )
        config = self._config(dataset)
        log = print if self.verbose else None
        progress = None
        if self.verbose:
            from tqdm import tqdm

            def progress(total, initial):
                return tqdm(total=total, initial=initial, unit="step", leave=False)

        result = training.fit(config, dataset, log=log, progress=progress)
        self.variables_ = jax.device_get(result.variables())
        self.history_ = [{"epoch": h.epoch, "train_loss": h.train_loss, "lr": h.lr} for h in result.history]
        self.config_ = dataclasses.asdict(config)
        members = result.members or [result]
        self.checkpoint_ = {
            # The weights it predicts with (the selected epoch's, with a selection), as a train state.
            "state": jax.device_get(result.state),
            "schedules": [m.schedule for m in members],
            "histories": [m.history for m in members],
            "ensembles": [result.history] if result.members else [],
            "seeds": [m.config.seed for m in result.members] if result.members else None,
            "data": checkpoint.data_description(dataset),
        }
        return self

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Writes the fitted model to `directory` as a checkpoint of the format ``jax-lstm train
        --checkpoint-dir`` writes (the weights it predicts with, the config, the standardisation,
        the classes; the labels' own values in an annotation), so that ``jax-lstm predict
        --checkpoint-dir``, ``jax-lstm export``, `jax_lstm.load` and `load` read it. A directory
        that holds a checkpoint is refused unless `overwrite`. Returns the checkpoint file."""
        check_is_fitted(self, "variables_")
        checkpoint.check_directory(directory, overwrite=overwrite)
        saved = self.checkpoint_
        config = training.TrainConfig(**self.config_)
        path = checkpoint.save(
            directory,
            saved["state"],
            saved["schedules"],
            len(saved["histories"][0]),
            saved["histories"],
            config,
            saved["data"],
            seeds=saved["seeds"],
            ensembles=saved["ensembles"],
        )
        labels = self.classes_.tolist()
        checkpoint.annotate(directory, "estimator", {"classes": labels, "standardize": self.standardize})
        return path

    @classmethod
    def load(cls, directory: str | Path, seed: int | None = None) -> LSTMSequenceClassifier:
        """A fitted estimator from a checkpoint directory written by `save` or by ``jax-lstm train
        --checkpoint-dir`` (its classes the class names, or the labels `save` kept; `seed`: the
        run of a checkpoint of several, as `jax_lstm.load`). Its parameters are the checkpoint's
        config's, so `clone` and `fit` train the same model again."""
        predictor = Predictor.load(directory, seed=seed)
        loaded = training.load_checkpoint(directory)
        config = predictor.config
        clf = cls(
            **{name: getattr(config, name) for name in _FROM_CONFIG},
            standardize=predictor.preprocessing is not None,
            random_state=config.seed,
        )
        clf.classes_ = predictor.classes_
        clf.n_features_in_ = predictor.dims.num_features
        clf.seq_len_ = predictor.dims.seq_len
        if predictor.preprocessing is not None:
            clf.mean_, clf.scale_ = predictor.preprocessing.mean, predictor.preprocessing.scale
        else:
            clf.mean_ = np.zeros(clf.n_features_in_)
            clf.scale_ = np.ones(clf.n_features_in_)
        clf.variables_ = predictor.variables
        history = loaded.ensembles[0] if loaded.ensembles else loaded.history
        clf.history_ = [{"epoch": h.epoch, "train_loss": h.train_loss, "lr": h.lr} for h in history]
        clf.config_ = dataclasses.asdict(config)
        clf.checkpoint_ = {
            **_one_run(loaded, config),
            "data": {**loaded.data, "variable_length": predictor.variable_length},
        }
        return clf

    def predict_proba(self, X) -> np.ndarray:
        """(n, n_classes) class probabilities, columns in the order of ``classes_`` (an ensemble's:
        the mean of its members')."""
        check_is_fitted(self, "variables_")
        x, lengths = as_series(X, "predict")
        if x.shape[-1] != self.n_features_in_:
            raise ValueError(
                f"X has {x.shape[-1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        predictor = self._predictor()
        x, lengths = predictor.prepare(x, lengths, "X")
        return training.predict.predictions(predictor.config, predictor.dims, predictor.variables, x, lengths)

    def predict(self, X) -> np.ndarray:
        """(n,) predicted labels (values from ``classes_``)."""
        probabilities = self.predict_proba(X)  # first: it raises NotFittedError before classes_ is touched
        return self.classes_[np.argmax(probabilities, axis=1)]

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy. Labels that never occurred in `fit` are an error, not a silent miss."""
        check_is_fitted(self, "variables_")
        unseen = np.setdiff1d(np.asarray(y), self.classes_)
        if len(unseen):
            raise ValueError(
                f"score: labels {unseen.tolist()[:5]} were not seen during fit (classes_ = "
                f"{self.classes_.tolist()}); the classifier can never predict them"
            )
        return super().score(X, y, sample_weight=sample_weight)


def _one_run(loaded, config: training.TrainConfig) -> dict:
    """What `save` writes again of a loaded checkpoint: the run of `config.seed` (one model, or one
    ensemble's members), with the weights it predicts with."""
    state = loaded.state if loaded.selection is None else loaded.selection["state"]
    state = jax.device_get(state)
    if loaded.seeds is None:
        return {
            "state": state,
            "schedules": loaded.schedules,
            "histories": loaded.histories,
            "ensembles": loaded.ensembles,
            "seeds": None,
        }
    size = config.ensemble
    g = loaded.seeds[::size].index(config.seed)
    rows = slice(g * size, (g + 1) * size)
    if size == 1:
        state = jax.tree.map(lambda leaf: leaf[g], state)
    else:
        state = jax.tree.map(lambda leaf: leaf[rows], state)
    return {
        "state": state,
        "schedules": loaded.schedules[rows],
        "histories": loaded.histories[rows],
        "ensembles": loaded.ensembles[g : g + 1],
        "seeds": loaded.seeds[rows] if size > 1 else None,
    }


# The estimator's parameters that are TrainConfig fields (the others: standardize, random_state,
# verbose): the recipe's fields but the schedules' finer ones, which always keep the recipe's, and
# eval_every (`fit` has no test split to evaluate).
_PARAMETERS = (
    *(
        f
        for f in training.RECIPE_FIELDS
        if f not in ("factor", "min_lr", "warmup_epochs", "eta_min", "eval_every")
    ),
    "weight_decay",
    "cell",
)
