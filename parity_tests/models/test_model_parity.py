"""Every registered model against its torch twin through the registry-driven runner
(`torch_ref.parity.model_parity`, the rows ``jax-lstm parity`` prints): outputs, the task's loss,
every gradient, and in train mode every BatchNorm's running statistics, in both dtypes."""

from __future__ import annotations

import numpy as np
import pytest

from jax_lstm.models import registry
from jax_lstm.testing import TOLERANCES, assert_all_close
from torch_ref.cases import MODEL_CASES, ModelCase
from torch_ref.parity import PARITY_TABLE, model_parity

# torch's note that an even kernel with padding="same" pads a copy of the input (kernel 8 here).
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")


def test_every_registered_model_has_parity_cases_and_report_rows():
    cased = {case.model for case in MODEL_CASES}
    assert cased == set(registry.names())
    rows = {case.model for kind, case, _ in PARITY_TABLE if kind == "model"}
    assert rows == set(registry.names())
    trained = {case.model for case in MODEL_CASES if case.train}
    assert trained == {e.name for e in registry.entries() if e.batch_stats}


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c.name)
def test_model_matches_torch(case: ModelCase, dtype: str):
    pairs = model_parity(case, dtype)
    entry = registry.get(case.model)
    outputs = "logits" if entry.task == "classification" else "forecast"
    expected_shape = (case.batch, *(case.output_shape or (case.num_outputs,)))
    assert pairs[outputs][0].shape == expected_shape and pairs[outputs][0].dtype == np.dtype(dtype)
    # Every parameter's gradient is compared, plus the input's.
    layout = entry.layout(
        registry.Dims(case.input_size, case.num_outputs, case.output_shape, case.seq_len),
        {**case.settings(), **entry.fixed},
    )
    params = [k for k, p in layout.items() if p.collection == "params"]
    assert sorted(k for k in pairs if k.startswith("grad/")) == sorted(
        [*(f"grad/{k}" for k in params), "grad/input"]
    )
    if case.train and entry.batch_stats:
        stats = [k for k, p in layout.items() if p.collection == "batch_stats"]
        assert sorted(k for k in pairs if "." in k and not k.startswith("grad/")) == sorted(stats)
        for key in stats:
            if key.endswith("num_batches_tracked"):
                # Two warm-up batches moved the statistics before this one, on both sides.
                assert pairs[key][1] == 3
            elif key.endswith("running_var"):
                assert not np.allclose(pairs[key][1], 1.0)
    if case.cell != "lstm":
        gates = {"gru": 3, "rnn": 1}[case.cell]
        assert pairs["grad/lstm.weight_hh_l0"][1].shape[0] == gates * case.hidden_size
    assert np.abs(pairs["grad/input"][1]).max() > 0  # a real gradient, not a vacuous comparison
    assert_all_close(pairs, TOLERANCES[dtype])
    if entry.task == "classification":
        assert (pairs["logits"][0].argmax(-1) == pairs["logits"][1].argmax(-1)).all()
