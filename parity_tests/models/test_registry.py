"""The registry's conventions: a new model is one module (its Flax class and its `ModelEntry`), its
torch twin and one registration line, and then trains, checkpoints, converts and compares with
torch with nothing else changed; an option a model does not take is refused by name; every entry
point resolves the same config from the same data and settings."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_lstm
from jax_lstm import data, training
from jax_lstm import forecasting as fc
from jax_lstm.data import Dims
from jax_lstm.experiment import flags
from jax_lstm.models import registry
from jax_lstm.nn import Linear
from parity_tests.runs import assert_runs_agree, run_both

# ---------------------------------------------------------------------------------------------------
# A toy model, written as a model module would be: its Flax class, its entry; its twin below.


class MeanPoolClassifier(nn.Module):
    """The mean over valid steps of a Linear(F, H) + tanh, then Linear(H, C): (B, T, F) -> (B, C)."""

    hidden_size: int
    num_classes: int
    param_dtype: Any = jnp.float32
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x, train: bool = False, lengths=None):
        h = jnp.tanh(Linear(self.hidden_size, self.param_dtype, name="proj")(x))  # (B, T, H)
        if lengths is None:
            pooled = h.mean(axis=1)
        else:
            valid = (jnp.arange(x.shape[1])[None, :] < lengths[:, None]).astype(h.dtype)  # (B, T)
            pooled = jnp.einsum("bth,bt->bh", h, valid) / lengths[:, None].astype(h.dtype)
        return Linear(self.num_classes, self.param_dtype, name="fc")(pooled)


def _layout(dims: Dims, arch: Mapping[str, Any]) -> registry.Layout:
    return {
        **registry.linear_layout("proj", dims.num_features, arch["hidden_size"]),
        **registry.linear_layout("fc", arch["hidden_size"], dims.num_outputs),
    }


def _read(flat: Mapping[str, Any]) -> tuple[dict[str, Any], Dims]:
    hidden, features = flat["proj.weight"].shape
    return {"hidden_size": int(hidden)}, Dims(int(features), int(flat["fc.weight"].shape[0]))


TOY_ENTRY = registry.ModelEntry(
    name="toy-mean-pool",
    flax_class=MeanPoolClassifier,
    torch_twin="parity_tests.models.test_registry:TorchMeanPool",
    summary="a toy: mean of tanh(Linear) over time, then Linear",
    layout=_layout,
    read_state_dict=_read,
    modules=frozenset({"proj", "fc"}),
    dims_args=lambda dims: {"num_classes": dims.num_outputs},
    options=("hidden_size",),
)


class TorchMeanPool(torch.nn.Module):
    """The toy's torch twin."""

    def __init__(self, input_size: int, hidden_size: int, num_classes: int):
        super().__init__()
        self.proj = torch.nn.Linear(input_size, hidden_size)
        self.fc = torch.nn.Linear(hidden_size, num_classes)

    def forward(self, x, lengths=None):
        h = torch.tanh(self.proj(x))
        if lengths is None:
            return self.fc(h.mean(dim=1))
        valid = (torch.arange(x.size(1))[None, :] < lengths[:, None]).to(h.dtype)
        return self.fc(torch.einsum("bth,bt->bh", h, valid) / lengths[:, None].to(h.dtype))


@contextlib.contextmanager
def _registered(entry: registry.ModelEntry):
    """`entry` registered for the duration (the one registration line of a model module)."""
    registry.register(entry)
    try:
        yield entry
    finally:
        registry._REGISTRY.pop(entry.name)


