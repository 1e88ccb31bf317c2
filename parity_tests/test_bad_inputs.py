"""Bad input, one table: every expected mistake over the layer API, interop, the classifiers, the
estimator, every CLI subcommand and the file readers is refused before any work with the documented
exception type (or CLI exit status) and a message that names the problem.

Nothing here trains but one case that needs a fitted estimator (one epoch of a tiny model): every
other case fails before the first step, so the table stays fast.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_lstm
from jax_lstm import data, functional, training
from jax_lstm.cli import main
from jax_lstm.estimator import LSTMSequenceClassifier
from jax_lstm.models.classifiers import BNLSTMClassifier, LSTMClassifier
from jax_lstm.models.fcn import LSTMFCNClassifier
from jax_lstm.training import CheckpointError, checkpoint

GOOD_TS = (
    "@problemName tiny\n@dimensions 2\n@classLabel true a b\n@data\n"
    "1,2,3:4,5,6:a\n2,3,4:5,6,7:b\n3,4,5:6,7,8:a\n4,5,6:7,8,9:b\n"
)


def _files(root: Path) -> dict[str, Path]:
    """The bad (and one good) files the cases read, written under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    files = {"dir": root / "a_directory", "good": root / "good.ts", "file": root / "plain_file"}
    files["dir"].mkdir(exist_ok=True)
    files["good"].write_text(GOOD_TS)
    files["file"].write_text("not a directory")
    files["fake_gz"] = root / "fake.ts.gz"
    files["fake_gz"].write_bytes(b"@data\nthis is not gzip")
    files["binary"] = root / "binary.ts"
    files["binary"].write_bytes(b"@problemName x\n\x00\x01\x02\xff")
    files["latin1"] = root / "latin1.ts"
    files["latin1"].write_bytes(
        "@problemName caf\u00e9\n@classLabel true a b\n@data\n1:a\n".encode("latin-1")
    )
    files["label_only"] = root / "label_only.ts"
    files["label_only"].write_text("@classLabel true a b\n@data\na\nb\n")
    missing = GOOD_TS.replace("4,5,6:7,8,9:b", "4,5,6:7,?,9:b")  # series 3, line 8
    files["missing"] = root / "missing.ts"
    files["missing"].write_text(missing)
    files["infinite"] = root / "infinite.ts"
    files["infinite"].write_text(GOOD_TS.replace("2,3,4:5,6,7:b", "2,3,4:5,inf,7:b"))  # series 1, line 6
    files["all_missing"] = root / "all_missing.ts"
    files["all_missing"].write_text(GOOD_TS.replace("3,4,5:6,7,8:a", "?,?,?:NaN,?,?:a"))  # series 2, line 7
    files["gz_good"] = root / "good.ts.gz"
    files["gz_good"].write_bytes(gzip.compress(GOOD_TS.encode()))
    files["ckpt_exists"] = root / "ckpt_exists"
    files["ckpt_exists"].mkdir(exist_ok=True)
    (files["ckpt_exists"] / checkpoint.CHECKPOINT_NAME).write_bytes(b"anything")
    files["ckpt_corrupt"] = root / "ckpt_corrupt"
    files["ckpt_corrupt"].mkdir(exist_ok=True)
    (files["ckpt_corrupt"] / checkpoint.CHECKPOINT_NAME).write_bytes(b"\x93\x01\x02\x03")  # a msgpack list
    return files


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[dict[str, Path]], object]
    expected: type[BaseException] | int  # an exception type, or a CLI exit status
    match: str  # a regular expression the message must contain


# --- the layer API ------------------------------------------------------------------------------

_torch_lstm = torch.nn.LSTM(3, 4)
_torch_lstm.requires_grad_(False)


def _variables():
    return jax_lstm.from_torch(_torch_lstm.state_dict())


def _apply(x, **kwargs):
    return jax_lstm.LSTM(4).apply(_variables(), x, **kwargs)


def _weights():
    return functional.layer_weights(_variables()["params"], 0, 0)


def _x(*shape, dtype=jnp.float32):
    return jnp.ones(shape, dtype)


def _in_x64(fn):
    def run(files):
        with jax.enable_x64(True):
            return fn(files)

    return run


