"""The benchmark cases: what each side runs, built from one config, plus analytic FLOP counts.

Every case builds a JAX callable and a torch callable doing the same work on the same shapes; each
callable blocks until done. JAX runs the library's production paths (the jitted train step of
`jax_lstm.training`, the jitted eval-mode forward, `fit`, `fit_many`); torch runs `torch_ref`, eager,
exactly as the article writes it. The shape lists shared by `python -m benchmarks` and
`python -m benchmarks.gpu` are defined here once.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import torch
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from benchmarks.harness import timed_fit
from jax_lstm import data, training
from jax_lstm.data import Dims
from jax_lstm.rnn.layer import CELL_MODES, DEFAULT_CELL
from jax_lstm.rnn.spec import GATES
from jax_lstm.training import parallel
from torch_ref.train import torch_twin, train_torch
from torch_ref.twins import make_torch_model

__all__ = [
    "GRU_CASES",
    "INFERENCE_CASES",
    "QUICK_CASES",
    "QUICK_GRU_CASES",
    "TRAIN_CASES",
    "Shape",
    "forward_flops",
    "jax_inference",
    "jax_train_step",
    "many_models_runs",
    "torch_inference",
    "torch_train_step",
    "whole_runs",
]


@dataclasses.dataclass(frozen=True)
class Shape:
    """One model and batch: B batch, T steps, F features, H hidden, L layers, C classes."""

    batch: int
    steps: int
    features: int
    hidden: int
    layers: int
    classes: int = 2
    cell: str = "lstm"  # the recurrent layer (TrainConfig.cell)

    def label(self) -> str:
        cell = "" if self.cell == DEFAULT_CELL else f" {self.cell.upper()}"
        return f"B={self.batch} T={self.steps} F={self.features} H={self.hidden} L={self.layers}{cell}"

    def config(self, **overrides) -> training.TrainConfig:
        return training.TrainConfig(
            hidden_size=self.hidden,
            num_layers=self.layers,
            batch_size=self.batch,
            log_every=0,
            cell=self.cell,
            **overrides,
        )


# (name, shape) of the train-step and inference cases of both suites; the quick mode's tiny one.
TRAIN_CASES: list[tuple[str, Shape]] = [
    ("article", Shape(32, 20, 5, 128, 2)),
    ("large", Shape(256, 100, 32, 256, 2)),
    ("long sequence", Shape(64, 500, 8, 64, 1)),
]
INFERENCE_CASES: list[tuple[str, Shape]] = [
    ("article, batch 32", Shape(32, 20, 5, 128, 2)),
    ("article, batch 1024", Shape(1024, 20, 5, 128, 2)),
]
QUICK_CASES: list[tuple[str, Shape]] = [("tiny", Shape(4, 5, 3, 8, 2))]
# The GRU in the article's model (cell="gru"): a train step and inference at the article's shape.
GRU_CASES: list[tuple[str, Shape]] = [("GRU: article", Shape(32, 20, 5, 128, 2, cell="gru"))]
QUICK_GRU_CASES: list[tuple[str, Shape]] = [("GRU: tiny", Shape(4, 5, 3, 8, 2, cell="gru"))]


def forward_flops(shape: Shape) -> float:
    """Matmul FLOPs of one forward pass: every layer's input and recurrent products, and the head.

    Element-wise gate math (about 20 FLOPs per hidden unit and step) is left out; a train step is
    counted as 3x the forward (forward, input gradients, weight gradients), the usual convention.
    """
    total = 0.0
    gates = GATES[CELL_MODES[shape.cell]]
    for layer in range(shape.layers):
        inputs = shape.features if layer == 0 else shape.hidden
        total += 2.0 * shape.steps * shape.batch * (inputs + shape.hidden) * gates * shape.hidden
    return total + 2.0 * shape.batch * shape.hidden * shape.classes


def _data(shape: Shape, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((shape.batch, shape.steps, shape.features)).astype(np.float32)
    y = rng.integers(0, shape.classes, shape.batch)
    return x, y


def jax_train_step(
    shape: Shape, many: int = 0, mesh=None, implementation: str = "fused"
) -> Callable[[], None]:
    """One optimizer step (forward, backward, clip, Adam) of the jitted production train step.

    With ``many = K`` the step of K models at once, each on its own batch of `shape.batch`. With a
    `mesh` (`training.data_parallel_mesh()`), the batch (or the models) split over its devices.
    `implementation` is the LSTM recurrence ("fused", "scan", "cudnn").
    """
    config = shape.config(implementation=implementation)
    if mesh is not None and not many:
        # the decision `fit` makes for this batch size
        mesh = training.mesh_for(None, config.batch_size)
    x, y = _data(shape)
    model = training.make_model(config, Dims(shape.features, shape.classes))
    step = training.make_train_step(model, training.make_optimizer(config), many=bool(many), mesh=mesh)
    if many:
        states = [
            training.create_train_state(
                dataclasses.replace(config, seed=s), Dims(shape.features, shape.classes)
            )
            for s in range(many)
        ]
        state = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
        x, y = np.stack([x] * many), np.stack([y] * many)
    else:
        state = training.create_train_state(config, Dims(shape.features, shape.classes))
    y = y.astype(np.int32)
    split_models = bool(many) and mesh is not None and many % mesh.size == 0
    key = step.key_for(many if split_models else shape.batch)
    split = key == parallel.SHARDED
    if mesh is not None:
        state = parallel.place(state, mesh, split=split_models)

    def run() -> None:
        nonlocal state
        # As the training loop does on every step: the host batch placed on the devices, then the step.
        batch = parallel.place(training.Batch(x, y), step.mesh, split=split)
        state, metrics = step(key, state, batch)
        metrics["loss"].block_until_ready()

    return run


def _torch_model(shape: Shape) -> torch.nn.Module:
    """The article's MultiDimLSTM of `shape`'s sizes and cell, initialised by torch from seed 0."""
    torch.manual_seed(0)
    arch = {"hidden_size": shape.hidden, "num_layers": shape.layers, "cell": shape.cell}
    return make_torch_model("lstm", Dims(shape.features, shape.classes), arch)


def _synchronize(device: str) -> Callable[[], None]:
    """What makes a torch call block until done: nothing on CPU (synchronous), a CUDA sync on GPU."""
    if device.startswith("cuda"):
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def torch_train_step(shape: Shape, device: str = "cpu") -> Callable[[], None]:
    """The article's step: zero_grad, forward, cross-entropy, backward, clip_grad_norm_, Adam step."""
    config = shape.config()  # the same learning rate and clipping as the JAX side's step
    x, y = _data(shape)
    model = _torch_model(shape)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    criterion = torch.nn.CrossEntropyLoss()
    inputs, labels = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    sync = _synchronize(device)

    def run() -> None:
        optimizer.zero_grad()
        loss = criterion(model(inputs), labels)
        loss.backward()
        if config.clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=config.clip)
        optimizer.step()
        sync()

    return run


