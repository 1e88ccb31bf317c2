"""`TrainConfig`: one training run's settings, validated before any work, and `resolve_config`, the
one place where a run's settings are filled in from the caller, the model's recipe and the data."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from jax_lstm.models import registry
from jax_lstm.rnn import cudnn
from jax_lstm.rnn.layer import CELL_MODES
from jax_lstm.rnn.stack import IMPLEMENTATIONS

__all__ = [
    "RECIPE_FIELDS",
    "SCHEDULE_NAMES",
    "SELECTIONS",
    "TrainConfig",
    "recipe_batch_size",
    "recipe_epochs",
    "recipe_eval_every",
    "recipe_patch",
    "resolve_config",
]


# TrainConfig.select's and TrainConfig.schedule's values.
SELECTIONS = ("last", "validation", "train-loss")
SCHEDULE_NAMES = ("plateau", "cosine")


SEED_RANGE = "seed must be in [0, 2**64) (numpy's seeds), got {}"


def seed_in_range(seed: int) -> bool:
    """Whether numpy takes `seed` (the weights', the batch order's and the synthetic data's)."""
    return 0 <= seed < 2**64


def _finite(value) -> bool:
    try:
        return math.isfinite(value)
    except TypeError:
        return False


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults are the article's (section 3.2 plus 4.1 and 4.2)."""

    model: str = "lstm"  # a registry name (jax_lstm.models.registry.names()): "lstm", "bn-lstm", ...
    hidden_size: int = 128
    num_layers: int = 2
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    clip: float | None = 1.0  # clip_grad_norm_ max_norm; None: no clipping
    patience: int = 2  # ReduceLROnPlateau patience, stepped once per epoch on the train loss
    factor: float = 0.1  # ReduceLROnPlateau factor
    min_lr: float = 0.0  # ReduceLROnPlateau's floor for the learning rate
    weight_decay: float = 0.0  # torch Adam's L2 term
    accumulate: int = 1  # micro-batches per optimizer step (gradient accumulation)
    dropout: float = 0.0  # inter-layer LSTM dropout
    seed: int = 0  # initial weights and batch order
    dtype: str = "float32"  # "float32" or "float64" (needs jax_enable_x64)
    log_every: int = 10  # a log line every this many steps (0: none)
    eval_batch_size: int = 1024
    implementation: str = "fused"  # the LSTM recurrence: "fused", "scan" or "cudnn" (CUDA GPU only)
    # The recurrent layer of the article's models: "lstm" (the article's), "gru" or "rnn" (tanh).
    cell: str = "lstm"
    # The recurrent layer of the article's models and attention-LSTM reads each run of this many
    # consecutive steps as one step (1: every step its own, the article's).
    patch: int = 1
    # Which epoch's weights a run keeps and reports (`SELECTIONS`): the last; the best on the data's
    # validation split (accuracy, then loss; a forecaster's: its loss); the lowest training loss
    # (the protocol of dl-4-tsc's FCN/ResNet and of InceptionTime). None of them looks at test data.
    select: str = "last"
    # The learning-rate schedule, stepped once per epoch (`SCHEDULES_BY_NAME`): "plateau", the
    # article's ReduceLROnPlateau on the epoch's training loss (patience, factor, min_lr); "cosine",
    # torch's CosineAnnealingLR over the run's epochs to eta_min, after a linear warm-up of
    # warmup_epochs (SequentialLR with LinearLR) when that is > 0.
    schedule: str = "plateau"
    warmup_epochs: int = 0
    eta_min: float = 0.0
    # Members of an ensemble trained together in one program (seeds seed .. seed + ensemble - 1,
    # each its own initial weights and batch order); it predicts with their mean probabilities.
    ensemble: int = 1
    # The test split is evaluated after every this many epochs, and after the last (1: every epoch).
    # It only reports (no selection looks at it), and on a test split much larger than the training
    # split evaluating it would cost more than training (`recipe_eval_every`). The reported epoch's
    # test metrics are measured whichever it is.
    eval_every: int = 1

    def evaluates(self, epoch: int) -> bool:
        """Whether the test split is evaluated after the 1-based `epoch`."""
        return epoch % self.eval_every == 0 or epoch >= self.epochs

    def _check_types(self) -> None:
        """Every field holds a value of its annotated type (an int field takes numpy's integers but
        not a bool; a float field takes ints), before any range check compares it."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            kinds = _kind(str(field.type))
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, kinds):
                wanted = " or ".join(sorted({k.__name__ for k in kinds}))
                raise TypeError(
                    f"TrainConfig.{field.name} must be {wanted.replace('NoneType', 'None')}, "
                    f"got {value!r} ({type(value).__name__})"
                )

    def validate(self) -> TrainConfig:
        self._check_types()
        models = registry.names()
        checks = [
            (self.model in models, f"model must be one of {models}, got {self.model!r}"),
            (self.hidden_size >= 1, f"hidden_size must be at least 1, got {self.hidden_size}"),
            (self.num_layers >= 1, f"num_layers must be at least 1, got {self.num_layers}"),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}"),
            (_finite(self.lr) and self.lr > 0, f"lr must be a finite number > 0, got {self.lr}"),
            (
                self.clip is None or (_finite(self.clip) and self.clip > 0),
                f"clip must be a finite number > 0 (or None: no clipping), got {self.clip}",
            ),
            (self.patience >= 0, f"patience must be at least 0, got {self.patience}"),
            (0 < self.factor < 1, f"factor must be in (0, 1), got {self.factor}"),
            (
                _finite(self.min_lr) and 0 <= self.min_lr <= self.lr,
                f"min_lr must be a finite number in [0, lr = {self.lr}], got {self.min_lr}",
            ),
            (
                _finite(self.weight_decay) and self.weight_decay >= 0,
                f"weight_decay must be a finite number >= 0, got {self.weight_decay}",
            ),
            (self.accumulate >= 1, f"accumulate must be at least 1, got {self.accumulate}"),
            (
                self.accumulate <= self.batch_size,
                f"accumulate ({self.accumulate}) cannot exceed batch_size ({self.batch_size})",
            ),
            (
                _finite(self.dropout) and 0 <= self.dropout <= 1,
                f"dropout must be in [0, 1], got {self.dropout}",
            ),
            (seed_in_range(self.seed), SEED_RANGE.format(self.seed)),
            (self.dtype in ("float32", "float64"), f"dtype must be float32 or float64, got {self.dtype}"),
            (self.eval_batch_size >= 1, "eval_batch_size must be at least 1"),
            (
                self.implementation in IMPLEMENTATIONS,
                f"implementation must be one of {IMPLEMENTATIONS}, got {self.implementation!r}",
            ),
            (self.cell in CELL_MODES, f"cell must be one of {tuple(CELL_MODES)}, got {self.cell!r}"),
            (self.patch >= 1, f"patch must be at least 1 (1: every step its own), got {self.patch}"),
            (self.ensemble >= 1, f"ensemble must be at least 1 (1: one model), got {self.ensemble}"),
            (
                self.eval_every >= 1,
                f"eval_every must be at least 1 (1: the test split after every epoch), got {self.eval_every}",
            ),
            (self.select in SELECTIONS, f"select must be one of {SELECTIONS}, got {self.select!r}"),
            (
                self.schedule in SCHEDULE_NAMES,
                f"schedule must be one of {SCHEDULE_NAMES}, got {self.schedule!r}",
            ),
            (
                0 <= self.warmup_epochs < self.epochs,
                f"warmup_epochs must be in [0, epochs = {self.epochs}): the cosine needs an epoch after "
                f"the warm-up, got {self.warmup_epochs}",
            ),
            (
                self.warmup_epochs == 0 or self.schedule == "cosine",
                f"warmup_epochs warms up the cosine schedule; with schedule {self.schedule!r} leave it at 0",
            ),
            (
                _finite(self.eta_min) and 0 <= self.eta_min <= self.lr,
                f"eta_min must be a finite number in [0, lr = {self.lr}], got {self.eta_min}",
            ),
            (
                self.implementation != "cudnn" or CELL_MODES.get(self.cell) == "LSTM",
                f"implementation 'cudnn' runs the LSTM only, not cell {self.cell!r}; "
                "use implementation 'fused'",
            ),
            (
                self.implementation != "cudnn" or self.dtype == "float32",
                "implementation 'cudnn' runs float32 only; use implementation 'fused' for float64",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        registry.check_options(registry.get(self.model), dataclasses.asdict(self))
        if self.dtype == "float64" and not jax.config.read("jax_enable_x64"):
            raise ValueError(
                "dtype float64 needs JAX's 64-bit mode: call "
                "jax.config.update('jax_enable_x64', True) at startup"
            )
        if self.implementation == "cudnn" and not cudnn.available():
            raise ValueError(
                "implementation 'cudnn' needs a CUDA GPU as JAX's default backend (found "
                f"{jax.default_backend()!r}); use implementation 'fused', which runs everywhere"
            )
        return self


def _kind(annotation: str) -> tuple[type, ...]:
    """The Python types a field of `annotation` (a string, as `from __future__` keeps them) takes:
    an int field takes no bool, a float field takes ints too; None where the annotation allows it."""
    kinds: tuple[type, ...] = ()
    for part in (p.strip() for p in annotation.split("|")):
        kinds += {"int": (int,), "float": (int, float), "str": (str,), "None": (type(None),)}[part]
    return kinds


# The fields a model's recipe or the data's defaults may set; a value given by the caller wins.
RECIPE_FIELDS = (
    "hidden_size",
    "num_layers",
    "epochs",
    "batch_size",
    "lr",
    "clip",
    "patience",
    "factor",
    "min_lr",
    "dropout",
    "schedule",
    "warmup_epochs",
    "eta_min",
    "select",
    "ensemble",
    "patch",
    "eval_every",
)

# What evaluating a series costs against training on it: a forward pass against a forward and a
# backward pass (measured on ACSF1: 0.76 s for the test split against 2.55 s an epoch for a training
# split of the same size, `python -m benchmarks.epoch_cost`).
EVAL_COST = 1 / 3
# The test split only reports (no selection looks at it): every run evaluates it every few epochs
# where evaluating it every epoch would cost more than this share of the training's time. On the
# dev sets, whose test splits are at most 1.37 times their training splits, that is every epoch.
EVAL_SHARE = 0.5


def resolve_config(model: str, data: Any = None, /, **given: Any) -> TrainConfig:
    """The validated `TrainConfig` of a run of `model` on `data`: the one resolver behind `jax-lstm
    train`, `jax-lstm forecast`, the estimator, `fit_forecaster` and ``python -m torch_ref train``.

    Each field in `given` that is not None wins; a recipe field (`RECIPE_FIELDS`) left open takes the
    model's recipe (`ModelEntry.recipe`), else the data's defaults (``data.defaults``: e.g. 30 epochs
    of 16 for a real dataset, the article's 10 of 32 for its synthetic data), else the article's
    settings (`registry.ARTICLE_RECIPE`); any other field keeps TrainConfig's default. Epochs left
    open follow the recipe's epoch rules for the data's size (`recipe_epochs`). ``clip=0`` disables
    clipping (None), as the flag's 0 does. `data` is a `Dataset` or `WindowDataset` (None: sizes not
    known yet, no epoch rule applied).

    Raises ValueError naming the setting: an unknown field, an option the model does not take, a
    value out of range (`TrainConfig.validate`).
    """
    entry = registry.get(model)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(given) - fields)
    if unknown:
        raise ValueError(f"unknown setting {unknown[0]!r}; TrainConfig has {sorted(fields)}")
    given = {k: v for k, v in given.items() if v is not None}
    registry.check_options(entry, given)
    defaults = dict(data.defaults) if data is not None else {}
    base: dict[str, Any] = {**registry.ARTICLE_RECIPE, **defaults, **entry.recipe}
    settings = {f: base[f] for f in RECIPE_FIELDS if f in base}
    settings.update(given)
    if settings.get("clip") == 0:
        settings["clip"] = None
    if "batch_size" not in given and data is not None:
        settings["batch_size"] = recipe_batch_size(base, len(data.y_train), settings.get("batch_size"))
    if "epochs" not in given and data is not None and settings.get("batch_size", 1) >= 1:
        epochs = settings.get("epochs", TrainConfig.epochs)
        batch_size = settings.get("batch_size", TrainConfig.batch_size)
        settings["epochs"] = recipe_epochs(base, len(data.y_train), batch_size, epochs, data.seq_len)
    if "patch" not in given and data is not None:
        settings["patch"] = recipe_patch(base, data.seq_len)
    if "eval_every" not in given and data is not None:
        settings["eval_every"] = recipe_eval_every(base, len(data.y_train), len(data.y_test))
    patch = settings.get("patch", 1)
    if data is not None and isinstance(patch, int) and 1 < data.seq_len < patch:
        raise ValueError(
            f"patch {patch} is longer than the series ({data.seq_len} steps): a patch holds at most "
            f"the whole series; use --patch {data.seq_len} or less"
        )
    return TrainConfig(model=model, **settings).validate()


def recipe_patch(recipe: Mapping[str, Any], seq_len: int) -> int:
    """The steps per patch a run of `recipe` on series of `seq_len` steps reads as one: with the
    recipe's ``max_steps``, the fewest that make the recurrence at most that long,
    ceil(seq_len / max_steps); else the recipe's ``patch`` (default 1)."""
    max_steps = int(recipe.get("max_steps", 0))
    if max_steps and seq_len > max_steps:
        return -(-seq_len // max_steps)
    return int(recipe.get("patch", 1))


def recipe_eval_every(recipe: Mapping[str, Any], num_train: int, num_test: int) -> int:
    """Every how many epochs a run of `recipe` evaluates its test split of `num_test` series beside
    `num_train` training series: the recipe's ``eval_every`` if it has one; else the fewest epochs
    apart that keep the evaluation's time within the share S of the training's (the recipe's
    ``eval_share``, default `EVAL_SHARE`), ceil(EVAL_COST x num_test / (num_train x S)): 1 while the
    test split is not much larger than the training split, and without either split."""
    if "eval_every" in recipe:
        return int(recipe["eval_every"])
    share = float(recipe.get("eval_share", EVAL_SHARE))
    if share > 0 and num_train > 0 and num_test > 0:
        return max(1, math.ceil(EVAL_COST * num_test / (num_train * share) - 1e-9))
    return 1


def recipe_batch_size(recipe: Mapping[str, Any], num_train: int, batch_size: int | None) -> int | None:
    """The series per batch of a run of `recipe` on `num_train` training series: with the recipe's
    ``batches_per_epoch``, num_train // batches_per_epoch, within [``min_batch_size``, `batch_size`]
    (dl-4-tsc's FCN/ResNet rule, min(num_train / 10, 16), with a floor for BatchNorm's statistics);
    else `batch_size` (the recipe's or the data's default) as it is."""
    per_epoch = int(recipe.get("batches_per_epoch", 0))
    if not per_epoch or num_train < 1 or batch_size is None:
        return batch_size
    low = min(int(recipe.get("min_batch_size", 1)), batch_size)
    return max(low, min(batch_size, num_train // per_epoch))


def recipe_epochs(
    recipe: Mapping[str, Any], num_train: int, batch_size: int, epochs: int, seq_len: int = 0
) -> int:
    """`epochs`, adjusted by the recipe's rules for `num_train` series (or windows) in batches of
    `batch_size`:

    - ``target_steps`` (with ``min_epochs``, ``max_epochs``): about that many optimizer steps, in
      [min_epochs, max_epochs] epochs (the forecaster's: its tables range from hundreds to
      hundreds of thousands of windows);
    - ``min_steps`` (with ``max_work``): raised to make at least that many updates on a small
      training set, the raise stopping where the run's work, `num_train` x `seq_len` x epochs, would
      pass ``max_work`` (never below `epochs`; the FCN models').
    """
    if num_train < 1:
        return epochs
    steps_per_epoch = math.ceil(num_train / batch_size)
    target = int(recipe.get("target_steps", 0))
    if target:
        low, high = int(recipe.get("min_epochs", 1)), int(recipe.get("max_epochs", 10**9))
        epochs = int(min(high, max(low, round(target / steps_per_epoch))))
    min_steps = int(recipe.get("min_steps", 0))
    if not min_steps:
        return epochs
    wanted = max(epochs, math.ceil(min_steps / steps_per_epoch))
    max_work = int(recipe.get("max_work", 0))
    if max_work and seq_len > 0:
        wanted = min(wanted, max(epochs, max_work // (num_train * seq_len)))
    return wanted