def _jvp(files):
    x = _x(5, 2, 3)
    return jax.jvp(lambda v: _apply(v)[0], (x,), (x,))


LAYER = [
    Case(
        "num_layers float",
        lambda f: jax_lstm.LSTM(4, num_layers=1.5),
        TypeError,
        "num_layers should be of type int",
    ),
    Case(
        "num_layers 0",
        lambda f: jax_lstm.LSTM(4, num_layers=0),
        ValueError,
        "num_layers must be greater than zero",
    ),
    Case("hidden 0", lambda f: jax_lstm.LSTM(0), ValueError, "hidden_size must be greater than zero"),
    Case("hidden float", lambda f: jax_lstm.LSTM(4.0), TypeError, "hidden_size should be of type int"),
    Case(
        "dropout 1.5",
        lambda f: jax_lstm.LSTM(4, dropout=1.5),
        ValueError,
        r"dropout should be a number in range \[0, 1\]",
    ),
    Case(
        "bidirectional int",
        lambda f: jax_lstm.LSTM(4, bidirectional=1),
        TypeError,
        "bidirectional should be of type bool",
    ),
    Case("proj >= hidden", lambda f: jax_lstm.LSTM(4, proj_size=4), ValueError, "proj_size"),
    Case(
        "implementation",
        lambda f: jax_lstm.LSTM(4, implementation="cuda"),
        ValueError,
        "implementation must be one of",
    ),
    Case(
        "0 features at init",
        lambda f: jax_lstm.LSTM(4).init(jax.random.PRNGKey(0), _x(5, 2, 0)),
        ValueError,
        "input_size must be greater than zero: the input has 0 features",
    ),
    Case("4-D input", lambda f: _apply(_x(1, 5, 2, 3)), ValueError, "Expected input to be 2D or 3D, got 4D"),
    Case(
        "integer input",
        lambda f: _apply(jnp.ones((5, 2, 3), jnp.int32)),
        TypeError,
        "expected a floating-point input",
    ),
    Case("None input", lambda f: _apply(None), TypeError, "the input is None"),
    Case(
        "feature count",
        lambda f: _apply(_x(5, 2, 2)),
        ValueError,
        "input.size\\(-1\\) must be equal to input_size. Expected 3, got 2",
    ),
    Case(
        "float16 input",
        lambda f: _apply(_x(5, 2, 3, dtype=jnp.float16)),
        ValueError,
        r"RNN input dtype \(float16\) does not match weight dtype \(float32\)",
    ),
    Case(
        "bfloat16 input",
        lambda f: _apply(_x(5, 2, 3, dtype=jnp.bfloat16)),
        ValueError,
        r"input dtype \(bfloat16\) does not match weight dtype \(float32\)",
    ),
    Case(
        "float64 input, float32 weights",
        _in_x64(lambda f: _apply(_x(5, 2, 3, dtype=jnp.float64))),
        ValueError,
        r"input dtype \(float64\) does not match weight dtype \(float32\). Convert input",
    ),
    Case(
        "sequence length 0",
        lambda f: _apply(_x(0, 2, 3)),
        ValueError,
        "Expected sequence length to be larger than 0",
    ),
    Case(
        "empty batch with lengths",
        lambda f: _apply(_x(5, 0, 3), lengths=np.zeros((0,), np.int32)),
        ValueError,
        "lengths were given for an empty batch",
    ),
    Case(
        "length 0",
        lambda f: _apply(_x(5, 2, 3), lengths=np.array([0, 5])),
        ValueError,
        "lengths must be at least 1",
    ),
    Case(
        "length > T",
        lambda f: _apply(_x(5, 2, 3), lengths=np.array([6, 5])),
        ValueError,
        "must not exceed the padded sequence length 5",
    ),
    Case(
        "float lengths",
        lambda f: _apply(_x(5, 2, 3), lengths=np.array([1.0, 2.0])),
        TypeError,
        "lengths must be integers",
    ),
    Case(
        "ragged list, a 1-D series",
        lambda f: _apply([np.ones((5, 3), np.float32), np.ones(4, np.float32)]),
        ValueError,
        r"series 1 of the list has shape \(4,\)",
    ),
    Case(
        "ragged list, a 0-length series",
        lambda f: _apply([np.ones((5, 3), np.float32), np.ones((2, 3)), np.ones((0, 3), np.float32)]),
        ValueError,
        "series 2 of the list has length 0",
    ),
    Case(
        "ragged list",
        lambda f: _apply([np.ones((5, 3)), np.ones((4, 3))]),
        ValueError,
        "ragged input.*pad_series",
    ),
    Case(
        "state shape",
        lambda f: _apply(_x(5, 2, 3), initial_state=(_x(1, 3, 4), _x(1, 2, 4))),
        ValueError,
        r"Expected hidden\[0\] size \(1, 2, 4\), got \[1, 3, 4\]",
    ),
    Case(
        "state not a pair",
        lambda f: _apply(_x(5, 2, 3), initial_state=_x(1, 2, 4)),
        TypeError,
        r"initial_state must be a pair \(h_0, c_0\)",
    ),
    Case(
        "no variables",
        lambda f: jax_lstm.LSTM(4).apply({}, _x(5, 2, 3)),
        KeyError,
        "LSTM parameters not found",
    ),
    Case("jvp on fused", _jvp, TypeError, "implementation='scan'"),
    Case(
        "functional.lstm(None, x)",
        lambda f: functional.lstm(None, _x(5, 2, 3)),
        TypeError,
        "params must be a mapping of torch-named arrays",
    ),
    Case(
        "functional.lstm(variables, x)",
        lambda f: functional.lstm(_variables(), _x(5, 2, 3)),
        TypeError,
        r"pass variables\['params'\]",
    ),
    Case(
        "lstm_cell batch-1 state",
        lambda f: functional.lstm_cell(_x(3, 3), _x(1, 4), _x(1, 4), _weights()),
        ValueError,
        "Input batch size 3 doesn't match hidden0 batch size 1",
    ),
    Case(
        "lstm_cell h width",
        lambda f: functional.lstm_cell(_x(3, 3), _x(3, 5), _x(3, 4), _weights()),
        ValueError,
        "hidden0 has inconsistent hidden_size: got 5, expected 4",
    ),
    Case(
        "lstm_cell c width",
        lambda f: functional.lstm_cell(_x(3, 3), _x(3, 4), _x(3, 6), _weights()),
        ValueError,
        "hidden1 has inconsistent hidden_size: got 6, expected 4",
    ),
    Case(
        "lstm_cell 3-D state",
        lambda f: functional.lstm_cell(_x(3, 3), _x(1, 3, 4), _x(1, 3, 4), _weights()),
        ValueError,
        r"Expected hx\[0\] to be 1D or 2D, got 3D instead",
    ),
    Case(
        "lstm_cell input width",
        lambda f: functional.lstm_cell(_x(3, 2), _x(3, 4), _x(3, 4), _weights()),
        ValueError,
        "input has inconsistent input_size: got 2 expected 3",
    ),
    Case(
        "lstm_layer cudnn",
        lambda f: functional.lstm_layer(_x(5, 2, 3), _x(2, 4), _x(2, 4), _weights(), implementation="cudnn"),
        ValueError,
        "cuDNN runs whole stacks",
    ),
]

