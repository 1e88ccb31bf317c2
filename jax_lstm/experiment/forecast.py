"""A forecasting run end to end (``jax-lstm forecast``): the table read and planned
(`jax_lstm.forecasting.plan`), the forecaster trained (`ForecastPlan.fit`, the library's loop) and
calibrated on the validation period, the test period scored beside the baselines (errors, and the
coverage and width of the model's conformal intervals and of the VAR's own), the torch twin beside
it when asked, and the outputs written (metrics JSON, plot, the forecast of the steps after the
table; process 0 only). ``--from-checkpoint`` forecasts with a saved model from a newer table,
without training (`forecast_from_checkpoint`)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from jax_lstm import reporting
from jax_lstm.atomic import write_atomically
from jax_lstm.data import DataError
from jax_lstm.experiment import outputs, torch_side
from jax_lstm.experiment.requests import ForecastRequest
from jax_lstm.experiment.train import header
from jax_lstm.training import (
    initial_variables,
    parallel,
)

__all__ = ["forecast_from_checkpoint", "run_forecast"]


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


def _interval_cells(scores: dict[str, Any] | None, levels: tuple[float, ...]) -> str:
    """A row's coverage and mean width per level ("-" without intervals)."""
    from jax_lstm.forecasting.intervals import level_name

    cells = []
    for level in levels:
        name = level_name(level)
        if scores is None:
            cells.append(f"{'-':>7} {'-':>9}")
            continue
        width = scores["interval_width"][name]
        cells.append(
            f"{100 * scores['coverage'][name]:>6.1f}% {'inf' if width is None else f'{width:.4g}':>9}"
        )
    return " ".join(cells)


def _score_table(
    rows: list[tuple[str, Any, str]],
    levels: tuple[float, ...] = (),
    intervals: dict[str, dict[str, Any]] | None = None,
) -> str:
    """The test period's errors per model, with the coverage and mean width (over targets, original
    units) of each one's intervals at `levels` where it has them."""
    from jax_lstm.forecasting.intervals import level_name

    intervals = intervals or {}
    head = "".join(f" {'cov ' + level_name(lv):>7} {'width':>9}" for lv in levels)
    lines = [f"{'':<16} {'MAE':>10} {'RMSE':>10} {'MASE':>8}{head}"]
    for name, evaluation, note in rows:
        if evaluation is None:
            lines.append(f"{name:<16} {note}")
        else:
            o = evaluation.overall
            extra = f"  {note}" if note else ""
            cells = f" {_interval_cells(intervals.get(name), levels)}" if levels else ""
            lines.append(f"{name:<16} {o['mae']:>10.4g} {o['rmse']:>10.4g} {o['mase']:>8.4f}{cells}{extra}")
    return "\n".join(lines)


def _write_future(path: str, prediction) -> None:
    """The forecast of the steps after the table as CSV, written atomically (status 4 on failure)."""
    text = prediction.long_frame().to_csv(index=False, float_format="%.17g", lineterminator="\n")
    try:
        write_atomically(path, text.encode("utf-8"))
    except OSError as err:
        raise outputs.RunError(
            f"could not write {path}: {err.strerror or err}", outputs.EXIT_WRITE_FAILED
        ) from err


