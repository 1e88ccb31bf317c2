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
from jax_lstm import data, training
from jax_lstm.data import Dims
from jax_lstm.testing import TOLERANCES, assert_all_close
from parity_tests.runs import assert_runs_agree, run_both
from torch_ref.cases import CELL_CASES, GRU_RNN_CASES, CellCase, LayerCase
from torch_ref.parity import cell_parity, layer_parity


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
    assert pairs["h_1"][0].shape == (
        (case.hidden_size,) if case.batch is None else (case.batch, case.hidden_size)
    )
    assert_all_close(pairs, TOLERANCES[dtype])


_FAMILY = {
    "LSTM": (torch.nn.LSTM, jax_lstm.LSTM, torch.nn.LSTMCell, jax_lstm.LSTMCell, {}),
    "GRU": (torch.nn.GRU, jax_lstm.GRU, torch.nn.GRUCell, jax_lstm.GRUCell, {}),
    "RNN_TANH": (torch.nn.RNN, jax_lstm.RNN, torch.nn.RNNCell, jax_lstm.RNNCell, {"nonlinearity": "tanh"}),
    "RNN_RELU": (torch.nn.RNN, jax_lstm.RNN, torch.nn.RNNCell, jax_lstm.RNNCell, {"nonlinearity": "relu"}),
}


@pytest.mark.parametrize("mode", list(_FAMILY))
def test_cell_looped_over_time_is_the_one_layer_layer(mode: str, x64):
    """Our cell stepped by hand over a sequence, with the layer's weights (suffix ``_l0`` dropped),
    gives the layer's output at every step and its final state."""
    _, layer_cls, _, cell_cls, kwargs = _FAMILY[mode]
    x = jax.random.normal(jax.random.key(0), (6, 3, 4), jnp.float64)
    layer = layer_cls(5, **kwargs, param_dtype=jnp.float64)
    variables = layer.init(jax.random.key(1), x)
    out, final = layer.apply(variables, x)
    cell_vars = {"params": {k.removesuffix("_l0"): v for k, v in variables["params"].items()}}
    cell = cell_cls(5, **kwargs)
    state = None
    steps = []
    for t in range(x.shape[0]):
        state = cell.apply(cell_vars, x[t], state)
        steps.append(state[0] if mode == "LSTM" else state)
    np.testing.assert_allclose(np.stack(steps), out, rtol=1e-14, atol=1e-15)
    for ours, theirs in zip(jax.tree.leaves(state), jax.tree.leaves(final), strict=True):
        np.testing.assert_allclose(ours, theirs[0], rtol=1e-14, atol=1e-15)


def test_functional_gru_and_rnn_are_the_modules(x64):
    x = jax.random.normal(jax.random.key(2), (2, 5, 3), jnp.float64)
    h0 = jax.random.normal(jax.random.key(3), (2, 2, 4), jnp.float64)
    for module, fn in (
        (jax_lstm.GRU(4, 2, batch_first=True, param_dtype=jnp.float64), jax_lstm.functional.gru),
        (jax_lstm.RNN(4, 2, batch_first=True, nonlinearity="relu", param_dtype=jnp.float64), None),
    ):
        variables = module.init(jax.random.key(0), x)
        expected = module.apply(variables, x, h0)
        if fn is None:
            got = jax_lstm.functional.rnn(variables["params"], x, h0, "relu", batch_first=True)
            tanh = jax_lstm.functional.rnn(variables["params"], x, h0, batch_first=True)
            assert not np.allclose(tanh[0], got[0])  # the nonlinearity is the functional's argument
        else:
            got = fn(variables["params"], x, h0, batch_first=True)
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)


def _message(fn) -> tuple[type, str]:
    with pytest.raises(Exception) as info:  # the table compares whatever is raised
        fn()
    return info.type, str(info.value)


def _cell_vars(cell: torch.nn.Module) -> dict:
    return jax_lstm.from_torch(cell.state_dict())


_T = torch.zeros
_J = jnp.zeros
_GRU_CELL, _LSTM_CELL, _RNN_CELL = torch.nn.GRUCell(4, 8), torch.nn.LSTMCell(4, 8), torch.nn.RNNCell(4, 8)
_GRU_2 = torch.nn.GRU(3, 4, 2)