# --- interop -----------------------------------------------------------------------------------


def _without(key: str):
    state = dict(_torch_lstm.state_dict())
    del state[key]
    return state


def _wrong_shape():
    state = dict(_torch_lstm.state_dict())
    state["bias_hh_l0"] = torch.zeros(15)
    return state


INTEROP = [
    Case(
        "from_torch(module)",
        lambda f: jax_lstm.from_torch(_torch_lstm),
        TypeError,
        r"pass module.state_dict\(\)",
    ),
    Case("from_torch(None)", lambda f: jax_lstm.from_torch(None), TypeError, "from_torch takes a state dict"),
    Case(
        "missing bias_ih_l0",
        lambda f: jax_lstm.from_torch(_without("bias_ih_l0")),
        KeyError,
        r"missing bias_ih_l0 \(16,\)$",
    ),
    Case(
        "missing weight_hh_l0",
        lambda f: jax_lstm.from_torch(_without("weight_hh_l0")),
        KeyError,
        "missing weight_ih_l0 / weight_hh_l0",
    ),
    Case(
        "a GRU's weights given to the LSTM",
        lambda f: jax_lstm.LSTM(4).apply(jax_lstm.from_torch(torch.nn.GRU(3, 4).state_dict()), _x(2, 1, 3)),
        ValueError,
        "looks like an nn.GRU state dict.*use jax_lstm.GRU",
    ),
    Case(
        "an RNN's weights given to the LSTM",
        lambda f: jax_lstm.LSTM(4).apply(jax_lstm.from_torch(torch.nn.RNN(3, 4).state_dict()), _x(2, 1, 3)),
        ValueError,
        "looks like an nn.RNN state dict.*use jax_lstm.RNN",
    ),
    Case(
        "wrong shape",
        lambda f: jax_lstm.from_torch(_wrong_shape()),
        ValueError,
        r"bias_hh_l0: expected shape \(16,\), got \(15,\)",
    ),
    Case(
        "float64 without x64",
        lambda f: jax_lstm.from_torch(torch.nn.LSTM(3, 4).double().state_dict()),
        TypeError,
        "64-bit mode is off",
    ),
    Case(
        "unknown modules",
        lambda f: jax_lstm.from_torch({"encoder.weight": torch.zeros(2, 2)}),
        KeyError,
        "not the state dict of nn.LSTM or of a known model",
    ),
    Case(
        "to_torch(None)",
        lambda f: jax_lstm.to_torch(None),
        TypeError,
        r"to_torch takes Flax variables \(\{'params'",
    ),
]

