"""The 2-D MDLSTM classifier as registry model ``mdlstm``: its entry (layout, state-dict reader,
options, recipe) agrees with the Flax class and the torch twin; it trains through the library's loop
in lockstep with the twin's; and ``jax-lstm train --model mdlstm --dataset digits`` checkpoints,
resumes and exports (``.pt`` and ``.jaxexport``). Its parity rows are `torch_ref.cases.MODEL_CASES`'
``mdlstm*`` (`parity_tests/models/test_model_parity.py`)."""

from __future__ import annotations

import importlib.util
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_lstm
from jax_lstm import data, training
from jax_lstm.cli import main
from jax_lstm.data import Dims
from jax_lstm.models import registry
from jax_lstm.models.mdlstm import MDLSTMClassifier
from parity_tests.runs import assert_runs_agree, run_both
from torch_ref import MDLSTMClassifier as TorchMDLSTMClassifier
from torch_ref.twins import make_torch_model

ENTRY = registry.get("mdlstm")
HIDDEN, CLASSES = 3, 4
DIMS = Dims(num_features=5, num_outputs=CLASSES, seq_len=6)


def _config(**settings) -> training.TrainConfig:
    return training.TrainConfig(model="mdlstm", hidden_size=HIDDEN, **settings)


def _twin(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return make_torch_model("mdlstm", DIMS, ENTRY.arch(_config()))


def test_the_layout_is_the_flax_init_and_the_twins_state_dict():
    layout = ENTRY.layout(DIMS, ENTRY.arch(_config()))
    twin = _twin()
    assert isinstance(twin, TorchMDLSTMClassifier)
    state = twin.state_dict()
    # torch's order, names and shapes; 4 directions of 5 tensors, then the head.
    assert [(k, p.shape) for k, p in layout.items()] == [(k, tuple(v.shape)) for k, v in state.items()]
    assert len(layout) == 4 * 5 + 2
    for key, param in layout.items():
        fan = HIDDEN if key.startswith("mdlstm.") else 4 * HIDDEN
        assert param.init == "uniform" and param.bound == pytest.approx(1 / math.sqrt(fan)), key
    # The drawn initial weights have model.init's tree, shapes and dtypes.
    model = training.make_model(_config(), DIMS)
    x = jnp.zeros((2, DIMS.seq_len, DIMS.num_features))
    init = jax.eval_shape(model.init, jax.random.key(0), x)
    drawn = training.initial_variables(_config(), DIMS)
    assert jax.tree.map(lambda a: (a.shape, a.dtype), drawn) == jax.tree.map(
        lambda a: (a.shape, a.dtype), init
    )
    # No parameter depends on the grid's size: other series lengths and channel counts, one layout.
    other = ENTRY.layout(Dims(2, CLASSES, seq_len=40), ENTRY.arch(_config()))
    assert {k: p.shape for k, p in other.items()} == {k: p.shape for k, p in layout.items()}


def test_a_state_dict_is_recognised_read_back_and_checked():
    state = _twin().state_dict()
    arch, dims = ENTRY.read_state_dict(state)
    # The grid's width sizes no parameter: not in the state dict, so not known (0).
    assert arch == {"hidden_size": HIDDEN} and dims == Dims(0, CLASSES)
    variables = jax_lstm.from_torch(state)  # recognised by its modules, no model= needed
    back = jax_lstm.to_torch(variables)
    assert list(back) == list(state)
    for key, value in state.items():
        np.testing.assert_array_equal(back[key].numpy(), value.numpy(), strict=True)
    wrong = dict(state)
    wrong["mdlstm.weight_ih_dir2"] = torch.zeros(5 * HIDDEN, 2)  # two channels per cell
    with pytest.raises(ValueError, match=r"mdlstm\.weight_ih_dir2"):
        jax_lstm.from_torch(wrong)
    one_direction = {k: v for k, v in state.items() if "_dir" not in k}
    with pytest.raises(KeyError, match=r"mdlstm\.weight_ih_dir1"):
        jax_lstm.from_torch(one_direction, model="mdlstm")
    wider = dict(state)
    wider["fc.weight"] = torch.zeros(CLASSES, 5 * HIDDEN)
    with pytest.raises(ValueError, match=r"fc\.weight"):
        jax_lstm.from_torch(wider)


def test_options_recipe_and_implementations():
    digits = data.digits()
    config = training.resolve_config("mdlstm", digits)
    assert (config.hidden_size, config.lr, config.epochs, config.batch_size) == (32, 0.01, 20, 32)
    assert (config.schedule, config.clip) == ("cosine", 1.0)
    for setting, message in (
        ({"num_layers": 3}, "has no num_layers option"),
        ({"cell": "gru"}, "has no cell option"),
        ({"dropout": 0.5}, "has no dropout option"),
    ):
        with pytest.raises(ValueError, match=message):
            training.resolve_config("mdlstm", digits, **setting)
    scan = training.resolve_config("mdlstm", digits, implementation="scan")
    assert training.make_model(scan, digits.dims).implementation == "scan"
    with pytest.raises(ValueError, match="it has no cuDNN kernel"):
        MDLSTMClassifier(HIDDEN, CLASSES, implementation="cudnn")
    # Both backward passes give one gradient (the wavefront's own tests compare them closely).
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 4, 3)), jnp.float32)
    variables = training.initial_variables(_config(), Dims(3, CLASSES, seq_len=4))
    grads = [
        jax.jit(jax.grad(lambda p, m=m: jnp.sum(m.apply({"params": p}, x) ** 2)))(variables["params"])
        for m in (MDLSTMClassifier(HIDDEN, CLASSES), MDLSTMClassifier(HIDDEN, CLASSES, implementation="scan"))
    ]
    for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_parity_on_cudnn_lists_the_mdlstm_cases_as_not_applicable():
    """``jax-lstm parity --implementation cudnn`` (a GPU's) shows the model's rows as n/a, with the
    model's own reason, rather than failing them."""
    from torch_ref.cases import MODEL_CASES
    from torch_ref.report import _not_applicable

    cases = [case for case in MODEL_CASES if case.model == "mdlstm"]
    assert len(cases) >= 3 and any(case.lengths for case in cases)
    for case in cases:
        assert "no cuDNN kernel" in _not_applicable("cudnn", "float32", case)
        assert _not_applicable("fused", "float32", case) is None


