"""The agent's Kubernetes deployment as one Pulumi component, ``AgentDeployment``.

The cdk8s app (``make synth``) writes the manifests; this program applies them and adds what they
must not or cannot hold: the Secret's values (Pulumi config secrets, never in git) and the
operators whose CRDs the manifests use (KEDA, the VPA), installed before any custom resource.
Every manifest object becomes its own Pulumi resource, so a preview diffs each one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as kubernetes
import yaml

from config.loader import CONFIG_DIR, ConfigError, load_config
from config.model import DeploymentConfig, KubernetesConfig
from k8s.lib import defaults

REPO_ROOT = Path(__file__).resolve().parents[2]
# k8s/app.py's DIST_DIR and CLUSTER_DIR (not imported: that would start cdk8s's jsii runtime in
# every `pulumi up`; a test checks they agree). cloud-run/ beside kubernetes/ is never applied.
DIST_ROOT = REPO_ROOT / "k8s" / "dist"
CLUSTER_DIR = "kubernetes"
SYNTH_COMMAND = "make synth"
COMPONENT_TYPE = "agent:kubernetes:AgentDeployment"

# KEDA: the chart's version is KEDA's. The project validates its custom resources against KEDA's
# CRDs from after v2.20.1; 2.20.2 is the first release after it, and the 2.20 line is the last
# tested with Kubernetes 1.33, the minor the manifests pin (keda.sh/docs "Cluster": v2.20 ->
# 1.33-1.35, v2.21 -> 1.34-1.36). Override per stack with `pulumi config set kedaVersion`.
KEDA_CHART = "keda"
KEDA_CHART_REPO = "https://kedacore.github.io/charts"
KEDA_CHART_VERSION = "2.20.2"
KEDA_NAMESPACE = "keda"
KEDA_GROUP = "keda.sh"
# The VPA has no upstream chart; Fairwinds' is the common one. 5.0.0 ships VPA 1.7.1 and its CRD
# (FairwindsOps/charts#1978) and needs Kubernetes >= 1.28. Helm installs a chart's crds/ on the
# first install only: a chart upgrade that changes the CRD needs it applied by hand.
VPA_CHART = "vpa"
VPA_CHART_REPO = "https://charts.fairwinds.com/stable"
VPA_CHART_VERSION = "5.0.0"
VPA_NAMESPACE = "vpa"
VPA_GROUP = "autoscaling.k8s.io"
# Update modes that need the VPA's admission controller (it sets requests on new pods), and those
# that also need its updater (it evicts running pods); "Off" needs only the recommender.
_VPA_ADMISSION_MODES = {"Initial", "Auto", "Recreate", "InPlaceOrRecreate"}
_VPA_UPDATER_MODES = {"Auto", "Recreate", "InPlaceOrRecreate"}

# Built-in kinds the charts emit, each registered with its typed class (typed inputs, the
# provider's aliases across API versions). Anything else is refused, never applied untyped.
_TYPED_KINDS: dict[tuple[str, str], Callable[..., pulumi.CustomResource]] = {
    ("v1", "Namespace"): kubernetes.core.v1.Namespace,
    ("v1", "ServiceAccount"): kubernetes.core.v1.ServiceAccount,
    ("v1", "ConfigMap"): kubernetes.core.v1.ConfigMap,
    ("v1", "Service"): kubernetes.core.v1.Service,
    ("apps/v1", "Deployment"): kubernetes.apps.v1.Deployment,
    ("batch/v1", "Job"): kubernetes.batch.v1.Job,
    ("batch/v1", "CronJob"): kubernetes.batch.v1.CronJob,
    ("policy/v1", "PodDisruptionBudget"): kubernetes.policy.v1.PodDisruptionBudget,
    ("networking.k8s.io/v1", "NetworkPolicy"): kubernetes.networking.v1.NetworkPolicy,
    ("networking.k8s.io/v1", "Ingress"): kubernetes.networking.v1.Ingress,
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
    ): kubernetes.autoscaling.v2.HorizontalPodAutoscaler,
    ("rbac.authorization.k8s.io/v1", "Role"): kubernetes.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): kubernetes.rbac.v1.RoleBinding,
}
# Custom resources go through CustomResource, whose type token is kubernetes:<apiVersion>:<kind>.
_CUSTOM_GROUPS = {KEDA_GROUP, VPA_GROUP}
_CLUSTER_SCOPED_KINDS = {"Namespace"}
# Objects that run pods reading the Secret (ScaledJob's Jobs too): they wait for it, so a first
# rollout never starts pods that fail on a missing key.
WORKLOAD_KINDS = {"Deployment", "Job", "CronJob", "ScaledJob"}

# Pulumi config key (camelCase, as Pulumi config keys go) of each key of the Secret.
SECRET_CONFIG_KEYS = {
    defaults.SECRET_KEY_LLM_API_KEY: "llmApiKey",
    defaults.SECRET_KEY_SERVICE_AUTH_TOKEN: "serviceAuthToken",
    defaults.SECRET_KEY_REDIS_PASSWORD: "redisPassword",
}


class DeployInputError(pulumi.RunError):
    """The program cannot run with these inputs. A RunError: Pulumi prints the message alone,
    without a traceback through its own internals."""


class ManifestsMissingError(DeployInputError):
    """No synthesized manifests where the program looks for them."""


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _resynth_hint(folder: Path) -> str:
    return f"run `{SYNTH_COMMAND}` (it writes {_shown(folder)}) and try again"


@dataclass(frozen=True)
class ManifestObject:
    """One document of a synthesized manifest file."""

    source: Path
    index: int  # the document's position in its file
    body: Mapping[str, Any]

    @property
    def api_version(self) -> str:
        return str(self.body["apiVersion"])

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        namespace = self.body["metadata"].get("namespace")
        return None if namespace is None else str(namespace)

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{_shown(self.source)} #{self.index + 1}: {self.kind} {where}"


def manifests_dir(env: str, dist_root: Path = DIST_ROOT) -> Path:
    return dist_root / env / CLUSTER_DIR


def load_manifests(folder: Path) -> list[ManifestObject]:
    """Every object in ``folder/*.k8s.yaml``, in file-name and document order."""
    files = sorted(folder.glob("*.k8s.yaml")) if folder.is_dir() else []
    if not files:
        raise ManifestsMissingError(
            f"{_shown(folder)}: no synthesized manifests (*.k8s.yaml); {_resynth_hint(folder)}"
        )
    objects = []
    for path in files:
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except yaml.YAMLError as exc:
            raise DeployInputError(f"{_shown(path)}: not valid YAML ({exc})") from None
        for index, body in enumerate(documents):
            if body is None:
                continue
            metadata = body.get("metadata") if isinstance(body, dict) else None
            if not (
                isinstance(metadata, dict)
                and metadata.get("name")
                and {"apiVersion", "kind"} <= body.keys()
            ):
                raise DeployInputError(
                    f"{_shown(path)} #{index + 1}: not a Kubernetes object (apiVersion, kind, "
                    f"metadata.name); {_resynth_hint(folder)}"
                )
            objects.append(ManifestObject(path, index, body))
    return objects


@dataclass(frozen=True)
class AgentSecrets:
    """The Secret's values; Pulumi config secrets, so they stay encrypted in the state."""

    service_auth_token: pulumi.Input[str]
    redis_password: pulumi.Input[str]
    # None with llm.provider bedrock (the pods call Bedrock with their IAM role, not a key) and
    # with kubernetes.aws.llm_api_key_secret_arn (they read the key from Secrets Manager).
    llm_api_key: pulumi.Input[str] | None = None

    def string_data(self) -> dict[str, pulumi.Input[str]]:
        data = {
            defaults.SECRET_KEY_SERVICE_AUTH_TOKEN: self.service_auth_token,
            defaults.SECRET_KEY_REDIS_PASSWORD: self.redis_password,
        }
        if self.llm_api_key is not None:
            data[defaults.SECRET_KEY_LLM_API_KEY] = self.llm_api_key
        return data


@dataclass(frozen=True)
class AgentDeploymentArgs:
    config: DeploymentConfig
    secrets: AgentSecrets
    manifests_dir: Path
    keda_version: str = KEDA_CHART_VERSION
    # The IAM role for KEDA's operator (IRSA): with AWS pod identity and identityOwner workload
    # (the worker's TriggerAuthentication), the operator assumes the worker's role from it.
    keda_operator_role_arn: str | None = None
    # False: the cluster has no VPA (or has one of its own): VPA objects are skipped, with a
    # warning, instead of failing at apply on a missing CRD.
    install_vpa: bool = True


def args_from_pulumi_config(
    config: pulumi.Config, *, config_dir: Path = CONFIG_DIR, dist_root: Path = DIST_ROOT
) -> AgentDeploymentArgs:
    """The component's inputs from the stack's config (Pulumi.<stack>.yaml)."""
    env = config.require("env")
    try:
        deployment = load_config(env, config_dir=config_dir)
    except ConfigError as exc:
        raise DeployInputError(str(exc)) from None
    # Bedrock needs no key; an openai-compatible provider does, so the pods can start, unless
    # they read it from Secrets Manager by ARN.
    llm_api_key: pulumi.Output[str] | None
    if deployment.llm.provider == "bedrock":
        llm_api_key = config.get_secret("llmApiKey")
    elif deployment.k8s_llm_key_secret_arn is not None:
        llm_api_key = None
        if config.get_secret("llmApiKey") is not None:
            # Not put in the Secret: a copy there would be the one key nobody rotates, and
            # revoked one rotation period after the rotation replaces it.
            pulumi.log.warn(
                "llmApiKey is set, but the pods read the LLM key from Secrets Manager "
                "(kubernetes.aws.llm_api_key_secret_arn), so it is left out of the Secret; "
                "remove it with `pulumi config rm llmApiKey`"
            )
    else:
        llm_api_key = config.require_secret("llmApiKey")
    install_vpa = config.get_bool("installVpa")
    return AgentDeploymentArgs(
        config=deployment,
        secrets=AgentSecrets(
            service_auth_token=config.require_secret("serviceAuthToken"),
            redis_password=config.require_secret("redisPassword"),
            llm_api_key=llm_api_key,
        ),
        manifests_dir=manifests_dir(env, dist_root),
        keda_version=config.get("kedaVersion") or KEDA_CHART_VERSION,
        keda_operator_role_arn=config.get("kedaOperatorRoleArn"),
        install_vpa=True if install_vpa is None else install_vpa,
    )


def service_endpoint(config: DeploymentConfig) -> str:
    """Where clients reach the agent: the Ingress's host, else the Service inside the cluster."""
    k8s_config = _kubernetes(config)
    ingress = k8s_config.ingress
    if ingress is not None:
        # Plain http only where the config allows it (development); then there is no TLS.
        has_tls = ingress.tls_secret_name is not None or ingress.certificate_arn is not None
        return f"{'https' if has_tls else 'http'}://{ingress.host}"
    port = "" if defaults.SERVICE_PORT == 80 else f":{defaults.SERVICE_PORT}"
    return f"http://{_service_name(config)}.{k8s_config.namespace}.svc.cluster.local{port}"


def _service_name(config: DeploymentConfig) -> str:
    return f"{config.name}-service"


def _kubernetes(config: DeploymentConfig) -> KubernetesConfig:
    if config.kubernetes is None:
        raise DeployInputError(f"config {config.name}: no kubernetes section, nothing to deploy")
    return config.kubernetes


def _secret_refs(node: Any, secret_name: str) -> Iterator[tuple[str | None, bool]]:
    """(key, optional) of every reference to the Secret; key None for the whole Secret."""
    if isinstance(node, list):
        for item in node:
            yield from _secret_refs(item, secret_name)
        return
    if not isinstance(node, dict):
        return
    for field, value in node.items():
        if field in ("secretKeyRef", "secretRef") and isinstance(value, dict):
            # env[].valueFrom.secretKeyRef (one key), envFrom[].secretRef (all keys)
            if value.get("name") == secret_name:
                yield value.get("key"), bool(value.get("optional", False))
        elif field == "secretTargetRef" and isinstance(value, list):
            # KEDA TriggerAuthentication: [{parameter, name, key}]
            for ref in value:
                if isinstance(ref, dict) and ref.get("name") == secret_name:
                    yield ref.get("key"), False
        elif field == "secret" and isinstance(value, dict) and "secretName" in value:
            if value["secretName"] == secret_name:  # a secret volume
                yield None, bool(value.get("optional", False))
        else:
            yield from _secret_refs(value, secret_name)


def _check_inputs(
    objects: Sequence[ManifestObject], config: DeploymentConfig, args: AgentDeploymentArgs
) -> None:
    """Refuse manifests synthesized from another config, and Secret keys nobody provides."""
    k8s_config = _kubernetes(config)
    namespace = k8s_config.namespace
    problems = []
    namespaces = {o.name for o in objects if o.kind == "Namespace"}
    if namespaces != {namespace}:
        problems.append(f"Namespace objects {sorted(namespaces)}, expected [{namespace!r}]")
    for obj in objects:
        if obj.kind in _CLUSTER_SCOPED_KINDS:
            continue
        if obj.namespace != namespace:
            problems.append(f"{obj}: namespace {obj.namespace!r}, expected {namespace!r}")
        if (obj.api_version, obj.kind) not in _TYPED_KINDS and obj.group not in _CUSTOM_GROUPS:
            problems.append(f"{obj}: {obj.api_version} {obj.kind} is not a kind this program knows")
        if obj.kind == "Secret" and obj.name == k8s_config.secret_name:
            problems.append(f"{obj}: the Secret's values belong in Pulumi config, not in git")
        extra = set(obj.body) - {"apiVersion", "kind", "metadata", "spec"}
        if obj.group in _CUSTOM_GROUPS and extra:  # CustomResource takes metadata and spec only
            problems.append(f"{obj}: top-level fields {sorted(extra)} would be dropped")
    names = {(o.kind, o.name) for o in objects}
    if ("Service", _service_name(config)) not in names:
        problems.append(f"no Service {_service_name(config)!r}")
    hosts = {
        rule.get("host")
        for o in objects
        if o.kind == "Ingress"
        for rule in o.body.get("spec", {}).get("rules", [])
    }
    ingress = k8s_config.ingress
    if ingress is not None and ingress.host not in hosts:
        problems.append(f"no Ingress for host {ingress.host!r}")
    if ingress is None and hosts:
        problems.append(f"an Ingress for {sorted(h for h in hosts if h)}, but none in the config")
    if config.k8s_llm_key_secret_arn is not None:
        problems += [
            f"{obj}: reads key {defaults.SECRET_KEY_LLM_API_KEY!r} of the Secret, but the config "
            f"reads the LLM key by ARN (kubernetes.aws.llm_api_key_secret_arn)"
            for obj in objects
            if any(
                key == defaults.SECRET_KEY_LLM_API_KEY
                for key, _ in _secret_refs(obj.body, k8s_config.secret_name)
            )
        ]
    if problems:
        raise DeployInputError(
            "\n".join(
                [f"{_shown(args.manifests_dir)} does not match config {config.name}:"]
                + [f"  {problem}" for problem in problems]
                + [f"{_resynth_hint(args.manifests_dir)}"]
            )
        )
    provided = args.secrets.string_data()
    for obj in objects:
        for key, optional in _secret_refs(obj.body, k8s_config.secret_name):
            if key is None or optional or key in provided:
                continue
            setting = SECRET_CONFIG_KEYS.get(key)
            how = (
                f"set it with `pulumi config set --secret {setting}`"
                if setting
                else "this program does not create that key"
            )
            raise DeployInputError(
                f"{obj} reads key {key!r} of Secret {k8s_config.secret_name!r}, but it has no "
                f"value: {how}"
            )


def _vpa_values(objects: Sequence[ManifestObject]) -> dict[str, Any]:
    """The Fairwinds chart's components: only those the VPA objects' update modes need."""
    modes = {
        str(o.body.get("spec", {}).get("updatePolicy", {}).get("updateMode", "Auto"))
        for o in objects
        if o.group == VPA_GROUP
    }
    return {
        "recommender": {"enabled": True},
        "admissionController": {"enabled": bool(modes & _VPA_ADMISSION_MODES)},
        "updater": {"enabled": bool(modes & _VPA_UPDATER_MODES)},
    }


def _keda_values(role_arn: str | None) -> dict[str, Any]:
    """KEDA's chart: the operator's ServiceAccount gets the IRSA role, when there is one."""
    if role_arn is None:
        return {}
    return {"podIdentity": {"aws": {"irsa": {"enabled": True, "roleArn": role_arn}}}}


def _uses_aws_pod_identity(objects: Sequence[ManifestObject]) -> bool:
    return any(
        o.group == KEDA_GROUP
        and o.body.get("spec", {}).get("podIdentity", {}).get("provider") == "aws"
        for o in objects
    )


def _snake_case(field: str) -> str:
    """A top-level manifest field as the typed classes' keyword (automountServiceAccountToken ->
    automount_service_account_token). Nested fields keep the manifest's camelCase: the provider
    takes them as they are, as it does for yaml.ConfigGroup."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", field).lower()


class AgentDeployment(pulumi.ComponentResource):
    """KEDA and the VPA (Helm), the Secret, and every object of one env's synthesized manifests.

    Outputs: ``namespace`` and ``endpoint`` (see :func:`service_endpoint`). ``resources`` maps
    ``"<kind> <namespace>/<name>"`` to the Pulumi resource of each manifest object.
    """

    namespace: pulumi.Output[str]
    endpoint: pulumi.Output[str]

    def __init__(
        self, name: str, args: AgentDeploymentArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        # Every input is checked before anything is registered: a bad one leaves no half-made
        # component behind, and its error names the file and the fix.
        k8s_config = _kubernetes(args.config)
        objects = load_manifests(args.manifests_dir)
        _check_inputs(objects, args.config, args)
        super().__init__(COMPONENT_TYPE, name, None, opts)
        self._prefix = name

        # A Helm Release is one custom resource that completes only when the chart (CRDs
        # included) is installed, so depends_on it orders the custom resources after their
        # CRDs. A helm.v3.Chart or yaml.v2.ConfigGroup is a component; depending on it did not
        # wait for its children (pulumi/pulumi-kubernetes#861), and a Release's CRDs were
        # unknown to the provider at preview (#3176, addressed by #4417).
        self.keda = kubernetes.helm.v3.Release(
            f"{name}-keda",
            kubernetes.helm.v3.ReleaseArgs(
                name=KEDA_CHART,
                chart=KEDA_CHART,
                version=args.keda_version,
                repository_opts=kubernetes.helm.v3.RepositoryOptsArgs(repo=KEDA_CHART_REPO),
                namespace=KEDA_NAMESPACE,
                create_namespace=True,
                values=_keda_values(args.keda_operator_role_arn),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        if _uses_aws_pod_identity(objects) and args.keda_operator_role_arn is None:
            pulumi.log.warn(
                "a TriggerAuthentication uses AWS pod identity, but kedaOperatorRoleArn is unset: "
                "KEDA's operator has no IAM role to read the queue (or assume the worker's role) "
                "unless its nodes grant one; set it with `pulumi config set kedaOperatorRoleArn`",
                resource=self,
            )
        has_vpa_objects = any(o.group == VPA_GROUP for o in objects)
        self.vpa: kubernetes.helm.v3.Release | None = None
        if has_vpa_objects and args.install_vpa:
            self.vpa = kubernetes.helm.v3.Release(
                f"{name}-vpa",
                kubernetes.helm.v3.ReleaseArgs(
                    name=VPA_CHART,
                    chart=VPA_CHART,
                    version=VPA_CHART_VERSION,
                    repository_opts=kubernetes.helm.v3.RepositoryOptsArgs(repo=VPA_CHART_REPO),
                    namespace=VPA_NAMESPACE,
                    create_namespace=True,
                    values=_vpa_values(objects),
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        elif has_vpa_objects:
            pulumi.log.warn(
                "installVpa is false: the VerticalPodAutoscaler objects are skipped (their CRD "
                "would be missing at apply); install the VPA and set installVpa true to add them",
                resource=self,
            )

        # The Namespace first: every namespaced object, the Secret included, depends on it.
        self.resources: dict[str, pulumi.CustomResource] = {}
        namespaces = {
            o.name: self._register(o, depends_on=[]) for o in objects if o.kind == "Namespace"
        }
        namespace_resource = namespaces[k8s_config.namespace]
        self.secret = kubernetes.core.v1.Secret(
            f"{name}-secret",
            metadata={
                "name": k8s_config.secret_name,
                "namespace": k8s_config.namespace,
                "labels": {
                    "app.kubernetes.io/part-of": defaults.PART_OF,
                    "app.kubernetes.io/managed-by": "pulumi",
                },
            },
            type="Opaque",
            # string_data from config secrets: Pulumi keeps them secret in the inputs and the
            # state; the Secret class also marks data/stringData as secret outputs.
            string_data=args.secrets.string_data(),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[namespace_resource],
                additional_secret_outputs=["data", "stringData"],
            ),
        )
        for obj in objects:
            if obj.kind == "Namespace" or (obj.group == VPA_GROUP and self.vpa is None):
                continue
            depends_on: list[pulumi.Resource] = [namespace_resource]
            if obj.group == KEDA_GROUP:
                depends_on.append(self.keda)
            if obj.group == VPA_GROUP and self.vpa is not None:
                depends_on.append(self.vpa)
            if obj.kind in WORKLOAD_KINDS or any(_secret_refs(obj.body, k8s_config.secret_name)):
                depends_on.append(self.secret)
            self._register(obj, depends_on=depends_on)

        # The config's namespace, which the check above found in the manifests; through the
        # Namespace's URN, so the output carries the dependency on it.
        self.namespace = namespace_resource.urn.apply(lambda _: k8s_config.namespace)
        self.endpoint = pulumi.Output.from_input(service_endpoint(args.config))
        self.register_outputs({"namespace": self.namespace, "endpoint": self.endpoint})

    def _register(
        self, obj: ManifestObject, *, depends_on: list[pulumi.Resource]
    ) -> pulumi.CustomResource:
        where = f"{obj.namespace}/{obj.name}" if obj.namespace else obj.name
        resource_name = f"{self._prefix}:{where}"
        opts = pulumi.ResourceOptions(parent=self, depends_on=depends_on)
        fields = {k: v for k, v in obj.body.items() if k not in ("apiVersion", "kind")}
        resource: pulumi.CustomResource
        if obj.group in _CUSTOM_GROUPS:
            resource = kubernetes.apiextensions.CustomResource(
                resource_name,
                api_version=obj.api_version,
                kind=obj.kind,
                metadata=fields["metadata"],
                spec=fields.get("spec"),
                opts=opts,
            )
        else:
            typed = _TYPED_KINDS[(obj.api_version, obj.kind)]
            resource = typed(
                resource_name, opts=opts, **{_snake_case(k): v for k, v in fields.items()}
            )
        self.resources[f"{obj.kind} {where}"] = resource
        return resource
