"""The article's training loop in PyTorch (sections 3.2, 4.1, 4.2), fed the same batches as JAX.

Cross-entropy, Adam, ``clip_grad_norm_`` before each ``step()``, ``ReduceLROnPlateau(optimizer,
'min', patience=...)`` stepped once per epoch, and the article's log line every 10 steps. Where it
departs from the article:

- Batches come from `jax_lstm.data.batch_order` (seed, epoch) instead of a
  `DataLoader(shuffle=True)`, so that a JAX run can be fed the identical batches.
- The scheduler steps on the epoch's mean training loss (batch losses weighted by batch size). The
  article's ``scheduler.step(loss)`` "after each epoch" would receive ``loss`` as its inner loop
  leaves it: the last batch's loss alone.
- The test split is evaluated (eval mode, in chunks of ``eval_batch_size``) after every epoch and an
  epoch summary is logged; the article never evaluates its test split.
- Right-padded series of unequal lengths (JapaneseVowels, .ts files) are passed to the model with
  their lengths and run torch's packed path (`torch_ref.models`); full-length series run the
  article's forward pass unchanged.
- Options the article lacks, at its values by default: ``clip`` (1.0; None disables), ``patience``
  (2), ``factor`` (0.1), Adam's ``weight_decay`` (0), gradient accumulation (1 micro-batch; the
  article's section 5.3 only suggests it), float64, per-epoch checkpoints and resume. With
  accumulation the step log prints the batch loss summed over its micro-batches.
- The weights start from ``torch.manual_seed(config.seed)``, or from given ones (`torch_twin`, to
  start from the JAX side's initial weights).
"""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from jax_lstm.atomic import write_atomically
from jax_lstm.data import Dataset, batch_order, epoch_mean, micro_batch_bounds
from jax_lstm.interop import to_torch
from jax_lstm.models import registry
from jax_lstm.training import EpochRecord, TrainConfig
from jax_lstm.training.history import from_dicts, to_dicts
from torch_ref.parity import _torch_dtype
from torch_ref.twins import make_torch_model

__all__ = ["TorchResult", "evaluate_torch", "train_torch"]


@dataclasses.dataclass
class TorchResult:
    model: nn.Module
    history: list[EpochRecord]

    @property
    def test_accuracy(self) -> float:
        return self.history[-1].test_accuracy


def _tensors(dataset: Dataset, dtype: torch.dtype):
    def opt(a):
        return None if a is None else torch.from_numpy(np.asarray(a, dtype=np.int64))

    return (
        torch.from_numpy(dataset.x_train).to(dtype),
        torch.from_numpy(dataset.y_train.astype(np.int64)),
        opt(dataset.lengths_train),
        torch.from_numpy(dataset.x_test).to(dtype),
        torch.from_numpy(dataset.y_test.astype(np.int64)),
        opt(dataset.lengths_test),
    )


def torch_twin(config: TrainConfig, dataset: Dataset, variables: dict[str, Any]) -> nn.Module:
    """The article's torch model holding exactly the weights (and BN statistics) in `variables`."""
    model = _twin(config, dataset)
    # Cast first: load_state_dict copies into the existing tensors, so a float32 model would round
    # float64 weights.
    model = model.to(_torch_dtype(config.dtype))
    model.load_state_dict(to_torch(variables, model=config.model), strict=True)
    return model


def _twin(config: TrainConfig, dataset: Dataset) -> nn.Module:
    entry = registry.get(config.model)
    dims = registry.Dims(dataset.num_features, dataset.num_classes, seq_len=dataset.seq_len)
    return make_torch_model(config.model, dims, entry.arch(config))


@torch.no_grad()
def evaluate_torch(model: nn.Module, x, y, lengths, batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy in eval mode, in chunks of `batch_size`."""
    model.eval()
    total, correct = 0.0, 0
    for lo in range(0, len(y), batch_size):
        hi = min(lo + batch_size, len(y))
        logits = model(x[lo:hi], None if lengths is None else lengths[lo:hi])
        total += nn.functional.cross_entropy(logits, y[lo:hi], reduction="sum").item()
        correct += int((logits.argmax(-1) == y[lo:hi]).sum())
    return total / len(y), correct / len(y)


def train_torch(
    config: TrainConfig,
    dataset: Dataset,
    model: nn.Module | None = None,
    log: Callable[[str], None] | None = print,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
) -> TorchResult:
    """Trains the article's torch model with the article's loop on `dataset`.

    Args:
      config: the same config the JAX side uses (model, sizes, lr, clip, patience, ...).
      dataset: the same dataset; batches are drawn with `batch_order(seed, epoch)` as in JAX.
      model: initial model (e.g. loaded with `to_torch` of the JAX initial weights); default: the
        article's model initialised by torch from `config.seed`.
      checkpoint_dir: if given, model, optimizer, scheduler and history are saved there after every
        epoch (`torch.save`, written with `jax_lstm.atomic.write_atomically`).
      resume: continue from the checkpoint in `checkpoint_dir`.
    """
    dataset.validate()
    dtype = _torch_dtype(config.dtype)
    if model is None:
        torch.manual_seed(config.seed)
        model = _twin(config, dataset)
    model = model.to(dtype)
    x_train, y_train, len_train, x_test, y_test, len_test = _tensors(dataset, dtype)

    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, "min", patience=config.patience, factor=config.factor, min_lr=config.min_lr
    )
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
        batches = batch_order(len(y_train), config.batch_size, config.seed, epoch)
        lr_used = float(optimizer.param_groups[0]["lr"])
        losses: list[float] = []
        start = time.perf_counter()
        for i, idx in enumerate(batches):
            index = torch.from_numpy(idx)
            inputs, labels = x_train[index], y_train[index]
            lengths = None if len_train is None else len_train[index]
            optimizer.zero_grad()
            # Gradient accumulation (article section 5.3): micro-batch losses weighted by their
            # share of the batch sum to the batch-mean loss, so the update equals the full batch's.
            loss_value = 0.0
            for lo, hi in micro_batch_bounds(len(idx), config.accumulate):
                weight = (hi - lo) / len(idx)
                outputs = model(inputs[lo:hi], None if lengths is None else lengths[lo:hi])
                loss = criterion(outputs, labels[lo:hi]) * weight
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
        test_loss, test_accuracy = evaluate_torch(model, x_test, y_test, len_test, config.eval_batch_size)
        scheduler.step(train_loss)
        history.append(EpochRecord(epoch + 1, train_loss, test_loss, test_accuracy, lr_used, seconds))
        if checkpoint_dir is not None:
            _save_checkpoint(checkpoint_dir, config, model, optimizer, scheduler, epoch + 1, history)
        if log:
            log(
                f"Epoch [{epoch + 1}/{num_epochs}] train loss {train_loss:.4f}, test loss "
                f"{test_loss:.4f}, test accuracy {100 * test_accuracy:.2f}%, lr {lr_used:.2e}"
            )
    return TorchResult(model, history)


_CHECKPOINT = "torch_checkpoint.pt"


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
    write_atomically(Path(directory) / _CHECKPOINT, buffer.getvalue())


def _load_checkpoint(directory, config, model, optimizer, scheduler) -> tuple[int, list]:
    path = Path(directory) / _CHECKPOINT
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
