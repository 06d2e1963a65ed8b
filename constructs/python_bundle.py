"""Package the agent runtime for Lambda without Docker.

CDK's Python bundling runs pip inside a SAM build image; this repository must synthesize on
machines without a Docker engine (CI, laptops with no Docker licence), so a local bundler copies
the ``runtime`` package and installs the pinned pure-Python dependencies for the function's
platform with ``pip --platform ... --only-binary=:all:``. The Docker image is only the fallback
CDK requires in the API; local bundling always answers first.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNTIME_DIR = REPO_ROOT / "runtime"
LAMBDA_REQUIREMENTS = "lambda-requirements.txt"
# Caches change nothing the function runs, so they must not change the asset hash either.
_HASH_EXCLUDE = ["**/__pycache__", "**/*.pyc"]


@jsii.implements(ILocalBundling)
class LocalPipBundler:
    """Copy ``runtime/`` to ``<output>/runtime`` and pip-install its Lambda requirements there."""

    def __init__(self, *, source_dir: Path, python_version: str, platform: str) -> None:
        self._source_dir = source_dir
        self._python_version = python_version
        self._platform = platform

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: object) -> bool:
        out = Path(output_dir)
        shutil.copytree(
            self._source_dir,
            out / self._source_dir.name,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", LAMBDA_REQUIREMENTS),
            dirs_exist_ok=True,
        )
        # Fixed argv (no shell): the interpreter running CDK, pinned requirements from this repo.
        pip = subprocess.run(  # noqa: S603
            [
                sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                "--target", str(out), "--platform", self._platform, "--implementation", "cp",
                "--python-version", self._python_version, "--only-binary=:all:", "--no-compile",
                "--requirement", str(self._source_dir / LAMBDA_REQUIREMENTS),
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if pip.returncode != 0:
            # Show pip's own words: usually a pin with no wheel for the function's platform.
            raise RuntimeError(f"bundling the Lambda runtime failed:\n{pip.stdout}{pip.stderr}")
        # Console scripts are useless in a function and differ between pip versions.
        shutil.rmtree(out / "bin", ignore_errors=True)
        return True


def runtime_code(*, runtime: lambda_.Runtime, architecture: lambda_.Architecture) -> lambda_.Code:
    """The ``runtime`` package plus its dependencies, as a Lambda code asset.

    The asset hash is the source's (code plus pinned requirements), so an unchanged runtime is
    not re-bundled and the template does not change between machines.
    """
    python_version = runtime.name.removeprefix("python")
    platform = (
        "manylinux2014_aarch64"
        if architecture.name == lambda_.Architecture.ARM_64.name
        else "manylinux2014_x86_64"
    )
    return lambda_.Code.from_asset(
        str(RUNTIME_DIR),
        exclude=_HASH_EXCLUDE,
        asset_hash_type=AssetHashType.SOURCE,
        bundling=BundlingOptions(
            image=runtime.bundling_image,
            local=LocalPipBundler(
                source_dir=RUNTIME_DIR, python_version=python_version, platform=platform
            ),
        ),
    )
