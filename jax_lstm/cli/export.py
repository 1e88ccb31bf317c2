"""``jax-lstm export CHECKPOINT_DIR OUT.pt``: a checkpoint's weights as the torch twin's state dict."""

from __future__ import annotations

from jax_lstm.experiment import RunError, check_output_file
from jax_lstm.experiment.outputs import EXIT_WRITE_FAILED

__all__ = ["run"]


def run(checkpoint_dir: str, output: str) -> int:
    """Writes the state dict and prints how to load it; raises RunError for what cannot be done."""
    try:
        import torch
    except ImportError:
        raise RunError("export needs PyTorch: pip install 'jax-lstm[torch]'") from None
    import jax_lstm
    from jax_lstm.models import registry
    from jax_lstm.training import load_checkpoint

    try:
        check_output_file(output, "export target", (".pt", ".pth"))
    except ValueError as err:
        raise RunError(str(err)) from err
    loaded = load_checkpoint(checkpoint_dir, log=print)
    entry = registry.get(loaded.config.model)
    state_dict = jax_lstm.to_torch(loaded.variables(), model=entry.name)
    try:
        torch.save(state_dict, output)
    except OSError as err:
        raise RunError(f"could not write {output}: {err.strerror or err}", EXIT_WRITE_FAILED) from err
    arguments = ", ".join(str(a) for a in entry.torch_args(loaded.dims, entry.arch(loaded.config)))
    print(
        f"wrote {output}: a {entry.torch_class_name} state dict after {loaded.epoch} epochs; load it "
        f"with torch_ref.{entry.torch_class_name}({arguments}).load_state_dict(torch.load(...))"
    )
    return 0