# --- the classifiers, the config, fit, checkpoints ---------------------------------------------

CLASSIFIERS = [
    Case(
        "num_classes -2",
        lambda f: LSTMClassifier(4, 1, -2),
        ValueError,
        "num_classes must be at least 1.*got -2",
    ),
    Case(
        "num_classes 0",
        lambda f: LSTMClassifier(4, 1, 0),
        ValueError,
        "num_classes must be at least 1.*got 0",
    ),
    Case(
        "num_classes float",
        lambda f: LSTMClassifier(4, 1, 2.5),
        TypeError,
        "num_classes should be of type int",
    ),
    Case(
        "BN num_classes 0",
        lambda f: BNLSTMClassifier(4, 1, 0),
        ValueError,
        "BNLSTMClassifier: num_classes must be at least 1",
    ),
    Case(
        "classifier 2-D input",
        lambda f: LSTMClassifier(4, 1, 2).init(jax.random.PRNGKey(0), _x(5, 3)),
        ValueError,
        r"expects input of shape \(batch, seq_len, features\).*x\[None\]",
    ),
    Case(
        "config lr inf",
        lambda f: training.TrainConfig(lr=float("inf")).validate(),
        ValueError,
        "lr must be a finite number > 0, got inf",
    ),
    Case(
        "config clip nan",
        lambda f: training.TrainConfig(clip=float("nan")).validate(),
        ValueError,
        "clip must be a finite number > 0",
    ),
    Case(
        "config weight_decay nan",
        lambda f: training.TrainConfig(weight_decay=float("nan")).validate(),
        ValueError,
        "weight_decay must be a finite number",
    ),
    Case(
        "config dropout nan",
        lambda f: training.TrainConfig(dropout=float("nan")).validate(),
        ValueError,
        r"dropout must be in \[0, 1\]",
    ),
    Case(
        "checkpoint dir is a file",
        lambda f: training.check_directory(f["file"]),
        ValueError,
        "plain_file is a file, not a directory",
    ),
    Case(
        "checkpoint dir under a file",
        lambda f: training.check_directory(f["file"] / "ckpt"),
        ValueError,
        "cannot be created: .*plain_file is a file",
    ),
    Case(
        "existing checkpoint without resume",
        lambda f: training.check_directory(f["ckpt_exists"]),
        ValueError,
        "already holds a checkpoint.*--resume.*--overwrite",
    ),
    Case(
        "load a msgpack list",
        lambda f: training.load_checkpoint(f["ckpt_corrupt"]),
        checkpoint.CheckpointError,
        "checkpoint.msgpack is corrupt or from an incompatible version",
    ),
    Case("load nothing", lambda f: training.load_checkpoint(f["dir"]), CheckpointError, "no checkpoint at"),
]

