"""Patches of steps (``patch``): the article's models and attention-LSTM read each run of P
consecutive steps as one step of P x F features. The twins' parity (both dtypes, padded batches
with garbage in the padding) is in `torch_ref.cases.MODEL_CASES`; here the reshape itself, the
recipe's choice of P, the refusals, the state dicts and a patched model's life after training
(checkpoint, predict, export)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_lstm
from jax_lstm import data
from jax_lstm.cli import main
from jax_lstm.models import registry
from jax_lstm.rnn.masks import patch_steps, patched_length
from jax_lstm.training import TrainConfig, initial_variables, make_model, resolve_config
from torch_ref.models import patch_steps as torch_patch_steps
from torch_ref.twins import make_torch_model

PATCHED = ("lstm", "bn-lstm", "attention-lstm", "mdlstm")


def test_patch_steps_puts_each_runs_steps_side_by_side_and_completes_the_last_with_zeros():
    x = np.arange(2 * 7 * 3, dtype=np.float32).reshape(2, 7, 3)
    out, lengths = patch_steps(jnp.asarray(x), None, 3)
    assert out.shape == (2, 3, 9) and lengths is None
    np.testing.assert_array_equal(out[:, 0], x[:, 0:3].reshape(2, 9))
    np.testing.assert_array_equal(out[:, 1], x[:, 3:6].reshape(2, 9))
    np.testing.assert_array_equal(out[:, 2, :3], x[:, 6])
    np.testing.assert_array_equal(out[:, 2, 3:], 0)
    same, none = patch_steps(jnp.asarray(x), None, 1)
    assert same.shape == x.shape and none is None
    assert [patched_length(t, 4) for t in (1, 4, 5, 8, 9)] == [1, 1, 2, 2, 3]


def test_patch_steps_ignores_what_the_padding_holds_and_agrees_with_the_twins_helper():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 2)).astype(np.float32)
    lengths = np.array([8, 3, 5, 1])
    garbage = np.where(np.arange(8)[None, :, None] < lengths[:, None, None], x, np.float32(1e3))
    clean = np.where(np.arange(8)[None, :, None] < lengths[:, None, None], x, np.float32(0))
    a, la = patch_steps(jnp.asarray(garbage), jnp.asarray(lengths), 3)
    b, lb = patch_steps(jnp.asarray(clean), jnp.asarray(lengths), 3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, [3, 1, 2, 1])
    np.testing.assert_array_equal(lb, la)
    t, lt = torch_patch_steps(torch.tensor(garbage), torch.tensor(lengths), 3)
    np.testing.assert_array_equal(t.numpy(), np.asarray(a))
    np.testing.assert_array_equal(lt.numpy(), la)


def _series(num: int, steps: int) -> data.Dataset:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((num, steps, 1)).astype(np.float32)
    y = np.arange(num) % 2
    return data.Dataset("toy", x, y, x[:4], y[:4], ("a", "b"))


@pytest.mark.parametrize("model", PATCHED)
def test_the_recipe_makes_the_recurrence_at_most_32_steps_and_a_given_patch_wins(model):
    assert resolve_config(model, _series(8, 286)).patch == 9  # ceil(286 / 32)
    assert resolve_config(model, _series(8, 32)).patch == 1
    assert resolve_config(model, _series(8, 33)).patch == 2
    assert resolve_config(model, _series(8, 286), patch=1).patch == 1
    assert resolve_config(model, _series(8, 286), patch=4).patch == 4
    assert resolve_config(model).patch == 1  # no data: nothing to patch for


@pytest.mark.parametrize("model", ["lstm-fcn", "mlstm-fcn"])
def test_models_without_patches_keep_patch_1_and_refuse_another_by_name(model):
    assert resolve_config(model, _series(8, 286)).patch == 1
    with pytest.raises(ValueError, match=f"model '{model}' has no patch option"):
        resolve_config(model, _series(8, 286), patch=3)


def test_a_patch_below_1_is_refused_by_name():
    with pytest.raises(ValueError, match="patch must be at least 1"):
        TrainConfig(patch=0).validate()
    with pytest.raises(TypeError, match=r"TrainConfig\.patch must be int"):
        TrainConfig(patch=2.0).validate()
    with pytest.raises(ValueError, match="patch must be at least 1"):
        jax_lstm.models.LSTMClassifier(hidden_size=4, num_layers=1, num_classes=2, patch=0)


def test_a_patch_longer_than_the_series_is_refused_with_the_longest_that_fits():
    with pytest.raises(ValueError, match=r"patch 40 is longer than the series \(33 steps\).*--patch 33"):
        resolve_config("lstm", _series(8, 33), patch=40)
    assert resolve_config("lstm", _series(8, 33), patch=33).patch == 33


def test_the_command_refuses_a_bad_patch_before_any_work(capsys):
    assert main(["train", "--dataset", "synthetic", "--patch", "0", "--epochs", "1"]) == 2
    assert "patch must be at least 1" in capsys.readouterr().err
    assert main(["train", "--model", "lstm-fcn", "--patch", "2", "--epochs", "1"]) == 2
    assert "model 'lstm-fcn' has no patch option" in capsys.readouterr().err
    assert main(["train", "--patch", "1000000", "--epochs", "1"]) == 2
    assert "patch 1000000 is longer than the series (29 steps)" in capsys.readouterr().err


@pytest.mark.parametrize("model", PATCHED)
def test_a_patched_models_state_dict_moves_both_ways_exactly(model):
    dims = registry.Dims(2, 3, None, 10)
    settings = {"patch": 4, "hidden_size": 6} | ({} if model == "mdlstm" else {"num_layers": 1})
    config = dataclasses.replace(resolve_config(model), **settings)
    variables = initial_variables(config, dims)
    state_dict = jax_lstm.to_torch(variables, model=model)
    if model == "mdlstm":  # one value per cell, patched or not
        assert tuple(state_dict["mdlstm.weight_ih"].shape)[-1] == 1
    else:
        assert tuple(state_dict["lstm.weight_ih_l0"].shape)[1] == 8  # 4 steps x 2 features
    back = jax_lstm.from_torch(state_dict, model=model)
    for key, value in jax_lstm.interop.flatten_variables(variables).items():
        np.testing.assert_array_equal(jax_lstm.interop.flatten_variables(back)[key], value)
    twin = make_torch_model(model, dims, registry.get(model).arch(config))
    twin.load_state_dict(state_dict)
    x = np.random.default_rng(2).standard_normal((3, 10, 2))
    twin.double().eval()
    with torch.no_grad():
        expected = twin(torch.tensor(x)).numpy()
    flax_model = make_model(dataclasses.replace(config, dtype="float32"), dims)
    got = flax_model.apply(variables, jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=0, atol=2e-5)


def test_bn_lstms_state_dict_tells_its_patch_and_the_lstms_reads_as_one_wider_step():
    dims = registry.Dims(3, 2, None, 12)
    for model, arch_patch, features in (("bn-lstm", 4, 3), ("lstm", 1, 12)):
        config = TrainConfig(model=model, hidden_size=5, num_layers=1, patch=4)
        state_dict = jax_lstm.to_torch(initial_variables(config, dims), model=model)
        arch, read = registry.get(model).read_state_dict(state_dict)
        assert arch.get("patch", 1) == arch_patch and read.num_features == features


def test_a_patched_model_predicts_after_a_checkpoint_and_an_export_as_it_did_in_training(tmp_path):
    rng = np.random.default_rng(3)
    series = [rng.standard_normal((int(rng.integers(20, 41)), 2)) for _ in range(12)]
    labels = ["ab"[i % 2] for i in range(12)]
    clf = jax_lstm.LSTMSequenceClassifier(hidden_size=4, num_layers=1, epochs=1, patch=5)
    clf.fit(series, labels).save(tmp_path / "model")
    assert clf.config_["patch"] == 5
    loaded = jax_lstm.load(tmp_path / "model")
    assert loaded.config.patch == 5
    np.testing.assert_array_equal(loaded.predict_proba(series), clf.predict_proba(series))
    assert main(["export", str(tmp_path / "model"), str(tmp_path / "model.jaxexport")]) == 0
    exported = jax_lstm.load_exported(tmp_path / "model.jaxexport")
    np.testing.assert_allclose(exported.predict_proba(series), clf.predict_proba(series), rtol=0, atol=1e-6)
