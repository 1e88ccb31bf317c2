"""``jax-lstm forecast``: trains the LSTM forecaster on a table (default: the embedded Seattle weather)
through the library's training loop, scores it and the baselines on the test period, and writes
what was asked for (metrics JSON, plot, checkpoints; the torch twin's run with --compare-torch)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from typing import Any

from jax_lstm import runtime
from jax_lstm.cli import torch_bridge
from jax_lstm.cli.common import fail, log_function, progress_factory

__all__ = ["add_forecast_arguments", "run"]

BASELINES = ("naive", "seasonal_naive", "mean", "var")


def add_forecast_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``jax-lstm forecast``; those shared with ``jax-lstm train`` mean the same."""
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data", metavar="FILE.csv", help="a CSV table, one row per time step (default: Seattle weather)"
    )
    data.add_argument(
        "--time-column", metavar="COL", help="the column of time labels (dates, or quarters like 1970 Q1)"
    )
    data.add_argument("--targets", metavar="A,B", help="columns to forecast (default: every numeric column)")
    data.add_argument("--features", metavar="C,D", help="input columns (default: every numeric column)")
    data.add_argument(
        "--fill", choices=["ffill", "interpolate"], help="fill missing values (default: refuse them)"
    )
    data.add_argument(
        "--season",
        type=int,
        help="season length for the seasonal naive baseline (default: from the time labels)",
    )
    data.add_argument(
        "--horizon", type=int, help="steps forecast from each origin (default: one season, or 1)"
    )
    data.add_argument(
        "--lookback", type=int, help="input steps per window (default: from horizon and season)"
    )
    data.add_argument("--test-size", type=int, help="rows in the test period (default: 20%%, at most 1000)")
    data.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="fraction of the rows before the test period kept for validation (default 0.1)",
    )
    model = parser.add_argument_group("model and optimisation")
    model.add_argument("--epochs", type=int, help="default: about 640 optimizer steps, 20 to 200 epochs")
    model.add_argument("--batch-size", type=int, help="default: 32 (16 below 512 training windows)")
    model.add_argument("--hidden-size", type=int, help="default: 32")
    model.add_argument("--num-layers", type=int, help="default: 1")
    model.add_argument("--lr", type=float, default=1e-3)
    model.add_argument("--clip", type=float, default=1.0, help="max gradient norm; 0 disables clipping")
    model.add_argument("--patience", type=int, default=2, help="ReduceLROnPlateau patience (epochs)")
    model.add_argument("--dropout", type=float, default=0.0, help="inter-layer LSTM dropout")
    model.add_argument("--seed", type=int, default=0, help="initial weights and batch order")
    model.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    out = parser.add_argument_group("output")
    out.add_argument("--checkpoint-dir", metavar="DIR", help="save the full state here after every epoch")
    out.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    out.add_argument("--metrics-json", metavar="PATH", help="write per-epoch and test metrics here")
    out.add_argument(
        "--plot", metavar="PATH.png", help="plot the test period with forecasts from a few origins"
    )
    out.add_argument("--quiet", action="store_true", help="no per-epoch log lines")
    out.add_argument(
        "--compare-torch",
        action="store_true",
        help="also train the torch twin from the same weights on the same batches and compare per epoch",
    )
    out.add_argument("--no-compile-cache", action="store_true", help="do not keep compiled programs on disk")


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


def _check_flags(args: argparse.Namespace) -> None:
    """Refuses flag combinations that cannot work, before any data is read."""
    if args.resume and not args.checkpoint_dir:
        raise ValueError("--resume needs --checkpoint-dir")
    if args.compare_torch and args.resume:
        raise ValueError("--compare-torch starts both sides from the same weights; it cannot --resume")
    if not args.data:
        given = [
            flag for flag, value in (("--time-column", args.time_column), ("--fill", args.fill)) if value
        ]
        if given:
            raise ValueError(f"{given[0]} describes a --data file; pass --data FILE.csv with it")
    if args.season is not None and args.season < 1:
        raise ValueError(f"--season must be at least 1, got {args.season}")