# (name, torch call, our call): the same message (torch raises RuntimeError for size checks, we
# ValueError; the type of the constructor and rank checks is the same).
ERROR_TABLE = [
    (
        "rnn_nonlinearity",
        lambda: torch.nn.RNN(3, 4, nonlinearity="sigmoid"),
        lambda: jax_lstm.RNN(4, nonlinearity="sigmoid"),
    ),
    (
        "gru_hidden_shape",
        lambda: _GRU_2(_T(5, 2, 3), _T(1, 2, 4)),
        lambda: jax_lstm.GRU(4, 2).apply(
            jax_lstm.from_torch(_GRU_2.state_dict()), _J((5, 2, 3)), _J((1, 2, 4))
        ),
    ),
    (
        "gru_input_size",
        lambda: _GRU_2(_T(5, 2, 2)),
        lambda: jax_lstm.GRU(4, 2).apply(jax_lstm.from_torch(_GRU_2.state_dict()), _J((5, 2, 2))),
    ),
    (
        "gru_input_rank",
        lambda: _GRU_2(_T(5, 2, 3, 1)),
        lambda: jax_lstm.GRU(4, 2).apply(jax_lstm.from_torch(_GRU_2.state_dict()), _J((5, 2, 3, 1))),
    ),
    (
        "cell_batch",
        lambda: _GRU_CELL(_T(3, 4), _T(1, 8)),
        lambda: jax_lstm.GRUCell(8).apply(_cell_vars(_GRU_CELL), _J((3, 4)), _J((1, 8))),
    ),
    (
        "cell_hidden_size",
        lambda: _RNN_CELL(_T(3, 4), _T(3, 5)),
        lambda: jax_lstm.RNNCell(8).apply(_cell_vars(_RNN_CELL), _J((3, 4)), _J((3, 5))),
    ),
    (
        "lstm_cell_hidden1_size",
        lambda: _LSTM_CELL(_T(3, 4), (_T(3, 8), _T(3, 5))),
        lambda: jax_lstm.LSTMCell(8).apply(_cell_vars(_LSTM_CELL), _J((3, 4)), (_J((3, 8)), _J((3, 5)))),
    ),
    (
        "lstm_cell_input_rank",
        lambda: _LSTM_CELL(_T(2, 3, 4)),
        lambda: jax_lstm.LSTMCell(8).apply(_cell_vars(_LSTM_CELL), _J((2, 3, 4))),
    ),
    (
        "lstm_cell_hx0_rank",
        lambda: _LSTM_CELL(_T(3, 4), (_T(2, 3, 8), _T(3, 8))),
        lambda: jax_lstm.LSTMCell(8).apply(_cell_vars(_LSTM_CELL), _J((3, 4)), (_J((2, 3, 8)), _J((3, 8)))),
    ),
    (
        "gru_cell_hidden_rank",
        lambda: _GRU_CELL(_T(3, 4), _T(2, 3, 8)),
        lambda: jax_lstm.GRUCell(8).apply(_cell_vars(_GRU_CELL), _J((3, 4)), _J((2, 3, 8))),
    ),
    (
        "cell_input_size",
        lambda: _GRU_CELL(_T(3, 5)),
        lambda: jax_lstm.GRUCell(8).apply(_cell_vars(_GRU_CELL), _J((3, 5))),
    ),
    (
        "cell_unbatched_input_batched_state",
        lambda: _GRU_CELL(_T(4), _T(3, 8)),
        lambda: jax_lstm.GRUCell(8).apply(_cell_vars(_GRU_CELL), _J((4,)), _J((3, 8))),
    ),
    (
        "cell_batched_input_unbatched_state",
        lambda: _RNN_CELL(_T(3, 4), _T(8)),
        lambda: jax_lstm.RNNCell(8).apply(_cell_vars(_RNN_CELL), _J((3, 4)), _J((8,))),
    ),
]


