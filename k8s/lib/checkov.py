"""checkov skips, made on the object they excuse, each with a reason a reviewer can check.

checkov reads ``checkov.io/skip<N>: <CHECK_ID>=<reason>`` annotations per object. The reasons
live here, once, so the charts and tests/k8s (which strips the skips and expects exactly these
checks to fail) agree.
"""

from __future__ import annotations

from collections.abc import Mapping

from cdk8s import ApiObject

ANNOTATION_PREFIX = "checkov.io/skip"

# The runtime reads its keys from the environment (LLM_API_KEY, REDIS_PASSWORD,
# SERVICE_AUTH_TOKEN), the same contract as ECS secrets and Lambda; secretKeyRef keeps the values
# out of the manifests, and the pods run without a shell or an API token to read them back.
SECRETS_AS_ENV = (
    "the runtime reads its keys from environment variables (the same contract on ECS and "
    "Lambda); secretKeyRef keeps the values out of every manifest, and the pods have no "
    "Kubernetes API token"
)
# A Cloud Run service's namespace is the Google Cloud project, chosen by gcloud's --project.
CLOUD_RUN_NAMESPACE = (
    "a Cloud Run service, not a cluster object: its namespace is the Google Cloud project, "
    "which `gcloud run services replace --project` sets"
)

# The queue worker has no HTTP port and nothing in the image probes its loop.
NO_PROBE = (
    "a queue worker serves no port and receives no traffic to gate; a failed loop exits the "
    "process and the kubelet restarts it, and a probe could only restart a pod mid-task"
)


def skip_checkov(api_object: ApiObject, skips: Mapping[str, str]) -> None:
    """Annotate ``api_object`` with one skip per check id."""
    for number, (check_id, reason) in enumerate(sorted(skips.items()), start=1):
        api_object.metadata.add_annotation(f"{ANNOTATION_PREFIX}{number}", f"{check_id}={reason}")
