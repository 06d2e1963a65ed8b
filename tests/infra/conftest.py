"""One synthesis of the whole app per test session, shared by every infrastructure test.

The app holds every ``config/*.yaml`` plus ``configs/variant.yaml`` (the options those leave off),
built by the same ``build_app`` that ``cdk synth`` runs. Asset bundling is skipped (the templates
do not depend on it: asset hashes come from the source). CDK's built-in CloudFormation
validation runs next to cdk-nag, as in ``cdk synth``: ``test_gates.py`` reads the report.
The session's ``docker`` only records its calls (tests/fakes/docker_shim.py): ``cdk synth``
must stage the container image's context without running Docker.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
VARIANT_CONFIG = Path(__file__).parent / "configs" / "variant.yaml"
# jsii and CDK run on the pinned Node 22 when it is installed (make setup).
os.environ["PATH"] = f"{REPO_ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}"


@dataclass(frozen=True)
class Synthesized:
    outdir: Path
    app: Any
    templates: dict[str, dict[str, Any]]
    configs: dict[str, Any]
    # Each call the synthesis made to ``docker`` (one line of arguments per call); none expected.
    docker_calls: list[str]

    def template(self, config_name: str, pattern: str = "serverless") -> dict[str, Any]:
        return self.templates[f"{config_name}-{pattern}"]


def cdk_json_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return context


def all_configs() -> list[Any]:
    from config.loader import available_envs, load_config, load_config_file

    return [load_config(env) for env in available_envs()] + [load_config_file(VARIANT_CONFIG)]


def synthesize_app(outdir: Path) -> Synthesized:
    """The shared synthesis behind the ``synth`` fixture (tests/conftest.py)."""
    from tests.fakes import docker_shim

    before = docker_shim.calls()
    app, assembly = synthesize(outdir, cfn_validation=True)
    return Synthesized(
        outdir=outdir,
        app=app,
        templates={stack.stack_name: stack.template for stack in assembly.stacks},
        configs={config.name: config for config in all_configs()},
        docker_calls=docker_shim.calls()[len(before) :],
    )


def synthesize(outdir: Path, *, cfn_validation: bool) -> tuple[Any, Any]:
    from aws_cdk import App

    from stacks.composition import build_app

    app = App(
        outdir=str(outdir),
        # The feature flags cdk.json gives the CLI; skip bundling: no pip at test time.
        context={**cdk_json_context(), "aws:cdk:bundling-stacks": []},
        builtin_cloud_formation_validation=cfn_validation,
    )
    build_app(app, all_configs())
    return app, app.synth()