@pytest.mark.parametrize(("name", "theirs", "ours"), ERROR_TABLE, ids=[row[0] for row in ERROR_TABLE])
def test_errors_have_torchs_wording(name: str, theirs, ours):
    torch_type, torch_message = _message(theirs)
    our_type, our_message = _message(ours)
    # torch's words exactly; a layer's rank message may add the shapes to pass, in parentheses.
    assert our_message == torch_message or our_message.startswith(f"{torch_message} (")
    assert our_type is (ValueError if torch_type is RuntimeError else torch_type)


def test_relu_cell_nonlinearity_is_refused_at_construction():
    """torch's RNNCell accepts any string and fails in forward; ours refuses it at once (nn.RNN's words)."""
    with pytest.raises(
        ValueError, match=re.escape("Unknown nonlinearity 'sigmoid'. Select from 'tanh' or 'relu'.")
    ):
        jax_lstm.RNNCell(8, nonlinearity="sigmoid")


@pytest.mark.parametrize(
    ("torch_module", "ours", "found"),
    [
        (torch.nn.GRU(3, 4), jax_lstm.LSTM(4), "nn.GRU state dict .* use jax_lstm.GRU"),
        (torch.nn.LSTM(3, 4), jax_lstm.GRU(4), "nn.LSTM state dict .* use jax_lstm.LSTM"),
        (torch.nn.RNN(3, 4), jax_lstm.GRU(4), "nn.RNN state dict .* use jax_lstm.RNN"),
        (torch.nn.GRU(3, 4), jax_lstm.RNN(4), "nn.GRU state dict .* use jax_lstm.GRU"),
        (torch.nn.RNNCell(3, 4), jax_lstm.GRUCell(4), "nn.RNNCell state dict .* use jax_lstm.RNNCell"),
        (torch.nn.GRUCell(3, 4), jax_lstm.LSTMCell(4), "nn.GRUCell state dict .* use jax_lstm.GRUCell"),
    ],
)
def test_another_members_weights_name_the_module_to_use(torch_module, ours, found):
    variables = jax_lstm.from_torch(torch_module.state_dict())
    x = jnp.zeros((2, 3)) if "Cell" in type(ours).__name__ else jnp.zeros((5, 2, 3))
    with pytest.raises(ValueError, match=found):
        ours.apply(variables, x)


def test_single_state_modules_refuse_a_pair():
    module = jax_lstm.GRU(4)
    variables = module.init(jax.random.key(0), jnp.zeros((5, 2, 3)))
    with pytest.raises(TypeError, match=r"one array h_0 of shape \(L\*D, B, H\), not a tuple"):
        module.apply(variables, jnp.zeros((5, 2, 3)), (jnp.zeros((1, 2, 4)), jnp.zeros((1, 2, 4))))


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.nn.GRU(3, 5, 2, bidirectional=True),
        lambda: torch.nn.GRU(3, 5, bias=False),
        lambda: torch.nn.RNN(3, 5, 3, nonlinearity="relu"),
        lambda: torch.nn.RNN(3, 5, bidirectional=True, bias=False),
        lambda: torch.nn.GRUCell(3, 5),
        lambda: torch.nn.LSTMCell(3, 5, bias=False),
        lambda: torch.nn.RNNCell(3, 5, nonlinearity="relu"),
    ],
    ids=[
        "gru_bi",
        "gru_no_bias",
        "rnn_relu_3",
        "rnn_bi_no_bias",
        "gru_cell",
        "lstm_cell_no_bias",
        "rnn_cell",
    ],
)
def test_round_trip_is_bit_exact(make):
    module = make()
    state = module.state_dict()
    back = jax_lstm.to_torch(jax_lstm.from_torch(state))
    assert list(back) == list(state)
    for key in state:
        assert torch.equal(back[key], state[key]), key
    make().load_state_dict(back, strict=True)


