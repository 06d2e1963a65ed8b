"""Builds the manifests of one deployment config: the cluster's charts and the Cloud Run service.

``k8s/dist/<env>/kubernetes/`` is what ``kubectl apply`` and the Pulumi program (k8s/deploy)
deploy; ``k8s/dist/<env>/cloud-run/`` is what ``gcloud run services replace`` takes. Both are
committed: a reviewer sees every manifest change in the diff, and tests/k8s fails when the
charts and the committed files disagree.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cdk8s import App, YamlOutputType

from config.model import DeploymentConfig
from k8s.charts.cloud_run import CloudRunChart
from k8s.charts.namespace import NamespaceChart
from k8s.charts.service import ServiceChart
from k8s.charts.worker import WorkerChart

DIST_DIR = Path(__file__).resolve().parent / "dist"
CLUSTER_DIR = "kubernetes"
CLOUD_RUN_DIR = "cloud-run"


def cluster_app(config: DeploymentConfig, outdir: Path) -> App:
    """The cluster's charts, one file each; the namespace's file sorts (and applies) first."""
    app = App(outdir=str(outdir), yaml_output_type=YamlOutputType.FILE_PER_CHART)
    NamespaceChart(app, "agent-namespace", config=config)
    ServiceChart(app, "agent-service", config=config)
    WorkerChart(app, "agent-worker", config=config)
    return app


def cloud_run_app(config: DeploymentConfig, outdir: Path) -> App:
    app = App(outdir=str(outdir), yaml_output_type=YamlOutputType.FILE_PER_CHART)
    CloudRunChart(app, "agent-service", config=config)
    return app


def synth(config: DeploymentConfig, env_dir: Path) -> list[Path]:
    """Write ``env_dir``'s manifests from scratch (a removed chart leaves no stale file)."""
    if config.kubernetes is None:
        raise ValueError(f"{config.name}: the config has no kubernetes section")
    if env_dir.exists():
        shutil.rmtree(env_dir)
    cluster_app(config, env_dir / CLUSTER_DIR).synth()
    cloud_run_app(config, env_dir / CLOUD_RUN_DIR).synth()
    return sorted(env_dir.rglob("*.yaml"))
