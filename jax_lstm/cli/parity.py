"""``jax-lstm parity``: every parity case on this machine, one table (computed by `torch_ref`)."""

from __future__ import annotations

import argparse

from jax_lstm.cli import torch_bridge
from jax_lstm.cli.common import fail

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    if args.implementation == "cudnn":
        from jax_lstm.rnn import cudnn

        if not cudnn.available():
            return fail(
                "--implementation cudnn needs a CUDA GPU as JAX's default backend; "
                "run it on a GPU machine, or check the default implementation (fused) here"
            )
    try:
        device = args.device
        if device is None:
            device = "cuda" if _cuda() else "cpu"
        return torch_bridge.parity_report(
            dtypes=args.dtype,
            torch_device=device,
            name_filter=args.cases,
            seed=args.seed,
            verbose=args.verbose,
            implementation=args.implementation,
        )
    except torch_bridge.TorchMissingError as err:
        return fail(str(err))


def _cuda() -> bool:
    try:
        return torch_bridge.cuda_available()
    except ImportError:
        return False
