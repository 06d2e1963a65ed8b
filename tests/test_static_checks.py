"""Static checks run with the tests, so the README's one test command covers them too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON_DIRS = [
    "app.py", "config", "constructs", "stacks", "runtime", "k8s", "costs", "scaling", "tests",
    "bench", "scripts", "loadtest",
]  # fmt: skip


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True,
        check=False, timeout=900,
    )  # fmt: skip


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", *PYTHON_DIRS),
        ("ruff", "format", "--check", *PYTHON_DIRS),
    ],
    ids=["ruff-lint", "ruff-format"],
)
def test_ruff(command: tuple[str, ...]) -> None:
    run = _run(*command)
    assert run.returncode == 0, run.stdout + run.stderr


def test_mypy() -> None:
    # --explicit-package-bases (pyproject.toml) lets mypy see constructs/ as a namespace package.
    run = _run("mypy", *PYTHON_DIRS)
    assert run.returncode == 0, run.stdout + run.stderr
