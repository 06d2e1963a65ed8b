"""A ``docker`` that records its calls and fails, first on PATH for the whole test session.

Installed by tests/conftest.py when pytest loads it, before anything imports aws_cdk: jsii's
node process keeps the environment it started with, so a PATH changed later would not reach the
asset staging it does. No test may run Docker (this machine has no engine), and ``cdk synth``
must stage the container image's context without it (tests/infra/test_container_image.py).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_SHIM_DIR = Path(tempfile.mkdtemp(prefix="docker-shim-"))
CALLS = _SHIM_DIR / "docker-calls.log"


def install() -> None:
    docker = _SHIM_DIR / "docker"
    if docker.exists():
        return
    docker.write_text(f'#!/bin/sh\necho "$*" >> {CALLS}\nexit 97\n')
    docker.chmod(0o755)
    os.environ["PATH"] = f"{_SHIM_DIR}{os.pathsep}{os.environ['PATH']}"
    atexit.register(shutil.rmtree, _SHIM_DIR, ignore_errors=True)


def calls() -> list[str]:
    """The arguments of each ``docker`` call so far, one line per call."""
    return CALLS.read_text().splitlines() if CALLS.exists() else []
