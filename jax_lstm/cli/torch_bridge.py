"""The one place `jax_lstm` reaches into `torch_ref`: the torch twin for ``--compare-torch`` and the
parity report of ``jax-lstm parity``. Everything is imported when called, so `jax-lstm` runs without
torch until one of these is asked for."""

from __future__ import annotations

from typing import Any

__all__ = [
    "TorchMissingError",
    "forecaster_twin",
    "parity_report",
    "predict_torch",
    "torch_twin",
    "train_forecaster_torch",
    "train_torch",
]


class TorchMissingError(RuntimeError):
    """PyTorch is not installed; the message says how to install it."""


def _require_torch(what: str) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise TorchMissingError(f"{what} needs PyTorch: pip install 'jax-lstm[torch]'") from None


def torch_twin(config, dataset, variables: dict[str, Any]):
    """The torch twin of `config.model` holding exactly `variables` (see `torch_ref.train.torch_twin`)."""
    _require_torch("--compare-torch")
    from torch_ref.train import torch_twin as twin

    return twin(config, dataset, variables)


def train_torch(config, dataset, model, log):
    """`torch_ref.train.train_torch`: the same loop in PyTorch, from `model`'s weights."""
    from torch_ref.train import train_torch as run

    return run(config, dataset, model=model, log=log)


def parity_report(**kwargs) -> int:
    """`torch_ref.report.run_parity_report`: the parity table, exit status 1 on any failure."""
    _require_torch("jax-lstm parity compares against PyTorch, which is not installed;")
    from torch_ref.report import run_parity_report

    return run_parity_report(**kwargs)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def forecaster_twin(config, dataset, variables: dict[str, Any]):
    """The forecaster's torch twin holding `variables` (`torch_ref.forecast_train.forecaster_twin`)."""
    _require_torch("--compare-torch")
    from torch_ref.forecast_train import forecaster_twin as twin

    return twin(config, dataset, variables)


def train_forecaster_torch(config, dataset, model, log):
    """`torch_ref.forecast_train.train_forecaster_torch`: the forecaster's loop in PyTorch."""
    from torch_ref.forecast_train import train_forecaster_torch as run

    return run(config, dataset, model=model, log=log)


def predict_torch(model, x):
    """(B, L, F) windows -> (B, H, T) forecasts of a torch forecaster, as numpy."""
    from torch_ref.forecast_train import predict_torch as run

    return run(model, x)
