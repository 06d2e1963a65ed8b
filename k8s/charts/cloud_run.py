"""The agent service as a Knative Service, for Cloud Run (``gcloud run services replace``).

The same image, probes, resources and per-instance concurrency as the Kubernetes Deployment.
Cloud Run's differences, each handled here: secrets come from Secret Manager (``secretKeyRef``
names a Secret Manager secret and a version), scaling bounds are annotations, the request
timeout caps a WebSocket session, and only the container port named ``http1`` receives traffic.
"""

from __future__ import annotations

from cdk8s import ApiObject, ApiObjectMetadata, Chart, JsonPatch

from config.model import DeploymentConfig
from constructs import Construct
from k8s.charts.service import service_pod_environment
from k8s.lib import checkov, defaults
from k8s.lib.checkov import skip_checkov
from k8s.lib.pod import secret_keys

API_VERSION = "serving.knative.dev/v1"
KIND = "Service"
# Secret Manager secret names: the Kubernetes Secret's name and key, joined; always the latest
# version, so a rotated key reaches new instances without a redeploy.
SECRET_VERSION = "latest"  # noqa: S105 (a version label)
# Cloud Run sends SIGTERM and kills the instance 10 s later, whatever the config says: the
# drain must end before that.
SIGKILL_AFTER_SECONDS = 10
DRAIN_SECONDS = SIGKILL_AFTER_SECONDS - 2


def _probe(path: str, *, period: int, failure_threshold: int) -> dict[str, object]:
    # Cloud Run probes take the port from the container; no named port, unlike Kubernetes.
    return {
        "httpGet": {"path": path, "port": defaults.CONTAINER_PORT},
        "periodSeconds": period,
        "timeoutSeconds": defaults.PROBE_TIMEOUT_SECONDS,
        "failureThreshold": failure_threshold,
    }


class CloudRunChart(Chart):
    def __init__(self, scope: Construct, construct_id: str, *, config: DeploymentConfig) -> None:
        super().__init__(scope, construct_id, disable_resource_name_hashes=True)
        kubernetes = config.kubernetes
        if kubernetes is None:
            raise ValueError(f"{config.name}: the config has no kubernetes section")
        cloud_run = kubernetes.cloud_run
        resources = kubernetes.service.resources
        name = f"{config.name}-service"
        # The LLM key stays a Secret Manager secret here, even when the cluster's pods read it
        # from AWS Secrets Manager by ARN: Cloud Run has no IRSA (no AWS role, no web identity
        # token for the AWS SDK), so the AWS secret is out of its reach. An instance reads the
        # latest version when it starts: after each rotation, add the new key as a version and
        # deploy a new revision (docs/key-rotation.md).
        environment = service_pod_environment(
            config,
            llm_secret_arn=None,
            stop_timeout_seconds=SIGKILL_AFTER_SECONDS,
            # Google's front end is the only client of the container.
            forwarded_allow_ips="*",
            drain_seconds=DRAIN_SECONDS,
        )
        secret_variables = secret_keys(
            config, redis_password=True, service_token=True, llm_secret_arn=None
        )
        env: list[dict[str, object]] = [
            {"name": key, "value": value} for key, value in sorted(environment.items())
        ]
        env += [
            {
                "name": variable,
                "valueFrom": {
                    "secretKeyRef": {
                        "name": f"{kubernetes.secret_name}-{key}",
                        "key": SECRET_VERSION,
                    }
                },
            }
            for variable, key in secret_variables.items()
        ]
        self.service = ApiObject(
            self,
            "Service",
            api_version=API_VERSION,
            kind=KIND,
            metadata=ApiObjectMetadata(
                name=name,
                labels={"app.kubernetes.io/name": name, "app.kubernetes.io/instance": config.name},
                annotations={
                    # Traffic through Google's front end only (the bearer token still applies).
                    "run.googleapis.com/ingress": "all",
                },
            ),
        )
        template_annotations = {
            "autoscaling.knative.dev/minScale": str(cloud_run.min_instances),
            "autoscaling.knative.dev/maxScale": str(cloud_run.max_instances),
            # Steps run on worker threads and WebSockets send heartbeats between requests: the
            # CPU must stay allocated outside request handling.
            "run.googleapis.com/cpu-throttling": "false",
            # Sessions on one WebSocket must keep reaching the same instance.
            "run.googleapis.com/sessionAffinity": "true",
            "run.googleapis.com/execution-environment": "gen2",
        }
        spec = {
            "template": {
                "metadata": {"annotations": template_annotations},
                "spec": {
                    # The same per-instance limit as the pods' SERVICE_MAX_CONCURRENT_SESSIONS:
                    # Cloud Run starts another instance instead of queueing the 101st session.
                    "containerConcurrency": config.container.max_concurrent_sessions,
                    "timeoutSeconds": cloud_run.timeout_seconds,
                    "containers": [
                        {
                            "image": cloud_run.image or kubernetes.image,
                            "args": list(defaults.SERVICE_ARGS),
                            "ports": [{"name": "http1", "containerPort": defaults.CONTAINER_PORT}],
                            "env": env,
                            "resources": {
                                "limits": {
                                    "cpu": resources.cpu_limit,
                                    "memory": resources.memory_limit,
                                }
                            },
                            "startupProbe": _probe(
                                defaults.HEALTH_PATH,
                                period=defaults.STARTUP_PERIOD_SECONDS,
                                failure_threshold=defaults.STARTUP_FAILURE_THRESHOLD,
                            ),
                            "readinessProbe": _probe(
                                defaults.READY_PATH,
                                period=defaults.READINESS_PERIOD_SECONDS,
                                failure_threshold=1,
                            ),
                            "livenessProbe": _probe(
                                defaults.HEALTH_PATH,
                                period=defaults.LIVENESS_PERIOD_SECONDS,
                                failure_threshold=defaults.LIVENESS_FAILURE_THRESHOLD,
                            ),
                        }
                    ],
                },
            },
            "traffic": [{"latestRevision": True, "percent": 100}],
        }
        self.service.add_json_patch(JsonPatch.add("/spec", spec))
        skip_checkov(self.service, {"CKV_K8S_21": checkov.CLOUD_RUN_NAMESPACE})
