"""Shared fixtures. JAX's 64-bit mode is off by default, as for users; float64 tests switch it on
for their own duration only, so the float32 tests run the configuration people actually use."""

from __future__ import annotations

import jax
import pytest
import torch

# The parity cases are tiny; more threads only add scheduling noise on small machines.
torch.set_num_threads(1)


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """Each test using it runs twice: float32, and float64 with jax_enable_x64 on."""
    if request.param == "float64":
        with jax.enable_x64(True):
            yield "float64"
    else:
        yield "float32"


@pytest.fixture
def x64():
    """JAX 64-bit mode for the duration of one test."""
    with jax.enable_x64(True):
        yield
