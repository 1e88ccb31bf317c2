"""The recurrence as pure functions over torch-named arrays: the public functional API.

`lstm(params, x)` takes the flat mapping of arrays that `torch.nn.LSTM.state_dict()` holds and
returns what `nn.LSTM.forward` returns, with the same shapes; `lstm_layer` runs one layer in one
direction; `lstm_cell` one step. The code lives in `jax_lstm.rnn` (`stack`, `cells`, `checks`,
`fused`, `cudnn`); this module gathers what users call.
"""

from jax_lstm.rnn.cells import lstm_cell
from jax_lstm.rnn.checks import as_array, check_input, check_lengths, check_rank_and_dtype
from jax_lstm.rnn.spec import LayerWeights, layer_weights
from jax_lstm.rnn.stack import IMPLEMENTATIONS, LAYER_IMPLEMENTATIONS, dropout, lstm, lstm_layer

__all__ = [
    "IMPLEMENTATIONS",
    "LAYER_IMPLEMENTATIONS",
    "LayerWeights",
    "as_array",
    "check_input",
    "check_lengths",
    "check_rank_and_dtype",
    "dropout",
    "layer_weights",
    "lstm",
    "lstm_cell",
    "lstm_layer",
]
