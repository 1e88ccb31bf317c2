"""`jax_lstm.nn.conv1d`'s own backward pass: the numbers JAX's autodiff of `lax.conv_general_dilated`
gives (torch parity itself is in test_hybrid_parity.py), every convolution in the form XLA:CPU runs
fast even inside a loop (the K-model step), and its refusals."""

from __future__ import annotations

import dataclasses
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_lstm import training
from jax_lstm.data import Dims
from jax_lstm.nn import Conv1d, conv1d
from jax_lstm.training import steps as step_fns

# XLA:CPU's Eigen convolution: input (batch, spatial, feature), kernel (spatial, in, out).
EIGEN_FORM = "b0f_0io->b0f"


def _autodiff(x, weight, padding):
    """The reference: JAX's own transposition rules on torch's (O, I, K) kernel."""
    return jax.lax.conv_general_dilated(
        x,
        weight,
        window_strides=(1,),
        padding=[padding],
        dimension_numbers=("NWC", "OIW", "NWC"),
        precision=jax.lax.Precision.HIGHEST,
    )


def _value_and_grads(fn, x, weight, cotangent):
    @jax.jit
    def run(x, weight, cotangent):
        out, vjp = jax.vjp(fn, x, weight)
        return out, vjp(cotangent)

    return run(x, weight, cotangent)


@pytest.mark.parametrize(
    "channels, kernel, padding",
    [
        (1, 8, (3, 4)),
        (12, 8, (3, 4)),
        (6, 5, (2, 2)),
        (7, 3, (1, 1)),
        (3, 4, (1, 2)),
        (3, 3, (0, 0)),
        (3, 3, (5, 5)),
    ],
)
def test_conv1d_gives_the_autodiff_numbers_bit_for_bit(channels: int, kernel: int, padding, dtype: str):
    """Output, input and weight gradients equal, not merely close: the same convolutions as the
    ones XLA derives from autodiff at a program's top level, so nothing about the numbers changed."""
    rng = np.random.default_rng(kernel)
    x = jnp.asarray(rng.standard_normal((4, 11, channels)), dtype)
    weight = jnp.asarray(rng.standard_normal((5, channels, kernel)), dtype)
    steps = 11 + sum(padding) - kernel + 1
    cotangent = jnp.asarray(rng.standard_normal((4, steps, 5)), dtype)
    ours = _value_and_grads(lambda a, b: conv1d(a, b, padding), x, weight, cotangent)
    reference = _value_and_grads(lambda a, b: _autodiff(a, b, padding), x, weight, cotangent)
    assert ours[0].shape == (4, steps, 5)
    for got, want in zip(jax.tree.leaves(ours), jax.tree.leaves(reference), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def _convolution_forms(program_text: str) -> list[str]:
    return re.findall(r" convolution\(.*?dim_labels=([^,\s]+)", program_text)


@pytest.mark.parametrize("model", ["lstm-fcn", "mlstm-fcn"])
def test_every_convolution_of_the_k_model_step_is_in_eigens_form(model: str):
    """Inside `lax.map` over the models XLA does not rewrite a convolution into Eigen's form (it
    does so only at a program's top level), and any other form runs as a generic loop, about a
    hundred times slower: all nine convolutions of each program (three forward, three input and
    three weight gradients, the first input gradient unused) must already be in that form."""
    config = training.TrainConfig(model=model, hidden_size=4, num_layers=1, batch_size=4, log_every=0)
    features, classes, steps = 2, 3, 9
    dims = Dims(features, classes, seq_len=steps)
    net = training.make_model(config, dims)
    states = [training.create_train_state(dataclasses.replace(config, seed=s), dims) for s in range(2)]
    state = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
    batch = training.Batch(jnp.zeros((2, 4, steps, features)), jnp.zeros((2, 4), jnp.int32))
    single = step_fns.train_step_fn(net, training.make_optimizer(config))
    one_batch = jax.tree.map(lambda a: a[0], batch)
    for step, args in ((step_fns._over_models(single), (state, batch)), (single, (states[0], one_batch))):
        text = jax.jit(step).lower(*args).compile().as_text()
        forms = _convolution_forms(text)
        assert len(forms) >= 8, text[:2000]  # the first layer's input gradient may be dropped
        assert set(forms) == {EIGEN_FORM}, forms


def test_conv1d_refuses_a_kernel_longer_than_the_padded_input_as_torch_does():
    x, weight = jnp.ones((2, 3, 2)), jnp.ones((4, 2, 5))
    with pytest.raises(ValueError, match=r"padded input size per channel: \(3\). Kernel size: \(5\)"):
        conv1d(x, weight, (0, 0))
    assert conv1d(x, weight, (1, 1)).shape == (2, 1, 4)


def test_conv1d_names_forward_mode_as_unsupported():
    conv = Conv1d(4, 3)
    x = jnp.ones((2, 6, 3))
    variables = conv.init(jax.random.key(0), x)
    with pytest.raises(TypeError, match=r"reverse mode .* not forward-mode"):
        jax.jvp(lambda v: conv.apply(variables, v), (x,), (x,))


def test_the_k_model_convolution_forms_compute_the_same_gradients(tmp_path):
    """`python -m benchmarks.convforms` times one function in six forms: the grouped convolution of
    `vmap` and the batched matmul must give our convolution's gradients, and --quick must time every
    form and write its table."""
    from benchmarks import convforms

    assert convforms.check_same_gradients(models=3, batch=2, steps=12, channels=2) < 1e-5
    assert convforms.main(["--quick", "--models", "2", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "convforms.json").read_text())
    assert [r["form"] for r in report["rows"]] == [
        "one model",
        "lax.map, Eigen form",
        "lax.map, autodiff",
        "vmap, autodiff",
        "batched matmul",
        "shared input, K x filters",
    ]
    assert all(r["median_s"] > 0 for r in report["rows"])
    assert (tmp_path / "convforms.md").read_text().count("\n| ") == 7
