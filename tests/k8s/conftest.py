"""One synthesis of every config's manifests per test session (dev, prod, and the variant config
that turns on the options those leave off), shared by the validation and hygiene tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.loader import load_config, load_config_file
from config.model import DeploymentConfig
from k8s.app import CLOUD_RUN_DIR, CLUSTER_DIR, synth

REPO_ROOT = Path(__file__).resolve().parents[2]
VARIANT_CONFIG = REPO_ROOT / "tests" / "infra" / "configs" / "variant.yaml"
# The committed configs, whose manifests are committed under k8s/dist/<env>/.
COMMITTED_ENVS = ("dev", "prod")
# KEDA's and the VPA's CRDs (schemas in ../shared/schemas), and Knative (Cloud Run).
CUSTOM_GROUPS = {"keda.sh", "autoscaling.k8s.io", "serving.knative.dev"}


@dataclass(frozen=True)
class Manifest:
    env: str
    path: Path  # relative to the env's folder, e.g. kubernetes/agent-service.k8s.yaml
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.doc["kind"])

    @property
    def api_version(self) -> str:
        return str(self.doc["apiVersion"])

    @property
    def name(self) -> str:
        return str(self.doc["metadata"]["name"])

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def builtin(self) -> bool:
        """Part of the Kubernetes API, not a custom resource or Knative's."""
        return self.group not in CUSTOM_GROUPS

    @property
    def cluster(self) -> bool:
        return self.path.parts[0] == CLUSTER_DIR

    def __str__(self) -> str:
        return f"{self.env}/{self.path}: {self.kind} {self.name}"


@dataclass
class Synthesized:
    outdir: Path
    configs: dict[str, DeploymentConfig]
    manifests: list[Manifest] = field(default_factory=list)

    def of(self, env: str, *, kind: str | None = None, cluster: bool = True) -> list[Manifest]:
        return [
            m
            for m in self.manifests
            if m.env == env and (kind is None or m.kind == kind) and m.cluster == cluster
        ]

    def one(self, env: str, kind: str, name_suffix: str = "") -> Manifest:
        found = [m for m in self.of(env, kind=kind) if m.name.endswith(name_suffix)]
        assert len(found) == 1, [str(m) for m in found]
        return found[0]


def load_manifests(env: str, env_dir: Path) -> Iterator[Manifest]:
    for path in sorted(env_dir.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield Manifest(env, path.relative_to(env_dir), doc)


@pytest.fixture(scope="session")
def k8s_synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    outdir = tmp_path_factory.mktemp("k8s-dist")
    configs = {env: load_config(env) for env in COMMITTED_ENVS}
    configs["variant"] = load_config_file(VARIANT_CONFIG)
    result = Synthesized(outdir=outdir, configs=configs)
    for env, config in configs.items():
        synth(config, outdir / env)
        result.manifests.extend(load_manifests(env, outdir / env))
    assert {m.path.parts[0] for m in result.manifests} == {CLUSTER_DIR, CLOUD_RUN_DIR}
    return result
