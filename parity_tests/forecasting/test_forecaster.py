"""The forecaster in the registry (interop, checkpoints, the twin) and through the one training loop
(the forecasting task, `WindowDataset`, `fit_forecaster`, `Forecaster.predict`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import torch

import jax_lstm
from jax_lstm import forecasting as fc
from jax_lstm.cli import main
from jax_lstm.data import DataError, Dims, WindowDataset
from jax_lstm.models import registry
from jax_lstm.testing import TOLERANCES, assert_all_close
from jax_lstm.training import TrainConfig, fit, initial_variables, load_checkpoint, make_model, tasks
from torch_ref.forecaster import LSTMForecaster as TorchForecaster
from torch_ref.twins import make_torch_model


def _table(rows: int = 70, seed: int = 0) -> fc.Table:
    values = np.cumsum(np.random.default_rng(seed).standard_normal((rows, 3)), axis=0)
    quarters = pd.period_range("1990Q1", periods=rows, freq="Q")
    return fc.Table(("a", "b", "c"), values, ("a", "c"), quarters, 4, "toy")


def test_registry_entry_round_trips_through_torch_bit_exactly():
    entry = registry.get("lstm-forecaster")
    assert entry.task == "forecasting" and entry.flax_class is jax_lstm.LSTMForecaster
    assert "lstm-forecaster" in registry.names("forecasting")
    assert "lstm-forecaster" not in registry.names("classification")
    torch.manual_seed(0)
    twin = TorchForecaster(3, 5, 2, horizon=4, num_targets=2)
    variables = jax_lstm.from_torch(twin.state_dict(), model="lstm-forecaster")
    # The classifier "lstm" has the same layout: without model= the keys resolve to the same variables.
    assert jax.tree.map(np.array_equal, variables, jax_lstm.from_torch(twin.state_dict())) == jax.tree.map(
        lambda _: True, variables
    )
    back = jax_lstm.to_torch(variables, model="lstm-forecaster")
    assert list(back) == list(twin.state_dict())
    for key, value in twin.state_dict().items():
        assert torch.equal(back[key], value), key
    arch, dims = entry.read_state_dict(twin.state_dict())
    assert arch == {"hidden_size": 5, "num_layers": 2, "cell": "lstm"} and (
        dims.num_features,
        dims.num_outputs,
    ) == (3, 8)
    # The twin built through the registry for (H, T) = (4, 2) forecasts as the original does.
    rebuilt = make_torch_model("lstm-forecaster", registry.Dims(3, 8, (4, 2)), arch)
    assert type(rebuilt) is TorchForecaster and (rebuilt.horizon, rebuilt.num_targets) == (4, 2)
    rebuilt.load_state_dict(back, strict=True)
    x = torch.randn(2, 6, 3)
    assert torch.equal(rebuilt(x), twin(x))
    with pytest.raises(ValueError, match=r"output_shape \(4, 3\) does not hold num_outputs 8"):
        registry.Dims(3, 8, (4, 3))


def test_initial_variables_have_the_structure_of_init_and_torch_bounds():
    config = TrainConfig(model="lstm-forecaster", hidden_size=9, num_layers=2)
    variables = initial_variables(config, Dims(3, 8, (4, 2), 5))
    model = make_model(config, Dims(3, 8, (4, 2), 5))
    reference = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 5, 3)))
    assert jax.tree.structure(variables) == jax.tree.structure(reference)
    assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, reference)
    assert jax.tree.map(lambda a: a.dtype, variables) == jax.tree.map(lambda a: a.dtype, reference)
    assert float(jnp.abs(variables["params"]["fc"]["weight"]).max()) <= 1 / 3  # 1/sqrt(9)
    out = jax.eval_shape(lambda v, x: model.apply(v, x), variables, jnp.zeros((2, 5, 3)))
    assert out.shape == (2, 4, 2)


def test_forecasting_task_is_torch_mse(dtype):
    rng = np.random.default_rng(1)
    out, target = rng.standard_normal((2, 5, 3, 2)).astype(dtype)
    loss = tasks.FORECASTING.loss(jnp.asarray(out), jnp.asarray(target))
    expected = torch.nn.functional.mse_loss(torch.tensor(out), torch.tensor(target))
    assert_all_close({"mse": (np.asarray(loss), expected.numpy())}, TOLERANCES[dtype])
    sums = tasks.FORECASTING.eval_sums(jnp.asarray(out), jnp.asarray(target))
    mean, accuracy = tasks.FORECASTING.finish({"loss": np.asarray(sums["loss"])}, 5)
    assert mean == pytest.approx(float(expected), rel=1e-5) and np.isnan(accuracy)
    assert tasks.get("classification") is tasks.CLASSIFICATION
    with pytest.raises(ValueError, match="task must be one of"):
        tasks.get("regression")


def test_a_model_of_another_task_is_refused_before_training():
    windows = fc.window_dataset(fc.prepare(_table(), lookback=4, horizon=2, test_size=6))
    with pytest.raises(ValueError, match=r"model 'lstm' is a classification model .*\['lstm-forecaster'\]"):
        fit(TrainConfig(model="lstm", epochs=1), windows, log=None)
    labels = jax_lstm.data.Dataset(
        "d", np.zeros((4, 3, 2)), np.zeros(4, int), np.zeros((2, 3, 2)), np.zeros(2, int), ("a",)
    )
    with pytest.raises(ValueError, match="model 'lstm-forecaster' is a forecasting model"):
        fit(TrainConfig(model="lstm-forecaster", epochs=1), labels, log=None)


def test_window_dataset_refuses_bad_windows():
    x, y = np.zeros((4, 3, 2)), np.zeros((4, 2, 1))
    with pytest.raises(DataError, match="4 input windows but 3 target windows"):
        WindowDataset("w", x, y[:3], x, y).validate()
    with pytest.raises(DataError, match="train targets contain NaN"):
        WindowDataset("w", x, np.full_like(y, np.nan), x, y).validate()
    with pytest.raises(DataError, match="training needs at least 2"):
        WindowDataset("w", x[:1], y[:1], x, y).validate()
    with pytest.raises(DataError, match="do not match the training windows"):
        WindowDataset("w", x, y, x[:, :2], y).validate()


def test_fit_forecaster_predicts_dated_steps_and_checkpoints_restore_it(tmp_path, capsys):
    forecaster = fc.fit_forecaster(
        _table(), horizon=3, lookback=6, test_size=12, epochs=2, hidden_size=5, checkpoint_dir=tmp_path
    )
    assert (forecaster.lookback, forecaster.horizon, forecaster.targets) == (6, 3, ("a", "c"))
    assert [r.epoch for r in forecaster.result.history] == [1, 2]
    assert all(np.isfinite(r.val_loss) and np.isnan(r.test_loss) for r in forecaster.result.history)
    prediction = forecaster.predict()
    assert prediction.values.shape == (3, 2)
    assert list(prediction.times.astype(str)) == ["2007Q3", "2007Q4", "2008Q1"]  # after 1990Q1 + 69
    assert list(prediction.frame().columns) == ["a", "c"]
    table = forecaster.data.table
    from_array = forecaster.predict(table.values)
    np.testing.assert_array_equal(from_array.values, prediction.values)
    assert from_array.times is None
    # The forecast from the last window equals forecast_windows on that window, in original units.
    last = fc.make_windows(
        forecaster.data.scaler.transform(table.values), table.target_values, table.target_indices, [67], 6, 3
    )
    np.testing.assert_allclose(
        forecaster.forecast_windows(last)[0], forecaster.predict(table.values[:67]).values
    )
    evaluation = forecaster.evaluate()
    assert evaluation.num_origins == 10 and evaluation.overall["mase"] > 0
    with pytest.raises(ValueError, match="history has 4 rows, fewer than the model's lookback 6"):
        forecaster.predict(table.values[:4])
    with pytest.raises(ValueError, match=r"history must be \(rows, 3\)"):
        forecaster.predict(table.values[:, :2])
    # The checkpoint knows (H, T) and restores the same weights.
    loaded = load_checkpoint(tmp_path)
    assert loaded.data["output_shape"] == [3, 2] and "classes" not in loaded.data
    for a, b in zip(
        jax.tree.leaves(loaded.variables()), jax.tree.leaves(forecaster.variables()), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    # `jax-lstm export` writes it as the twin's state dict, with the twin's arguments.
    exported = tmp_path / "forecaster.pt"
    assert main(["export", str(tmp_path), str(exported)]) == 0
    out = capsys.readouterr().out
    assert (
        "torch_ref.LSTMForecaster(input_size=3, horizon=3, num_targets=2, hidden_size=5, num_layers=1" in out
    )
    twin = TorchForecaster(3, 5, 1, horizon=3, num_targets=2)
    twin.load_state_dict(torch.load(exported), strict=True)
    window = forecaster.data.test.inputs[:2]
    ours = forecaster.forecast_scaled(window)
    theirs = twin(torch.tensor(window, dtype=torch.float32)).detach().numpy()
    assert_all_close({"forecast": (ours.astype(np.float32), theirs)}, TOLERANCES["float32"])


def test_fit_forecaster_takes_a_data_frame_and_accumulation_gives_the_whole_batch_update(x64):
    frame = pd.DataFrame({"t": pd.date_range("2020-01-01", periods=60, freq="D").astype(str)})
    frame["y"] = np.sin(np.arange(60) / 3)
    frame["z"] = np.cos(np.arange(60) / 5)
    kwargs = dict(horizon=2, lookback=5, test_size=8, epochs=2, hidden_size=4, batch_size=8, dtype="float64")
    whole = fc.fit_forecaster(frame, time_column="t", targets=["y"], **kwargs)
    split = fc.fit_forecaster(frame, time_column="t", targets=["y"], accumulate=2, **kwargs)
    assert whole.data.table.season == 7 and whole.targets == ("y",)
    ours = [r.train_loss for r in whole.result.history]
    theirs = [r.train_loss for r in split.result.history]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert list(whole.predict().times.strftime("%Y-%m-%d")) == ["2020-03-01", "2020-03-02"]
    with pytest.raises(ValueError, match="time_column and targets apply to a DataFrame"):
        fc.fit_forecaster(_table(), time_column="t")


def test_the_loop_trains_the_forecaster_as_the_torch_twin_does(x64):
    """`jax_lstm.fit` on windows against `torch_ref.train`, from the same weights: float64."""
    from torch_ref.train import torch_twin, train_torch

    data = fc.prepare(_table(), lookback=5, horizon=2, test_size=10)
    dataset = fc.window_dataset(data)
    config = TrainConfig(
        model="lstm-forecaster", hidden_size=6, num_layers=2, epochs=3, batch_size=8, lr=1e-2, dtype="float64"
    )
    variables = initial_variables(config, Dims(3, 4, (2, 2)))
    twin = torch_twin(config, dataset, variables)
    ours = fit(config, dataset, variables=variables, log=None)
    theirs = train_torch(config, dataset, twin, log=None)
    for a, b in zip(ours.history, theirs.history, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-12)
        assert a.val_loss == pytest.approx(b.val_loss, rel=1e-12)
    assert ours.history[-1].train_loss < ours.history[0].train_loss
