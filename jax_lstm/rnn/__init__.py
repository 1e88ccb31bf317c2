"""torch's recurrent layers in JAX: parameter layout (`spec`), input checks, padding masks, the cells,
the stack written once over layers x directions for every cell, the LSTM's fused kernel and cuDNN
path, and the Flax modules: LSTM, GRU, RNN and their cells."""

from jax_lstm.rnn.cells import CELLS, GRU_CELL, LSTM_CELL, RNN_RELU_CELL, RNN_TANH_CELL, Cell
from jax_lstm.rnn.layer import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from jax_lstm.rnn.mdlstm import MDLSTM2d
from jax_lstm.rnn.spec import LSTMSpec, RNNSpec
from jax_lstm.rnn.stack import IMPLEMENTATIONS, gru, lstm, rnn, run

__all__ = [
    "CELLS",
    "GRU",
    "GRU_CELL",
    "IMPLEMENTATIONS",
    "LSTM",
    "LSTM_CELL",
    "RNN",
    "RNN_RELU_CELL",
    "RNN_TANH_CELL",
    "Cell",
    "GRUCell",
    "LSTMCell",
    "LSTMSpec",
    "MDLSTM2d",
    "RNNCell",
    "RNNSpec",
    "gru",
    "lstm",
    "rnn",
    "run",
]
