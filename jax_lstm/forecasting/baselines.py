"""Baseline forecasts on the model's rolling-origin windows, in original units.

Each baseline forecasts (B, H, T) from the origins of a `Windows` using only rows before each origin
(and parameters fitted on the training period): naive (the last observed value), seasonal naive (the
value one season earlier), the training-period mean, and a VAR (statsmodels, lag order by AIC on
the training period, fitted once, then iterated forward from each origin's own history; an AR model
for a table with one variable). statsmodels is needed for the VAR only, and imported when used.

The VAR's prediction intervals are statsmodels' own (``VARResults.forecast_interval``,
``AutoRegResults.get_prediction``): Gaussian, forecast ± z sqrt(MSE_h), the h-step forecast MSE
from the fitted model's moving-average representation and its residual covariance
(`LinearAR.forecast_mse`); they depend on the step, not on the origin.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from jax_lstm.data import DataError
from jax_lstm.forecasting.metrics import Evaluation, evaluate, naive_scale
from jax_lstm.forecasting.windows import ForecastData, Windows

__all__ = [
    "BaselineResult",
    "LinearAR",
    "default_maxlags",
    "evaluate_baselines",
    "fit_var",
    "mean_forecast",
    "naive_forecast",
    "seasonal_naive_forecast",
    "var_forecast",
    "var_half_widths",
]

_INSTALL = "the VAR baseline needs statsmodels: pip install 'jax-lstm[forecast]'"


def _origins(origins: np.ndarray, horizon: int) -> np.ndarray:
    origins = np.asarray(origins, dtype=np.int64)
    if origins.ndim != 1:
        raise ValueError(f"origins must be (B,), got shape {origins.shape}")
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon}")
    return origins


def naive_forecast(targets: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """The last observed value, ``targets[o - 1]``, for every step: (N, T), (B,) -> (B, H, T)."""
    origins = _origins(origins, horizon)
    if origins.size and origins.min() < 1:
        raise ValueError("the naive forecast needs at least one row before each origin")
    last = np.asarray(targets, dtype=np.float64)[origins - 1]  # (B, T)
    return np.repeat(last[:, None, :], horizon, axis=1)


def seasonal_naive_forecast(
    targets: np.ndarray, origins: np.ndarray, horizon: int, season: int
) -> np.ndarray:
    """The value one season earlier: step h (1-based) forecasts ``targets[o - m + (h - 1) % m]``.

    (N, T), (B,) -> (B, H, T). Every value used precedes the origin, for any horizon.
    """
    origins = _origins(origins, horizon)
    if int(season) != season or season < 1:
        raise ValueError(f"season must be an integer >= 1, got {season}")
    if origins.size and origins.min() < season:
        raise DataError(
            f"the seasonal naive forecast with season {season} needs {season} rows before each origin; "
            f"the first origin is row {int(origins.min())}"
        )
    rows = origins[:, None] - season + (np.arange(horizon) % season)[None, :]  # (B, H)
    return np.asarray(targets, dtype=np.float64)[rows]


def mean_forecast(train_targets: np.ndarray, num_origins: int, horizon: int) -> np.ndarray:
    """The training-period mean of each target, for every origin and step: (N_train, T) -> (B, H, T)."""
    mean = np.asarray(train_targets, dtype=np.float64).mean(axis=0)
    return np.broadcast_to(mean, (num_origins, horizon, mean.shape[0])).copy()


@dataclasses.dataclass(frozen=True, eq=False)
class LinearAR:
    """A fitted linear autoregression ``y_t = intercept + sum_i coefs[i-1] @ y_{t-i}`` over V variables.

    intercept (V,), coefs (p, V, V) (p may be 0: the mean model); `method` "VAR" or "AR";
    `sigma` (V, V) the residual covariance statsmodels' intervals use (``VARResults.sigma_u``,
    ``AutoRegResults.sigma2``), None when unknown.
    """

    intercept: np.ndarray
    coefs: np.ndarray
    method: str
    sigma: np.ndarray | None = None

    @property
    def lag_order(self) -> int:
        return int(self.coefs.shape[0])

    def forecast_mse(self, horizon: int) -> np.ndarray:
        """(H, V, V) the h-step forecast error covariances, ``sum_{i<h} Phi_i Sigma Phi_i^T`` with Phi
        the moving-average coefficients (``Phi_0 = I``, ``Phi_i = sum_j Phi_{i-j} A_j``), as statsmodels'
        ``VARProcess.mse`` and AutoReg's prediction variance compute them."""
        if self.sigma is None:
            raise ValueError(f"this {self.method} model has no residual covariance, so no intervals")
        v = self.intercept.shape[0]
        phis = [np.eye(v)]
        for i in range(1, horizon):
            phi = np.zeros((v, v))
            for j in range(1, min(i, self.lag_order) + 1):
                phi = phi + phis[i - j] @ self.coefs[j - 1]
            phis.append(phi)
        mse, total = [], np.zeros((v, v))
        for phi in phis:
            total = total + phi @ self.sigma @ phi.T
            mse.append(total)
        return np.stack(mse)