# --- the estimator -----------------------------------------------------------------------------

_X = np.ones((6, 5, 2), np.float32)

ESTIMATOR = [
    Case(
        "fit y None", lambda f: LSTMSequenceClassifier().fit(_X, None), ValueError, "requires y to be passed"
    ),
    Case(
        "fit one class",
        lambda f: LSTMSequenceClassifier().fit(_X, np.zeros(6)),
        ValueError,
        "need samples of at least 2 classes",
    ),
    Case(
        "fit label count",
        lambda f: LSTMSequenceClassifier().fit(_X, np.arange(5) % 2),
        ValueError,
        "6 series but 5 labels",
    ),
    Case(
        "fit lr inf",
        lambda f: LSTMSequenceClassifier(lr=float("inf")).fit(_X, np.arange(6) % 2),
        ValueError,
        "lr must be a finite number",
    ),
    Case(
        "fit 4-D X",
        lambda f: LSTMSequenceClassifier().fit(np.ones((6, 5, 2, 1)), np.arange(6) % 2),
        ValueError,
        "expected a \\(n_series, time, features\\) array",
    ),
]

# --- the readers -------------------------------------------------------------------------------

READERS = [
    Case(
        "ts: directory",
        lambda f: data.load_ts(f["dir"]),
        data.DataError,
        "a_directory is a directory; pass a .ts file",
    ),
    Case(
        "ts: no such file",
        lambda f: data.load_ts(f["dir"] / "none.ts"),
        data.DataError,
        "none.ts: no such file",
    ),
    Case(
        "ts: fake gzip",
        lambda f: data.load_ts(f["fake_gz"]),
        data.DataError,
        "fake.ts.gz: not a valid gzip file",
    ),
    Case("ts: binary", lambda f: data.load_ts(f["binary"]), data.DataError, r"binary.ts:2: a binary file"),
    Case(
        "ts: latin-1",
        lambda f: data.load_ts(f["latin1"]),
        data.DataError,
        r"latin1.ts:1: not UTF-8 text \(byte 0xe9\)",
    ),
    Case(
        "ts: label-only rows",
        lambda f: data.load_ts(f["label_only"]),
        data.DataError,
        r"label_only.ts:3: a series needs its values",
    ),
    Case(
        "ts: missing value in series 3, refused",
        lambda f: data.from_ts_files(f["good"], f["missing"], fill=None),
        data.DataError,
        r"missing.ts:8: series 3 has a missing value \(dimension 2, step 2\): fill them \(--fill",
    ),
    Case(
        "ts: missing value in the train file, refused",
        lambda f: data.from_ts_files(f["missing"], f["good"], fill=None),
        data.DataError,
        r"missing.ts:8: series 3 ",
    ),
    Case(
        "ts: an infinity, which no fill fills",
        lambda f: data.from_ts_files(f["infinite"], f["good"]),
        data.DataError,
        r"infinite.ts:6: series 1 has an infinite value \(dimension 2, step 2\): correct or drop",
    ),
    Case(
        "ts: a series with no value at all",
        lambda f: data.from_ts_files(f["good"], f["all_missing"]),
        data.DataError,
        r"all_missing.ts:7: series 2 has no values \(every one missing\): drop it",
    ),
    Case(
        "ts: an unknown fill",
        lambda f: data.from_ts_files(f["good"], f["good"], fill="mean"),
        ValueError,
        r"fill must be one of \(None, 'interpolate', 'ffill'\), got 'mean'",
    ),
]

# --- the CLI: train, export, parity ------------------------------------------------------------

SYNTH = ["--dataset", "synthetic", "--hidden-size", "4", "--num-layers", "1", "--epochs", "1", "--quiet"]


def _cli(*argv, use: Callable[[dict[str, Path]], list[str]] | None = None):
    def run(files):
        extra = use(files) if use is not None else []
        try:
            return main([*argv, *extra])
        except SystemExit as exit:  # argparse
            return exit.code

    return run


