"""What runs print and write: environment, metrics JSON, loss/accuracy plots, comparison tables."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jax_lstm.atomic import write_atomically
from jax_lstm.training.history import EpochRecord

__all__ = [
    "comparison",
    "comparison_table",
    "environment",
    "plot_attention",
    "plot_history",
    "write_json",
]


def environment() -> dict[str, Any]:
    """Versions, devices and machine facts printed and stored with every result."""
    import flax
    import jax
    import optax

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [f"{d.platform}:{d.device_kind}" for d in jax.devices()],
        "machine": platform.machine(),
        "system": platform.system(),
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_model(),
    }
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
        env["torch_cuda"] = torch.cuda.is_available()
    return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Writes JSON atomically (`jax_lstm.atomic.write_atomically`: temporary file, fsync, rename)."""
    return write_atomically(path, (json.dumps(payload, indent=2, default=float) + "\n").encode())


def _relative_difference(a, b):
    """|a - b| / |b|, elementwise, with |b| floored at 1e-300 so that b = 0 gives a large finite
    number (or 0 when a = 0 too) instead of a division by zero."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.abs(a - b) / np.maximum(np.abs(b), 1e-300)


def comparison(
    jax_history: Sequence[EpochRecord], torch_history: Sequence[EpochRecord]
) -> dict[str, float | bool | None]:
    """Largest relative differences between two runs' per-epoch losses: training, and each split
    the runs evaluated (test, validation; None where neither evaluated it); the largest absolute
    difference of test accuracy (None without one); whether the learning-rate traces are equal.
    Epochs that neither side evaluated (NaN on both: `TrainConfig.eval_every`) are left out; one
    that only one side evaluated differs by inf."""

    def differences(key, measure):
        a = np.asarray([getattr(h, key) for h in jax_history], np.float64)
        b = np.asarray([getattr(h, key) for h in torch_history], np.float64)
        both = np.isnan(a) & np.isnan(b)
        if both.all():
            return None
        diff = np.where(np.isnan(a) | np.isnan(b), np.inf, measure(a, b))
        return float(np.max(diff[~both]))

    def rel(key):
        if any(getattr(h, key) is None for h in [*jax_history, *torch_history]):
            return None
        return differences(key, _relative_difference)

    return {
        "max_rel_diff_train_loss": rel("train_loss"),
        "max_rel_diff_test_loss": rel("test_loss"),
        "max_rel_diff_val_loss": rel("val_loss"),
        "max_abs_diff_test_accuracy": differences("test_accuracy", lambda a, b: np.abs(a - b)),
        "same_lr_trace": [h.lr for h in jax_history] == [h.lr for h in torch_history],
    }


def comparison_table(jax_history: Sequence[EpochRecord], torch_history: Sequence[EpochRecord]) -> str:
    """Per-epoch losses of both sides and their relative difference, as aligned text: the test
    accuracies of a classifier, the validation losses of a run without test accuracy."""
    accuracy = not all(math.isnan(h.test_accuracy) for h in jax_history)
    last = (
        f"{'test acc jax':>12}  {'test acc torch':>14}"
        if accuracy
        else f"{'val loss (jax)':>14}  {'val loss (torch)':>16}"
    )
    lines = [
        f"{'epoch':>5}  {'train loss (jax)':>16}  {'train loss (torch)':>18}  {'rel diff':>9}  "
        f"{last}  {'lr jax':>8}  {'lr torch':>8}"
    ]
    for a, b in zip(jax_history, torch_history, strict=True):
        diff = float(_relative_difference(a.train_loss, b.train_loss))
        if accuracy:
            evaluated = f"{_percent(a.test_accuracy):>12}  {_percent(b.test_accuracy):>14}"
        else:
            evaluated = f"{_number(a.val_loss):>14}  {_number(b.val_loss):>16}"
        lines.append(
            f"{a.epoch:>5}  {a.train_loss:>16.10f}  {b.train_loss:>18.10f}  {diff:>9.2e}  "
            f"{evaluated}  {a.lr:>8.1e}  {b.lr:>8.1e}"
        )
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.10f}"


def _percent(value: float) -> str:
    """An accuracy as a percentage, "-" where it was not evaluated (NaN)."""
    return "-" if math.isnan(value) else f"{100 * value:.2f}%"


def plot_history(
    path: str | Path,
    jax_history: Sequence[EpochRecord],
    torch_history: Sequence[EpochRecord] | None = None,
    title: str = "",
) -> Path:
    """Loss and accuracy curves per epoch as a PNG; both sides when a torch history is given."""
    plt = _pyplot("--plot")
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    # JAX wide and pale, torch thin with markers on top: where the runs agree both stay visible.
    runs = [("JAX", jax_history, {"linestyle": "-", "linewidth": 4, "alpha": 0.45})]
    if torch_history is not None:
        runs.append(("PyTorch", torch_history, {"linestyle": "--", "linewidth": 1.2, "marker": "x"}))
    for label, history, style in runs:
        epochs = [h.epoch for h in history]
        loss_ax.plot(epochs, [h.train_loss for h in history], color="C0", label=f"{label} train", **style)
        # The test split's points where it was evaluated (`TrainConfig.eval_every`), joined.
        tested = [h for h in history if not math.isnan(h.test_loss)]
        tested_epochs = [h.epoch for h in tested]
        loss_ax.plot(tested_epochs, [h.test_loss for h in tested], color="C1", label=f"{label} test", **style)
        acc_ax.plot(
            tested_epochs, [100 * h.test_accuracy for h in tested], color="C2", label=f"{label} test", **style
        )
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="test accuracy")
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _pyplot(flag: str):
    """matplotlib's pyplot on the Agg backend (files only); an ImportError naming the extra if absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(f"{flag} needs matplotlib: pip install 'jax-lstm[plot]'") from err
    return plt


def plot_attention(
    path: str | Path,
    x: np.ndarray,
    weights: np.ndarray,
    lengths: np.ndarray | None,
    titles: Sequence[str],
    title: str = "",
) -> Path:
    """Attention weights over time beside the input channels, one row per series, as a PNG.

    x (N, T, F) series, weights (N, T) (zero on padding), lengths (N,) or None, one title per row
    (e.g. its true and predicted class). Each row: the channels (top), the weights as bars (bottom).
    Weights of a patched model, (N, ceil(T / P)), are drawn as one bar P steps wide per patch.
    """
    plt = _pyplot("--plot-attention")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(x)
    patch = -(-x.shape[1] // max(1, weights.shape[1]))  # steps per weight: 1, or a model's patch
    fig, axes = plt.subplots(
        2, n, figsize=(3.6 * n, 4.6), sharex="col", squeeze=False, gridspec_kw={"height_ratios": [2, 1]}
    )
    for i in range(n):
        steps = int(x.shape[1] if lengths is None else lengths[i])
        t = np.arange(steps)
        series_ax, weight_ax = axes[0, i], axes[1, i]
        series_ax.plot(t, x[i, :steps], linewidth=1)
        series_ax.set_title(titles[i], fontsize=9)
        series_ax.grid(alpha=0.3)
        patches = -(-steps // patch)
        starts = np.arange(patches) * patch - 0.5
        weight_ax.bar(starts, weights[i, :patches], width=patch, align="edge", color="C3", alpha=0.8)
        weight_ax.set_xlabel("time step")
        weight_ax.grid(alpha=0.3)
        if i == 0:
            series_ax.set_ylabel("input channels")
            weight_ax.set_ylabel("attention weight")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    """Renders a figure to PNG and writes it atomically, so a failed write leaves no half image."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return write_atomically(path, buffer.getvalue())
