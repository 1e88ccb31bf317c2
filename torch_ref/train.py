"""The article's training loop in PyTorch (sections 3.2, 4.1, 4.2), fed the same batches as JAX, for
every registered model and both tasks.

The model's task (its registry entry's) chooses the loss and the evaluation, as it does for
`jax_lstm.fit`: classification, ``nn.CrossEntropyLoss()`` and the test split's mean cross-entropy
and accuracy; forecasting, ``nn.MSELoss()`` on `WindowDataset` windows and the validation windows'
mean MSE. Adam, ``clip_grad_norm_`` before each ``step()``, ``ReduceLROnPlateau(optimizer, 'min',
patience=...)`` (or the config's cosine schedule, `torch_ref.schedules`) stepped once per epoch, and
the article's log line every 10 steps. Where it departs
from the article:

- Batches come from `jax_lstm.data.batch_order` (seed, epoch) instead of a
  `DataLoader(shuffle=True)`, so that a JAX run can be fed the identical batches.
- The scheduler steps on the epoch's mean training loss (batch losses weighted by batch size). The
  article's ``scheduler.step(loss)`` "after each epoch" would receive ``loss`` as its inner loop
  leaves it: the last batch's loss alone.
- The test split (and a validation split, where the data holds one) is evaluated (eval mode, in
  chunks of ``eval_batch_size``) after every epoch and an epoch summary is logged; the article
  never evaluates its test split.
- Right-padded series of unequal lengths (JapaneseVowels, .ts files) are passed to the model with
  their lengths and run torch's packed path (`torch_ref.models`); full-length series run the
  article's forward pass unchanged.
- Options the article lacks, at its values by default: ``clip`` (1.0; None disables), ``patience``
  (2), ``factor`` (0.1), Adam's ``weight_decay`` (0), gradient accumulation (1 micro-batch; the
  article's section 5.3 only suggests it), float64, per-epoch checkpoints and resume. With
  accumulation the step log prints the batch loss summed over its micro-batches.
- The weights start from ``torch.manual_seed(config.seed)``, or from given ones (`torch_twin`, to
  start from the JAX side's initial weights). The run always reports its last epoch.
"""

from __future__ import annotations

import dataclasses
import io
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from jax_lstm.atomic import write_atomically
from jax_lstm.data import Dataset, WindowDataset, batch_order, epoch_mean, micro_batch_bounds
from jax_lstm.interop import to_torch
from jax_lstm.models import registry
from jax_lstm.training import EpochRecord, TrainConfig
from jax_lstm.training.history import from_dicts, to_dicts
from jax_lstm.training.state import schedule_spec
from torch_ref.parity import torch_dtype
from torch_ref.schedules import step_scheduler, torch_scheduler
from torch_ref.twins import make_torch_model

__all__ = ["TorchResult", "evaluate_torch", "predict_torch", "torch_twin", "train_torch"]


@dataclasses.dataclass
class TorchResult:
    model: nn.Module
    history: list[EpochRecord]

    @property
    def test_accuracy(self) -> float:
        return self.history[-1].test_accuracy


def torch_twin(config: TrainConfig, dataset: Dataset | WindowDataset, variables: dict[str, Any]) -> nn.Module:
    """The torch twin of `config.model` for `dataset` holding exactly the weights (and BatchNorm
    statistics) in `variables`."""
    # Cast first: load_state_dict copies into the existing tensors, so a float32 model would round
    # float64 weights.
    model = _twin(config, dataset).to(torch_dtype(config.dtype))
    model.load_state_dict(to_torch(variables, model=config.model), strict=True)
    return model


def _twin(config: TrainConfig, dataset: Dataset | WindowDataset) -> nn.Module:
    return make_torch_model(config.model, dataset.dims, registry.get(config.model).arch(config))


