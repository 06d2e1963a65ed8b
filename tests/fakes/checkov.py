"""checkov (its own virtualenv, make setup) run from the tests: one JSON report per target.

Several targets run side by side, one process each: checkov works on one core, and the gates
that check their skips run it twice (the real files, then the same without the skips).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

CHECKOV = Path(__file__).resolve().parents[2] / ".venv-checkov" / "bin" / "checkov"


def run_checkov(framework: str, *targets: list[str]) -> list[dict[str, Any]]:
    """checkov's report for each target, in order; a target is checkov's ``-d DIR`` or
    ``-f FILE`` arguments."""
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}; run `make setup`")
    options = ["--framework", framework, "--skip-download", "--output", "json"]
    runs = [
        subprocess.Popen(
            [str(CHECKOV), *target, *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for target in targets
    ]
    reports = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=600)
        assert stdout, stderr
        result: Any = json.loads(stdout)
        # One framework yields a dict; several would yield a list.
        reports.append(result if isinstance(result, dict) else result[0])
    return reports
