"""Runs of ``python -m loadtest`` started together and awaited together, as a user runs them.

Each run spends most of its time starting local targets and locust, so running a module's runs
side by side keeps it at the duration of the slowest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_SECONDS = 150


def run_side_by_side(
    base: Path, commands: Mapping[str, tuple[Sequence[str], Mapping[str, str] | None]]
) -> dict[str, dict[str, Any]]:
    """name -> {returncode, output, document (the ``--json-out`` JSON, or None)} of each run.

    ``commands`` maps a name to the CLI's arguments and its environment (``None``: this one's).
    """
    started = {}
    for name, (argv, env) in commands.items():
        json_out = base / f"{name}.json"
        full = [*argv, "--json-out", str(json_out), "--out-dir", str(base / name)]
        started[name] = (
            json_out,
            subprocess.Popen(
                [sys.executable, "-m", "loadtest", *full],
                cwd=REPO_ROOT,
                env=None if env is None else dict(env),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
    runs = {}
    for name, (json_out, process) in started.items():
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
        runs[name] = {
            "returncode": process.returncode,
            "output": stdout + stderr,
            "document": json.loads(json_out.read_text()) if json_out.exists() else None,
        }
    return runs
