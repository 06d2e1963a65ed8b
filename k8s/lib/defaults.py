"""Secure and reliable defaults for every Kubernetes workload, in one place.

README.md ("Defaults", Kubernetes rows) lists the same items. Charts read these instead of
choosing their own, so one file tells a reviewer the pods' security posture.
"""

from __future__ import annotations

# The pinned Kubernetes minor the manifests are written and validated for (cdk8s-plus-33's
# imported API; tests/k8s validates with kubernetes-validate's strict schema of the same minor).
KUBERNETES_VERSION = "1.33.0"

# The image's user (Dockerfile: USER 10001:10001). >= 10000 keeps it clear of host users, which
# matters if a container ever escapes (checkov CKV_K8S_40).
RUN_AS_USER = 10001
RUN_AS_GROUP = 10001
# The volume group: the emptyDir scratch space is writable by the non-root user.
FS_GROUP = 10001
# Where the read-only root filesystem gets its writable scratch space (TMPDIR points here).
SCRATCH_PATH = "/tmp"  # noqa: S108 (an emptyDir mounted per pod, not the host's /tmp)
SCRATCH_SIZE_LIMIT = "256Mi"

# The container's HTTP port (Dockerfile EXPOSE, SERVICE_PORT) and the Service's port.
CONTAINER_PORT = 8080
SERVICE_PORT = 80
# The image's commands (Dockerfile CMD, runtime/service/__main__.py).
SERVICE_ARGS = ("python", "-m", "runtime.service", "serve")
WORKER_ARGS = ("python", "-m", "runtime.service", "worker")

# Probes: /healthz answers while the process lives, /readyz while it accepts sessions (it turns
# 503 when draining or when Redis is down). The startup probe gives a cold start 60 s before
# liveness may restart the pod.
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
STARTUP_PERIOD_SECONDS = 2
STARTUP_FAILURE_THRESHOLD = 30
READINESS_PERIOD_SECONDS = 5
LIVENESS_PERIOD_SECONDS = 10
LIVENESS_FAILURE_THRESHOLD = 3
PROBE_TIMEOUT_SECONDS = 3

# No Kubernetes API token in the pods: the agent never talks to the API server.
AUTOMOUNT_SERVICE_ACCOUNT_TOKEN = False
# Pods spread over zones (survive a zone outage) and hosts (survive a node), as evenly as
# possible; ScheduleAnyway so a small cluster still schedules them.
TOPOLOGY_KEYS = ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
# The image is pinned by digest (config); Always makes the kubelet check the node may still pull
# it (registry credentials) before running a cached copy. Layers already on the node are reused.
IMAGE_PULL_POLICY = "Always"
# The namespace enforces the restricted Pod Security Standard.
POD_SECURITY_LEVEL = "restricted"

# Labels every object carries (app.kubernetes.io recommended labels).
PART_OF = "agent-deploy-reference"
MANAGED_BY = "cdk8s"

# The Secret's keys (k8s/deploy creates the Secret; a user can create it by hand).
SECRET_KEY_LLM_API_KEY = "llm-api-key"  # noqa: S105 (a key's name)
SECRET_KEY_SERVICE_AUTH_TOKEN = "service-auth-token"  # noqa: S105 (a key's name)
SECRET_KEY_REDIS_PASSWORD = "redis-password"  # noqa: S105 (a key's name)
# The Pod Security Standard's version the namespace enforces: the pinned minor, so a cluster
# upgrade cannot change what is enforced without a change here.
POD_SECURITY_VERSION = "v" + ".".join(KUBERNETES_VERSION.split(".")[:2])
