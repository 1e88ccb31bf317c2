"""The layout's rules, read off the source: imports point down the package layers (ARCHITECTURE.md),
no import cycles inside jax_lstm, torch_ref reached only through the one bridge and never importing
the CLI, production code never importing the test helpers, torch never imported by `import
jax_lstm`, and no model name switched on outside the registry."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "jax_lstm"
BRIDGE = "jax_lstm.experiment.torch_side"

# The packages of jax_lstm from the bottom up: a module may import from its own package or from a
# lower layer, never from its own layer's other packages or from a higher one. torch_ref sits above
# everything but the CLI (it imports jax_lstm; jax_lstm reaches it only through BRIDGE).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("atomic", "runtime", "testing", "data", "optim", "exported"),
    ("nn",),
    ("rnn",),
    ("functional", "models"),
    ("interop", "training"),
    ("predictor",),
    ("reporting", "estimator", "forecasting"),
    ("experiment",),
    ("cli",),
)
LAYER_OF = {f"jax_lstm.{name}": i for i, names in enumerate(LAYERS) for name in names}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
PACKAGES = {name for name, p in MODULES.items() if p.name == "__init__.py"}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """Every import in the file, module-level or inside functions: (module, names imported from it)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def _reexports(package: str) -> dict[str, str]:
    """name -> the module a package's __init__ imports it from."""
    out = {}
    for module, names in _imports(MODULES[package]):
        for name in names:
            out[name] = module
    return out


def _dependencies(name: str) -> set[str]:
    """The non-package jax_lstm modules `name` imports, looking through packages' re-exports."""
    deps = set()
    for module, names in _imports(MODULES[name]):
        if not module.startswith("jax_lstm"):
            continue
        targets = (
            [module]
            if not names
            else [f"{module}.{n}" if f"{module}.{n}" in MODULES else module for n in names]
        )
        for target, imported in zip(targets, names or [None], strict=True):
            if target in PACKAGES and imported is not None:
                target = _reexports(target).get(imported, target)
            if target in MODULES and target not in PACKAGES:
                deps.add(target)
    deps.discard(name)
    return deps


def test_jax_lstm_has_no_import_cycles():
    graph = {name: _dependencies(name) for name in MODULES if name not in PACKAGES}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep] if dep in path else [node, dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
    # The walk saw the real graph, not an empty one.
    assert "jax_lstm.training.checkpoint" in graph["jax_lstm.training.loop"]
    assert "jax_lstm.models.registry" in graph["jax_lstm.interop"]


def _package(module: str) -> str | None:
    """The jax_lstm package (second component) a module belongs to; None for `jax_lstm` itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "jax_lstm" and len(parts) > 1 else None


def test_every_package_has_a_layer():
    packages = {_package(m) for m in MODULES} - {None}
    assert packages == set(LAYER_OF), sorted(packages ^ set(LAYER_OF))


def test_imports_point_down_the_layers():
    """rnn and nn below models, models below training, training below forecasting, experiment above
    them, the CLI on top; the bridge's lazy import of torch_ref is the one way up."""
    upward = []
    for name, path in MODULES.items():
        source = _package(name)
        if source is None:  # jax_lstm/__init__.py re-exports the public names
            continue
        for module, imported in _imports(path):
            targets = [module] if not imported else [f"{module}.{n}" for n in imported]
            for target in targets:
                dest = _package(target) if target.startswith("jax_lstm.") else None
                if dest is None or dest == source:
                    continue
                if LAYER_OF[dest] >= LAYER_OF[source]:
                    upward.append(f"{name} imports {target} (layer {LAYER_OF[dest]} >= {LAYER_OF[source]})")
    assert not upward, upward
    # The walk saw real imports: these point down.
    assert LAYER_OF["jax_lstm.models"] < LAYER_OF["jax_lstm.training"] < LAYER_OF["jax_lstm.forecasting"]


def test_torch_ref_never_imports_the_cli_and_production_code_never_the_test_helpers():
    offenders = []
    for path in (ROOT / "torch_ref").glob("*.py"):
        for module, _ in _imports(path):
            if module.startswith("jax_lstm.cli"):
                offenders.append(f"torch_ref/{path.name} imports {module}")
    for name, path in MODULES.items():
        if name == "jax_lstm.testing":
            continue
        for module, imported in _imports(path):
            if module == "jax_lstm.testing" or (module == "jax_lstm" and "testing" in imported):
                offenders.append(f"{name} imports jax_lstm.testing")
    assert not offenders, offenders


def test_only_the_cli_bridge_imports_torch_ref_and_torch_is_imported_lazily():
    offenders = []
    for name, path in MODULES.items():
        for module, _ in _imports(path):
            if module.split(".")[0] == "torch_ref" and name != BRIDGE:
                offenders.append(f"{name} imports {module}")
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level: would import torch with jax_lstm
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(n.split(".")[0] == "torch" for n in names):
                    offenders.append(f"{name} imports torch at module level")
    assert not offenders, offenders


def test_import_jax_lstm_and_its_cli_do_not_import_torch():
    code = (
        "import sys, jax_lstm, jax_lstm.cli, jax_lstm.training, jax_lstm.estimator; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torch_ref')))"
    )
    out = subprocess.run(
        [sys.executable, "-u", "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=600
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["lstm", "bn-lstm"])
def test_no_model_name_is_switched_on_outside_the_registry(name):
    """A model is known in one place: a comparison with its name elsewhere is a switch."""
    pattern = re.compile(rf"""(==|!=)\s*["']{re.escape(name)}["']""")
    places = []
    for module, path in MODULES.items():
        if module == "jax_lstm.models.registry":
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if pattern.search(line):
                places.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    for path in (ROOT / "torch_ref").glob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if pattern.search(line):
                places.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not places, places
