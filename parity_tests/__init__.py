"""The parity suite: jax_lstm against the PyTorch reference, and jax_lstm's own invariants."""