def _table(args: argparse.Namespace):
    from jax_lstm import forecasting as fc

    targets, features = _names(args.targets), _names(args.features)
    if args.data:
        table = fc.read_table(
            args.data, time_column=args.time_column, targets=targets, features=features, fill=args.fill
        )
    else:
        table = fc.seattle_weather(targets=targets, features=features)
    if args.season is not None:
        table = dataclasses.replace(table, season=args.season)
    return table


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


def _epochs(history) -> list[dict[str, Any]]:
    return [
        {
            "epoch": r.epoch,
            "train_loss": r.train_loss,
            "validation_loss": None if math.isnan(r.test_loss) else r.test_loss,
            "lr": r.lr,
            "seconds": r.seconds,
        }
        for r in history
    ]


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


def run(args: argparse.Namespace) -> int:
    import jax

    if args.dtype == "float64" and not jax.config.read("jax_enable_x64"):
        jax.config.update("jax_enable_x64", True)  # before any array exists
    if not args.no_compile_cache:
        runtime.enable_compilation_cache()
    try:
        from jax_lstm import forecasting as fc
    except ImportError as err:
        message = f"jax-lstm forecast needs pandas and statsmodels ({err})"
        return fail(f"{message}: pip install 'jax-lstm[forecast]'")
    from jax_lstm.data import DataError

    try:
        _check_flags(args)
        table = _table(args)
        data, config = fc.plan(
            table,
            args.horizon,
            args.lookback,
            test_size=args.test_size,
            val_fraction=args.val_fraction,
            epochs=args.epochs,
            batch_size=args.batch_size,
            hidden_size=args.hidden_size,
            num_layers=args.num_layers,
            lr=args.lr,
            clip=args.clip if args.clip > 0 else None,
            patience=args.patience,
            dropout=args.dropout,
            seed=args.seed,
            dtype=args.dtype,
            log_every=0,
        )
    except (DataError, ValueError, FileNotFoundError, KeyError) as err:
        return fail(str(err).strip("'\""))
    return _forecast(args, data, config)


def _forecast(args: argparse.Namespace, data, config) -> int:
    from jax_lstm import forecasting as fc
    from jax_lstm import reporting
    from jax_lstm.training import TrainingDivergedError, fit, initial_variables

    dataset = fc.window_dataset(data)
    train_rows, val_rows, test_rows = data.periods.sizes
    print(data.table.describe())
    print(
        f"periods: train {train_rows}, validation {val_rows}, test {test_rows} rows | lookback "
        f"{data.lookback}, horizon {data.horizon} | {len(data.train)} training, {len(data.validation)} "
        f"validation, {len(data.test)} test windows"
    )
    env = reporting.environment()
    print(
        f"model {config.model}: hidden {config.hidden_size}, layers {config.num_layers} | {config.epochs} "
        f"epochs, batch {config.batch_size}, lr {config.lr}, clip {config.clip}, seed {config.seed}, "
        f"{config.dtype} | jax {env['jax']} on {env['jax_backend']}",
        flush=True,
    )
    torch_model = variables = None
    if args.compare_torch:
        variables = initial_variables(config, dataset.num_features, dataset.num_classes, dataset.output_shape)
        try:
            torch_model = torch_bridge.forecaster_twin(config, dataset, variables)
        except torch_bridge.TorchMissingError as err:
            return fail(str(err))
    progress = progress_factory()
    start = time.perf_counter()
    try:
        result = fit(
            config,
            dataset,
            variables=variables,
            checkpoint_dir=args.checkpoint_dir,
            resume=args.resume,
            log=None if args.quiet else log_function(progress),
            progress=progress,
        )
    except TrainingDivergedError as err:
        kept = f" The last good checkpoint is in {args.checkpoint_dir}." if args.checkpoint_dir else ""
        return fail(f"{err}{kept}", status=3)
    except (ValueError, FileNotFoundError) as err:  # resume problems, reported before training
        return fail(str(err))
    seconds = time.perf_counter() - start
    forecaster = fc.Forecaster(data, config, result)
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

    payload: dict[str, Any] = {
        "dataset": data.table.describe(),
        "lookback": data.lookback,
        "horizon": data.horizon,
        "periods": {"train": train_rows, "validation": val_rows, "test": test_rows},
        "test_origins": len(data.test),
        "config": dataclasses.asdict(config),
        "environment": env,
        "epochs": _epochs(result.history),
        **_scores(evaluation),
        "baselines": {
            name: (_scores(b.evaluation) | {"note": b.note})
            if b.evaluation is not None
            else {"skipped": b.note}
            for name, b in baselines.items()
        },
        "best_baseline": best,
        "seconds": seconds,
    }
    status = 0
    if torch_model is not None:
        status = _compare_with_torch(args, data, dataset, config, torch_model, result, forecasts, payload)
    if args.metrics_json:
        print(f"metrics written to {reporting.write_json(args.metrics_json, payload)}")
    if args.plot:
        from jax_lstm.forecasting.plot import plot_forecasts

        baseline = scored[best].forecasts if best is not None else None
        title = f"{data.table.name}: LSTM and {best} forecasts from a few test origins"
        path = plot_forecasts(args.plot, data, forecasts, best, baseline, title)
        print(f"plot written to {path}")
    return status