@pytest.mark.parametrize("mode", list(_FAMILY))
def test_init_has_torchs_names_shapes_and_distribution(mode: str):
    """Our init loads into torch's module (names and shapes), every tensor U(-1/sqrt(H), 1/sqrt(H))."""
    torch_layer, layer_cls, torch_cell, cell_cls, kwargs = _FAMILY[mode]
    hidden = 16
    bound = 1 / np.sqrt(hidden)
    for ours, theirs, x in (
        (
            layer_cls(hidden, 2, bidirectional=True, **kwargs),
            torch_layer(3, hidden, 2, bidirectional=True, **kwargs),
            jnp.zeros((4, 2, 3)),
        ),
        (cell_cls(hidden, **kwargs), torch_cell(3, hidden, **kwargs), jnp.zeros((2, 3))),
    ):
        variables = ours.init(jax.random.key(0), x)
        theirs.load_state_dict(jax_lstm.to_torch(variables), strict=True)
        values = np.concatenate([np.ravel(v) for v in jax.tree.leaves(variables)])
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.95 * bound and abs(values.mean()) < 0.05 * bound


def test_gru_dropout_one_matches_torch_in_train_mode(dtype: str):
    """p=1 is deterministic on both sides: layers after the first see zeros; h_n is never dropped."""
    torch.manual_seed(1)
    module = torch.nn.GRU(4, 6, num_layers=3, dropout=1.0).to(getattr(torch, dtype)).train()
    x = np.random.default_rng(0).standard_normal((5, 2, 4)).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    tout, th = module(tx)
    (tout.sum() + th.sum()).backward()
    layer = jax_lstm.GRU(6, num_layers=3, dropout=1.0)

    def loss(params, xs):
        out, h = layer.apply({"params": params}, xs, deterministic=False, rngs={"dropout": jax.random.key(0)})
        return jnp.sum(out) + jnp.sum(h), (out, h)

    (_, (out, h)), (gparams, gx) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        jax_lstm.from_torch(module.state_dict())["params"], jnp.asarray(x)
    )
    pairs = {"output": (out, tout), "h_n": (h, th), "grad/input": (gx, tx.grad)}
    for name, param in module.named_parameters():
        pairs[f"grad/{name}"] = (gparams[name], param.grad)
    assert_all_close(pairs, TOLERANCES[dtype])


def test_gru_classifier_trained_two_epochs_follows_torch(x64):
    """`fit` with cell="gru" against the torch twin with an nn.GRU, from the same weights and
    batches: per-epoch losses and every final parameter within 1e-8 relative in float64."""
    config = training.TrainConfig(
        model="lstm",
        cell="gru",
        hidden_size=16,
        epochs=2,
        batch_size=16,
        lr=0.01,
        dtype="float64",
        log_every=0,
    )
    dataset = data.synthetic(num_samples=100, seq_len=10).astype("float64")
    jax_result, torch_result = run_both(config, dataset)
    assert isinstance(torch_result.model.lstm, torch.nn.GRU)
    assert len(jax_result.history) == 2
    assert_runs_agree(jax_result, torch_result, "float64", check_params=True)
    start = training.initial_variables(config, dataset.dims)
    moved = jax_result.variables()["params"]["lstm"]["weight_hh_l0"]
    assert not np.allclose(moved, start["params"]["lstm"]["weight_hh_l0"])  # it trained


def test_cell_option_reaches_config_cli_and_estimator():
    import argparse

    from jax_lstm.experiment import flags

    parser = argparse.ArgumentParser()
    flags.add_train_arguments(parser)
    _, config = flags.train_request(parser.parse_args(["--dataset", "synthetic", "--cell", "gru"])).prepare()
    assert config.cell == "gru"
    _, config_default = flags.train_request(parser.parse_args(["--dataset", "synthetic"])).prepare()
    assert config_default.cell == "lstm"
    model = training.make_model(config, Dims(5, 2))
    variables = model.init(jax.random.key(0), jnp.zeros((2, 4, 5)))
    assert variables["params"]["lstm"]["weight_ih_l0"].shape == (3 * 128, 5)
    estimator = jax_lstm.LSTMSequenceClassifier(cell="rnn")
    assert estimator.get_params()["cell"] == "rnn" and estimator._config().cell == "rnn"
    with pytest.raises(ValueError, match="implementation 'cudnn' runs the LSTM only, not cell 'gru'"):
        training.TrainConfig(cell="gru", implementation="cudnn").validate()
    with pytest.raises(ValueError, match=r"cell must be one of \('lstm', 'gru', 'rnn'\), got 'lstn'"):
        training.TrainConfig(cell="lstn").validate()
