"""Shared fixtures. JAX's 64-bit mode is off by default, as for users; float64 tests switch it on
for their own duration only, so the float32 tests run the configuration people actually use. JAX
sees two CPU devices (see below)."""

from __future__ import annotations

import os

# Two CPU devices, as `jax-lstm` sets up on a 2-core machine, so that the data-parallel paths run
# (and are compared with torch) in this suite. Must precede JAX's backend initialisation.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()

import jax
import pytest
import torch

# The parity cases are tiny; more threads only add scheduling noise on small machines.
torch.set_num_threads(1)

# Strict about implicit rank promotion, as equinox's suite is: a (B, 4H) + (4H,) that broadcasts by
# accident raises here, so the model code spells out every broadcast. (Strict *dtype* promotion
# would trip optax's own Adam, so it stays at the default.)
jax.config.update("jax_numpy_rank_promotion", "raise")


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


@pytest.fixture(autouse=True)
def _restore_x64():
    """`jax-lstm train --dtype float64` switches 64-bit mode on for the process, as a user's run
    should; a test that runs it must not leave it on for the tests after it."""
    before = jax.config.read("jax_enable_x64")
    yield
    if jax.config.read("jax_enable_x64") != before:
        jax.config.update("jax_enable_x64", before)
