"""Property-based parity: random architectures and shapes, compared with torch in both dtypes."""

from __future__ import annotations

import jax
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jax_lstm.testing import TOLERANCES, assert_all_close
from torch_ref.cases import LSTMCase
from torch_ref.parity import lstm_parity


@st.composite
def lstm_cases(draw):
    hidden = draw(st.integers(1, 12))
    seq_len = draw(st.integers(1, 12))
    batch = draw(st.one_of(st.none(), st.integers(1, 5)))
    # Half the architectures without a projection, so plain LSTMs are drawn as often as projected.
    proj = st.just(0) if hidden == 1 else st.one_of(st.just(0), st.integers(1, hidden - 1))
    # Padded batches (torch's packed path, the fused masked backward) whenever the input is batched.
    lengths = st.none()
    if batch is not None:
        lengths = st.one_of(st.none(), st.tuples(*[st.integers(1, seq_len)] * batch))
    return LSTMCase(
        name="random",
        input_size=draw(st.integers(1, 9)),
        hidden_size=hidden,
        num_layers=draw(st.integers(1, 3)),
        bias=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        bidirectional=draw(st.booleans()),
        proj_size=draw(proj),
        batch=batch,
        seq_len=seq_len,
        initial_state=draw(st.booleans()),
        lengths=draw(lengths),
    )


# Every example compiles a new shape (about a second), so the count is kept modest; the
# hand-written table in torch_ref/parity.py covers each argument deliberately.
PROPERTY_SETTINGS = settings(
    max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(case=lstm_cases(), seed=st.integers(0, 2**16), implementation=st.sampled_from(["fused", "scan"]))
def test_random_lstm_matches_torch_float32(case, seed, implementation):
    pairs = lstm_parity(case, "float32", seed=seed, implementation=implementation)
    assert_all_close(pairs, TOLERANCES["float32"])


@PROPERTY_SETTINGS
@given(case=lstm_cases(), seed=st.integers(0, 2**16), implementation=st.sampled_from(["fused", "scan"]))
def test_random_lstm_matches_torch_float64(case, seed, implementation):
    with jax.enable_x64(True):
        pairs = lstm_parity(case, "float64", seed=seed, implementation=implementation)
        assert_all_close(pairs, TOLERANCES["float64"])