def _compare_with_torch(args, data, dataset, config, torch_model, result, forecasts, payload) -> int:
    """Trains the torch twin on the same batches, scores it like the JAX model, records both in
    `payload`; returns 1 when the per-epoch losses disagree beyond the dtype's tolerance."""
    import numpy as np

    from jax_lstm import forecasting as fc
    from jax_lstm import reporting
    from jax_lstm.testing import TRAINING_LOSS_RTOL

    start = time.perf_counter()
    log = None if args.quiet else log_function(None, "[torch] ")
    torch_result = torch_bridge.train_forecaster_torch(config, dataset, torch_model, log)
    seconds = time.perf_counter() - start
    scaled = torch_bridge.predict_torch(torch_result.model, data.test.inputs.astype(config.dtype))
    torch_forecasts = data.inverse_targets(scaled)
    scale = fc.naive_scale(data.train_targets, names=data.table.targets)
    evaluation = fc.evaluate(torch_forecasts, data.test.actual, scale, data.table.targets)
    summary = reporting.comparison(result.history, torch_result.history)
    validation = summary.pop("max_rel_diff_test_loss")
    summary.pop("max_abs_diff_test_accuracy")
    summary["max_rel_diff_validation_loss"] = None if math.isnan(validation) else validation
    summary["max_abs_diff_test_forecast"] = float(np.max(np.abs(forecasts - torch_forecasts)))
    tolerance = TRAINING_LOSS_RTOL[config.dtype]
    worst = max(summary["max_rel_diff_train_loss"], summary["max_rel_diff_validation_loss"] or 0.0)
    agree = worst <= tolerance
    print(f"PyTorch twin: test MASE {evaluation.overall['mase']:.4f} ({seconds:.1f} s)")
    print(f"{'epoch':>5}  {'train (jax)':>14}  {'train (torch)':>14}  {'val (jax)':>12}  {'val (torch)':>12}")
    for a, b in zip(result.history, torch_result.history, strict=True):
        print(
            f"{a.epoch:>5}  {a.train_loss:>14.10f}  {b.train_loss:>14.10f}  "
            f"{a.test_loss:>12.8f}  {b.test_loss:>12.8f}"
        )
    print(
        f"largest relative difference of per-epoch losses: {worst:.2e} (tolerance {tolerance:.0e} in "
        f"{config.dtype}): " + ("agree" if agree else "DISAGREE")
    )
    payload["torch"] = {"epochs": _epochs(torch_result.history), **_scores(evaluation), "seconds": seconds}
    payload["comparison"] = {**summary, "tolerance": tolerance, "agree": agree}
    return 0 if agree else 1
