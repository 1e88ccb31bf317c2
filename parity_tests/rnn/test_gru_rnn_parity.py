"""nn.GRU, nn.RNN and the three cells against torch: identical weights, same outputs, final states
and gradients; torch's error wording; the interop round trip."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_lstm
from jax_lstm.testing import TOLERANCES, assert_all_close
from torch_ref.parity import CELL_CASES, GRU_RNN_CASES, CellCase, LayerCase, cell_parity, layer_parity


@pytest.mark.parametrize("case", GRU_RNN_CASES, ids=lambda c: c.name)
def test_layer_matches_torch(case: LayerCase, dtype: str):
    pairs = layer_parity(case, dtype)
    spec = jax_lstm.RNNSpec(
        case.input_size, case.hidden_size, case.num_layers, case.bias, case.bidirectional, mode=case.mode
    )
    # Every torch parameter's gradient is compared, plus the input's (and h_0's if given).
    num_params = len(jax_lstm.rnn.spec.param_shapes(spec))
    assert sum(n.startswith("grad/") for n in pairs) == num_params + 1 + case.initial_state
    assert "c_n" not in pairs
    for name, (actual, _) in pairs.items():
        assert actual.dtype == np.dtype(dtype), f"{name} came out as {actual.dtype}"
    assert_all_close(pairs, TOLERANCES[dtype])


@pytest.mark.parametrize("case", CELL_CASES, ids=lambda c: c.name)
def test_cell_matches_torch(case: CellCase, dtype: str):
    pairs = cell_parity(case, dtype)
    num_states = 2 if case.mode == "LSTM" else 1
    assert sum(n.startswith("grad/") for n in pairs) == (4 if case.bias else 2) + 1 + num_states * case.state
    assert pairs["h_1"][0].shape == ((case.hidden_size,) if case.batch is None else (case.batch, case.hidden_size))
    assert_all_close(pairs, TOLERANCES[dtype])
