"""Memory checked before any work: what a run will hold on its device, against what is free.

`estimate` adds up, from the model's parameter layout (shapes only: nothing is allocated, traced or
compiled), the bytes a training run holds at its peak:

- the train state: parameters (and BatchNorm's statistics) and Adam's two moments, for K models;
- during a train step: the gradients, the new state the step returns beside the old one (steps
  do not donate their input), one batch (the data stays on the host, and the loop gathers one batch
  at a time: `jax_lstm.training.loop`), and the activations the forward pass keeps for the backward
  pass with the backward pass's own work;
- during evaluation: one chunk of ``eval_batch_size`` series and its activations (no gradients).

The peak is the state plus the larger of a train step and an evaluation. K models (`fit_many`) hold
K states and K batches, but run one after another inside each step (`lax.map`), so the
activations are one model's (a model per device at a time: ``devices``).

Activations are counted per layer from the layout: a recurrent layer keeps, per step, batch row and
direction, a width of a few times its hidden size H (`TRAIN_WIDTH`, `EVAL_WIDTH`, by gate count:
4 the LSTM, 3 the GRU, 1 the Elman RNN); a convolution, BatchNorm or per-step Linear keeps a few
copies of its output (`PER_OUTPUT`). The widths are those of XLA's buffer assignment for the
compiled steps (`jax.jit(...).lower(...).compile().memory_analysis()`), which
parity_tests/training/test_memory.py measures again against the estimate.

`available_bytes` is what is free where the run will put its arrays: the host's available memory
for the CPU backend, the default device's free memory on an accelerator. `check` compares the two:
a warning within 20 % of the limit, `InsufficientMemoryError` beyond it, naming the largest part and
the settings that shrink it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from jax_lstm.models import registry
from jax_lstm.rnn.masks import patched_length

__all__ = [
    "EVAL_WIDTH",
    "PER_OUTPUT",
    "TRAIN_WIDTH",
    "WARN_FRACTION",
    "Estimate",
    "InsufficientMemoryError",
    "available_bytes",
    "check",
    "estimate",
    "human",
]

WARN_FRACTION = 0.8  # `check` warns above this share of the available memory

# Per step, batch row and direction of one recurrent layer, in units of its hidden size H, keyed by
# (gate count, implementation): what the training step keeps (the forward's residuals: gates,
# states and outputs of every step; and the backward's gradients of them), and what an evaluation
# keeps (the outputs; the input projections of all steps where the layer computes them up front).
TRAIN_WIDTH: Mapping[tuple[int, str], float] = {
    (4, "fused"): 12.5,  # saves activations (4H), cells and outputs; writes the gates' gradients
    (4, "cudnn"): 12.5,  # the fused kernel's residuals, for want of cuDNN's own reserve size
    (4, "scan"): 18.0,  # JAX's autodiff of the scan keeps pre-activations as well
    (3, "scan"): 13.0,  # the GRU: input and hidden projections of r, z, n, and the gates
    (1, "scan"): 5.0,  # the Elman RNN: projection, pre-activation and output
}
# Once per run (the layer the backward pass is in), in the same units.
TRAIN_WORKSPACE: Mapping[tuple[int, str], float] = {
    (4, "fused"): 6.0,
    (4, "cudnn"): 6.0,
    (4, "scan"): 8.0,
    (3, "scan"): 6.0,
    (1, "scan"): 2.0,
}
EVAL_WIDTH: Mapping[tuple[int, str], float] = {
    (4, "fused"): 1.0,  # inference projects the input inside the loop: outputs only
    (4, "cudnn"): 1.0,
    (4, "scan"): 5.0,  # all steps' input projections (4H) up front, and the outputs
    (3, "scan"): 4.0,
    (1, "scan"): 2.0,
}
# Copies of a non-recurrent layer's output per step and batch row: (training, evaluation).
PER_OUTPUT: Mapping[str, tuple[float, float]] = {
    "conv": (2.0, 1.0),  # the convolution's output, and the ReLU's (masked) output after its BatchNorm
    "batchnorm": (1.0, 1.0),  # the normalised output (its statistics are per feature)
    "linear": (3.0, 1.0),  # a Linear applied at every step (attention): output, activation, gradient
    "input": (2.0, 1.0),  # the batch's series, and their time-major copy
}
_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


class InsufficientMemoryError(ValueError):
    """A run would not fit in the memory available to it; refused before any work. The message
    gives the estimate and the limit in human units, the largest part, and the settings to lower.
    ``estimate`` and ``available`` are the numbers it compared (bytes)."""

    def __init__(self, message: str, estimate: Estimate, available: int) -> None:
        super().__init__(message)
        self.estimate = estimate
        self.available = available


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A run's peak memory on its device, in bytes, part by part (all parts for K models)."""

    parameters: int  # the models' parameters and BatchNorm statistics
    adam_moments: int  # Adam's first and second moments
    gradients: int  # one model's gradients, during a step
    new_state: int  # the state a step returns, beside its input (parameters and moments)
    batch: int  # one training batch of every model: series, targets and lengths
    # What one model's train step keeps for the backward pass, and the backward pass's work: the
    # recurrent layers' (B x T x H x layers x directions x the cell's width), and the other layers'
    # (the FCN models' convolutions with their BatchNorm and ReLU, per-step Linears, the input).
    recurrent_activations: int
    layer_activations: int
    evaluation: int  # one evaluation chunk and its activations
    models: int = 1

    @property
    def activations(self) -> int:
        return self.recurrent_activations + self.layer_activations

    @property
    def state(self) -> int:
        return self.parameters + self.adam_moments

    @property
    def train_step(self) -> int:
        return self.gradients + self.new_state + self.batch + self.activations

    @property
    def total(self) -> int:
        """The peak: the state, plus the larger of a train step and an evaluation."""
        return self.state + max(self.train_step, self.evaluation)

    def breakdown(self) -> dict[str, int]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)[:-1]}

    def shares(self) -> dict[str, int]:
        """The total's three shares: ``"parameters"`` (with their moments, gradients and the step's
        copy), ``"activations"`` (with the batch) and ``"evaluation"``."""
        return {
            "parameters": self.state + self.gradients + self.new_state,
            "activations": self.activations + self.batch,
            "evaluation": self.evaluation,
        }

    def largest(self) -> str:
        """The share that weighs most (see `shares`)."""
        shares = self.shares()
        return max(shares, key=shares.__getitem__)

    def describe(self) -> str:
        """One line: the total and its parts in human units."""
        parts = ", ".join(
            f"{name.replace('_', ' ')} {human(value)}" for name, value in self.breakdown().items()
        )
        models = f" for {self.models} models" if self.models > 1 else ""
        return f"about {human(self.total)}{models} ({parts})"


