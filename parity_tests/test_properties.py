"""Property-based parity: random architectures and shapes, compared with torch in both dtypes."""

from __future__ import annotations

import jax
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jax_lstm.testing import TOLERANCES, assert_all_close
from torch_ref.parity import LSTMCase, lstm_parity


@st.composite
def lstm_cases(draw):
    hidden = draw(st.integers(1, 12))
    return LSTMCase(
        name="random",
        input_size=draw(st.integers(1, 9)),
        hidden_size=hidden,
        num_layers=draw(st.integers(1, 3)),
        bias=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        bidirectional=draw(st.booleans()),
        proj_size=draw(st.integers(0, hidden - 1)),
        batch=draw(st.one_of(st.none(), st.integers(1, 5))),
        seq_len=draw(st.integers(1, 12)),
        initial_state=draw(st.booleans()),
    )


# Every example compiles a new shape (about a second), so the count is kept modest; the
# hand-written table in torch_ref/parity.py covers each argument deliberately.
PROPERTY_SETTINGS = settings(
    max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(case=lstm_cases(), seed=st.integers(0, 2**16))
def test_random_lstm_matches_torch_float32(case, seed):
    assert_all_close(lstm_parity(case, "float32", seed=seed), TOLERANCES["float32"])


@PROPERTY_SETTINGS
@given(case=lstm_cases(), seed=st.integers(0, 2**16))
def test_random_lstm_matches_torch_float64(case, seed):
    with jax.enable_x64(True):
        assert_all_close(lstm_parity(case, "float64", seed=seed), TOLERANCES["float64"])