def _train(*argv, use=None):
    return _cli("train", *SYNTH, *argv, use=use)


CLI = [
    Case(
        "train --clip -1",
        _train("--clip", "-1"),
        2,
        r"--clip must be a finite number >= 0 \(0 disables clipping\), got -1.0",
    ),
    Case("train --clip nan", _train("--clip", "nan"), 2, "--clip must be a finite number >= 0"),
    Case("train --lr inf", _train("--lr", "inf"), 2, "--lr must be a finite number > 0, got inf"),
    Case("train --lr nan", _train("--lr", "nan"), 2, "--lr must be a finite number > 0, got nan"),
    Case("train --lr 0", _train("--lr", "0"), 2, "--lr must be a finite number > 0, got 0.0"),
    Case("train --lr -1", _train("--lr", "-1"), 2, "--lr must be a finite number > 0"),
    Case(
        "train --weight-decay nan",
        _train("--weight-decay", "nan"),
        2,
        "--weight-decay must be a finite number >= 0",
    ),
    Case("train --dropout nan", _train("--dropout", "nan"), 2, r"--dropout must be a number in \[0, 1\]"),
    Case("train --batch-size 0", _train("--batch-size", "0"), 2, "batch_size must be at least 1"),
    Case("train --seeds 0", _train("--seeds", "0"), 2, "--seeds must be at least 1"),
    Case("train --dtype float16", _train("--dtype", "float16"), 2, ""),
    Case(
        "train --metrics-json DIR",
        _train(use=lambda f: ["--metrics-json", str(f["dir"])]),
        2,
        "--metrics-json .*a_directory is a directory",
    ),
    Case(
        "train --metrics-json under a file",
        _train(use=lambda f: ["--metrics-json", str(f["file"] / "m.json")]),
        2,
        "cannot be created: .*plain_file is a file",
    ),
    Case(
        "train --metrics-json m.txt",
        _train("--metrics-json", "m.txt"),
        2,
        r"--metrics-json m.txt: writes JSON, so the name must end in .json",
    ),
    Case(
        "train --plot curves.txt",
        _train("--plot", "curves.txt"),
        2,
        r"--plot curves.txt: writes PNG.*\.png \(e.g. curves.png\)",
    ),
    Case("train --plot curves", _train("--plot", "curves"), 2, r"--plot curves: writes PNG.*e.g. curves.png"),
    Case(
        "train --plot under a file",
        _train(use=lambda f: ["--plot", str(f["file"] / "c.png")]),
        2,
        "plain_file is a file",
    ),
    Case(
        "train --checkpoint-dir FILE",
        _train(use=lambda f: ["--checkpoint-dir", str(f["file"])]),
        2,
        "plain_file is a file, not a directory",
    ),
    Case(
        "train over an existing checkpoint",
        _train(use=lambda f: ["--checkpoint-dir", str(f["ckpt_exists"])]),
        2,
        "already holds a checkpoint, which this run would overwrite: continue it with --resume.*--overwrite",
    ),
    Case(
        "train --resume --overwrite",
        _train("--resume", "--overwrite", use=lambda f: ["--checkpoint-dir", str(f["ckpt_exists"])]),
        2,
        "pass one, not both",
    ),
    Case("train --overwrite alone", _train("--overwrite"), 2, "--overwrite needs --checkpoint-dir"),
    Case(
        "train --resume a corrupt checkpoint",
        _train("--epochs", "2", "--resume", use=lambda f: ["--checkpoint-dir", str(f["ckpt_corrupt"])]),
        2,
        "ckpt_corrupt/checkpoint.msgpack is corrupt or from an incompatible version",
    ),
    Case(
        "train --data DIR",
        _cli("train", use=lambda f: ["--data", str(f["dir"]), "--test-data", str(f["good"])]),
        2,
        "a_directory is a directory",
    ),
    Case(
        "train --data fake.ts.gz",
        _cli("train", use=lambda f: ["--data", str(f["fake_gz"]), "--test-data", str(f["good"])]),
        2,
        "fake.ts.gz: not a valid gzip file",
    ),
    Case(
        "train --data latin-1",
        _cli("train", use=lambda f: ["--data", str(f["latin1"]), "--test-data", str(f["good"])]),
        2,
        "latin1.ts:1: not UTF-8",
    ),
    Case(
        "train --test-data with a ?",
        _cli(
            "train",
            use=lambda f: ["--data", str(f["gz_good"]), "--test-data", str(f["missing"]), "--fill", "none"],
        ),
        2,
        r"missing.ts:8: series 3 has a missing value \(dimension 2, step 2\): fill them \(--fill",
    ),
    Case(
        "export to a directory",
        _cli("export", use=lambda f: [str(f["ckpt_corrupt"]), str(f["dir"])]),
        2,
        "export target .*a_directory is a directory",
    ),
    Case(
        "export to .txt",
        _cli("export", use=lambda f: [str(f["ckpt_corrupt"]), str(f["dir"] / "w.txt")]),
        2,
        r"must end in .pt or .pth",
    ),
    Case(
        "export nothing",
        _cli("export", use=lambda f: [str(f["dir"]), str(f["dir"] / "w.pt")]),
        2,
        "no checkpoint at",
    ),
    Case(
        "export a corrupt checkpoint",
        _cli("export", use=lambda f: [str(f["ckpt_corrupt"]), str(f["dir"] / "w.pt")]),
        2,
        "is corrupt or from an incompatible version",
    ),
    Case("parity --dtype float16", _cli("parity", "--dtype", "float16"), 2, ""),
    Case(
        "parity --implementation cudnn",
        _cli("parity", "--implementation", "cudnn"),
        2,
        "--implementation cudnn needs a CUDA GPU",
    ),
]


