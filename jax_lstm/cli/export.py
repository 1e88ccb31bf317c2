"""``jax-lstm export CHECKPOINT_DIR OUT.pt``: a checkpoint's weights as the torch twin's state dict."""

from __future__ import annotations

import argparse

from jax_lstm.cli.common import EXIT_WRITE_FAILED, OutputPathError, check_output_file, fail

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError:
        return fail("export needs PyTorch: pip install 'jax-lstm[torch]'")
    import jax_lstm
    from jax_lstm.models import registry
    from jax_lstm.training import checkpoint, load_checkpoint

    try:
        check_output_file(args.output, "export target", (".pt", ".pth"))
        loaded = load_checkpoint(args.checkpoint_dir, log=print)
    except (FileNotFoundError, ValueError, OutputPathError) as err:
        return fail(str(err))
    entry = registry.get(loaded.config.model)
    state_dict = jax_lstm.to_torch(loaded.variables(), model=entry.name)
    try:
        torch.save(state_dict, args.output)
    except OSError as err:
        return fail(f"could not write {args.output}: {err.strerror or err}", EXIT_WRITE_FAILED)
    dims = checkpoint.dims(loaded.data)
    arguments = ", ".join(str(a) for a in entry.torch_args(dims, entry.arch(loaded.config)))
    print(
        f"wrote {args.output}: a {entry.torch_class_name} state dict after {loaded.epoch} epochs; load it "
        f"with torch_ref.{entry.torch_class_name}({arguments}).load_state_dict(torch.load(...))"
    )
    return 0
