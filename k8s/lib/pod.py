"""Pod and container building blocks every chart uses: restricted security context, scratch
volume, probes, resources, topology spread, labels. Values come from :mod:`k8s.lib.defaults`.

Built on cdk8s-plus-33's typed Kubernetes 1.33 API (``cdk8s_plus_33.k8s``): every field is
checked by name and type when the chart is built, and nothing is added behind our back. The
cdk8s-plus L2 ``Deployment`` was the other candidate; it adds defaults of its own (resources,
security context, an owned Service) that we would have to override field by field to get
startup probes, seccomp, topology spread and exact names, so the L1 API fits better here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cdk8s_plus_33 import k8s

from config.environment import agent_environment
from config.model import DeploymentConfig, PodResources
from constructs import Construct
from k8s.lib import defaults

SCRATCH_VOLUME = "scratch"


def labels(*, name: str, component: str, instance: str) -> dict[str, str]:
    """The recommended app.kubernetes.io labels; ``name`` + ``instance`` select a workload."""
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": defaults.PART_OF,
        "app.kubernetes.io/managed-by": defaults.MANAGED_BY,
    }


def selector_labels(all_labels: Mapping[str, str]) -> dict[str, str]:
    """The immutable subset a Deployment selects on (never the version-like labels)."""
    keys = ("app.kubernetes.io/name", "app.kubernetes.io/instance")
    return {key: all_labels[key] for key in keys}


def resources(spec: PodResources) -> k8s.ResourceRequirements:
    return k8s.ResourceRequirements(
        requests={
            "cpu": k8s.Quantity.from_string(spec.cpu_request),
            "memory": k8s.Quantity.from_string(spec.memory_request),
        },
        limits={
            "cpu": k8s.Quantity.from_string(spec.cpu_limit),
            "memory": k8s.Quantity.from_string(spec.memory_limit),
        },
    )


def container_security_context() -> k8s.SecurityContext:
    """The restricted Pod Security Standard, and a read-only root filesystem on top."""
    return k8s.SecurityContext(
        allow_privilege_escalation=False,
        privileged=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        run_as_user=defaults.RUN_AS_USER,
        run_as_group=defaults.RUN_AS_GROUP,
        capabilities=k8s.Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.SeccompProfile(type="RuntimeDefault"),
    )


def pod_security_context() -> k8s.PodSecurityContext:
    return k8s.PodSecurityContext(
        run_as_non_root=True,
        run_as_user=defaults.RUN_AS_USER,
        run_as_group=defaults.RUN_AS_GROUP,
        fs_group=defaults.FS_GROUP,
        seccomp_profile=k8s.SeccompProfile(type="RuntimeDefault"),
    )


def secret_env(name: str, *, secret_name: str, key: str) -> k8s.EnvVar:
    """One variable from a Secret key: the value never appears in a manifest or a ConfigMap."""
    return k8s.EnvVar(
        name=name,
        value_from=k8s.EnvVarSource(
            secret_key_ref=k8s.SecretKeySelector(name=secret_name, key=key, optional=False)
        ),
    )


def llm_key_secret_arn(config: DeploymentConfig) -> str | None:
    """The ARN a cluster's pods read the LLM key by (``kubernetes.aws.llm_api_key_secret_arn``),
    or None: the key comes from the Secret (``LLM_API_KEY``), or there is none (Bedrock).

    By ARN, the runtime reads the key through its 5-minute cache with the pod's IRSA role and
    re-reads it on a 401, so a rotated key reaches running pods (docs/key-rotation.md); from the
    Secret, a pod keeps the key it started with. The charts pass the result to
    :func:`agent_pod_environment` and :func:`secret_keys`, which wire one or the other.
    """
    return config.k8s_llm_key_secret_arn


def agent_pod_environment(
    config: DeploymentConfig,
    *,
    llm_secret_arn: str | None,
    session_table_name: str | None = None,
    redis_url: str | None = None,
) -> dict[str, str]:
    """``config.environment.agent_environment`` for a pod. With ``llm_secret_arn``, also the
    region, where the config requires the secret to be: the runtime builds its Secrets Manager
    client at start and fails there without one. Set here, the pod does not depend on a webhook
    injecting it (ECS and Lambda set both variables themselves). AWS_DEFAULT_REGION is the one
    boto3 reads (botocore's ``region`` setting; it ignores AWS_REGION); AWS_REGION for the
    other AWS SDKs and tools."""
    environment = agent_environment(
        config,
        session_table_name=session_table_name,
        redis_url=redis_url,
        llm_secret_arn=llm_secret_arn,
    )
    if llm_secret_arn is not None:
        if config.kubernetes is None:
            raise ValueError(f"{config.name}: the config has no kubernetes section")
        region = config.kubernetes.aws.region
        environment |= {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}
    return environment


def secret_keys(
    config: DeploymentConfig,
    *,
    redis_password: bool,
    service_token: bool,
    llm_secret_arn: str | None,
) -> dict[str, str]:
    """The variables a pod reads from the Secret: variable name -> the Secret's key.

    ``llm_secret_arn``: the pod reads the LLM key by that ARN instead (see
    :func:`llm_key_secret_arn`), so the Secret holds none for it.
    """
    keys = {}
    if redis_password:
        keys["REDIS_PASSWORD"] = defaults.SECRET_KEY_REDIS_PASSWORD
    if service_token:
        keys["SERVICE_AUTH_TOKEN"] = defaults.SECRET_KEY_SERVICE_AUTH_TOKEN
    if config.llm.provider == "openai-compatible" and llm_secret_arn is None:
        keys["LLM_API_KEY"] = defaults.SECRET_KEY_LLM_API_KEY
    return keys


def secret_envs(keys: Mapping[str, str], *, secret_name: str) -> list[k8s.EnvVar]:
    return [
        secret_env(variable, secret_name=secret_name, key=key) for variable, key in keys.items()
    ]


def plain_env(environment: Mapping[str, str]) -> list[k8s.EnvVar]:
    return [k8s.EnvVar(name=name, value=value) for name, value in sorted(environment.items())]


def http_probe(path: str, *, period: int, failure_threshold: int) -> k8s.Probe:
    return k8s.Probe(
        http_get=k8s.HttpGetAction(path=path, port=k8s.IntOrString.from_string("http")),
        period_seconds=period,
        timeout_seconds=defaults.PROBE_TIMEOUT_SECONDS,
        failure_threshold=failure_threshold,
    )


def hardened_container(
    *,
    name: str,
    image: str,
    args: Sequence[str],
    env: Sequence[k8s.EnvVar],
    spec: PodResources,
    ports: Sequence[k8s.ContainerPort] = (),
    startup_probe: k8s.Probe | None = None,
    readiness_probe: k8s.Probe | None = None,
    liveness_probe: k8s.Probe | None = None,
    lifecycle: k8s.Lifecycle | None = None,
) -> k8s.Container:
    """A container with the restricted security context, the scratch mount and TMPDIR on it."""
    return k8s.Container(
        name=name,
        image=image,
        image_pull_policy=defaults.IMAGE_PULL_POLICY,
        args=list(args),
        env=[*env, k8s.EnvVar(name="TMPDIR", value=defaults.SCRATCH_PATH)],
        ports=list(ports) or None,
        resources=resources(spec),
        security_context=container_security_context(),
        startup_probe=startup_probe,
        readiness_probe=readiness_probe,
        liveness_probe=liveness_probe,
        lifecycle=lifecycle,
        volume_mounts=[k8s.VolumeMount(name=SCRATCH_VOLUME, mount_path=defaults.SCRATCH_PATH)],
    )


def rolling_deployment(
    scope: Construct,
    construct_id: str,
    *,
    metadata: k8s.ObjectMeta,
    selector: Mapping[str, str],
    pod_labels: Mapping[str, str],
    containers: Sequence[k8s.Container],
    service_account_name: str,
    termination_grace_period_seconds: int,
) -> k8s.KubeDeployment:
    """A Deployment of restricted pods spread over zones and hosts, whose count an autoscaler
    owns and whose rollouts never lose capacity.

    No ``replicas``: with a value, every ``kubectl apply`` would reset the HPA's or KEDA's count
    to it, ending sessions or tasks on the pods it removes. ``maxUnavailable: 0``: new pods come
    up (and pass readiness) before old ones start draining.
    """
    return k8s.KubeDeployment(
        scope,
        construct_id,
        metadata=metadata,
        spec=k8s.DeploymentSpec(
            selector=k8s.LabelSelector(match_labels=dict(selector)),
            revision_history_limit=5,
            strategy=k8s.DeploymentStrategy(
                type="RollingUpdate",
                rolling_update=k8s.RollingUpdateDeployment(
                    max_unavailable=k8s.IntOrString.from_number(0),
                    max_surge=k8s.IntOrString.from_string("25%"),
                ),
            ),
            template=k8s.PodTemplateSpec(
                metadata=k8s.ObjectMeta(labels=dict(pod_labels)),
                spec=restricted_pod_spec(
                    containers=containers,
                    service_account_name=service_account_name,
                    termination_grace_period_seconds=termination_grace_period_seconds,
                    selector=selector,
                ),
            ),
        ),
    )


def disruption_budget(
    scope: Construct,
    construct_id: str,
    *,
    metadata: k8s.ObjectMeta,
    selector: Mapping[str, str],
    max_unavailable: int,
) -> k8s.KubePodDisruptionBudget:
    """Node drains take at most ``max_unavailable`` pods at once. A pod that never became ready
    may always be evicted: a stuck rollout or a crash-looping pod must not block a drain."""
    return k8s.KubePodDisruptionBudget(
        scope,
        construct_id,
        metadata=metadata,
        spec=k8s.PodDisruptionBudgetSpec(
            max_unavailable=k8s.IntOrString.from_number(max_unavailable),
            selector=k8s.LabelSelector(match_labels=dict(selector)),
            unhealthy_pod_eviction_policy="AlwaysAllow",
        ),
    )


def topology_spread(selector: Mapping[str, str]) -> list[k8s.TopologySpreadConstraint]:
    """Spread over zones, then hosts; ScheduleAnyway so a one-zone cluster still runs pods."""
    return [
        k8s.TopologySpreadConstraint(
            max_skew=1,
            topology_key=key,
            when_unsatisfiable="ScheduleAnyway",
            label_selector=k8s.LabelSelector(match_labels=dict(selector)),
        )
        for key in defaults.TOPOLOGY_KEYS
    ]


def restricted_pod_spec(
    *,
    containers: Sequence[k8s.Container],
    service_account_name: str,
    termination_grace_period_seconds: int,
    selector: Mapping[str, str] | None = None,
    restart_policy: str | None = None,
) -> k8s.PodSpec:
    """Pod-level hardening: non-root, seccomp, no API token, scratch emptyDir, spread."""
    return k8s.PodSpec(
        containers=list(containers),
        service_account_name=service_account_name,
        automount_service_account_token=defaults.AUTOMOUNT_SERVICE_ACCOUNT_TOKEN,
        security_context=pod_security_context(),
        termination_grace_period_seconds=termination_grace_period_seconds,
        restart_policy=restart_policy,
        topology_spread_constraints=topology_spread(selector) if selector else None,
        volumes=[
            k8s.Volume(
                name=SCRATCH_VOLUME,
                empty_dir=k8s.EmptyDirVolumeSource(
                    size_limit=k8s.Quantity.from_string(defaults.SCRATCH_SIZE_LIMIT)
                ),
            )
        ],
    )


def service_account(
    scope: Construct,
    construct_id: str,
    *,
    name: str,
    namespace: str,
    role_arn: str | None,
    object_labels: Mapping[str, str],
) -> k8s.KubeServiceAccount:
    """A dedicated ServiceAccount; ``role_arn`` becomes the IRSA annotation (EKS)."""
    annotations = {"eks.amazonaws.com/role-arn": role_arn} if role_arn else None
    return k8s.KubeServiceAccount(
        scope,
        construct_id,
        metadata=k8s.ObjectMeta(
            name=name, namespace=namespace, labels=dict(object_labels), annotations=annotations
        ),
        automount_service_account_token=defaults.AUTOMOUNT_SERVICE_ACCOUNT_TOKEN,
    )
