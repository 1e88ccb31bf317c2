"""``jax-lstm parity``: every parity case on this machine, one table (computed by `torch_ref`)."""

from __future__ import annotations

import argparse

from jax_lstm.experiment import RunError, torch_side

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    if args.implementation == "cudnn":
        from jax_lstm.rnn import cudnn

        if not cudnn.available():
            raise RunError(
                "--implementation cudnn needs a CUDA GPU as JAX's default backend; "
                "run it on a GPU machine, or check the default implementation (fused) here"
            )
    try:
        device = args.device or ("cuda" if torch_side.cuda_available() else "cpu")
        return torch_side.parity_report(
            dtypes=args.dtype,
            torch_device=device,
            name_filter=args.cases,
            seed=args.seed,
            verbose=args.verbose,
            implementation=args.implementation,
        )
    except (torch_side.TorchMissingError, ValueError) as err:
        # ValueError: torch_ref.report's check of the request (cases, seed, device), before any run.
        raise RunError(str(err)) from err