def run_forecast(request: ForecastRequest) -> int:
    """Runs `request`; returns the exit status (0, or 1 when the torch twin's run disagrees).
    Expected failures raise `outputs.RunError` with their message and status (see `run_training`)."""
    try:
        from jax_lstm import forecasting as fc
    except ImportError as err:
        message = f"jax-lstm forecast needs pandas and statsmodels ({err})"
        raise outputs.RunError(f"{message}: pip install 'jax-lstm[forecast]'") from err
    if request.from_checkpoint:
        return forecast_from_checkpoint(request)
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
    levels = request.intervals
    bounds = forecaster.intervals(levels=levels, forecasts=forecasts)
    baselines = fc.evaluate_baselines(data, levels=levels)
    targets = data.table.targets
    interval_scores = {}
    if bounds:
        interval_scores["LSTM"] = fc.interval_scores(bounds, data.test.actual, targets)
    for name, b in baselines.items():
        if b.intervals:
            interval_scores[name] = fc.interval_scores(b.intervals, data.test.actual, targets)
    first, last = data.test.origins[0], data.test.origins[-1] + data.horizon - 1
    times = data.table.times
    span = f" ({_label(times[first])} .. {_label(times[last])})" if times is not None else ""
    print(
        f"trained in {seconds:.1f} s including compilation. Test period: {len(data.test)} origins x "
        f"{data.horizon} steps x {len(data.table.targets)} targets{span}, original units, MASE "
        "against the training period's one-step naive error:"
    )
    rows = [("LSTM", evaluation, "")] + [(name, b.evaluation, b.note) for name, b in baselines.items()]
    print(_score_table(rows, levels, interval_scores))
    calibration = forecaster.calibration
    if calibration is None:
        print("no validation period (--val-fraction 0): the LSTM's forecasts have no intervals")
    else:
        print(
            f"intervals: the LSTM's split conformal from {calibration.origins} validation origins (per "
            "target and step); the VAR's statsmodels' Gaussian ones. cov: test values inside their "
            "interval; width: its mean over origins, steps and targets (original units)"
        )
        for level in levels:
            if calibration.least_origins(level) > calibration.origins:
                print(
                    f"note: a {level:g} interval needs at least {calibration.least_origins(level)} "
                    f"validation origins, and there are {calibration.origins}: it is unbounded; raise "
                    "--val-fraction"
                )
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
    if "LSTM" in interval_scores:
        scores = interval_scores["LSTM"]
        payload["coverage"], payload["interval_width"] = scores["coverage"], scores["interval_width"]
        payload["intervals"] = {
            "levels": list(levels),
            "method": "split conformal: absolute residuals of the validation origins, per target and step",
            "calibration_origins": calibration.origins,
            "per_target": scores["per_target"],
            "per_horizon": scores["per_horizon"],
        }
    for name in baselines:
        if name in interval_scores:
            scores = interval_scores[name]
            payload["baselines"][name].update(
                {
                    "coverage": scores["coverage"],
                    "interval_width": scores["interval_width"],
                    "intervals": {
                        "method": "statsmodels' Gaussian forecast intervals",
                        "per_target": scores["per_target"],
                        "per_horizon": scores["per_horizon"],
                    },
                }
            )
    future = forecaster.predict(levels=levels)
    if request.checkpoint_dir and calibration is not None and parallel.is_primary():
        from jax_lstm.training import checkpoint

        try:
            checkpoint.annotate(request.checkpoint_dir, "calibration", calibration.as_dict())
        except OSError as err:
            raise outputs.RunError(
                f"could not add the calibration to the checkpoint in {request.checkpoint_dir}: "
                f"{err.strerror or err}",
                outputs.EXIT_WRITE_FAILED,
            ) from err
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
            "epochs": outputs.epoch_records(comparison.history),
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
        plots.append(
            (
                "plot",
                lambda: plot_forecasts(
                    request.plot, data, forecasts, best, baseline, title, intervals=bounds
                ),
            )
        )
    outputs.write_outputs(request.metrics_json, payload, plots)
    _print_future(future, levels, data.horizon)
    if request.output and parallel.is_primary():
        _write_future(request.output, future)
        print(f"forecast of the {data.horizon} steps after the table written to {request.output}")
    return status


def _print_future(prediction, levels: tuple[float, ...], horizon: int) -> None:
    frame = prediction.long_frame()
    print(f"the {horizon} steps after the table (original units):")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def forecast_from_checkpoint(request: ForecastRequest) -> int:
    """``jax-lstm forecast --from-checkpoint DIR [--data NEWER.csv] --output FUTURE.csv``: the steps
    after the table's last row, forecast by the saved model without training, with the intervals
    of the run's calibration. A table whose columns differ from the training table's is refused."""
    from jax_lstm import forecasting as fc
    from jax_lstm.experiment.predict import enable_dtype
    from jax_lstm.training import CheckpointError

    try:
        request.check()
        enable_dtype(request.from_checkpoint)
        model = fc.load_forecaster(request.from_checkpoint, log=None if request.quiet else print)
        table = fc.read_like(request.data, model.spec, time_column=request.time_column, fill=request.fill)
        prediction = model.predict(table, request.intervals)
    except (DataError, ValueError, FileNotFoundError, CheckpointError) as err:
        raise outputs.RunError(str(err).strip("'\"")) from err
    spec = model.spec
    print(
        f"{model.path}: {model.config.model} after {model.epoch} epochs, lookback {spec.lookback}, "
        f"horizon {spec.horizon}, trained on {spec.name} ({spec.rows} rows, up to {spec.last_time})"
    )
    print(table.describe())
    if model.calibration is None:
        print(
            "note: the checkpoint holds no calibration (a run without a validation period, or one that "
            "stopped before its end): forecasts without intervals"
        )
    else:
        print(f"intervals: split conformal from the run's {model.calibration.origins} validation origins")
    _print_future(prediction, request.intervals, spec.horizon)
    _write_future(request.output, prediction)
    print(f"forecast of the {spec.horizon} steps after the table written to {request.output}")
    return 0