def _statsmodels():
    try:
        from statsmodels.tsa.api import VAR
        from statsmodels.tsa.ar_model import ar_select_order
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL) from error
    return VAR, ar_select_order


def default_maxlags(num_rows: int, num_variables: int) -> int:
    """The largest lag order AIC may pick: statsmodels' rule ``12 (n/100)^(1/4)``, bounded so that
    every equation keeps more observations than coefficients (``n - p > 1 + V p``); 0 if none fits."""
    rule = round(12 * (num_rows / 100.0) ** 0.25)
    fits = (num_rows - 2) // (num_variables + 1)
    return max(0, min(rule, fits))


def fit_var(train_values: np.ndarray, maxlags: int | None = None) -> LinearAR:
    """Fits a VAR (V >= 2 variables) or an AR (V = 1) to the (N_train, V) training values.

    The lag order minimises AIC over 0..maxlags (default `default_maxlags`), with a constant.

    Raises:
      DataError: too few rows for even one lag, or a fit statsmodels refuses (e.g. a constant
        column makes the VAR's regression singular).
      ImportError: statsmodels is missing.
    """
    y = np.asarray(train_values, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"train_values must be (rows, variables), got shape {y.shape}")
    n, v = y.shape
    maxlags = default_maxlags(n, v) if maxlags is None else maxlags
    if maxlags < 1:
        raise DataError(
            f"{n} training rows are too few for a {'VAR' if v > 1 else 'AR'} model of {v} variables"
        )
    VAR, ar_select_order = _statsmodels()  # noqa: N806 - the statsmodels class
    with warnings.catch_warnings():
        # statsmodels' notes about the (absent) date index and its own deprecations, not ours
        warnings.simplefilter("ignore")
        try:
            if v == 1:
                selected = ar_select_order(y[:, 0], maxlag=maxlags, ic="aic", trend="c")
                lags = 0 if selected.ar_lags is None else max(selected.ar_lags)
                fitted = selected.model.fit()
                params = np.asarray(fitted.params, dtype=np.float64)
                return LinearAR(
                    intercept=params[:1],
                    coefs=params[1 : 1 + lags].reshape(lags, 1, 1),
                    method="AR",
                    sigma=np.asarray(fitted.sigma2, np.float64).reshape(1, 1),
                )
            results = VAR(y).fit(maxlags=maxlags, ic="aic", trend="c")
        except (ValueError, np.linalg.LinAlgError) as error:
            raise DataError(
                f"statsmodels could not fit the {'VAR' if v > 1 else 'AR'} model: {error}"
            ) from None
    return LinearAR(
        intercept=np.asarray(results.intercept, dtype=np.float64),
        coefs=np.asarray(results.coefs, dtype=np.float64).reshape(results.k_ar, v, v),
        method="VAR",
        sigma=np.asarray(results.sigma_u, np.float64),
    )