def _read_only(run):
    """`run` as if every directory were read-only (the suite may run as root, who can write anywhere)."""

    def wrapped(files):
        with mock.patch.object(os, "access", return_value=False):
            return run(files)

    return wrapped


CLI += [
    Case(
        "train --checkpoint-dir read-only",
        _read_only(_train(use=lambda f: ["--checkpoint-dir", str(f["dir"] / "new")])),
        2,
        "checkpoint directory .*new cannot be written: .*a_directory is not writable",
    ),
    Case(
        "train --metrics-json in a read-only directory",
        _read_only(_train(use=lambda f: ["--metrics-json", str(f["dir"] / "m.json")])),
        2,
        "--metrics-json .*m.json cannot be written: .*a_directory is not writable",
    ),
    Case(
        "export into a read-only directory",
        _read_only(_cli("export", use=lambda f: [str(f["ckpt_corrupt"]), str(f["dir"] / "w.pt")])),
        2,
        "export target .*w.pt cannot be written",
    ),
]


# --- the article's extensions: LSTM-FCN, MLSTM-FCN, attention-LSTM ------------------------------


def _fcn_apply(seq_len: int, steps: int):
    def run(files):
        model = LSTMFCNClassifier(seq_len, 3, hidden_size=2, filters=(2, 2, 2))
        x = jnp.ones((2, steps, 3))
        return model.init(jax.random.PRNGKey(0), x)

    return run


def _tiny_ts(files, key: str = "good") -> list[str]:
    return ["--data", str(files[key]), "--test-data", str(files[key])]


