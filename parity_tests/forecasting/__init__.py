"""Multivariate forecasting: tables, windows, metrics, baselines, the forecaster and its torch twin."""
