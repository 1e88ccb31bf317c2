"""The README's commands are the ones CI runs, and the package metadata says what it ships."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text, flags=re.S)


def test_readme_opens_with_exactly_the_two_commands():
    commands = _readme_commands()
    assert len(commands[:2]) == 2
    main_job, tests = commands[0], commands[1]
    assert "\n" not in main_job and "\n" not in tests  # one copy-paste line each
    assert main_job.startswith("python3 -m venv .venv") and "jax-lstm" in main_job
    assert tests.startswith("python3 -m venv .venv") and "pytest parity_tests" in tests


def test_ci_runs_the_readme_test_command_verbatim():
    tests = _readme_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines()


def test_torch_is_an_extra_pinned_to_the_offline_build():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("torch") for dep in meta["dependencies"])
    assert meta["optional-dependencies"]["torch"] == ["torch==2.13.0"]
    assert meta["scripts"]["jax-lstm"] == "jax_lstm.cli:main"
