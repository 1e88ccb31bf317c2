"""``jax-lstm parity``: every parity case on this machine, as a table of worst differences."""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Sequence
from typing import TextIO

import jax
import torch

import jax_lstm
from jax_lstm.data import Dims
from jax_lstm.models import registry
from jax_lstm.rnn.layer import CELL_MODES, DEFAULT_CELL
from jax_lstm.testing import TOLERANCES, Difference, compare, kind_of
from jax_lstm.training import TrainConfig
from torch_ref.cases import CellCase, ModelCase
from torch_ref.parity import PARITY_TABLE

__all__ = ["run_parity_report"]


def _environment(torch_device: str) -> str:
    jax_device = jax.devices()[0]
    torch_name = torch_device
    if torch_device.startswith("cuda"):
        torch_name = f"{torch_device} ({torch.cuda.get_device_name(torch_device)})"
    return (
        f"jax-lstm {jax_lstm.__version__} | Python {platform.python_version()} | "
        f"jax {jax.__version__} on {jax_device.platform} ({jax_device.device_kind}) | "
        f"torch {torch.__version__} on {torch_name} | {platform.machine()} {platform.system()}"
    )


def _not_applicable(implementation: str, dtype: str, case: object) -> str | None:
    """Why `implementation` cannot run this case, or None."""
    if implementation != "cudnn":
        return None
    if isinstance(case, CellCase):
        return "cuDNN runs whole stacks, not single steps"
    if getattr(case, "mode", "LSTM") != "LSTM" or CELL_MODES[getattr(case, "cell", DEFAULT_CELL)] != "LSTM":
        return "cuDNN path runs the LSTM only"
    if dtype != "float32":
        return "cuDNN path runs float32 only"
    if getattr(case, "proj_size", 0):
        return "cuDNN path has no projections"
    if isinstance(case, ModelCase):
        # A model whose recurrence has no cuDNN path (the 2-D MDLSTM) refuses it when built, which
        # costs no compilation.
        config = TrainConfig(model=case.model, dtype=dtype, implementation=implementation, **case.settings())
        dims = Dims(case.input_size, case.num_outputs, case.output_shape, case.seq_len)
        try:
            registry.build(registry.get(case.model), config, dims)
        except ValueError as err:
            return str(err).splitlines()[0]
    return None


def _worst_per_kind(differences: Sequence[Difference]) -> dict[str, Difference]:
    """The leaf to show per kind ("forward", "grad"): a failing one first, else the closest to its bound."""
    worst: dict[str, Difference] = {}
    for d in differences:
        kind = kind_of(d.name)
        current = worst.get(kind)
        if current is None or (not d.ok, d.worst) > (not current.ok, current.worst):
            worst[kind] = d
    return worst


def request_problem(name_filter: str | None, seed: int, torch_device: str) -> str | None:
    """What is wrong with a parity request (a filter no case matches, a seed numpy refuses, a device
    torch does not have), as one message naming the fix; None when it can run."""
    if name_filter and not any(name_filter in c.name for _, c, _ in PARITY_TABLE):
        return f"no parity case name contains {name_filter!r}; the cases are listed by `jax-lstm parity`"
    if not 0 <= seed < 2**64:
        return f"--seed must be in [0, 2**64) (numpy's and torch's seeds), got {seed}"
    try:
        torch.zeros(1, device=torch_device)
    except (RuntimeError, AssertionError, ValueError) as err:
        text = str(err).strip() or type(err).__name__
        first = text.splitlines()[0].split(". ")[0][:120]
        return f"--device {torch_device!r} is not a torch device this machine has ({first}); use cpu or cuda"
    return None


def run_parity_report(
    dtypes: Sequence[str] = ("float32", "float64"),
    torch_device: str = "cpu",
    name_filter: str | None = None,
    seed: int = 0,
    verbose: bool = False,
    out: TextIO | None = None,
    implementation: str = "fused",
) -> int:
    """Runs every parity case (`torch_ref.parity.PARITY_TABLE`: the LSTM, GRU and RNN layers, the
    three cells, every registered model) and prints one row per case, dtype and kind.

    `implementation` picks the JAX recurrence. With "cudnn" the cases cuDNN cannot run (projections,
    float64) are listed as not applicable instead of compared.

    Returns the process exit status: 0 when every leaf is within its tolerance, 1 otherwise.
    """
    out = out or sys.stdout
    problem = request_problem(name_filter, seed, torch_device)
    if problem:
        raise ValueError(problem)
    if torch_device.startswith("cuda"):
        # TF32 (on by default for cuDNN) rounds matmul inputs to a 10-bit mantissa, so torch's
        # float32 results would differ from true float32 by about 1e-3, beyond the float32
        # tolerances; JAX's side is set to "highest" around each run below.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    print(f"{_environment(torch_device)} | implementation {implementation}", file=out)
    cases = [(run, c) for _, c, run in PARITY_TABLE if not name_filter or name_filter in c.name]
    header = (
        f"{'case':<36} {'dtype':<8} {'kind':<8} {'worst leaf':<26} {'max |diff|':>10}  "
        f"{'of tol':>7}  tolerance"
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    failures = 0
    start = time.perf_counter()
    not_applicable = 0
    for dtype in dtypes:
        for run, case in cases:
            reason = _not_applicable(implementation, dtype, case)
            if reason:
                not_applicable += 1
                print(f"{case.name:<36} {dtype:<8} {'-':<8} n/a: {reason}", file=out, flush=True)
                continue
            # x64 only for the float64 runs, and only for their duration.
            with jax.enable_x64(dtype == "float64"), jax.default_matmul_precision("highest"):
                pairs = run(case, dtype, seed=seed, device=torch_device, implementation=implementation)
            differences = [
                compare(name, a, b, TOLERANCES[dtype][kind_of(name)]) for name, (a, b) in pairs.items()
            ]
            failures += sum(not d.ok for d in differences)
            shown = differences if verbose else _worst_per_kind(differences).values()
            for d in shown:
                kind = kind_of(d.name)
                mark = "ok" if d.ok else "FAIL"
                detail = d.problem or f"{d.max_abs:>10.2e}  {d.worst:>7.3f}  {d.tolerance}"
                print(
                    f"{case.name:<36} {dtype:<8} {kind:<8} {d.name:<26} {detail}  {mark}",
                    file=out,
                    flush=True,
                )
    elapsed = time.perf_counter() - start
    total = len(cases) * len(dtypes) - not_applicable
    if total == 0:
        print(f"\nnothing compared: no selected case applies to implementation {implementation}", file=out)
        return 2
    if failures:
        print(
            f"\nFAILED: {failures} leaves outside their tolerance ({total} runs, {elapsed:.0f} s)",
            file=out,
        )
        return 1
    print(
        f"\nall {total} runs within tolerance ({elapsed:.0f} s); 'of tol' is the worst "
        "elementwise |diff| / (atol + rtol*|ref|)",
        file=out,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_parity_report())