def var_forecast(model: LinearAR, values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Iterated forecasts of every variable from each origin's history: (N, V), (B,) -> (B, H, V).

    Uses rows ``o - p .. o - 1`` for origin o, as statsmodels' ``VARResults.forecast`` would.
    """
    origins = _origins(origins, horizon)
    p = model.lag_order
    if origins.size and origins.min() < p:
        raise DataError(
            f"a lag-{p} model needs {p} rows before each origin; the first origin is {int(origins.min())}"
        )
    y = np.asarray(values, dtype=np.float64)
    history = [y[origins - i] for i in range(1, p + 1)]  # newest first: y_{o-1}, ..., y_{o-p}, each (B, V)
    steps = []
    for _ in range(horizon):
        nxt = np.broadcast_to(model.intercept, (len(origins), y.shape[1])).copy()
        for i in range(p):
            nxt += history[i] @ model.coefs[i].T
        steps.append(nxt)
        history = [nxt, *history[:-1]] if p else history
    return np.stack(steps, axis=1)


def var_half_widths(model: LinearAR, horizon: int, levels: tuple[float, ...]) -> dict[float, np.ndarray]:
    """{level: (H, V) half-widths} of the model's Gaussian intervals, ``z_{(1+level)/2} sqrt(MSE_h)``
    (statsmodels' ``norm_signif_level``: scipy's normal quantile)."""
    from scipy.stats import norm

    sd = np.sqrt(np.diagonal(model.forecast_mse(horizon), axis1=1, axis2=2))  # (H, V)
    return {level: norm.ppf(1 - (1 - level) / 2) * sd for level in levels}


@dataclasses.dataclass(frozen=True, eq=False)
class BaselineResult:
    """One baseline's (B, H, T) forecasts in original units and their `Evaluation`; both None when
    it was skipped, `note` then says why (otherwise it describes the fit, e.g. the lag order).
    `intervals`: {level: (lower, upper) (B, H, T)} where the baseline has its own (the VAR)."""

    name: str
    forecasts: np.ndarray | None
    evaluation: Evaluation | None
    note: str = ""
    intervals: dict[float, tuple[np.ndarray, np.ndarray]] | None = None


def evaluate_baselines(
    data: ForecastData,
    windows: Windows | None = None,
    season: int | None = None,
    maxlags: int | None = None,
    levels: tuple[float, ...] = (),
) -> dict[str, BaselineResult]:
    """Every baseline on the rolling-origin `windows` (default ``data.test``), scored like the model.

    Args:
      data: the prepared table.
      windows: the windows to forecast (their origins); ``data.test`` by default.
      season: the seasonal naive forecast's season; default the table's inferred season (skipped
        without one).
      maxlags: the VAR's largest lag order; default `default_maxlags` of the training period.
      levels: the VAR's prediction intervals at these levels (statsmodels'), in its result.

    Returns:
      ``{"naive", "seasonal_naive", "mean", "var"}`` -> `BaselineResult`. MASE uses the one-step
      naive scale of the training period.
    """
    windows = data.test if windows is None else windows
    table, horizon = data.table, data.horizon
    origins = windows.origins
    targets = table.target_values
    scale = naive_scale(data.train_targets, names=table.targets)
    results: dict[str, BaselineResult] = {}

    def add(name: str, forecasts: np.ndarray | None, note: str = "", intervals=None) -> None:
        evaluation = None if forecasts is None else evaluate(forecasts, windows.actual, scale, table.targets)
        results[name] = BaselineResult(name, forecasts, evaluation, note, intervals)

    add("naive", naive_forecast(targets, origins, horizon))
    season = table.season if season is None else season
    if season is None:
        add("seasonal_naive", None, "skipped: no season given and none inferred from the time labels")
    elif len(origins) and origins.min() < season:
        add(
            "seasonal_naive",
            None,
            f"skipped: season {season} is longer than the history before the first origin",
        )
    else:
        add("seasonal_naive", seasonal_naive_forecast(targets, origins, horizon, season), f"season {season}")
    add("mean", mean_forecast(data.train_targets, len(origins), horizon))
    try:
        model = fit_var(table.values[data.periods.train], maxlags)
    except DataError as error:
        add("var", None, f"skipped: {error}")
    else:
        forecasts = var_forecast(model, table.values, origins, horizon)[..., table.target_indices]
        intervals = None
        if levels:
            half = var_half_widths(model, horizon, levels)
            intervals = {
                level: (forecasts - w[:, table.target_indices], forecasts + w[:, table.target_indices])
                for level, w in half.items()
            }
        add(
            "var",
            forecasts,
            f"{model.method}({model.lag_order}) by AIC on {data.periods.train_end} training rows",
            intervals,
        )
    return results
