"""Prediction intervals on the test period: coverage and width of the forecaster's split-conformal
intervals, of the VAR's own (statsmodels'), and of a quick quantile head (pinball loss) with and
without conformalisation (CQR, Romano et al. 2019), over seeds, on two tables.

    python -m benchmarks.intervals [--seeds 3] [--tables NAME,...] [--out benchmarks/results/intervals.json]

``--tables`` measures some of the tables (a run of each takes minutes on a 2-core machine); their
results replace those tables' in the JSON, whose other tables are kept.

The tables: the embedded Seattle weather (daily, horizon 7, the default run) and statsmodels' US
macro data (quarterly, realgdp/realcons/realinv, horizon 4; its default validation period has 13
origins, too few for a bounded 95% conformal interval (19 are needed), so it runs with
``val_fraction=0.3``, 46 origins), in levels (trending: the test period lies beyond the values of
the validation period, which conformal calibration cannot know) and as growth rates. Coverage is the
fraction of test values (every origin, step and target) inside their interval; width the mean
interval width over them, in original units. The quantile head is the forecaster with H x T x Q
outputs trained with the pinball loss on the quantiles (1 - level) / 2 and (1 + level) / 2 of each
level, by the same recipe (hidden size, epochs, batch, Adam, clipping; no plateau schedule): a quick
version to decide whether a quantile option is worth adding, not a product.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jax_lstm import forecasting as fc
from jax_lstm.atomic import write_atomically
from jax_lstm.forecasting.intervals import conformal_rank, interval_scores, level_name
from jax_lstm.models.forecaster import LSTMForecaster
from jax_lstm.nn import Linear
from jax_lstm.rnn.layer import model_layer

RESULTS = Path(__file__).resolve().parent / "results"
LEVELS = (0.8, 0.95)


class QuantileForecaster(LSTMForecaster):
    """LSTMForecaster with Q outputs per step and target: (B, L, F) -> (B, H, T, Q)."""

    num_quantiles: int = 4

    @nn.compact
    def __call__(self, x, train: bool = False, lengths=None):
        out, _ = model_layer(self)(x, deterministic=not train)
        width = self.horizon * self.num_targets * self.num_quantiles
        flat = Linear(width, param_dtype=self.param_dtype, name="fc")(out[:, -1, :])
        return flat.reshape(x.shape[0], self.horizon, self.num_targets, self.num_quantiles)


def pinball(forecasts: jax.Array, targets: jax.Array, quantiles: jax.Array) -> jax.Array:
    """Mean pinball loss of (B, H, T, Q) quantile forecasts of (B, H, T) targets."""
    error = targets[..., None] - forecasts
    return jnp.mean(jnp.maximum(quantiles * error, (quantiles - 1) * error))


def train_quantile_head(data: fc.ForecastData, config, quantiles: np.ndarray) -> tuple:
    """Trains the quantile head by the forecaster's recipe; returns (model, variables)."""
    horizon, targets = data.horizon, len(data.table.targets)
    model = QuantileForecaster(
        config.hidden_size, config.num_layers, horizon, targets, num_quantiles=len(quantiles)
    )
    x, y = data.train.inputs.astype(np.float32), data.train.targets.astype(np.float32)
    key = jax.random.PRNGKey(config.seed)
    variables = model.init(key, jnp.asarray(x[:2]))
    tx = optax.chain(optax.clip_by_global_norm(config.clip or 1e9), optax.adam(config.lr))
    opt = tx.init(variables)
    q = jnp.asarray(quantiles, jnp.float32)

    @jax.jit
    def step(variables, opt, xb, yb):
        loss, grads = jax.value_and_grad(lambda v: pinball(model.apply(v, xb), yb, q))(variables)
        updates, opt = tx.update(grads, opt, variables)
        return optax.apply_updates(variables, updates), opt, loss

    rng = np.random.default_rng(config.seed)
    for _ in range(config.epochs):
        order = rng.permutation(len(x))
        for lo in range(0, len(x), config.batch_size):
            rows = order[lo : lo + config.batch_size]
            variables, opt, _ = step(variables, opt, jnp.asarray(x[rows]), jnp.asarray(y[rows]))
    return model, variables


def quantile_bounds(data, model, variables, windows, quantiles, levels):
    """{level: (lower, upper)} in original units from the head's quantiles on `windows`."""
    scaled = np.asarray(jax.jit(model.apply)(variables, jnp.asarray(windows.inputs.astype(np.float32))))
    out = {}
    for level in levels:
        lo = int(np.argmin(np.abs(quantiles - (1 - level) / 2)))
        hi = int(np.argmin(np.abs(quantiles - (1 + level) / 2)))
        lower = data.inverse_targets(np.minimum(scaled[..., lo], scaled[..., hi]))
        upper = data.inverse_targets(np.maximum(scaled[..., lo], scaled[..., hi]))
        out[level] = (lower, upper)
    return out


def conformalised(validation_bounds, validation_actual, test_bounds):
    """CQR: each level's bounds widened by the conformal quantile of max(lower - y, y - upper)."""
    out = {}
    for level, (lower, upper) in test_bounds.items():
        v_lower, v_upper = validation_bounds[level]
        scores = np.sort(np.maximum(v_lower - validation_actual, validation_actual - v_upper), axis=0)
        k = conformal_rank(len(scores), level)
        q = scores[k - 1] if k <= len(scores) else np.full(scores.shape[1:], np.inf)
        out[level] = (lower - q, upper + q)
    return out


