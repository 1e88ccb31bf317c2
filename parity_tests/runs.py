"""Whole training runs on both sides, and the check that they agree (shared by the test modules)."""

from __future__ import annotations

import numpy as np

import jax_lstm
from jax_lstm import data, training
from jax_lstm.testing import ARTICLE_RUN_RTOL
from torch_ref.train import torch_twin, train_torch


def run_both(config: training.TrainConfig, dataset: data.Dataset, data_parallel: bool | None = None):
    """`fit` and `train_torch` from the same initial weights (drawn from `config.seed`)."""
    variables = training.initial_variables(config, dataset.dims)
    twin = torch_twin(config, dataset, variables)
    jax_result = training.fit(config, dataset, variables=variables, log=None, data_parallel=data_parallel)
    torch_result = train_torch(config, dataset, model=twin, log=None)
    return jax_result, torch_result


def assert_runs_agree(result, reference, dtype: str, check_params: bool) -> None:
    """Per-epoch train and test losses within `ARTICLE_RUN_RTOL`, the same learning-rate trace, and
    with `check_params` every final parameter (running statistics included) of the torch reference."""
    rtol = ARTICLE_RUN_RTOL[dtype]
    for key in ("train_loss", "test_loss"):
        a = np.array([getattr(h, key) for h in result.history])
        b = np.array([getattr(h, key) for h in reference.history])
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0, err_msg=key)
    assert [h.lr for h in result.history] == [h.lr for h in reference.history]
    if check_params:
        state_dict = reference.model.state_dict()
        flat = jax_lstm.interop.flatten_variables(result.variables())
        assert set(flat) == set(state_dict)
        for name, expected in state_dict.items():
            expected = expected.numpy()
            if name.endswith("num_batches_tracked"):
                assert int(flat[name]) == int(expected)
                continue
            scale = np.abs(expected).max()
            np.testing.assert_allclose(
                np.asarray(flat[name]), expected, rtol=rtol, atol=rtol * scale, err_msg=name
            )