def human(size: float) -> str:
    """Bytes in binary units with three significant digits: ``14.6 TiB``, ``23 GiB``, ``512 bytes``."""
    size = float(size)
    unit = 0
    while abs(size) >= 1024 and unit < len(_UNITS) - 1:
        size /= 1024
        unit += 1
    if unit == 0:
        return f"{int(size)} bytes"
    text = f"{size:.3g}"
    if "e" in text:  # 1000-1023 of a unit
        text = f"{size:.0f}"
    return f"{text} {_UNITS[unit]}"


def _size(shape: tuple[int, ...]) -> int:
    return math.prod(int(n) for n in shape)


@dataclasses.dataclass(frozen=True)
class _Recurrent:
    """One recurrent layer and direction of a layout: its gates, hidden size and input size."""

    gates: int
    hidden: int
    input_size: int


def _recurrent_layers(layout: registry.Layout) -> list[_Recurrent]:
    """Every ``weight_ih_l{k}[_reverse]`` of the layout: (G*H, I), with H from ``weight_hh`` (G*H, P),
    or from ``weight_hr`` (P, H) where there is a projection."""
    layers = []
    for key, param in layout.items():
        head, dot, leaf = key.rpartition(".")
        if not leaf.startswith("weight_ih_l"):
            continue
        suffix = leaf[len("weight_ih") :]
        w_hh = layout[f"{head}{dot}weight_hh{suffix}"].shape
        w_hr = layout.get(f"{head}{dot}weight_hr{suffix}")
        hidden = int(w_hr.shape[1]) if w_hr is not None else int(w_hh[1])
        layers.append(_Recurrent(int(param.shape[0]) // hidden, hidden, int(param.shape[1])))
    return layers


def _output_widths(layout: registry.Layout) -> dict[str, list[int]]:
    """The output widths of the layout's convolutions (3-D weights), BatchNorms (with running
    statistics) and per-step Linears (2-D weights; every Linear but the head, the last in torch's
    order: an upper bound for the squeeze-and-excite ones, which see pooled series)."""
    weights: dict[str, tuple[int, ...]] = {}
    norms = set()
    for key, param in layout.items():
        module, _, leaf = key.rpartition(".")
        if leaf == "weight" and param.collection == "params":
            weights[module] = param.shape
        elif leaf == "running_mean":
            norms.add(module)
    linears = [int(shape[0]) for m, shape in weights.items() if len(shape) == 2 and m not in norms]
    return {
        "conv": [int(shape[0]) for shape in weights.values() if len(shape) == 3],
        "batchnorm": [int(weights[m][0]) for m in weights if m in norms],
        "linear": linears[:-1],
    }


def _implementation(gates: int, implementation: str) -> str:
    """The recurrence a layer of `gates` gates runs: the LSTM takes the config's, the others scan."""
    return implementation if gates == 4 else "scan"


def _activation_bytes(
    layout: registry.Layout,
    dims: registry.Dims,
    rows: int,
    implementation: str,
    itemsize: int,
    train: bool,
    patch: int = 1,
) -> tuple[int, int]:
    """What one model's train step (or evaluation) keeps for `rows` series, in bytes: (the
    recurrent layers', the other layers'). `patch`: the steps the recurrence reads as one."""
    steps = dims.seq_len
    per_row = 0.0  # elements per batch row
    workspace = 0.0
    for layer in _recurrent_layers(layout):
        # A layer steps over time (over patches of `patch` steps), unless its input is a whole
        # series (the FCN models' LSTM steps over the variables, each step `seq_len` values).
        layer_steps = patched_length(steps, patch)
        if layer.input_size == steps != dims.num_features:
            layer_steps = dims.num_features
        key = (layer.gates, _implementation(layer.gates, implementation))
        # A cell of another gate count: the widest known, rather than nothing.
        table = TRAIN_WIDTH if train else EVAL_WIDTH
        width = table.get(key, max(table.values()))
        per_row += layer_steps * width * layer.hidden
        if train:
            extra = TRAIN_WORKSPACE.get(key, max(TRAIN_WORKSPACE.values()))
            workspace = max(workspace, layer_steps * extra * layer.hidden)
    column = 0 if train else 1
    recurrent = per_row + workspace
    other = steps * dims.num_features * PER_OUTPUT["input"][column]
    for kind, widths in _output_widths(layout).items():
        other += steps * sum(widths) * PER_OUTPUT[kind][column]
    other += 3 * dims.num_outputs  # the head's output, the loss's softmax and its gradient
    return math.ceil(rows * recurrent * itemsize), math.ceil(rows * other * itemsize)


def estimate(
    config: Any,
    dims: registry.Dims,
    num_train: int,
    num_test: int,
    models: int = 1,
    *,
    devices: int = 1,
) -> Estimate:
    """The peak memory of training `config` (a `TrainConfig`) on data of `dims` with `num_train`
    training series and `num_test` evaluated ones (the larger of the test and validation splits),
    for `models` models at once (`fit_many`), from the parameter layout alone: cheap (no arrays,
    no tracing, no compilation).

    ``dims.seq_len`` is the series' padded length T (``dataset.seq_len``), needed here for every
    model. With ``devices`` > 1 the K models run that many at a time (their activations add up);
    one model's batch split over devices holds the same in total.
    """
    if dims.seq_len < 1:
        raise ValueError(
            "estimate needs the series' padded length: pass registry.Dims(..., seq_len=dataset.seq_len)"
        )
    if models < 1 or devices < 1:
        raise ValueError(f"models and devices must be at least 1, got {models} and {devices}")
    entry = registry.get(config.model)
    layout = entry.layout(dims, entry.arch(config))
    itemsize = np.dtype(config.dtype).itemsize
    params = stats = 0
    for param in layout.values():
        size = _size(param.shape) * (np.dtype(param.dtype).itemsize if param.dtype else itemsize)
        if param.collection == "params":
            params += size
        else:
            stats += size
    rows = min(config.batch_size, max(1, num_train))
    micro_rows = math.ceil(rows / config.accumulate)
    eval_rows = min(config.eval_batch_size, num_test)
    target = math.prod(dims.output_shape) * itemsize if dims.output_shape else 4  # (H, T) floats or a label
    series = dims.seq_len * dims.num_features * itemsize + 4  # x and its length
    concurrent = min(models, devices)
    patch = getattr(config, "patch", 1)
    recurrent, other = _activation_bytes(
        layout, dims, micro_rows, config.implementation, itemsize, train=True, patch=patch
    )
    evaluation = 0
    if eval_rows > 0:
        kept = _activation_bytes(
            layout, dims, eval_rows, config.implementation, itemsize, train=False, patch=patch
        )
        evaluation = eval_rows * (series + target) + concurrent * sum(kept)
    return Estimate(
        parameters=models * (params + stats),
        adam_moments=models * 2 * params,
        gradients=concurrent * params,
        new_state=models * (3 * params + stats),
        batch=models * rows * (series + target),
        recurrent_activations=concurrent * recurrent,
        layer_activations=concurrent * other,
        evaluation=evaluation,
        models=models,
    )


def available_bytes(device: Any = None) -> int | None:
    """The memory free for a run's arrays, in bytes: on the CPU backend the host's available memory
    (/proc/meminfo's MemAvailable, else free pages from `os.sysconf`); on an accelerator the
    device's limit minus what is in use (`device.memory_stats()`; `device` default: JAX's first).
    None where neither says."""
    import jax

    device = device if device is not None else jax.devices()[0]
    if device.platform != "cpu":
        stats = getattr(device, "memory_stats", lambda: None)()
        if stats and "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
        return None
    return host_available_bytes()


def host_available_bytes() -> int | None:
    """The host's available memory in bytes (MemAvailable: free plus reclaimable caches), or None."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


_FIXES = {
    "parameters": "lower --hidden-size or --num-layers (hidden_size, num_layers)",
    "activations": "lower --batch-size, --hidden-size or --num-layers (batch_size, hidden_size, num_layers)",
    "evaluation": "lower eval_batch_size, --hidden-size or --num-layers",
}


def check(estimate: Estimate, available: int | None, where: str = "this machine") -> str | None:
    """Refuses a run that cannot fit: raises `InsufficientMemoryError` when the estimate exceeds
    `available` bytes; returns a one-line warning when it is within `WARN_FRACTION` of them, else
    None. No limit known (None): None."""
    if available is None:
        return None
    largest = estimate.largest()
    fix = _FIXES[largest]
    if largest != "evaluation" and estimate.models > 1:
        fix += ", or train fewer --seeds at once"
    share = {
        "parameters": "the parameters with their Adam moments, gradients and the step's copy",
        "activations": "one batch's activations",
        "evaluation": "one evaluation chunk",
    }[largest]
    if estimate.total > available:
        raise InsufficientMemoryError(
            f"this run needs about {human(estimate.total)}; {where} has {human(available)} available "
            f"({share} alone take {human(estimate.shares()[largest])}): {fix}",
            estimate,
            available,
        )
    if estimate.total > WARN_FRACTION * available:
        return (
            f"warning: this run needs about {human(estimate.total)} of the {human(available)} "
            f"{where} has available ({100 * estimate.total / available:.0f}%); if it runs out, {fix}"
        )
    return None
