"""The one place `jax_lstm` reaches into `torch_ref`: the torch twin's run beside a JAX run
(``--compare-torch``) and the parity table (``jax-lstm parity``). Everything is imported when
called, so `jax_lstm` runs without torch until one of these is asked for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "TorchMissingError",
    "compare_with_twin",
    "cuda_available",
    "parity_report",
    "predict_twin",
    "require_torch",
]


class TorchMissingError(RuntimeError):
    """PyTorch is not installed; the message says how to install it."""


def require_torch(what: str) -> None:
    """Raises TorchMissingError naming `what` needs torch, before any work, when it is missing."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise TorchMissingError(f"{what} needs PyTorch: pip install 'jax-lstm[torch]'") from None


def compare_with_twin(
    config, dataset, variables: dict[str, Any], jax_history: Sequence, log: Callable | None
):
    """`torch_ref.compare.compare_with_twin`: the twin trained from `variables` on the same batches,
    compared with `jax_history`; a `torch_ref.compare.Comparison`."""
    from torch_ref.compare import compare_with_twin as compare

    return compare(config, dataset, variables, jax_history, log)


def predict_twin(model, x: np.ndarray) -> np.ndarray:
    """(B, L, F) -> a torch model's eval-mode outputs, as numpy (`torch_ref.train.predict_torch`)."""
    from torch_ref.train import predict_torch

    return predict_torch(model, x)


def parity_report(**kwargs) -> int:
    """`torch_ref.report.run_parity_report`: the parity table, exit status 1 on any failure."""
    require_torch("jax-lstm parity compares against PyTorch, which is not installed;")
    from torch_ref.report import run_parity_report

    return run_parity_report(**kwargs)


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()
