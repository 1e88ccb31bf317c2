"""The recurrence as pure functions over torch-named arrays: the public functional API.

`lstm(params, x)` takes the flat mapping of arrays that `torch.nn.LSTM.state_dict()` holds and
returns what `nn.LSTM.forward` returns, with the same shapes; `lstm_layer` runs one layer in one
direction; `lstm_cell` one step. `gru(params, x, h0)` and `rnn(params, x, h0, nonlinearity)`
do the same for `nn.GRU` and `nn.RNN`, returning ``(output, h_n)``; `gru_cell` and `rnn_cell` are
their steps. The code lives in `jax_lstm.rnn` (`stack`, `cells`, `checks`,
`fused`, `cudnn`); this module gathers what users call.
"""

from jax_lstm.rnn.cells import gru_cell, lstm_cell, rnn_cell
from jax_lstm.rnn.checks import as_array, check_input, check_lengths, check_rank_and_dtype
from jax_lstm.rnn.mdlstm import mdlstm2d, mdlstm2d_reference
from jax_lstm.rnn.spec import LayerWeights, layer_weights
from jax_lstm.rnn.stack import IMPLEMENTATIONS, LAYER_IMPLEMENTATIONS, dropout, gru, lstm, lstm_layer, rnn

__all__ = [
    "IMPLEMENTATIONS",
    "LAYER_IMPLEMENTATIONS",
    "LayerWeights",
    "as_array",
    "check_input",
    "check_lengths",
    "check_rank_and_dtype",
    "dropout",
    "gru",
    "gru_cell",
    "layer_weights",
    "lstm",
    "lstm_cell",
    "lstm_layer",
    "mdlstm2d",
    "mdlstm2d_reference",
    "rnn",
    "rnn_cell",
]
