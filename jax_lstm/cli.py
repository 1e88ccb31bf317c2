"""The ``jax-lstm`` command. Thin: it parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parity(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError:
        print(
            "jax-lstm parity compares against PyTorch, which is not installed: pip install 'jax-lstm[torch]'",
            file=sys.stderr,
        )
        return 2
    from torch_ref.report import run_parity_report

    device = args.device
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return run_parity_report(
        dtypes=args.dtype,
        torch_device=device,
        name_filter=args.cases,
        seed=args.seed,
        verbose=args.verbose,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jax-lstm",
        description="A JAX LSTM with exact PyTorch parity: check parity, train the article's models.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    parity = sub.add_parser(
        "parity",
        help="compare outputs, states and gradients with torch.nn.LSTM on this machine",
        description=(
            "Builds the article's models and a spread of nn.LSTM configurations, loads identical "
            "weights into torch and JAX, and prints the largest differences of outputs, states and "
            "gradients against the tolerances. Exits 1 if any exceeds its tolerance."
        ),
    )
    parity.add_argument(
        "--dtype",
        nargs="+",
        choices=["float32", "float64"],
        default=["float32", "float64"],
        help="precisions to check (default: both)",
    )
    parity.add_argument(
        "--device",
        default=None,
        help="torch device, e.g. cpu or cuda (default: cuda when available). JAX uses its default device.",
    )
    parity.add_argument(
        "--cases",
        default=None,
        help="only cases whose name contains this text (e.g. bidirectional)",
    )
    parity.add_argument(
        "--verbose",
        action="store_true",
        help="one row per compared leaf instead of the worst per kind",
    )
    parity.add_argument("--seed", type=int, default=0, help="seed for weights and inputs (default 0)")
    parity.set_defaults(func=_parity)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
