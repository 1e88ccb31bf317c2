"""torch's recurrent layers in JAX: parameter layout (`spec`), input checks, padding masks, the cells,
the stack written once over layers x directions for every cell, the LSTM's fused kernel and cuDNN
path, and the Flax layer modules."""

from jax_lstm.rnn.cells import LSTM_CELL, Cell
from jax_lstm.rnn.layer import LSTM
from jax_lstm.rnn.spec import LSTMSpec, RNNSpec
from jax_lstm.rnn.stack import IMPLEMENTATIONS, lstm, run

__all__ = ["IMPLEMENTATIONS", "LSTM", "LSTM_CELL", "Cell", "LSTMSpec", "RNNSpec", "lstm", "run"]