HYBRID = [
    Case(
        "lstm-fcn series longer than seq_len",
        _fcn_apply(5, 8),
        ValueError,
        "was built for series of at most 5 steps .* got series of 8 steps",
    ),
    Case(
        "lstm-fcn filters and kernels of different lengths",
        lambda f: LSTMFCNClassifier(5, 3, filters=(2, 2), kernel_sizes=(3,)),
        ValueError,
        r"filters \(2, 2\) and kernel_sizes \(3,\) need one entry per block",
    ),
    Case("lstm-fcn seq_len 0", lambda f: LSTMFCNClassifier(0, 3), ValueError, "seq_len must be an int >= 1"),
    Case(
        "train --plot-attention for a model without attention",
        _train("--model", "lstm-fcn", "--plot-attention", "a.png"),
        2,
        "--plot-attention draws attention weights, and model 'lstm-fcn' has none: use --model attention-lstm",
    ),
    Case(
        "train --plot-attention a.txt",
        _train("--model", "attention-lstm", "--plot-attention", "a.txt"),
        2,
        r"--plot-attention a.txt: writes PNG",
    ),
    Case(
        "train --plot-attention with --seeds",
        _train("--model", "attention-lstm", "--plot-attention", "a.png", "--seeds", "2"),
        2,
        "does not combine with --plot-attention",
    ),
    Case(
        "train --validation-split 0",
        _train("--validation-split", "0"),
        2,
        r"--validation-split must be a fraction in \(0, 1\)",
    ),
    Case(
        "train --validation-split 1.5",
        _train("--validation-split", "1.5"),
        2,
        r"--validation-split must be a fraction in \(0, 1\), e.g. 0.2 .*got 1.5",
    ),
    Case(
        "train --validation-split nan", _train("--validation-split", "nan"), 2, "--validation-split must be"
    ),
    Case(
        "train --validation-split leaving a class without training series",
        _cli("train", "--validation-split", "0.8", use=_tiny_ts),
        2,
        "a validation split of 0.8 would leave class 'a' without training series \\(it has 2\\)",
    ),
    Case(
        "train --validation-split holding out nothing",
        _cli("train", "--validation-split", "0.01", use=_tiny_ts),
        2,
        "a validation split of 0.01 of 4 training series holds out no series",
    ),
    Case(
        "train --resume with nothing to resume",
        _train("--resume", use=lambda f: ["--checkpoint-dir", str(f["dir"])]),
        2,
        "no checkpoint at .*checkpoint.msgpack, so nothing to resume or load: .*a_directory (is empty|holds)",
    ),
    Case("train --factor 1", _train("--factor", "1"), 2, r"--factor must be a number in \(0, 1\), got 1.0"),
    Case("train --min-lr -1", _train("--min-lr", "-1"), 2, "--min-lr must be a finite number >= 0"),
    Case(
        "train --min-lr above --lr",
        _train("--min-lr", "0.5"),
        2,
        r"min_lr must be a finite number in \[0, lr",
    ),
    Case(
        "validation_split of a fraction as text",
        lambda f: data.validation_split(data.synthetic(), "0.2"),
        data.DataError,
        "the validation split must be a fraction in",
    ),
    Case(
        "estimator lstm-fcn predict on longer series",
        lambda f: _fitted_fcn().predict(np.ones((2, 9, 2), np.float32)),
        ValueError,
        "was built for series of at most 6 steps",
    ),
]


def _fitted_fcn():
    """An lstm-fcn estimator fitted (one epoch, tiny) on series of 6 steps."""
    x = np.random.default_rng(0).standard_normal((6, 6, 2)).astype(np.float32)
    return LSTMSequenceClassifier(model="lstm-fcn", epochs=1, hidden_size=2).fit(x, np.arange(6) % 2)


CASES = LAYER + INTEROP + CLASSIFIERS + ESTIMATOR + READERS + CLI + HYBRID


def test_the_table_is_large_and_names_are_unique():
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return _files(tmp_path_factory.mktemp("bad_inputs"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_with_a_message_naming_it(case, files, capsys):
    if isinstance(case.expected, int):
        status = case.run(files)
        captured = capsys.readouterr()
        assert status == case.expected, captured.err
        if case.match:
            assert re.search(case.match, captured.err), captured.err
            assert captured.err.startswith("jax-lstm: error: ")
            assert captured.err.count("\n") == 1  # one line, no traceback
        else:  # argparse's own message
            assert "invalid choice" in captured.err
        assert "Epoch" not in captured.out  # refused before any training
        return
    with pytest.raises(case.expected) as info:
        case.run(files)
    message = str(info.value.args[0]) if info.value.args else str(info.value)
    assert re.search(case.match, message), message
    assert type(info.value).__name__ not in ("AttributeError", "IndexError")


def test_gzipped_ts_reads_like_the_plain_file(files):
    plain, zipped = data.load_ts(files["good"]), data.load_ts(files["gz_good"])
    assert plain.labels == zipped.labels == ["a", "b", "a", "b"]
    for a, b in zip(plain.series, zipped.series, strict=True):
        np.testing.assert_array_equal(a, b)
    assert plain.lines == (5, 6, 7, 8)
