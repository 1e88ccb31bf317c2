"""``jax-lstm export CHECKPOINT_DIR OUT.pt``: a checkpoint's weights as the torch twin's state dict;
one per model (``OUT.seed<S>.pt``) for the models of an ensemble or of ``--seeds``."""

from __future__ import annotations

from pathlib import Path

import jax

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
    variables = loaded.variables()
    if loaded.seeds is None:
        targets = [(Path(output), variables)]
    else:
        path = Path(output)
        targets = [
            (
                path.with_name(f"{path.stem}.seed{seed}{path.suffix}"),
                jax.tree.map(lambda a, k=k: a[k], variables),
            )
            for k, seed in enumerate(loaded.seeds)
        ]
    for path, member in targets:
        try:
            torch.save(jax_lstm.to_torch(member, model=entry.name), path)
        except OSError as err:
            raise RunError(f"could not write {path}: {err.strerror or err}", EXIT_WRITE_FAILED) from err
    kwargs = registry.torch_kwargs(entry, loaded.dims, entry.arch(loaded.config))
    arguments = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    load = f"torch_ref.{entry.torch_class_name}({arguments}).load_state_dict(torch.load(...))"
    if loaded.seeds is None:
        what = f"a {entry.torch_class_name} state dict after {loaded.epoch} epochs"
        print(f"wrote {output}: {what}; load it with {load}")
    else:
        names = ", ".join(str(path) for path, _ in targets)
        print(
            f"wrote {names}: {len(targets)} {entry.torch_class_name} state dicts (one per model, seeds "
            f"{loaded.seeds}) after {loaded.epoch} epochs; load each with {load}"
        )
    return 0