def _digits_slice(n_train: int, n_test: int) -> data.Dataset:
    full = data.digits()
    return data.Dataset(
        "digits-slice",
        full.x_train[:n_train].astype(np.float64),
        full.y_train[:n_train],
        full.x_test[:n_test].astype(np.float64),
        full.y_test[:n_test],
        full.classes,
    )


def test_trains_in_lockstep_with_the_twins_loop(x64):
    """`fit` and `torch_ref.train.train_torch` (what ``--compare-torch`` runs) from the same initial
    weights, float64: the same losses every epoch and the same final weights."""
    dataset = _digits_slice(48, 20)
    config = training.resolve_config(
        "mdlstm", dataset, hidden_size=HIDDEN, epochs=2, batch_size=16, dtype="float64"
    )
    jax_result, torch_result = run_both(config, dataset)
    assert_runs_agree(jax_result, torch_result, "float64", check_params=True)
    assert jax_result.history[-1].train_loss < jax_result.history[0].train_loss


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``jax-lstm train --model mdlstm --dataset digits --epochs 1`` (a small hidden size, so the
    test stays short) with a checkpoint and its metrics."""
    root = tmp_path_factory.mktemp("mdlstm")
    ckpt, metrics = root / "ckpt", root / "metrics.json"
    argv = ["train", "--model", "mdlstm", "--dataset", "digits", "--hidden-size", "4", "--quiet"]
    argv += ["--checkpoint-dir", str(ckpt)]
    assert main([*argv, "--epochs", "1", "--metrics-json", str(metrics)]) == 0
    return root, argv


def test_the_cli_trains_checkpoints_and_resumes(trained, capsys):
    root, argv = trained
    first = json.loads((root / "metrics.json").read_text())
    assert first["config"]["model"] == "mdlstm" and first["config"]["schedule"] == "cosine"
    assert [e["epoch"] for e in first["epochs"]] == [1] and 0 <= first["test_accuracy"] <= 1
    resumed_metrics = root / "resumed.json"
    capsys.readouterr()
    assert main([*argv, "--epochs", "2", "--resume", "--metrics-json", str(resumed_metrics)]) == 0
    # The header shows the sizes the model takes: it has no layers, cell or dropout.
    assert "model mdlstm: hidden 4, patch 1 | 2 epochs, batch 32, lr 0.01" in capsys.readouterr().out
    resumed = json.loads(resumed_metrics.read_text())
    assert resumed["epochs"][:1] == first["epochs"] and len(resumed["epochs"]) == 2
    loaded = training.load_checkpoint(root / "ckpt")
    assert loaded.config.model == "mdlstm" and loaded.epoch == 2


def test_export_writes_the_twins_state_dict(trained, capsys):
    root, _ = trained
    path = root / "weights.pt"
    assert main(["export", str(root / "ckpt"), str(path)]) == 0
    out = capsys.readouterr().out
    assert "MDLSTMClassifier(input_size=8, num_classes=10, hidden_size=4, patch=1)" in out
    twin = TorchMDLSTMClassifier(input_size=8, num_classes=10, hidden_size=4)
    twin.load_state_dict(torch.load(path), strict=True)  # the printed constructor's shapes
    predictor = jax_lstm.load(root / "ckpt")
    x = data.digits().x_test[:16]
    with torch.no_grad():
        expected = torch.softmax(twin(torch.from_numpy(x)), dim=-1).numpy()
    np.testing.assert_allclose(predictor.predict_proba(list(x)), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("flatbuffers") is None, reason="jax.export needs flatbuffers")
def test_jax_export_takes_series_up_to_the_training_length(trained, capsys):
    """The wavefront's program has the grid's shapes, so the artefact is compiled for the training
    length: shorter series (padded, with lengths) run, longer ones are refused by name."""
    root, _ = trained
    path = root / "model.jaxexport"
    assert main(["export", str(root / "ckpt"), str(path)]) == 0
    exported = jax_lstm.load_exported(path)
    assert exported.meta["fixed_length"] and exported.meta["seq_len"] == 8
    predictor = jax_lstm.load(root / "ckpt")
    x = data.digits().x_test[:6]
    for series in (list(x), [s[:5] for s in x]):
        np.testing.assert_allclose(
            exported.predict_proba(series), predictor.predict_proba(series), rtol=1e-5, atol=1e-7
        )
    with pytest.raises(ValueError, match="at most 8"):
        exported.predict_proba([np.zeros((9, 8))])
    assert predictor.predict_proba([np.zeros((9, 8))]).shape == (1, 10)  # in process: any length