def test_a_new_model_is_one_module_one_twin_and_one_registration_line(tmp_path, x64):
    with _registered(TOY_ENTRY):
        assert "toy-mean-pool" in registry.names("classification")
        dataset = data.japanese_vowels().astype("float64")  # unequal lengths: the padded path too
        config = training.resolve_config("toy-mean-pool", dataset, hidden_size=6, epochs=2, dtype="float64")
        assert (config.hidden_size, config.epochs, config.batch_size) == (6, 2, 16)  # the data's defaults
        # Trains in lockstep with its twin (float64: the same numbers), through the library's loop.
        jax_result, torch_result = run_both(config, dataset)
        assert_runs_agree(jax_result, torch_result, "float64", check_params=True)
        assert jax_result.history[-1].train_loss < jax_result.history[0].train_loss
        # Checkpoints and resume.
        ckpt = tmp_path / "ckpt"
        first = training.fit(dataclasses.replace(config, epochs=1), dataset, checkpoint_dir=ckpt, log=None)
        resumed = training.fit(config, dataset, checkpoint_dir=ckpt, resume=True, log=None)
        assert [h.train_loss for h in resumed.history] == [h.train_loss for h in jax_result.history]
        assert first.history[0].train_loss == jax_result.history[0].train_loss
        # Interop: recognised by its modules, bit-exact both ways.
        state_dict = jax_lstm.to_torch(resumed.variables())
        assert list(state_dict) == ["proj.weight", "proj.bias", "fc.weight", "fc.bias"]
        back = jax_lstm.from_torch(state_dict)
        assert jax.tree.all(
            jax.tree.map(lambda a, b: bool((np.asarray(a) == np.asarray(b)).all()), back, resumed.variables())
        )
        # The command line's --model takes it (its choices are the registry's).
        parser = argparse.ArgumentParser()
        flags.add_train_arguments(parser)
        request = flags.train_request(parser.parse_args(["--model", "toy-mean-pool", "--hidden-size", "3"]))
        assert request.prepare()[1].hidden_size == 3


def test_an_option_the_model_does_not_take_is_refused_by_name():
    with _registered(TOY_ENTRY):
        dataset = data.synthetic(num_samples=40)
        with pytest.raises(
            ValueError, match=r"model 'toy-mean-pool' has no cell option .* leave cell at 'lstm'"
        ):
            training.resolve_config("toy-mean-pool", dataset, cell="gru")
        with pytest.raises(ValueError, match="has no num_layers option"):
            training.TrainConfig(model="toy-mean-pool", num_layers=3).validate()
        training.TrainConfig(model="toy-mean-pool").validate()  # the neutral values pass


def test_the_forecasters_cell_reaches_the_model():
    """`fit_forecaster(table, cell="gru")` trains a GRU forecaster (its layout and its build agree)."""
    import pandas as pd

    rng = np.random.default_rng(0)
    values = np.cumsum(rng.standard_normal((80, 2)), axis=0)
    table = fc.table_from_frame(pd.DataFrame(values, columns=["a", "b"]))
    forecaster = fc.fit_forecaster(table, horizon=2, lookback=4, cell="gru", hidden_size=5, epochs=2)
    params = forecaster.variables()["params"]["lstm"]
    assert params["weight_hh_l0"].shape == (3 * 5, 5)  # a GRU's three gates
    assert np.isfinite(forecaster.evaluate().overall["mase"])
    twin = jax_lstm.to_torch(forecaster.variables(), model="lstm-forecaster")
    assert twin["lstm.weight_ih_l0"].shape == (15, 2)


@pytest.mark.parametrize("model", [n for n in registry.names("classification")])
def test_every_entry_point_resolves_the_same_config(model):
    """`jax-lstm train` (and ``python -m torch_ref train``, which shares its flags and request), the
    estimator and `resolve_config` itself give the same TrainConfig from the same data and settings."""
    dataset = data.japanese_vowels()
    parser = argparse.ArgumentParser()
    flags.add_train_arguments(parser)
    argv = ["--model", model, "--seed", "3", "--lr", "0.002"]
    _, from_cli = flags.train_request(parser.parse_args(argv)).prepare()
    direct = training.resolve_config(model, dataset, seed=3, lr=0.002)
    estimator = jax_lstm.LSTMSequenceClassifier(model=model, lr=0.002, random_state=3)
    train, _ = data.japanese_vowels_ts()
    x, lengths = data.pad_series(train.series)
    fitted_dataset = data.Dataset(
        "fit", x, np.zeros(len(x), np.int64), x[:0], np.zeros(0, np.int64), ("a",), lengths
    )
    from_estimator = estimator._config(fitted_dataset)
    assert (
        dataclasses.replace(from_cli, log_every=0)
        == dataclasses.replace(direct, log_every=0)
        == from_estimator
    )


def test_the_forecaster_resolves_the_same_config_from_the_cli_and_the_library():
    table = fc.seattle_weather()
    parser = argparse.ArgumentParser()
    flags.add_forecast_arguments(parser)
    request = flags.forecast_request(parser.parse_args(["--hidden-size", "7", "--cell", "gru"]))
    planned = fc.plan(table, **request.settings)
    direct = fc.plan(table, hidden_size=7, cell="gru")
    assert planned.config == direct.config
    assert (direct.config.hidden_size, direct.config.num_layers, direct.config.batch_size) == (7, 1, 32)
    windows = len(direct.dataset.y_train)
    assert direct.config.epochs == min(200, max(20, round(640 / math.ceil(windows / 32))))
