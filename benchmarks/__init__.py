"""Benchmarks: jax_lstm against PyTorch, side by side in one process."""
