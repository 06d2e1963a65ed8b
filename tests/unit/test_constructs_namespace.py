"""Guard for the deliberate ``constructs/`` namespace merge (README: "Layout").

The ``constructs`` library extends its package path (pkgutil.extend_path), so this repository's
``constructs/`` folder, which has no ``__init__.py``, merges into it. An ``__init__.py`` there
would shadow the library and break every ``aws_cdk`` import.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import constructs

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_constructs_folder_has_no_init() -> None:
    assert not (REPO_ROOT / "constructs" / "__init__.py").exists(), (
        "constructs/__init__.py shadows the constructs library; delete it (see README, Layout)"
    )


def test_library_and_project_modules_share_the_name() -> None:
    from constructs.secure_defaults import LAMBDA_RUNTIME

    assert constructs.Construct.__module__.startswith("constructs")
    assert str(REPO_ROOT / "constructs") in list(constructs.__path__)
    assert LAMBDA_RUNTIME.name == "python3.14"


def test_an_init_file_would_break_aws_cdk(tmp_path: Path) -> None:
    # Reproduce the failure the guard prevents, in a copy, so the test proves the rule matters.
    shadow = tmp_path / "constructs"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("")
    run = subprocess.run(
        [sys.executable, "-c", "import aws_cdk"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert run.returncode != 0
    assert "Construct" in run.stderr or "constructs" in run.stderr
