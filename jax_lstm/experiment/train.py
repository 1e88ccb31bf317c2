"""A classification run end to end (``jax-lstm train``): the request checked, the data read, the
config resolved once, one model or K trained (`jax_lstm.training.fit_models`), the torch twin beside
it when asked, and the outputs written (metrics JSON, plots; process 0 only)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from jax_lstm import reporting
from jax_lstm.data import DataError
from jax_lstm.experiment import outputs, torch_side
from jax_lstm.experiment.requests import TrainRequest
from jax_lstm.models import registry
from jax_lstm.rnn.layer import describe_cell
from jax_lstm.training import (
    FitResult,
    Partial,
    TrainConfig,
    fit_models,
    initial_variables,
    make_model,
)

__all__ = ["header", "run_training"]


def header(config: TrainConfig, env: dict[str, Any], models: str = "") -> str:
    """The run's header line: the model and its recipe as resolved, and where it runs. The sizes
    shown are the options the model takes (a model without layers shows none)."""
    sizes = {
        "hidden_size": f"hidden {config.hidden_size}",
        "num_layers": f"layers {config.num_layers}",
        "dropout": f"dropout {config.dropout:g}",
        "patch": f"patch {config.patch}",
    }
    options = registry.get(config.model).options
    shape = ", ".join(text for option, text in sizes.items() if option in options)
    return (
        f"{models}model {config.model}{describe_cell(config.cell)}: {shape} | "
        f"{config.epochs} epochs, batch {config.batch_size}, lr {config.lr:g}, clip {config.clip}, "
        f"{_schedule(config)}, select {config.select}, seed {config.seed}, {config.dtype}"
        f"{f', test split every {config.eval_every} epochs' if config.eval_every > 1 else ''} | "
        f"jax {env['jax']} on {env['jax_backend']}"
    )


def _schedule(config: TrainConfig) -> str:
    if config.schedule == "cosine":
        warmup = f" after {config.warmup_epochs} warm-up epochs" if config.warmup_epochs else ""
        return f"cosine to {config.eta_min:g}{warmup}"
    return f"plateau patience {config.patience} factor {config.factor:.3g} min lr {config.min_lr:g}"


def run_training(request: TrainRequest) -> int:
    """Runs `request`; returns the exit status (0, or 1 when the torch twin's run disagrees).

    Expected failures raise `outputs.RunError` with their message and status (bad input 2, divergence 3, a
    write that failed 4, an interrupt 130), after writing what the run had measured to the metrics
    JSON; see `jax_lstm.experiment.outputs.exit_status`.
    """
    try:
        dataset, config = request.prepare()
        if request.compare_torch:
            torch_side.require_torch("--compare-torch")
    except (DataError, ValueError, FileNotFoundError, torch_side.TorchMissingError) as err:
        raise outputs.RunError(str(err)) from err
    seeds = request.seed_list(config.ensemble)
    env = reporting.environment()
    print(dataset.describe())
    for note in dataset.notes:
        print(note)
    models = (
        "" if seeds is None else f"{len(seeds)} runs (seeds {', '.join(map(str, seeds))}) trained at once: "
    )
    if config.ensemble > 1:
        models += f"ensemble of {config.ensemble} (seeds s .. s+{config.ensemble - 1}) of "
    print(header(config, env, models), flush=True)
    members = [dataclasses.replace(config, seed=config.seed + e) for e in range(config.ensemble)]
    variables = None
    if request.compare_torch:
        if config.dropout > 0:
            print("note: with dropout the two sides draw different masks; losses will differ")
        variables = [initial_variables(member, dataset.dims) for member in members]
    progress = outputs.progress_factory()
    start = time.perf_counter()

    def stopped(partial: Partial, why: str) -> str:
        """Writes the epochs measured before the run stopped; a note for the error message."""
        if not request.metrics_json:
            return ""
        done = [
            FitResult(None, None, history, dataclasses.replace(config, seed=seed), 0)
            for seed, history in zip(_member_seeds(seeds, config), partial.histories, strict=True)
        ]
        payload = _record(request, dataset, config, env, done, start, why)
        try:
            outputs.write_metrics(request.metrics_json, payload)
        except OSError as err:
            return f" The metrics could not be written either: {err.strerror or err}."
        return f" The {len(partial.history)} completed epochs are in {request.metrics_json}."

    with outputs.training_failures(request.checkpoint_dir, stopped):
        results = fit_models(
            config,
            dataset,
            seeds,
            variables=variables,
            checkpoint_dir=request.checkpoint_dir,
            resume=request.resume,
            overwrite=request.overwrite,
            log=outputs.log_function(progress),
            progress=progress,
        )
    seconds = time.perf_counter() - start
    _print_results(results, seeds, config, seconds)
    payload = _record(request, dataset, config, env, results, start)
    status = 0
    result = results[0]
    comparisons = []
    if request.compare_torch:
        log = None if request.quiet else outputs.log_function(None, "[torch] ")
        # Each member in lockstep with its twin: the same initial weights and the same batches.
        for member, weights, trained in zip(members, variables, result.members or [result], strict=True):
            comparison = torch_side.compare_with_twin(member, dataset, weights, trained.history, log)
            which = f" (member of seed {member.seed})" if config.ensemble > 1 else ""
            accuracy = comparison.history[-1].test_accuracy
            print(f"PyTorch{which}: test accuracy {100 * accuracy:.2f}% ({comparison.seconds:.1f} s)")
            print(reporting.comparison_table(trained.history, comparison.history))
            print(comparison.verdict(config.dtype))
            comparisons.append(comparison)
        torch_runs = [
            {
                "seed": member.seed,
                "epochs": outputs.epoch_records(c.history),
                "test_accuracy": c.history[-1].test_accuracy,
                "seconds": c.seconds,
            }
            for member, c in zip(members, comparisons, strict=True)
        ]
        payload["torch"] = torch_runs[0] if config.ensemble == 1 else {"members": torch_runs}
        records = [c.record() for c in comparisons]
        payload["comparison"] = records[0] if config.ensemble == 1 else {"members": records}
        status = 0 if all(c.agree for c in comparisons) else outputs.EXIT_DISAGREE
    plots = []
    if request.plot:
        title = f"{dataset.name}, {config.model}, seed {config.seed}"
        torch_history = comparisons[0].history if comparisons and config.ensemble == 1 else None
        plots.append(
            ("plot", lambda: reporting.plot_history(request.plot, result.history, torch_history, title))
        )
    if request.plot_attention:
        # An ensemble's first member: each member attends on its own.
        shown = result.members[0] if result.members else result
        plots.append(
            ("attention plot", lambda: _plot_attention(request.plot_attention, dataset, shown.config, shown))
        )
    outputs.write_outputs(request.metrics_json, payload, plots)
    return status


def _member_seeds(seeds: list[int] | None, config: TrainConfig) -> list[int]:
    """Every trained model's seed, in the order of the stacked state."""
    return [s + e for s in (seeds or [config.seed]) for e in range(config.ensemble)]


def _record(request, dataset, config, env, results, start: float, stopped: str | None = None):
    stacked = request.seeds > 1 or (stopped is not None and config.ensemble > 1)
    seconds = time.perf_counter() - start
    return outputs.run_record(
        "classification", dataset.describe(), config, seconds, env, results, stacked, stopped
    )


def _print_results(results, seeds, config: TrainConfig, seconds: float) -> None:
    how = {"validation": "chosen on the validation split", "train-loss": "chosen by the lowest training loss"}

    def chosen(r) -> str:
        if r.final is not None:
            return f" (members at epochs {[m.selected_epoch for m in r.members]}, {how[config.select]})"
        return "" if r.selected_epoch is None else f" at epoch {r.selected_epoch} ({how[config.select]})"

    what = "" if config.ensemble == 1 else f"ensemble of {config.ensemble}, "
    for r in results:
        for m in r.members or []:
            print(f"  member of seed {m.config.seed}: test accuracy {100 * m.test_accuracy:.2f}%{chosen(m)}")
        if seeds is not None:
            print(f"seed {r.config.seed}: {what}test accuracy {100 * r.test_accuracy:.2f}%{chosen(r)}")
    if seeds is None:
        (r,) = results
        print(
            f"JAX: {what}test accuracy {100 * r.test_accuracy:.2f}%{chosen(r)} after {config.epochs} epochs "
            f"({seconds:.1f} s including compilation)"
        )
        return
    accuracies = [r.test_accuracy for r in results]
    print(
        f"JAX: {len(seeds)} runs, {what}test accuracy mean {100 * np.mean(accuracies):.2f}% "
        f"(range {100 * min(accuracies):.2f}-{100 * max(accuracies):.2f}) after {config.epochs} epochs "
        f"({seconds:.1f} s for all, including compilation)"
    )


def _plot_attention(path: str, dataset, config: TrainConfig, result, count: int = 4):
    """Draws the attention weights of the first test series of up to `count` classes."""
    import jax.numpy as jnp

    rows = [int(np.flatnonzero(dataset.y_test == c)[0]) for c in np.unique(dataset.y_test)[:count]]
    x = dataset.x_test[rows].astype(config.dtype)
    lengths = None if dataset.lengths_test is None else dataset.lengths_test[rows]
    model = make_model(config, dataset.dims)
    logits, weights = model.apply(
        result.variables(),
        jnp.asarray(x),
        lengths=None if lengths is None else jnp.asarray(lengths),
        return_attention=True,
    )
    predicted = np.asarray(logits).argmax(-1)
    titles = [
        f"series {i}: class {dataset.classes[dataset.y_test[i]]}, predicted {dataset.classes[p]}"
        for i, p in zip(rows, predicted, strict=True)
    ]
    title = f"{dataset.name}, {config.model}: attention over time (test series)"
    return reporting.plot_attention(path, x, np.asarray(weights), lengths, titles, title)