def summary(values):
    values = [v for v in values if v is not None]
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def measure(name: str, table, seeds: list[int], **options) -> dict:
    quantiles = np.asarray(sorted({(1 - lv) / 2 for lv in LEVELS} | {(1 + lv) / 2 for lv in LEVELS}))
    runs = {"conformal": [], "var": [], "quantile head": [], "quantile head + conformal": []}
    seconds = {"conformal": [], "quantile head": []}
    planned = None
    for seed in seeds:
        planned = fc.plan(table, seed=seed, **options)
        data, config = planned.data, planned.config
        start = time.perf_counter()
        forecaster = planned.fit()
        seconds["conformal"].append(time.perf_counter() - start)
        targets = data.table.targets
        runs["conformal"].append(
            interval_scores(forecaster.intervals(levels=LEVELS), data.test.actual, targets)
        )
        if seed == seeds[0]:
            var = fc.evaluate_baselines(data, levels=LEVELS)["var"]
            runs["var"].append(interval_scores(var.intervals, data.test.actual, targets))
        start = time.perf_counter()
        model, variables = train_quantile_head(data, config, quantiles)
        seconds["quantile head"].append(time.perf_counter() - start)
        test = quantile_bounds(data, model, variables, data.test, quantiles, LEVELS)
        validation = quantile_bounds(data, model, variables, data.validation, quantiles, LEVELS)
        runs["quantile head"].append(interval_scores(test, data.test.actual, targets))
        widened = conformalised(validation, data.validation.actual, test)
        runs["quantile head + conformal"].append(interval_scores(widened, data.test.actual, targets))
        print(f"{name} seed {seed}: done", flush=True)
    result = {
        "table": table.describe(),
        "options": options,
        "lookback": planned.data.lookback,
        "horizon": planned.data.horizon,
        "validation_origins": len(planned.data.validation),
        "test_origins": len(planned.data.test),
        "config": dataclasses.asdict(planned.config),
        "seconds_training": {k: summary(v) for k, v in seconds.items()},
        "methods": {},
    }
    for method, scores in runs.items():
        result["methods"][method] = {
            level_name(lv): {
                "coverage": summary([s["coverage"][level_name(lv)] for s in scores]),
                "interval_width": summary([s["interval_width"][level_name(lv)] for s in scores]),
            }
            for lv in LEVELS
        }
    return result


def table_text(results: dict) -> str:
    lines = []
    for name, result in results.items():
        lines.append(
            f"{name}: {result['table']} | {result['validation_origins']} validation, "
            f"{result['test_origins']} test origins"
        )
        head = "".join(f" {'cov ' + level_name(lv):>16} {'width ' + level_name(lv):>22}" for lv in LEVELS)
        lines.append(f"  {'method':<26}{head}")
        for method, levels in result["methods"].items():
            cells = ""
            for lv in LEVELS:
                c, w = levels[level_name(lv)]["coverage"], levels[level_name(lv)]["interval_width"]
                cells += f" {100 * c['mean']:>6.1f} [{100 * c['min']:.1f}-{100 * c['max']:.1f}]"
                cells += f" {w['mean']:>8.4g} [{w['min']:.4g}-{w['max']:.4g}]"
            lines.append(f"  {method:<26}{cells}")
    return "\n".join(lines)


def macro_growth() -> fc.Table:
    """statsmodels' macro data as quarterly growth rates (100 x the log difference): the same series
    without their trend, whose test period looks like its validation period."""
    import pandas as pd

    levels = fc.macrodata()
    growth = 100 * np.diff(np.log(levels.values), axis=0)
    frame = pd.DataFrame(growth, columns=list(levels.columns))
    frame.insert(0, "quarter", [str(q) for q in levels.times[1:]])
    return fc.table_from_frame(frame, time_column="quarter", name="macrodata growth")


# name -> (the table, the options of `fc.plan`); the macro data's default validation period is too
# short for a bounded 95% conformal interval (see the module's docstring).
TABLES = {
    "seattle-weather": lambda: (fc.seattle_weather(), {}),
    "macrodata": lambda: (fc.macrodata(), {"val_fraction": 0.3}),
    "macrodata growth": lambda: (macro_growth(), {"val_fraction": 0.3}),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "intervals.json"))
    parser.add_argument(
        "--tables", default=",".join(TABLES), help=f"comma-separated, of {', '.join(TABLES)} (default all)"
    )
    args = parser.parse_args(argv)
    seeds = list(range(args.seeds))
    names = [name.strip() for name in args.tables.split(",") if name.strip()]
    unknown = sorted(set(names) - set(TABLES))
    if unknown or not names:
        parser.error(f"--tables: unknown {unknown}; choose from {list(TABLES)}")
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.exists() else {}
    results = dict(previous.get("results", {}))
    runs = dict(previous.get("runs", {}))
    for name in names:
        table, options = TABLES[name]()
        results[name] = measure(name, table, seeds, **options)
        runs[name] = {
            "seeds": seeds,
            "date": time.strftime("%Y-%m-%d"),
            "load_average": list(os.getloadavg()),
        }
    text = table_text(results)
    print(text)
    payload = {
        "machine": platform.platform(),
        "processor": platform.processor(),
        "versions": {"jax": jax.__version__, "optax": optax.__version__, "numpy": np.__version__},
        "devices": [str(d) for d in jax.devices()],
        "runs": runs,
        "results": results,
        "table": text,
    }
    write_atomically(args.out, (json.dumps(payload, indent=2) + "\n").encode())
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
