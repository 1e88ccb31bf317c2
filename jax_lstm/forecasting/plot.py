"""The test period with its forecasts: actual values, the model's and a baseline's forecasts from a
few origins with the model's prediction intervals as shaded bands, one panel per target
(``jax-lstm forecast --plot``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jax_lstm.forecasting.windows import ForecastData

__all__ = ["forecast_origins", "plot_forecasts"]


def forecast_origins(num_origins: int, horizon: int, count: int = 4) -> np.ndarray:
    """Indices of up to `count` test origins spread over the period, their forecasts not overlapping."""
    if num_origins == 0:
        return np.zeros(0, dtype=np.int64)
    picks = np.linspace(0, num_origins - 1, count).round().astype(np.int64)
    kept: list[int] = []
    for pick in picks:
        if not kept or pick >= kept[-1] + horizon:
            kept.append(int(pick))
    return np.asarray(kept, dtype=np.int64)


def plot_forecasts(
    path: str | Path,
    data: ForecastData,
    model_forecasts: np.ndarray,
    baseline_name: str | None = None,
    baseline_forecasts: np.ndarray | None = None,
    title: str = "",
    count: int = 4,
    intervals: dict[float, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Path:
    """Writes the PNG: for each target, the test period's actual values and the (B, H, T) forecasts
    of the model (and of a baseline) from `count` origins of ``data.test``; `intervals` {level:
    (lower, upper) (B, H, T)} the model's bands, the wider levels paler."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("--plot needs matplotlib: pip install 'jax-lstm[plot]'") from err
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table, test = data.table, data.test
    rows = np.arange(data.periods.val_end, data.periods.num_rows)
    # Row numbers as the x axis with time labels as tick text: works for dates, quarters and none.
    chosen = forecast_origins(len(test), data.horizon, count)
    targets = table.targets
    fig, axes = plt.subplots(len(targets), 1, figsize=(11, 2.6 * len(targets) + 0.6), squeeze=False)
    values = table.target_values
    for t, (ax, name) in enumerate(zip(axes[:, 0], targets, strict=True)):
        ax.plot(rows, values[rows, t], color="0.35", linewidth=1, label="actual")
        for k, i in enumerate(chosen):
            steps = test.origins[i] + np.arange(data.horizon)
            for j, level in enumerate(sorted(intervals or {}, reverse=True)):
                lower, upper = intervals[level]
                ax.fill_between(
                    steps,
                    np.where(np.isfinite(lower[i, :, t]), lower[i, :, t], np.nan),
                    np.where(np.isfinite(upper[i, :, t]), upper[i, :, t], np.nan),
                    color="C0",
                    alpha=0.15 + 0.15 * j,
                    linewidth=0,
                    label=f"{100 * level:g}% interval" if k == 0 else None,
                )
            ax.plot(
                steps, model_forecasts[i, :, t], color="C0", linewidth=2, label="LSTM" if k == 0 else None
            )
            if baseline_forecasts is not None:
                ax.plot(
                    steps,
                    baseline_forecasts[i, :, t],
                    color="C3",
                    linestyle="--",
                    linewidth=1.5,
                    label=baseline_name if k == 0 else None,
                )
            ax.axvline(test.origins[i] - 0.5, color="0.8", linewidth=0.8)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if table.times is not None:
            ticks = np.linspace(rows[0], rows[-1], 6).round().astype(np.int64)
            ax.set_xticks(ticks, [str(table.times[i])[:10] for i in ticks])
        else:
            ax.set_xlabel("row")
    axes[0, 0].legend(loc="upper right", fontsize="small", ncol=3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
