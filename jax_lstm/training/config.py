"""`TrainConfig`: one training run's settings, validated before any work."""

from __future__ import annotations

import dataclasses
import math

import jax

from jax_lstm.models import registry
from jax_lstm.rnn import cudnn
from jax_lstm.rnn.layer import CELL_MODES
from jax_lstm.rnn.stack import IMPLEMENTATIONS

__all__ = ["TrainConfig"]


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

    def validate(self) -> TrainConfig:
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
            (0 <= self.seed < 2**64, f"seed must be in [0, 2**64) (numpy's seeds), got {self.seed}"),
            (self.dtype in ("float32", "float64"), f"dtype must be float32 or float64, got {self.dtype}"),
            (self.eval_batch_size >= 1, "eval_batch_size must be at least 1"),
            (
                self.implementation in IMPLEMENTATIONS,
                f"implementation must be one of {IMPLEMENTATIONS}, got {self.implementation!r}",
            ),
            (self.cell in CELL_MODES, f"cell must be one of {tuple(CELL_MODES)}, got {self.cell!r}"),
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
