"""``jax-lstm export CHECKPOINT_DIR OUT.pt``: a checkpoint's weights as the torch twin's state dict;
one per model (``OUT.seed<S>.pt``) for the models of an ensemble or of ``--seeds``.

``jax-lstm export CHECKPOINT_DIR OUT.jaxexport``: the classifier's inference function written with
`jax.export` (`jax_lstm.predictor.Predictor.export`), run by `jax_lstm.load_exported`."""

from __future__ import annotations

from pathlib import Path

import jax

from jax_lstm.experiment import RunError, check_output_file
from jax_lstm.experiment.outputs import EXIT_WRITE_FAILED

__all__ = ["run"]

_FORMATS = "a torch state dict or a jax.export artefact"


def run(checkpoint_dir: str, output: str, batch_size: int | None = None, seed: int | None = None) -> int:
    """Writes the state dict (or, for a ``.jaxexport`` name, the jax.export artefact) and prints how
    to load it; raises RunError for what cannot be done."""
    if Path(output).suffix.lower() == ".jaxexport":
        return _run_jax_export(checkpoint_dir, output, batch_size, seed)
    if batch_size is not None or seed is not None:
        raise RunError("--batch-size and --seed choose a .jaxexport artefact's program; a .pt holds weights")
    try:
        import torch
    except ImportError:
        raise RunError("export needs PyTorch: pip install 'jax-lstm[torch]'") from None
    import jax_lstm
    from jax_lstm.models import registry
    from jax_lstm.training import load_checkpoint

    try:
        check_output_file(output, "export target", (".pt", ".pth", ".jaxexport"), _FORMATS)
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


def _run_jax_export(checkpoint_dir: str, output: str, batch_size: int | None, seed: int | None) -> int:
    from jax_lstm.data import DataError
    from jax_lstm.experiment.predict import enable_dtype
    from jax_lstm.predictor import MissingPreprocessingError, Predictor
    from jax_lstm.training import CheckpointError

    try:
        check_output_file(output, "export target", (".jaxexport", ".pt", ".pth"), _FORMATS)
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
        enable_dtype(checkpoint_dir)
        _check_classifier(checkpoint_dir)
        predictor = Predictor.load(checkpoint_dir, seed=seed, log=print)
        if not predictor.preprocessing_known:
            raise MissingPreprocessingError(
                f"{predictor.path} was written before checkpoints recorded their preprocessing, which an "
                "export carries inside: load it with jax_lstm.load(..., train_data=TRAIN.ts) and call "
                ".export(path) on it"
            )
    except (CheckpointError, DataError, ValueError) as err:
        raise RunError(str(err)) from err
    try:
        predictor.export(output, batch_size)
    except OSError as err:
        raise RunError(f"could not write {output}: {err.strerror or err}", EXIT_WRITE_FAILED) from err
    batch = "any batch size" if batch_size is None else f"batches of {batch_size} (the last one padded)"
    print(
        f"wrote {output}: {predictor.config.model} after {predictor.epoch} epochs as StableHLO for {batch}, "
        f"with its weights, preprocessing and classes {[str(c) for c in predictor.classes_]}; run it with "
        "jax_lstm.load_exported(path).predict(series) (numpy and jax only)"
    )
    return 0


def _check_classifier(checkpoint_dir: str) -> None:
    """Refuses a forecaster's checkpoint before it is restored: the artefact holds a classifier's
    inference function (probabilities, class names); a forecaster's weights go to a state dict."""
    from jax_lstm.models import registry
    from jax_lstm.training.checkpoint import read_description

    fields, _ = read_description(checkpoint_dir)
    entry = registry.get(fields.get("model", "lstm"))
    if entry.task != "classification":
        raise ValueError(
            f"{checkpoint_dir} holds a {entry.task} model ({entry.name}), and a .jaxexport artefact holds "
            "a classifier: write its weights as a torch state dict (OUT.pt), or forecast with jax-lstm "
            "forecast --from-checkpoint"
        )