def jax_inference(shape: Shape, mesh=None, implementation: str = "fused") -> Callable[[], None]:
    """The jitted eval-mode forward pass of the classifier (logits), batch split over `mesh`."""
    config = shape.config(implementation=implementation)
    x, _ = _data(shape)
    model = training.make_model(config, Dims(shape.features, shape.classes))
    variables = training.initial_variables(config, Dims(shape.features, shape.classes))
    forward = training.make_forward(model, mesh)
    xs = jnp.asarray(x)
    if mesh is not None:
        variables = jax.device_put(variables, NamedSharding(mesh, P()))

    def run() -> None:
        forward(variables, xs).block_until_ready()

    return run


def torch_inference(shape: Shape, device: str = "cpu") -> Callable[[], None]:
    """The classifier in eval mode under torch.inference_mode."""
    x, _ = _data(shape)
    model = _torch_model(shape)
    model = model.to(device).eval()
    inputs = torch.from_numpy(x).to(device)
    sync = _synchronize(device)

    def run() -> None:
        with torch.inference_mode():
            model(inputs)
        sync()

    return run


# What the warm whole run runs in a fresh interpreter: the setup of `jax-lstm train` (host devices,
# the persistent compilation cache in the given folder), then `harness.timed_fit` on the pickled
# config, dataset and initial variables; the result as JSON on the last line of stdout.
_WARM_RUN = """
import json, pickle, sys
from jax_lstm.runtime import enable_compilation_cache, use_all_cores
use_all_cores()
with open(sys.argv[1], "rb") as handle:
    spec = pickle.load(handle)
enable_compilation_cache(spec["cache_dir"])
import jax
import jax.numpy as jnp
from benchmarks.harness import timed_fit
variables = jax.tree.map(jnp.asarray, spec["variables"])
print(json.dumps(timed_fit(spec["config"], spec["dataset"], variables)))
"""


