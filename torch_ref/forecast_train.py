"""The forecaster's training loop in PyTorch, fed the same batches as `jax_lstm.fit`.

`torch_ref.train`'s loop with ``nn.MSELoss()`` instead of cross-entropy on `WindowDataset` windows
(x (N, L, F) -> y (N, H, T), scaled): batches from `jax_lstm.data.batch_order(seed, epoch)`, Adam,
``clip_grad_norm_`` before each step, ``ReduceLROnPlateau`` stepped once per epoch on the epoch's
mean training loss, and after every epoch the validation MSE (eval mode, chunks of
``eval_batch_size``), recorded in `EpochRecord.test_loss` as the JAX loop records it (accuracy NaN).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from jax_lstm.data import WindowDataset, batch_order, epoch_mean, micro_batch_bounds
from jax_lstm.interop import to_torch
from jax_lstm.models import registry
from jax_lstm.training import EpochRecord, TrainConfig
from torch_ref.parity import _torch_dtype
from torch_ref.train import TorchResult
from torch_ref.twins import make_torch_model

__all__ = ["forecaster_twin", "predict_torch", "train_forecaster_torch"]


def _dims(dataset: WindowDataset) -> registry.Dims:
    return registry.Dims(dataset.num_features, dataset.num_classes, dataset.output_shape)


def forecaster_twin(config: TrainConfig, dataset: WindowDataset, variables: dict[str, Any]) -> nn.Module:
    """The torch twin of `config.model` for `dataset`'s windows holding exactly `variables`."""
    entry = registry.get(config.model)
    model = make_torch_model(config.model, _dims(dataset), entry.arch(config)).to(_torch_dtype(config.dtype))
    model.load_state_dict(to_torch(variables, model=config.model), strict=True)
    return model


@torch.no_grad()
def predict_torch(model: nn.Module, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """(B, L, F) windows -> (B, H, T) forecasts in eval mode, as numpy."""
    model.eval()
    dtype = next(model.parameters()).dtype
    inputs = torch.from_numpy(np.ascontiguousarray(x)).to(dtype)
    out = [model(inputs[lo : lo + batch_size]) for lo in range(0, len(inputs), batch_size)]
    return torch.cat(out).numpy()


@torch.no_grad()
def _validation_mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """The mean over windows of each window's MSE (the JAX loop's sums, in the same order)."""
    if len(y) == 0:
        return math.nan
    model.eval()
    total = 0.0
    for lo in range(0, len(y), batch_size):
        err = model(x[lo : lo + batch_size]) - y[lo : lo + batch_size]
        total += err.square().reshape(len(err), -1).mean(dim=1).sum().item()
    return total / len(y)


def train_forecaster_torch(
    config: TrainConfig,
    dataset: WindowDataset,
    model: nn.Module | None = None,
    log: Callable[[str], None] | None = print,
) -> TorchResult:
    """Trains the forecaster's torch twin on `dataset`'s windows with `config`'s settings.

    `model`: the initial model (e.g. `forecaster_twin` of the JAX side's initial weights); default
    the twin initialised by torch from ``torch.manual_seed(config.seed)``.
    """
    dataset.validate(require_test=False)
    dtype = _torch_dtype(config.dtype)
    if model is None:
        torch.manual_seed(config.seed)
        model = make_torch_model(config.model, _dims(dataset), registry.get(config.model).arch(config))
    model = model.to(dtype)
    x_train, y_train, x_val, y_val = (
        torch.from_numpy(np.ascontiguousarray(a)).to(dtype)
        for a in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test)
    )
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, "min", patience=config.patience, factor=config.factor, min_lr=config.min_lr
    )
    history: list[EpochRecord] = []
    for epoch in range(config.epochs):
        model.train()
        batches = batch_order(len(y_train), config.batch_size, config.seed, epoch)
        lr_used = float(optimizer.param_groups[0]["lr"])
        losses: list[float] = []
        start = time.perf_counter()
        for idx in batches:
            index = torch.from_numpy(idx)
            inputs, targets = x_train[index], y_train[index]
            optimizer.zero_grad()
            loss_value = 0.0
            for lo, hi in micro_batch_bounds(len(idx), config.accumulate):
                loss = criterion(model(inputs[lo:hi]), targets[lo:hi]) * ((hi - lo) / len(idx))
                loss.backward()
                loss_value += loss.item()
            if config.clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=config.clip)
            optimizer.step()
            losses.append(loss_value)
        train_loss = epoch_mean(losses, [len(idx) for idx in batches])
        seconds = time.perf_counter() - start
        validation = _validation_mse(model, x_val, y_val, config.eval_batch_size)
        scheduler.step(train_loss)
        history.append(EpochRecord(epoch + 1, train_loss, validation, math.nan, lr_used, seconds))
        if log:
            log(
                f"Epoch [{epoch + 1}/{config.epochs}] train loss {train_loss:.4f}, validation MSE "
                f"{validation:.4f}, lr {lr_used:.2e}"
            )
    return TorchResult(model, history)
