"""The cuDNN path: `jax_lstm.functional.lstm(..., implementation="cudnn")` on an NVIDIA GPU.

cuDNN runs a whole stack of LSTM layers as one fused kernel (``cudnnRNNForward``), as torch's
`nn.LSTM` does on CUDA. JAX reaches it through `jax.experimental.rnn.lstm`, which takes all weights
as one flat vector in cuDNN's canonical layout: for every pseudo-layer ``p = layer * D + direction``
in order, ``W_ih`` (4H, in) then ``W_hh`` (4H, H); after all the matrices, for every pseudo-layer
``b_ih`` (4H,) then ``b_hh`` (4H,). Gates are stacked i, f, g, o, as torch stores them, and cuDNN
adds both biases, as torch does. So torch's named arrays map onto the flat vector by flattening and
concatenating in that order (`pack_weights`); JAX differentiates the concatenation, so gradients
flow back to the named arrays unchanged. With ``bias=False`` zeros take the biases' place.

What cuDNN's LSTM (as `jax.experimental.rnn` exposes it) does not do, and what is refused here with
the alternative named: projections (``proj_size > 0``), any dtype but float32, and running on
anything but a CUDA GPU. Inter-layer dropout is not cuDNN's: its random mask cannot be reproduced,
so with dropout active the stack runs one layer per call and jax_lstm's own dropout goes between
them (the same masks as the other implementations draw from the same key).

TF32: `jax.experimental.rnn` lets cuDNN use TF32 tensor cores for float32 unless the matmul
precision says "highest" (``jax.default_matmul_precision("highest")`` or the ``jax_default_matmul_precision``
flag), the same rule as every other JAX matmul on the GPU. The parity suite and ``jax-lstm parity``
turn TF32 off on both sides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from jax_lstm.rnn.masks import valid_steps
from jax_lstm.rnn.spec import LSTMSpec, layer_weights

__all__ = [
    "available",
    "check_projection",
    "pack_weights",
    "reference_kernel",
    "resolve_kernel",
    "run_layers",
]

Array = jax.Array

# The signature of `jax.experimental.rnn.lstm`: (x (B, T, I), h_0 (L*D, B, H), c_0, weights (N,),
# seq_lengths (B,) int32, *, input_size, hidden_size, num_layers, dropout, bidirectional,
# precision) -> (y (B, T, D*H), h_n, c_n). The parity tests swap in a CPU emulation of it.
Kernel = Callable[..., tuple[Array, Array, Array]]


def _cuda_kernels_linked() -> bool:
    try:
        from jaxlib import gpu_rnn
    except ImportError:  # a jaxlib built without GPU support
        return False
    return getattr(gpu_rnn, "_cuda_rnn", None) is not None


def available() -> bool:
    """Whether `implementation="cudnn"` can run here: JAX's default backend is a CUDA GPU with the
    cuDNN RNN kernels that `jax.experimental.rnn` needs."""
    return jax.default_backend() == "gpu" and _cuda_kernels_linked()


def check_projection(proj_size: int) -> None:
    """Refuses projections, which `jax.experimental.rnn` does not expose."""
    if proj_size > 0:
        raise ValueError(
            f"implementation='cudnn' does not support proj_size > 0 (got proj_size={proj_size}): "
            "jax.experimental.rnn exposes no cuDNN projection; use implementation='fused'"
        )


def resolve_kernel(spec: LSTMSpec, dtype: jnp.dtype) -> Kernel:
    """The cuDNN LSTM for a stack of shapes `spec` in `dtype`, after refusing, before any work,
    what it cannot compute (naming the alternative)."""
    check_projection(spec.proj_size)
    return cuda_kernel(jnp.dtype(dtype))


def cuda_kernel(dtype: jnp.dtype) -> Kernel:
    # The one place that reaches the GPU kernel; the CPU tests put `reference_kernel` here.
    if not available():
        missing = "" if _cuda_kernels_linked() else ", and no CUDA RNN kernels in jaxlib"
        raise RuntimeError(
            "implementation='cudnn' needs a CUDA GPU as JAX's default backend (found "
            f"{jax.default_backend()!r}{missing}); "
            "install jax[cuda] on a GPU machine, or use implementation='fused', which runs everywhere"
        )
    if dtype != jnp.float32:
        raise TypeError(
            f"implementation='cudnn' runs float32 only (got {dtype}): jax.experimental.rnn builds "
            "float32 cuDNN descriptors; use implementation='fused' for other dtypes"
        )
    from jax.experimental import rnn

    return rnn.lstm


def reference_kernel(
    x: Array,
    h_0: Array,
    c_0: Array,
    weights: Array,
    seq_lengths: Array,
    *,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    dropout: float,
    bidirectional: bool,
    precision: object = None,
) -> tuple[Array, Array, Array]:
    """What `jax.experimental.rnn.lstm` computes, on any backend: the flat weights unpacked with
    JAX's own `unpack_lstm_weights` and run through its `lstm_ref`. Same signature as the cuDNN
    kernel, so the parity tests check the packing, the layout and the wrapping around the kernel on
    CPU, in both dtypes; the kernel itself is checked on a GPU.
    """
    from jax.experimental import rnn

    del precision  # lstm_ref runs at the arrays' own precision
    # JAX's own reference broadcasts its biases implicitly; allowed here whatever the caller's
    # rank-promotion setting (the parity suite raises on it in our code).
    with jax.numpy_rank_promotion("allow"):
        unpacked = rnn.unpack_lstm_weights(weights, input_size, hidden_size, num_layers, bidirectional)
        return rnn.lstm_ref(
            x, h_0, c_0, *unpacked, seq_lengths, input_size, hidden_size, num_layers, dropout, bidirectional
        )


def pack_weights(params: Mapping[str, Array], spec: LSTMSpec, layers: range) -> Array:
    """The flat cuDNN weight vector of `layers` of the torch-named `params` (shapes per `spec`).

    Returns:
      (N,) with N = `jax.experimental.rnn.get_num_params_in_lstm` of that sub-stack.
    """
    matrices, biases = [], []
    for layer in layers:
        for direction in range(spec.num_directions):
            w = layer_weights(params, layer, direction)
            matrices += [w.w_ih.reshape(-1), w.w_hh.reshape(-1)]
            if w.b_ih is None:  # bias=False: cuDNN's layout always has both biases
                zeros = jnp.zeros((4 * spec.hidden_size,), w.w_ih.dtype)
                biases += [zeros, zeros]
            else:
                biases += [w.b_ih, w.b_hh]
    return jnp.concatenate(matrices + biases)


def run_layers(
    params: Mapping[str, Array],
    spec: LSTMSpec,
    layers: range,
    x: Array,
    h0: Array,
    c0: Array,
    lengths: Array | None,
    kernel: Kernel,
) -> tuple[Array, Array, Array]:
    """Runs `layers` (consecutive) of the stack as one cuDNN call.

    Args:
      params: torch-named arrays of the whole stack.
      spec: the stack's shapes (checked by the caller: `resolve_kernel`).
      layers: which layers, e.g. ``range(spec.num_layers)`` for all of them.
      x: (T, B, I_k) time-major input of the first layer in `layers`.
      h0, c0: (len(layers) * D, B, H) initial states of those layers.
      lengths: optional (B,) valid lengths (PackedSequence semantics, as cuDNN's padded layout has).
      kernel: the cuDNN LSTM, from `resolve_kernel` (or `reference_kernel`).

    Returns:
      (outputs (T, B, D*H), h_n (len(layers) * D, B, H), c_n (same)).
    """
    num_steps, batch, input_size = x.shape
    if lengths is None:
        seq_lengths = jnp.full((batch,), num_steps, jnp.int32)
    else:
        seq_lengths = lengths.astype(jnp.int32)
    y, h_n, c_n = kernel(
        jnp.swapaxes(x, 0, 1),  # cuDNN's sequences here are batch-major
        h0,
        c0,
        pack_weights(params, spec, layers),
        seq_lengths,
        input_size=input_size,
        hidden_size=spec.hidden_size,
        num_layers=len(layers),
        dropout=0.0,
        bidirectional=spec.bidirectional,
        precision=None,  # TF32 follows jax's matmul precision (module docstring)
    )
    y = jnp.swapaxes(y, 0, 1)  # (T, B, D*H)
    if lengths is not None:
        # torch's padded outputs are exactly 0; cuDNN's padding fill is not part of its contract.
        y = jnp.where(valid_steps(seq_lengths, num_steps)[:, :, None], y, 0)
    return y, h_n, c_n
