"""`jax-lstm export DIR model.jaxexport`: the inference function as serialised StableHLO with its
weights and preprocessing, run by `jax_lstm.load_exported`, and by `jax_lstm/exported.py` alone in a
process that imports nothing else of jax_lstm (nor flax): the same outputs as the in-process
predictor, to the last bit where the same program shapes run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_lstm
from jax_lstm import data
from jax_lstm.cli import main
from jax_lstm.training import make_model

ROOT = Path(__file__).resolve().parent.parent


def _toy(n: int, seed: int, lengths=(5, 9)) -> tuple[list[np.ndarray], list[str]]:
    rng = np.random.default_rng(seed)
    series, labels = [], []
    for i in range(n):
        steps = int(rng.integers(lengths[0], lengths[1] + 1))
        t = np.arange(steps)
        series.append(
            np.stack([np.sin((i % 2 + 1) * t), 3 + t * (i % 2) + rng.standard_normal(steps)], axis=1)
        )
        labels.append("ab"[i % 2])
    return series, labels


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny lstm and a tiny mlstm-fcn, fitted and saved as checkpoints."""
    root = tmp_path_factory.mktemp("export")
    series, labels = _toy(16, 0)
    for model, hidden in (("lstm", 4), ("mlstm-fcn", 2)):
        clf = jax_lstm.LSTMSequenceClassifier(model=model, epochs=1, hidden_size=hidden, num_layers=1)
        clf.fit(series, labels).save(root / model)
    return root, _toy(7, 1)[0]


@pytest.mark.parametrize("batch_size", [None, 3], ids=["symbolic-batch", "batch-3"])
def test_exported_recurrent_model_equals_the_predictor_to_the_last_bit(saved, capsys, batch_size):
    root, series = saved
    path = root / f"lstm-{batch_size}.jaxexport"
    extra = [] if batch_size is None else ["--batch-size", str(batch_size)]
    assert main(["export", str(root / "lstm"), str(path), *extra]) == 0
    assert "run it with jax_lstm.load_exported(path)" in capsys.readouterr().out
    predictor = jax_lstm.load(root / "lstm")
    exported = jax_lstm.load_exported(path)
    assert list(exported.classes_) == ["a", "b"] and exported.meta["batch_size"] == batch_size
    # Bitwise where the same program shapes run: the predictor in chunks of the exported batch, on
    # whole chunks. XLA's program for a batch of 3 rounds some float32 logits one ulp away from its
    # program for 7 series (or for the last chunk's 1, which the artefact pads to 3); those rows agree
    # to float32 rounding, and the labels exactly.
    whole = len(series) if batch_size is None else len(series) // batch_size * batch_size
    longer = [np.concatenate([s, s]) for s in series]  # the length is symbolic for a recurrent model
    for given in (series, longer):
        np.testing.assert_array_equal(
            exported.predict_proba(given[:whole]),
            predictor.predict_proba(given[:whole], batch_size=batch_size),
        )
        np.testing.assert_allclose(
            exported.predict_proba(given), predictor.predict_proba(given), rtol=0, atol=1e-6
        )
        np.testing.assert_array_equal(exported.predict(given), predictor.predict(given))


def test_exported_fcn_model_runs_the_in_process_program(saved, tmp_path):
    """A fixed batch: the exported logits of a full batch equal the jitted model's on it bitwise;
    the probabilities of any batch agree to float32 rounding and the labels exactly."""
    root, series = saved
    predictor = jax_lstm.load(root / "mlstm-fcn")
    path = predictor.export(tmp_path / "fcn.jaxexport", batch_size=len(series))
    exported = jax_lstm.load_exported(path)
    x, lengths = exported.prepare(series)
    x_in, lengths_in = predictor.prepare(*data.pad_series(series))
    np.testing.assert_array_equal(x, x_in)
    np.testing.assert_array_equal(lengths, lengths_in)
    model = make_model(predictor.config, predictor.dims)
    apply = jax.jit(lambda v, x, lengths: model.apply(v, x, train=False, lengths=lengths))
    in_process = np.asarray(apply(predictor.variables, jnp.asarray(x), jnp.asarray(lengths)), np.float64)
    np.testing.assert_array_equal(exported.logits(x, lengths)[0], in_process)
    symbolic = jax_lstm.load_exported(predictor.export(tmp_path / "any.jaxexport"))
    np.testing.assert_allclose(
        symbolic.predict_proba(series), predictor.predict_proba(series), rtol=0, atol=1e-6
    )
    np.testing.assert_array_equal(symbolic.predict(series), predictor.predict(series))
    too_long = [np.concatenate([series[0]] * 3)]
    with pytest.raises(ValueError, match="built for series of at most 9"):
        exported.predict(too_long)


def test_the_artefact_runs_with_numpy_and_jax_alone(saved, tmp_path):
    """exported.py loaded by file path in a fresh process: neither jax_lstm's other modules nor
    flax are imported, and the probabilities are the predictor's."""
    root, series = saved
    path = jax_lstm.load(root / "lstm").export(tmp_path / "model.jaxexport")
    np.save(tmp_path / "x.npy", np.stack([s[:5] for s in series]))
    script = textwrap.dedent(
        f"""
        import importlib.util, json, sys
        import numpy as np
        spec = importlib.util.spec_from_file_location("exported", {str(ROOT / "jax_lstm" / "exported.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.load_exported({str(path)!r})
        p = model.predict_proba(np.load({str(tmp_path / "x.npy")!r}))
        np.save({str(tmp_path / "p.npy")!r}, p)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("jax_lstm", "flax", "optax", "sklearn"))
        print(json.dumps(loaded))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    expected = jax_lstm.load(root / "lstm").predict_proba(np.stack([s[:5] for s in series]))
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), expected)


def test_export_refusals(saved, tmp_path, capsys):
    root, _ = saved
    assert main(["export", str(root / "lstm"), str(tmp_path / "m.jaxexport"), "--batch-size", "0"]) == 2
    assert "--batch-size must be at least 1" in capsys.readouterr().err
    assert main(["export", str(root / "lstm"), str(tmp_path / "m.pt"), "--batch-size", "4"]) == 2
    assert "a .pt holds weights" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="no such file"):
        jax_lstm.load_exported(tmp_path / "absent.jaxexport")
