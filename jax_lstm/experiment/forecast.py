"""A forecasting run end to end (``jax-lstm forecast``): the table read and planned
(`jax_lstm.forecasting.plan`), the forecaster trained (`ForecastPlan.fit`, the library's loop), the
test period scored beside the baselines, the torch twin beside it when asked, and the outputs
written (metrics JSON, plot; process 0 only)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from jax_lstm import reporting
from jax_lstm.data import DataError
from jax_lstm.experiment import outputs, torch_side
from jax_lstm.experiment.requests import ForecastRequest
from jax_lstm.experiment.train import header
from jax_lstm.training import (
    initial_variables,
)

__all__ = ["run_forecast"]


def _scores(evaluation) -> dict[str, Any]:
    """An `Evaluation` as JSON: overall, per target and per horizon step."""
    metrics = list(evaluation.overall)
    return {
        **evaluation.overall,
        "per_target": {
            name: {m: float(evaluation.per_target[m][t]) for m in metrics}
            for t, name in enumerate(evaluation.targets)
        },
        "per_horizon": [
            {"step": h + 1, **{m: float(evaluation.per_step[m][h]) for m in metrics}}
            for h in range(len(evaluation.per_step[metrics[0]]))
        ],
    }


def _label(time: Any) -> str:
    """A time label as text: dates without a midnight time of day."""
    text = str(time)
    return text[:-9] if text.endswith(" 00:00:00") else text


def _score_table(rows: list[tuple[str, Any, str]]) -> str:
    lines = [f"{'':<16} {'MAE':>10} {'RMSE':>10} {'MASE':>8}"]
    for name, evaluation, note in rows:
        if evaluation is None:
            lines.append(f"{name:<16} {note}")
        else:
            o = evaluation.overall
            extra = f"  {note}" if note else ""
            lines.append(f"{name:<16} {o['mae']:>10.4g} {o['rmse']:>10.4g} {o['mase']:>8.4f}{extra}")
    return "\n".join(lines)


def run_forecast(request: ForecastRequest) -> int:
    """Runs `request`; returns the exit status (0, or 1 when the torch twin's run disagrees).
    Expected failures raise `outputs.RunError` with their message and status (see `run_training`)."""
    try:
        from jax_lstm import forecasting as fc
    except ImportError as err:
        message = f"jax-lstm forecast needs pandas and statsmodels ({err})"
        raise outputs.RunError(f"{message}: pip install 'jax-lstm[forecast]'") from err
    try:
        request.check()
        if request.compare_torch:
            torch_side.require_torch("--compare-torch")
        table = request.load_table()
        planned = fc.plan(
            table,
            request.horizon,
            request.lookback,
            test_size=request.test_size,
            val_fraction=request.val_fraction,
            **request.settings,
        )
    except (DataError, ValueError, FileNotFoundError, KeyError, torch_side.TorchMissingError) as err:
        raise outputs.RunError(str(err).strip("'\"")) from err
    data, dataset, config = planned.data, planned.dataset, planned.config
    train_rows, val_rows, test_rows = data.periods.sizes
    print(data.table.describe())
    print(
        f"periods: train {train_rows}, validation {val_rows}, test {test_rows} rows | lookback "
        f"{data.lookback}, horizon {data.horizon} | {len(data.train)} training, {len(data.validation)} "
        f"validation, {len(data.test)} test windows"
    )
    env = reporting.environment()
    print(header(config, env), flush=True)
    variables = initial_variables(config, dataset.dims) if request.compare_torch else None
    progress = outputs.progress_factory()
    start = time.perf_counter()
    with outputs.training_failures(request.checkpoint_dir):
        forecaster = planned.fit(
            variables=variables,
            checkpoint_dir=request.checkpoint_dir,
            resume=request.resume,
            overwrite=request.overwrite,
            log=None if request.quiet else outputs.log_function(progress),
            progress=progress,
        )
    seconds = time.perf_counter() - start
    result = forecaster.result
    forecasts = forecaster.forecast_windows()
    evaluation = forecaster.evaluate()
    baselines = fc.evaluate_baselines(data)
    first, last = data.test.origins[0], data.test.origins[-1] + data.horizon - 1
    times = data.table.times
    span = f" ({_label(times[first])} .. {_label(times[last])})" if times is not None else ""
    print(
        f"trained in {seconds:.1f} s including compilation. Test period: {len(data.test)} origins x "
        f"{data.horizon} steps x {len(data.table.targets)} targets{span}, original units, MASE "
        "against the training period's one-step naive error:"
    )
    rows = [("LSTM", evaluation, "")] + [(name, b.evaluation, b.note) for name, b in baselines.items()]
    print(_score_table(rows))
    scored = {name: b for name, b in baselines.items() if b.evaluation is not None}
    best = min(scored, key=lambda name: scored[name].evaluation.overall["mase"]) if scored else None
    if best is not None:
        ratio = evaluation.overall["mase"] / scored[best].evaluation.overall["mase"]
        verdict = "beats" if ratio < 1 else "does not beat"
        print(f"the LSTM {verdict} the best baseline ({best}): MASE ratio {ratio:.3f}")

    payload = outputs.run_record(
        "forecasting", data.table.describe(), config, seconds, env, [result], stacked=False
    )
    payload.update(
        {
            "lookback": data.lookback,
            "horizon": data.horizon,
            "periods": {"train": train_rows, "validation": val_rows, "test": test_rows},
            "test_origins": len(data.test),
            **_scores(evaluation),
            "baselines": {
                name: (_scores(b.evaluation) | {"note": b.note})
                if b.evaluation is not None
                else {"skipped": b.note}
                for name, b in baselines.items()
            },
            "best_baseline": best,
        }
    )
    status = 0
    if request.compare_torch:
        log = None if request.quiet else outputs.log_function(None, "[torch] ")
        comparison = torch_side.compare_with_twin(config, dataset, variables, result.history, log)
        scaled = torch_side.predict_twin(comparison.model, data.test.inputs.astype(config.dtype))
        torch_forecasts = data.inverse_targets(scaled)
        scale = fc.naive_scale(data.train_targets, names=data.table.targets)
        torch_evaluation = fc.evaluate(torch_forecasts, data.test.actual, scale, data.table.targets)
        print(f"PyTorch twin: test MASE {torch_evaluation.overall['mase']:.4f} ({comparison.seconds:.1f} s)")
        print(reporting.comparison_table(result.history, comparison.history))
        print(comparison.verdict(config.dtype))
        payload["torch"] = {
            "epochs": [r.as_dict() for r in comparison.history],
            **_scores(torch_evaluation),
            "seconds": comparison.seconds,
        }
        payload["comparison"] = {
            **comparison.record(),
            "max_abs_diff_test_forecast": float(np.max(np.abs(forecasts - torch_forecasts))),
        }
        status = 0 if comparison.agree else outputs.EXIT_DISAGREE
    plots = []
    if request.plot:
        from jax_lstm.forecasting.plot import plot_forecasts

        baseline = scored[best].forecasts if best is not None else None
        title = f"{data.table.name}: LSTM and {best} forecasts from a few test origins"
        plots.append(("plot", lambda: plot_forecasts(request.plot, data, forecasts, best, baseline, title)))
    outputs.write_outputs(request.metrics_json, payload, plots)
    return status
