"""The README's commands are the ones CI runs, and the package metadata says what it ships."""

from __future__ import annotations

import re
import shlex
import subprocess
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


def test_ci_fails_when_the_test_commands_setup_fails(tmp_path):
    """A failed step before pytest in the README's && line (a pip install that cannot install) fails
    CI; bash's set -e alone would go on to the linter and print that CI passed."""
    tests = _readme_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text()
    stand_ins = {
        'cd "$(dirname "$0")/.."': f"cd {shlex.quote(str(tmp_path))}",  # nothing of the checkout touched
        "rm -rf .venv": "true",
        tests: "true && false && true",  # the setup fails, the rest would pass
        "ruff check .": "true",
    }
    for line, stand_in in stand_ins.items():
        assert line in ci.splitlines(), line
        ci = ci.replace(line, stand_in)
    done = subprocess.run(["bash", "-c", ci], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "CI passed" not in done.stdout and "the test command exited with 1" in done.stderr