class _Split:
    """One split as tensors: x (N, T, F), y (N,) int64 labels or (N, H, T) values, lengths or None."""

    def __init__(self, x, y, lengths, dtype: torch.dtype, labelled: bool):
        self.x = torch.from_numpy(np.ascontiguousarray(x)).to(dtype)
        y = np.ascontiguousarray(y)
        self.y = torch.from_numpy(y.astype(np.int64)) if labelled else torch.from_numpy(y).to(dtype)
        self.lengths = None if lengths is None else torch.from_numpy(np.asarray(lengths, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.y)

    def forward(self, model: nn.Module, lo: int, hi: int, index=None) -> torch.Tensor:
        """The model's outputs on rows `index` (or lo:hi of them)."""
        x = self.x[lo:hi] if index is None else self.x[index][lo:hi]
        if self.lengths is None:
            return model(x)
        lengths = self.lengths[lo:hi] if index is None else self.lengths[index][lo:hi]
        return model(x, lengths)

    def targets(self, lo: int, hi: int, index=None) -> torch.Tensor:
        return self.y[lo:hi] if index is None else self.y[index][lo:hi]


def _classification_sums(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, int]:
    loss = nn.functional.cross_entropy(outputs, targets, reduction="sum").item()
    return loss, int((outputs.argmax(-1) == targets).sum())


def _forecasting_sums(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, int]:
    """The chunk's sum of per-window MSEs (each the mean over its H x T values), no accuracy."""
    return (outputs - targets).square().reshape(len(outputs), -1).mean(dim=1).sum().item(), 0


# By task (the registry entry's): the training loss, and the evaluation's (loss sum, correct) of a chunk.
_TASKS: dict[str, tuple[nn.Module, Callable]] = {
    "classification": (nn.CrossEntropyLoss(), _classification_sums),
    "forecasting": (nn.MSELoss(), _forecasting_sums),
}


@torch.no_grad()
def evaluate_torch(model: nn.Module, split: _Split, batch_size: int, task: str) -> tuple[float, float]:
    """Mean loss and accuracy (NaN for forecasting) over `split` in eval mode, in chunks."""
    if len(split) == 0:
        return math.nan, math.nan
    model.eval()
    total, correct = 0.0, 0
    sums = _TASKS[task][1]
    for lo in range(0, len(split), batch_size):
        hi = min(lo + batch_size, len(split))
        loss, right = sums(split.forward(model, lo, hi), split.targets(lo, hi))
        total, correct = total + loss, correct + right
    accuracy = correct / len(split) if task == "classification" else math.nan
    return total / len(split), accuracy


@torch.no_grad()
def predict_torch(model: nn.Module, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """(B, L, F) windows (or full-length series) -> the model's eval-mode outputs, as numpy."""
    model.eval()
    dtype = next(model.parameters()).dtype
    inputs = torch.from_numpy(np.ascontiguousarray(x)).to(dtype)
    out = [model(inputs[lo : lo + batch_size]) for lo in range(0, len(inputs), batch_size)]
    return torch.cat(out).numpy()


def train_torch(
    config: TrainConfig,
    dataset: Dataset | WindowDataset,
    model: nn.Module | None = None,
    log: Callable[[str], None] | None = print,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
) -> TorchResult:
    """Trains the torch twin of `config.model` with the article's loop on `dataset`.

    Args:
      config: the same config the JAX side uses (model, sizes, lr, clip, patience, ...).
      dataset: the same dataset; batches are drawn with `batch_order(seed, epoch)` as in JAX.
      model: initial model (e.g. `torch_twin` of the JAX initial weights); default: the twin
        initialised by torch from `config.seed`.
      checkpoint_dir: if given, model, optimizer, scheduler and history are saved there after every
        epoch (`torch.save`, written with `jax_lstm.atomic.write_atomically`).
      resume: continue from the checkpoint in `checkpoint_dir`.
    """
    dataset.validate(require_test=False)
    task = registry.get(config.model).task
    labelled = task == "classification"
    dtype = torch_dtype(config.dtype)
    if model is None:
        torch.manual_seed(config.seed)
        model = _twin(config, dataset)
    model = model.to(dtype)
    train = _Split(dataset.x_train, dataset.y_train, dataset.lengths_train, dtype, labelled)
    test = _Split(dataset.x_test, dataset.y_test, dataset.lengths_test, dtype, labelled)
    validation = None
    if getattr(dataset, "x_validation", None) is not None:
        validation = _Split(
            dataset.x_validation, dataset.y_validation, dataset.lengths_validation, dtype, labelled
        )
    criterion = _TASKS[task][0]
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    kind, args = schedule_spec(config)
    scheduler = torch_scheduler(optimizer, kind, **args)
    history: list[EpochRecord] = []
    start_epoch = 0
    if resume:
        if checkpoint_dir is None:
            raise ValueError("resume needs a checkpoint directory")
        start_epoch, history = _load_checkpoint(checkpoint_dir, config, model, optimizer, scheduler)
        if log:
            log(f"resuming from {checkpoint_dir} after epoch {start_epoch}")
    num_epochs = config.epochs
    for epoch in range(start_epoch, num_epochs):
        model.train()
        batches = batch_order(len(train), config.batch_size, config.seed, epoch)
        lr_used = float(optimizer.param_groups[0]["lr"])
        losses: list[float] = []
        start = time.perf_counter()
        for i, idx in enumerate(batches):
            index = torch.from_numpy(idx)
            optimizer.zero_grad()
            # Gradient accumulation (article section 5.3): micro-batch losses weighted by their
            # share of the batch sum to the batch-mean loss, so the update equals the full batch's.
            loss_value = 0.0
            for lo, hi in micro_batch_bounds(len(idx), config.accumulate):
                weight = (hi - lo) / len(idx)
                loss = criterion(train.forward(model, lo, hi, index), train.targets(lo, hi, index)) * weight
                loss.backward()
                loss_value += loss.item()
            if config.clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=config.clip)
            optimizer.step()
            losses.append(loss_value)
            if log and config.log_every and (i + 1) % config.log_every == 0:
                log(
                    f"Epoch [{epoch + 1}/{num_epochs}], Step [{i + 1}/{len(batches)}], Loss: {loss_value:.4f}"
                )
        train_loss = epoch_mean(losses, [len(idx) for idx in batches])
        seconds = time.perf_counter() - start
        test_loss = test_accuracy = math.nan  # on the epochs the JAX loop leaves out too
        if config.evaluates(epoch + 1):
            test_loss, test_accuracy = evaluate_torch(model, test, config.eval_batch_size, task)
        val_loss = val_accuracy = None
        if validation is not None:
            val_loss, val_accuracy = evaluate_torch(model, validation, config.eval_batch_size, task)
        step_scheduler(scheduler, train_loss)
        record = EpochRecord(
            epoch + 1, train_loss, test_loss, test_accuracy, lr_used, seconds, val_loss, val_accuracy
        )
        history.append(record)
        if checkpoint_dir is not None:
            _save_checkpoint(checkpoint_dir, config, model, optimizer, scheduler, epoch + 1, history)
        if log:
            log(_epoch_line(record, num_epochs, labelled))
    return TorchResult(model, history)


def _epoch_line(record: EpochRecord, epochs: int, labelled: bool) -> str:
    parts = [f"train loss {record.train_loss:.4f}"]
    if record.val_loss is not None:
        parts.append(
            f"validation loss {record.val_loss:.4f} accuracy {100 * record.val_accuracy:.2f}%"
            if labelled
            else f"validation MSE {record.val_loss:.4f}"
        )
    if not math.isnan(record.test_loss):
        parts.append(
            f"test loss {record.test_loss:.4f}, test accuracy {100 * record.test_accuracy:.2f}%"
            if labelled
            else f"test MSE {record.test_loss:.4f}"
        )
    return f"Epoch [{record.epoch}/{epochs}] " + ", ".join(parts) + f", lr {record.lr:.2e}"


CHECKPOINT_NAME = "torch_checkpoint.pt"


def _save_checkpoint(directory, config, model, optimizer, scheduler, epoch, history) -> None:
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "history": to_dicts(history),
        "config": dataclasses.asdict(config),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_atomically(Path(directory) / CHECKPOINT_NAME, buffer.getvalue())


def _load_checkpoint(directory, config, model, optimizer, scheduler) -> tuple[int, list]:
    path = Path(directory) / CHECKPOINT_NAME
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    payload = torch.load(path, weights_only=False)
    saved = {k: v for k, v in payload["config"].items() if k not in ("epochs", "log_every")}
    wanted = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("epochs", "log_every")}
    if saved != wanted:
        raise ValueError(f"cannot resume from {path} with different settings: {saved} vs {wanted}")
    if payload["epoch"] >= config.epochs:
        raise ValueError(f"{path} already holds {payload['epoch']} epochs; ask for more with --epochs")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    return payload["epoch"], from_dicts(payload["history"])
