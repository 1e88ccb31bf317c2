"""The cuDNN path (`implementation="cudnn"`) against torch.

Two layers of checks:

- Everywhere (CPU in CI): the cuDNN kernel is replaced by `cudnn.reference_kernel`, JAX's own
  reference of what `jax.experimental.rnn.lstm` computes, fed through JAX's own unpacking of the
  flat cuDNN weight vector. This checks everything of ours around the kernel against torch, in both
  dtypes: the packing of torch's named weights into cuDNN's layout, the time-major/batch-major
  swaps, lengths, states, the split into one call per layer under dropout, and the gradients'
  way back to the named arrays.
- On a CUDA GPU (marked ``gpu``, skipped with the reason elsewhere): the real cuDNN kernel against
  torch's own cuDNN LSTM on the same GPU, TF32 off on both sides, and a short training run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_lstm
from jax_lstm import data, functional, training
from jax_lstm.cli import main
from jax_lstm.rnn import cudnn
from jax_lstm.rnn.spec import param_shapes
from jax_lstm.testing import TOLERANCES, assert_all_close
from parity_tests.runs import assert_runs_agree, run_both
from torch_ref.cases import LSTM_CASES, MODEL_CASES
from torch_ref.parity import lstm_parity, model_parity

# The article's models with an LSTM (the cuDNN path runs the LSTM only).
CLASSIFIER_CASES = tuple(c for c in MODEL_CASES if c.model in ("lstm", "bn-lstm") and c.cell == "lstm")

CUDNN_CASES = [case for case in LSTM_CASES if case.proj_size == 0]


@pytest.fixture
def emulated(monkeypatch):
    """`implementation="cudnn"` with JAX's reference of the cuDNN kernel, on any backend.
    Yields the list of `num_layers` of every kernel call (traced calls)."""
    calls: list[int] = []

    def kernel(*args, **kwargs):
        calls.append(kwargs["num_layers"])
        return cudnn.reference_kernel(*args, **kwargs)

    monkeypatch.setattr(cudnn, "cuda_kernel", lambda dtype: kernel)
    monkeypatch.setattr(cudnn, "available", lambda: True)
    yield calls


def _params(spec: jax_lstm.LSTMSpec, seed: int = 0, dtype=np.float64) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    return {
        name: jnp.asarray(rng.uniform(-0.4, 0.4, shape).astype(dtype))
        for name, shape in param_shapes(spec).items()
    }


# ---- everywhere: the wrapping around the kernel, against torch ----


def test_the_cudnn_cases_cover_every_feature_but_projections():
    """Only projection cases are left out, and what is left still covers each feature cuDNN runs."""
    assert {c.name for c in LSTM_CASES} - {c.name for c in CUDNN_CASES} == {
        c.name for c in LSTM_CASES if c.proj_size
    }
    features = {
        "multi-layer": any(c.num_layers > 1 for c in CUDNN_CASES),
        "bidirectional": any(c.bidirectional and c.num_layers > 1 for c in CUDNN_CASES),
        "no bias": any(not c.bias for c in CUDNN_CASES),
        "batch_first": any(c.batch_first for c in CUDNN_CASES),
        "unbatched": any(c.batch is None for c in CUDNN_CASES),
        "initial state": any(c.initial_state for c in CUDNN_CASES),
        "lengths": any(c.lengths and c.bidirectional and c.num_layers > 1 for c in CUDNN_CASES),
    }
    assert all(features.values()), features


@pytest.mark.parametrize("case", CUDNN_CASES, ids=lambda c: c.name)
def test_cudnn_layout_matches_torch(case, dtype, emulated):
    pairs = lstm_parity(case, dtype, implementation="cudnn")
    assert emulated, "the cuDNN kernel was never called"
    assert_all_close(pairs, TOLERANCES[dtype])


@pytest.mark.parametrize("case", CLASSIFIER_CASES, ids=lambda c: c.name)
def test_cudnn_classifiers_match_torch(case, dtype, emulated):
    pairs = model_parity(case, dtype, implementation="cudnn")
    assert emulated == [case.num_layers], "one kernel call for the whole stack"
    assert_all_close(pairs, TOLERANCES[dtype])


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_packed_weights_are_jax_experimental_rnns_layout(num_layers, bidirectional, bias):
    """Packing then JAX's own unpacking gives back every named array exactly (zeros for bias=False),
    and the vector has the size `jax.experimental.rnn` expects."""
    from jax.experimental import rnn

    spec = jax_lstm.LSTMSpec(5, 7, num_layers, bias, bidirectional)
    params = _params(spec, dtype=np.float32)
    flat = cudnn.pack_weights(params, spec, range(num_layers))
    assert flat.shape == (rnn.get_num_params_in_lstm(5, 7, num_layers, bidirectional),)
    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(flat, 5, 7, num_layers, bidirectional)
    for layer in range(num_layers):
        for direction in range(spec.num_directions):
            pseudo = layer * spec.num_directions + direction
            weights = functional.layer_weights(params, layer, direction)
            np.testing.assert_array_equal(w_ih[pseudo], weights.w_ih)
            np.testing.assert_array_equal(w_hh[pseudo], weights.w_hh)
            zeros = np.zeros(28, np.float32)
            np.testing.assert_array_equal(b_ih[pseudo], zeros if not bias else weights.b_ih)
            np.testing.assert_array_equal(b_hh[pseudo], zeros if not bias else weights.b_hh)


def test_packing_a_later_layer_alone_uses_its_own_input_width():
    from jax.experimental import rnn

    spec = jax_lstm.LSTMSpec(5, 7, 3, True, True)
    params = _params(spec, dtype=np.float32)
    flat = cudnn.pack_weights(params, spec, range(2, 3))
    # Layer 2 of a bidirectional stack reads 2*H = 14 features.
    w_ih, _, _, _ = rnn.unpack_lstm_weights(flat, 14, 7, 1, True)
    np.testing.assert_array_equal(w_ih[1], params["weight_ih_l2_reverse"])


@pytest.mark.parametrize("lengths", [None, (6, 2, 1, 4)], ids=["full", "packed"])
def test_dropout_runs_layer_by_layer_with_the_same_masks_as_fused(x64, emulated, lengths):
    """In train mode cuDNN's own dropout cannot match torch's or ours, so the stack runs one layer
    per kernel call with jax_lstm's dropout between: the same masks as "fused" draws from the key."""
    spec = jax_lstm.LSTMSpec(5, 7, 3, True, True)
    params = _params(spec)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((6, 4, 5)))
    key = jax.random.key(3)
    lens = None if lengths is None else jnp.asarray(lengths)

    def loss(params, impl):
        out, (h, c) = functional.lstm(
            params, x, dropout_rate=0.5, dropout_key=key, lengths=lens, implementation=impl
        )
        return jnp.sum(out * out) + jnp.sum(h) + jnp.sum(c * c), (out, h, c)

    (fused_loss, fused_out), fused_grads = jax.value_and_grad(loss, has_aux=True)(params, "fused")
    (cudnn_loss, cudnn_out), cudnn_grads = jax.value_and_grad(loss, has_aux=True)(params, "cudnn")
    assert emulated == [1, 1, 1]
    # Dropout did act: some of layer 1's inputs were zeroed, so the loss differs from eval mode.
    eval_out, _ = functional.lstm(params, x, lengths=lens, implementation="cudnn")
    assert not np.allclose(eval_out, fused_out[0])
    ours, reference = jax.tree.leaves((cudnn_out, cudnn_grads)), jax.tree.leaves((fused_out, fused_grads))
    for a, b in zip(ours, reference, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert float(cudnn_loss) == pytest.approx(float(fused_loss), rel=1e-13)


def test_eval_mode_runs_the_whole_stack_in_one_call(emulated):
    layer = jax_lstm.LSTM(8, num_layers=3, dropout=0.5, bidirectional=True, implementation="cudnn")
    x = jnp.ones((4, 2, 3))
    variables = layer.init(jax.random.key(0), x)
    layer.apply(variables, x)  # deterministic: dropout off
    assert emulated[-1] == 3


def test_training_with_cudnn_follows_fused(emulated):
    """TrainConfig(implementation="cudnn") reaches the kernel through the classifier, the train step
    and evaluation, and trains as "fused" does (float32, 3 epochs of the article's setup)."""
    dataset = data.synthetic(num_samples=320)
    results = {}
    for impl in ("fused", "cudnn"):
        config = training.TrainConfig(epochs=3, log_every=0, implementation=impl)
        results[impl] = training.fit(config, dataset, log=None, data_parallel=False)
    assert emulated, "the cuDNN kernel was never called"
    assert_runs_agree(results["cudnn"], results["fused"], "float32", check_params=False)
    assert results["cudnn"].history[-1].train_loss < results["cudnn"].history[0].train_loss


# ---- everywhere: what cuDNN cannot do is refused up front ----


@pytest.mark.skipif(cudnn.available(), reason="checks the refusal where no CUDA GPU is present")
def test_without_a_gpu_the_cudnn_path_says_so():
    layer = jax_lstm.LSTM(8, implementation="cudnn")
    with pytest.raises(RuntimeError, match=r"needs a CUDA GPU.*implementation='fused'"):
        layer.init(jax.random.key(0), jnp.ones((3, 2, 4)))
    with pytest.raises(ValueError, match="implementation 'cudnn' needs a CUDA GPU"):
        training.TrainConfig(implementation="cudnn").validate()


@pytest.mark.skipif(cudnn.available(), reason="checks the refusal where no CUDA GPU is present")
def test_parity_command_refuses_cudnn_without_a_gpu(capsys):
    assert main(["parity", "--implementation", "cudnn", "--dtype", "float32"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_projections_are_refused_when_the_layer_is_built():
    with pytest.raises(ValueError, match=r"proj_size > 0.*implementation='fused'"):
        jax_lstm.LSTM(8, proj_size=4, implementation="cudnn")


def test_projections_are_refused_by_the_functional_api(emulated):
    spec = jax_lstm.LSTMSpec(4, 8, proj_size=3)
    with pytest.raises(ValueError, match="proj_size > 0"):
        functional.lstm(_params(spec, dtype=np.float32), jnp.ones((3, 2, 4)), implementation="cudnn")
    assert not emulated


def test_float64_is_refused_by_the_real_kernel(monkeypatch):
    monkeypatch.setattr(cudnn, "available", lambda: True)
    with pytest.raises(TypeError, match=r"float32 only.*implementation='fused'"):
        cudnn.cuda_kernel(jnp.dtype("float64"))
    with pytest.raises(ValueError, match="float32 only"):
        training.TrainConfig(implementation="cudnn", dtype="float64").validate()


def test_lstm_layer_points_to_the_stack_api():
    spec = jax_lstm.LSTMSpec(4, 8)
    weights = functional.layer_weights(_params(spec, dtype=np.float32), 0, 0)
    zeros = jnp.zeros((2, 8))
    with pytest.raises(ValueError, match="whole stacks"):
        functional.lstm_layer(jnp.ones((3, 2, 4)), zeros, zeros, weights, implementation="cudnn")


def test_parity_report_marks_what_cudnn_cannot_run(emulated):
    import io

    from torch_ref import report

    out = io.StringIO()
    status = report.run_parity_report(
        dtypes=["float32", "float64"], name_filter="proj_bidirectional", out=out, implementation="cudnn"
    )
    assert status == 2  # nothing applicable: projections, and float64
    assert "n/a: cuDNN path has no projections" in out.getvalue()
    assert "n/a: cuDNN path runs float32 only" in out.getvalue()
    out = io.StringIO()
    status = report.run_parity_report(
        dtypes=["float32"], name_filter="article", out=out, implementation="cudnn"
    )
    assert status == 0 and "implementation cudnn" in out.getvalue()


# ---- on a CUDA GPU: the real kernel ----

needs_gpu = pytest.mark.skipif(not cudnn.available(), reason="needs a CUDA GPU as JAX's default backend")


@pytest.fixture
def no_tf32():
    """True float32 on both sides: TF32 rounds matmul inputs to 10 mantissa bits (~1e-3 relative)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    with jax.default_matmul_precision("highest"):
        yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("implementation", ["cudnn", "fused"])
@pytest.mark.parametrize("case", CUDNN_CASES, ids=lambda c: c.name)
@pytest.mark.usefixtures("no_tf32")
@pytest.mark.gpu
@needs_gpu
def test_gpu_lstm_matches_torch_cudnn(case, implementation):
    pairs = lstm_parity(case, "float32", device="cuda", implementation=implementation)
    assert_all_close(pairs, TOLERANCES["float32"])


@pytest.mark.parametrize("case", CLASSIFIER_CASES, ids=lambda c: c.name)
@pytest.mark.usefixtures("no_tf32")
@pytest.mark.gpu
@needs_gpu
def test_gpu_classifiers_match_torch_cudnn(case):
    pairs = model_parity(case, "float32", device="cuda", implementation="cudnn")
    assert_all_close(pairs, TOLERANCES["float32"])


@pytest.mark.usefixtures("no_tf32")
@pytest.mark.gpu
@needs_gpu
def test_gpu_article_training_with_cudnn_follows_torch():
    config = training.TrainConfig(epochs=5, log_every=0, implementation="cudnn")
    jax_result, torch_result = run_both(config, data.synthetic())
    assert_runs_agree(jax_result, torch_result, "float32", check_params=False)


def test_gpu_benchmark_times_every_recurrence(tmp_path, emulated):
    """`python -m benchmarks.gpu --quick` (here with the emulated kernel, torch on the CPU) times a
    column per recurrence against torch and writes its table."""
    import json

    from benchmarks import gpu

    assert gpu.main(["--quick", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_benchmark.json").read_text())
    assert report["implementations"] == ["fused", "cudnn"]
    assert [row["kind"] for row in report["results"]] == ["train", "inference"]
    for row in report["results"]:
        for side in ("torch", "jax_fused", "jax_cudnn"):
            assert row[side]["median_s"] > 0 and row[side]["rounds"] == 2
        assert row["speedup_jax_cudnn"] == pytest.approx(
            row["torch"]["median_s"] / row["jax_cudnn"]["median_s"]
        )
    assert "jax_lstm cudnn" in (tmp_path / "gpu_benchmark.md").read_text()