def _fit_in_fresh_process(
    config: training.TrainConfig, dataset, variables, cache_dir: str
) -> dict[str, float]:
    """`timed_fit` in a new Python process reading the compilation cache at `cache_dir`, as a later
    `jax-lstm train` would. Adds "startup_s": the subprocess's wall time minus the fit's (interpreter
    start, imports, unpickling the inputs, exit)."""
    host = jax.tree.map(np.asarray, variables)
    with tempfile.TemporaryDirectory(prefix="jax-lstm-bench-warm-") as folder:
        spec_path = Path(folder) / "spec.pkl"
        spec = {"config": config, "dataset": dataset, "variables": host, "cache_dir": cache_dir}
        spec_path.write_bytes(pickle.dumps(spec))
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", _WARM_RUN, str(spec_path)],
            cwd=Path(__file__).resolve().parents[1],  # this checkout's packages
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"the warm whole run failed:\n{result.stderr[-3000:]}")
    timing = json.loads(result.stdout.strip().splitlines()[-1])
    return {**timing, "startup_s": max(0.0, wall - timing["seconds"])}


def whole_runs(epochs: int, num_samples: int, hidden: int, layers: int, cache_dir: str) -> dict[str, float]:
    """The article's experiment end to end on both sides from the same weights (seconds).

    JAX: `fit` with fresh jitted functions, so its time includes compilation, estimated by
    `harness.timed_fit` (total minus epochs x the median later epoch, evaluation included). Run
    twice with the persistent compilation cache at `cache_dir` (empty before): "cold" in this
    process (a first run, which fills the cache), and "warm" in a fresh Python process on the same
    config, dataset and initial variables (any later run of `jax-lstm train`), its interpreter
    startup reported apart. torch: `train_torch`, between the two. Each is a single run.
    """
    config = training.TrainConfig(hidden_size=hidden, num_layers=layers, epochs=epochs, log_every=0)
    dataset = data.synthetic(num_samples=num_samples)
    variables = training.initial_variables(config, dataset.dims)
    twin = torch_twin(config, dataset, variables)

    cold = timed_fit(config, dataset, variables)
    start = time.perf_counter()
    train_torch(config, dataset, model=twin, log=None)
    torch_seconds = time.perf_counter() - start
    warm = _fit_in_fresh_process(config, dataset, variables, cache_dir)
    return {
        "jax_s": cold["seconds"],
        # Everything the first epoch costs on top of a later one, evaluation included
        # (`harness.timed_fit`); the key name is the one the committed results use.
        "jax_compile_s": cold["compile_s"],
        "jax_warm_s": warm["seconds"],
        "jax_warm_compile_s": warm["compile_s"],
        "jax_warm_startup_s": warm["startup_s"],
        "torch_s": torch_seconds,
    }


def many_models_runs(
    models: int, epochs: int, num_samples: int, hidden: int, layers: int
) -> dict[str, float]:
    """K models of the article's experiment: one JAX program (`fit_many`) vs torch one after another."""
    config = training.TrainConfig(hidden_size=hidden, num_layers=layers, epochs=epochs, log_every=0)
    dataset = data.synthetic(num_samples=num_samples)
    start = time.perf_counter()
    training.fit_many(config, dataset, list(range(models)), log=None)
    jax_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for seed in range(models):
        train_torch(dataclasses.replace(config, seed=seed), dataset, log=None)
    torch_seconds = time.perf_counter() - start
    return {"jax_s": jax_seconds, "torch_s": torch_seconds}
