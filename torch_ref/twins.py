"""The torch twin of any registered model, found through `jax_lstm`'s model registry (each entry
names its twin's class in `torch_ref` and its constructor arguments)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import torch.nn as nn

from jax_lstm.models import registry

__all__ = ["make_torch_model", "twin_class"]


def twin_class(name: str) -> type[nn.Module]:
    """The torch class of model `name` (e.g. "lstm" -> `torch_ref.models.MultiDimLSTM`)."""
    module, _, cls = registry.get(name).torch_twin.partition(":")
    return getattr(importlib.import_module(module), cls)


def make_torch_model(name: str, dims: registry.Dims, arch: Mapping[str, Any]) -> nn.Module:
    """The torch twin of model `name` for data of `dims` and hyperparameters `arch`, initialised by
    torch itself (seed it with `torch.manual_seed` first)."""
    entry = registry.get(name)
    return twin_class(name)(**registry.torch_kwargs(entry, dims, arch))
