"""The Pulumi program (k8s/deploy) under Pulumi's mocks: no cluster, no Pulumi CLI.

One mocks run for the module (the ``deployed`` fixture) builds every deployment in one program:
``dev`` from config/dev.yaml over fixture manifests written here (Ingress with TLS, VPA
installed), ``lean`` from a Bedrock config without an Ingress and with installVpa false, and, when
``make synth`` has written them, the committed manifests: dev through ``__main__.py`` itself (as
Pulumi runs it), prod through the component. A recording monitor keeps every RegisterResource
request as the engine gets it: type, name, parent, dependencies (depends_on included) and the
serialized inputs, secrets still wrapped.
"""

from __future__ import annotations

import copy
import json
import logging
import runpy
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

from config.loader import CONFIG_DIR, load_config
from config.model import DeploymentConfig
from k8s.deploy import agent_stack
from k8s.deploy.agent_stack import (
    COMPONENT_TYPE,
    KEDA_CHART_VERSION,
    VPA_CHART_VERSION,
    AgentDeployment,
    AgentDeploymentArgs,
    AgentSecrets,
    DeployInputError,
    ManifestsMissingError,
    args_from_pulumi_config,
    load_manifests,
    manifests_dir,
    service_endpoint,
)
from k8s.lib import defaults

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "k8s" / "deploy"
REAL_DEV_MANIFESTS = manifests_dir("dev")
REAL_PROD_MANIFESTS = manifests_dir("prod")
PROJECT = "agent-k8s"
KEDA_ROLE_ARN = "arn:aws:iam::123456789012:role/agent-dev-keda-operator"
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
SECRET_TYPE = "kubernetes:core/v1:Secret"
# The groups of the custom resources: KEDA's and the VPA's CRDs, each installed by a Helm release.
CUSTOM_GROUPS = {"keda.sh", "autoscaling.k8s.io"}
# Kinds that run pods, which may read the Secret.
WORKLOADS = {"Deployment", "Job", "CronJob", "ScaledJob"}
# Stand-in secret values: distinctive, so a leak anywhere is found by a plain substring search.
SECRET_VALUES = {
    "serviceAuthToken": "svc-token-3f9a61c2",
    "redisPassword": "redis-pw-77c1d0e4",
    "llmApiKey": "llm-key-b2e05a93",
}


# --- fixture manifests, shaped like the charts' (k8s/charts) ------------------------------------


def obj(api_version: str, kind: str, name: str, namespace: str, **fields: Any) -> dict[str, Any]:
    metadata = {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": name}}
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields}


def pod_template(secret: str, *, keys: list[str], env_from: bool = False) -> dict[str, Any]:
    """A pod reading ``keys`` of the Secret one by one (env) or all of it (envFrom)."""
    env: list[dict[str, Any]] = [{"name": "TASK_LIST", "value": "agent-tasks"}]
    for key in keys:
        ref = {"secretKeyRef": {"name": secret, "key": key}}
        env.append({"name": key.upper().replace("-", "_"), "valueFrom": ref})
    container: dict[str, Any] = {
        "name": "agent",
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent:0.1.0",
        "env": env,
        "securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True},
    }
    if env_from:
        container["envFrom"] = [{"secretRef": {"name": secret}}]
    return {
        "metadata": {"labels": {"app.kubernetes.io/name": "agent"}},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 45,
            "containers": [container],
        },
    }


def fixture_manifests(config: DeploymentConfig) -> dict[str, list[dict[str, Any]]]:
    """File name -> documents of ``kubernetes/`` for one config, shaped like k8s/charts' output."""
    k8s = config.kubernetes
    assert k8s is not None
    ns, secret = k8s.namespace, k8s.secret_name
    svc, worker = f"{config.name}-service", f"{config.name}-worker"
    keys = [defaults.SECRET_KEY_REDIS_PASSWORD, defaults.SECRET_KEY_SERVICE_AUTH_TOKEN]
    # As the charts: no llm-api-key where the pods read the key by ARN.
    if config.llm.provider == "openai-compatible" and k8s.aws.llm_api_key_secret_arn is None:
        keys.append(defaults.SECRET_KEY_LLM_API_KEY)
    selector = {"matchLabels": {"app.kubernetes.io/name": svc}}
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": svc}
    service = [
        obj("v1", "ServiceAccount", svc, ns, automountServiceAccountToken=False),
        obj("apps/v1", "Deployment", svc, ns, spec={
            "selector": selector, "revisionHistoryLimit": 5,
            "template": pod_template(secret, keys=keys)}),
        obj("v1", "Service", svc, ns, spec={
            "type": "ClusterIP", "selector": selector["matchLabels"],
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}),
    ]  # fmt: skip
    if k8s.ingress is not None:
        backend = {"service": {"name": svc, "port": {"name": "http"}}}
        path = {"path": "/", "pathType": "Prefix", "backend": backend}
        spec: dict[str, Any] = {
            "ingressClassName": k8s.ingress.class_name,
            "rules": [{"host": k8s.ingress.host, "http": {"paths": [path]}}],
        }
        if k8s.ingress.tls_secret_name:
            tls = {"hosts": [k8s.ingress.host], "secretName": k8s.ingress.tls_secret_name}
            spec["tls"] = [tls]
        service.append(obj("networking.k8s.io/v1", "Ingress", svc, ns, spec=spec))
    service += [
        obj("policy/v1", "PodDisruptionBudget", svc, ns,
            spec={"maxUnavailable": 1, "selector": selector}),
        obj("networking.k8s.io/v1", "NetworkPolicy", svc, ns,
            spec={"podSelector": selector, "policyTypes": ["Ingress", "Egress"]}),
        obj("autoscaling/v2", "HorizontalPodAutoscaler", svc, ns,
            spec={"scaleTargetRef": target, "minReplicas": 1, "maxReplicas": 3}),
        obj("autoscaling.k8s.io/v1", "VerticalPodAutoscaler", svc, ns, spec={
            "targetRef": target, "updatePolicy": {"updateMode": k8s.service.vpa_mode}}),
    ]  # fmt: skip
    redis_auth = {"parameter": "password", "name": secret, "key": keys[0]}
    trigger = {"type": "redis", "metadata": {"listName": "agent-tasks"},
               "authenticationRef": {"name": worker}}  # fmt: skip
    workers = [
        obj("v1", "ServiceAccount", worker, ns),
        obj("apps/v1", "Deployment", worker, ns, spec={
            "selector": {"matchLabels": {"app.kubernetes.io/name": worker}},
            "template": pod_template(secret, keys=[], env_from=True)}),
        obj("keda.sh/v1alpha1", "TriggerAuthentication", worker, ns, spec={
            "secretTargetRef": [redis_auth],
            "podIdentity": {"provider": "aws", "identityOwner": "workload"}}),
        obj("keda.sh/v1alpha1", "ScaledObject", worker, ns, spec={
            "scaleTargetRef": {"name": worker}, "pollingInterval": 5, "minReplicaCount": 0,
            "triggers": [trigger]}),
    ]  # fmt: skip
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": ns, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    }
    # Underscored and dotted keys: user data, which must reach the cluster untranslated.
    config_map = obj("v1", "ConfigMap", worker, ns, data={"task_list": "t", "max.iterations": "6"})
    return {
        # Sorts before agent-namespace: the Namespace must still be registered first.
        "agent-config.k8s.yaml": [config_map],
        "agent-namespace.k8s.yaml": [namespace],
        "agent-service.k8s.yaml": service,
        "agent-worker.k8s.yaml": workers,
    }


KNATIVE_SERVICE = {
    "apiVersion": "serving.knative.dev/v1",
    "kind": "Service",
    "metadata": {"name": "agent-service"},
    "spec": {"template": {"spec": {"containers": [{"image": "agent"}]}}},
}


def write_dist(dist_root: Path, env: str, config: DeploymentConfig) -> Path:
    """Write ``dist_root/<env>/kubernetes/`` (and a cloud-run/ beside it); return the former."""
    folder = manifests_dir(env, dist_root)
    folder.mkdir(parents=True)
    for file_name, docs in fixture_manifests(config).items():
        (folder / file_name).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    cloud_run = folder.parent / "cloud-run"
    cloud_run.mkdir()
    (cloud_run / "agent-service.k8s.yaml").write_text(yaml.safe_dump(KNATIVE_SERVICE))
    return folder


def lean_config_dir(tmp: Path) -> Path:
    """config/dev.yaml made lean: Bedrock (no LLM key), no Ingress, its own name and namespace."""
    raw = yaml.safe_load((CONFIG_DIR / "dev.yaml").read_text())
    raw["name"] = "agent-lean"
    raw["llm"] = {"provider": "bedrock", "model_id": "anthropic.claude-3-5-haiku-20241022-v1:0"}
    raw["kubernetes"]["namespace"] = "agent-lean"
    del raw["kubernetes"]["ingress"]
    (tmp / "lean.yaml").write_text(yaml.safe_dump(raw))
    return tmp


def parse_independently(folder: Path) -> list[dict[str, Any]]:
    """The objects in ``folder``, read without agent_stack: what every test compares against."""
    docs = []
    for path in sorted(folder.glob("*.k8s.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def type_token(doc: dict[str, Any]) -> str:
    group_version = doc["apiVersion"] if "/" in doc["apiVersion"] else f"core/{doc['apiVersion']}"
    return f"kubernetes:{group_version}:{doc['kind']}"


# --- the mocks run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    urn: str
    type: str
    name: str
    parent: str
    dependencies: list[str]
    # As the mocks see them: deserialized, a secret inside a map marks the whole map secret.
    inputs: dict[str, Any]
    # As sent to the engine: the protobuf Struct as plain data, secret wrappers where they were.
    raw: dict[str, Any]
    additional_secret_outputs: list[str]

    @property
    def group(self) -> str:
        return str(self.inputs.get("apiVersion", "")).rpartition("/")[0]


def _plain(value: Any) -> Any:
    """A protobuf Struct as plain Python, nothing unwrapped (MessageToDict, without protobuf's
    untyped module)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if hasattr(value, "fields"):  # a Struct (a ListValue has values instead)
        return {key: _plain(item) for key, item in value.items()}
    return [_plain(item) for item in value]


class RecordingMonitor(MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # also gives this thread an event loop
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(
                Registration(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    parent=request.parent,
                    dependencies=list(request.dependencies),
                    inputs=rpc.deserialize_properties(request.object),
                    raw=_plain(request.object),
                    additional_secret_outputs=list(request.additionalSecretOutputs),
                )
            )
        return response


class Mocks(pulumi.runtime.Mocks):
    def new_resource(
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise AssertionError(f"unexpected provider call {args.token}")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname} {record.getMessage()}")


@dataclass
class Deployed:
    registrations: list[Registration]
    components: dict[str, AgentDeployment]
    outputs: dict[str, dict[str, Any]]
    logs: list[str]
    dist: dict[str, Path]
    main_ran: bool = False
    exports: dict[str, Any] = field(default_factory=dict)
    # args_from_pulumi_config's result per scenario (a scenario may have no component).
    args: dict[str, AgentDeploymentArgs] = field(default_factory=dict)

    def children(self, scenario: str) -> list[Registration]:
        parent = self.component(scenario).urn
        return [r for r in self.registrations if r.parent == parent]

    def component(self, scenario: str) -> Registration:
        name = "agent-dev" if scenario == "main" else scenario
        (found,) = [r for r in self.registrations if r.type == COMPONENT_TYPE and r.name == name]
        return found

    def manifest_children(self, scenario: str) -> list[Registration]:
        return [r for r in self.children(scenario) if r.type not in (RELEASE_TYPE, SECRET_TYPE)]

    def one(self, scenario: str, type_: str, suffix: str = "") -> Registration:
        (found,) = [
            r for r in self.children(scenario) if r.type == type_ and r.name.endswith(suffix)
        ]
        return found


def _set_stack_config(values: dict[str, str]) -> None:
    secret_keys = [f"{PROJECT}:{key}" for key in SECRET_VALUES]
    pulumi.runtime.set_all_config(
        {f"{PROJECT}:{key}": value for key, value in values.items()}, secret_keys
    )


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    tmp = tmp_path_factory.mktemp("pulumi")
    lean_dir = lean_config_dir(tmp_path_factory.mktemp("config"))
    dist = {
        "dev": write_dist(tmp / "dist", "dev", load_config("dev")),
        "lean": write_dist(tmp / "dist", "lean", load_config("lean", config_dir=lean_dir)),
    }
    monitor = RecordingMonitor(Mocks())
    logger = logging.getLogger("tests.k8s.pulumi_mocks")
    logger.propagate = False
    handler = _Collect()
    logger.addHandler(handler)
    pulumi.runtime.set_mocks(
        monitor.mocks, project=PROJECT, stack="dev", preview=False, logger=logger, monitor=monitor
    )
    components: dict[str, AgentDeployment] = {}
    outputs: dict[str, dict[str, Any]] = {}
    exports: dict[str, Any] = {}
    main_ran = REAL_DEV_MANIFESTS.is_dir()

    stack_args: dict[str, AgentDeploymentArgs] = {}

    async def resolve() -> None:
        for scenario, component in components.items():
            secrets = stack_args[scenario].secrets if scenario in stack_args else None
            outputs[scenario] = {
                "config_secrets_are_secret": {
                    name: await pulumi.Output.from_input(getattr(secrets, name)).is_secret()
                    for name in ("service_auth_token", "redis_password", "llm_api_key")
                    if secrets is not None and getattr(secrets, name) is not None
                },
                "namespace": await component.namespace.future(),
                "endpoint": await component.endpoint.future(),
                "secret_is_secret": await component.secret.string_data.is_secret(),
                "namespace_is_secret": await component.namespace.is_secret(),
            }
        for key, value in list(exports.items()):
            exports[key] = await pulumi.Output.from_input(value).future()

    def program() -> pulumi.Output[None]:
        all_secrets = {"env": "dev", "kedaOperatorRoleArn": KEDA_ROLE_ARN, **SECRET_VALUES}
        _set_stack_config(all_secrets)
        stack_args["dev"] = args_from_pulumi_config(pulumi.Config(), dist_root=tmp / "dist")
        components["dev"] = AgentDeployment("dev", stack_args["dev"])
        if main_ran:
            # __main__.py as Pulumi runs it, over the committed manifests and the same config.
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(pulumi, "export", exports.__setitem__)
                main = runpy.run_path(str(DEPLOY_DIR / "__main__.py"), run_name="__main__")
            components["main"] = main["agent"]
        # prod reads the LLM key by ARN: llmApiKey is left out of the Secret (with a warning)
        # when set, and not required when unset.
        _set_stack_config({**all_secrets, "env": "prod"})
        stack_args["prod"] = args_from_pulumi_config(pulumi.Config())
        if REAL_PROD_MANIFESTS.is_dir():
            components["prod"] = AgentDeployment("prod", stack_args["prod"])
        without_llm_key = {k: v for k, v in all_secrets.items() if k != "llmApiKey"}
        _set_stack_config({**without_llm_key, "env": "prod"})
        stack_args["prod-without-llm-key"] = args_from_pulumi_config(pulumi.Config())
        lean = {
            k: v for k, v in all_secrets.items() if k not in ("llmApiKey", "kedaOperatorRoleArn")
        }
        _set_stack_config({**lean, "env": "lean", "installVpa": "false"})
        stack_args["lean"] = args_from_pulumi_config(
            pulumi.Config(), config_dir=lean_dir, dist_root=tmp / "dist"
        )
        components["lean"] = AgentDeployment("lean", stack_args["lean"])
        return pulumi.Output.from_input(resolve())

    try:
        # Pulumi's documented test runner: runs the program, then waits for every registration
        # and for the returned output.
        pulumi.runtime.test(program)()
    finally:
        logger.removeHandler(handler)
    yield Deployed(
        registrations=monitor.registrations,
        components=components,
        outputs=outputs,
        logs=handler.messages,
        dist=dist,
        main_ran=main_ran,
        exports=exports,
        args=stack_args,
    )


# --- (a) every manifest object, exactly once, as it is in the YAML --------------------------------


def assert_registers_every_object(deployed: Deployed, scenario: str, folder: Path) -> None:
    expected = parse_independently(folder)
    if scenario == "lean":  # installVpa false
        expected = [d for d in expected if not d["apiVersion"].startswith("autoscaling.k8s.io/")]

    def key(type_: str, body: dict[str, Any]) -> tuple[str, str | None, str]:
        return type_, body["metadata"].get("namespace"), body["metadata"]["name"]

    children = deployed.manifest_children(scenario)
    seen = Counter(key(r.type, r.inputs) for r in children)
    assert seen == Counter(key(type_token(doc), doc) for doc in expected)
    assert set(seen.values()) == {1}, "an object was registered twice"
    by_key = {key(r.type, r.inputs): r for r in children}
    for doc in expected:
        # Exactly the manifest: every field, no key translated (ints arrive as floats; equal).
        assert by_key[key(type_token(doc), doc)].inputs == doc
    # Pulumi identifies a resource by its URN (type and name): each is unique.
    assert len({r.urn for r in children}) == len(children)
    # Construction order (the engine's requests arrive as dependencies resolve): the Namespace
    # first, as everything in it depends on it, then file and document order.
    expected.sort(key=lambda doc: doc["kind"] != "Namespace")
    assert list(deployed.components[scenario].resources) == [resource_key(d) for d in expected]


def resource_key(doc: dict[str, Any]) -> str:
    """``AgentDeployment.resources``' key: "<kind> <namespace>/<name>" (no namespace: "<name>")."""
    namespace, name = doc["metadata"].get("namespace"), doc["metadata"]["name"]
    return f"{doc['kind']} {namespace}/{name}" if namespace else f"{doc['kind']} {name}"


def test_registers_every_fixture_object_once_in_order(deployed: Deployed) -> None:
    assert_registers_every_object(deployed, "dev", deployed.dist["dev"])
    assert_registers_every_object(deployed, "lean", deployed.dist["lean"])


def test_child_names_are_namespaced_and_prefixed_with_the_component(deployed: Deployed) -> None:
    namespace = deployed.one("dev", "kubernetes:core/v1:Namespace")
    assert namespace.name == "dev:agent-dev"
    deployment = deployed.one("dev", "kubernetes:apps/v1:Deployment", "-service")
    assert deployment.name == "dev:agent-dev/agent-dev-service"
    assert deployed.components["dev"].resources.keys() >= {
        "Namespace agent-dev",
        "ScaledObject agent-dev/agent-dev-worker",
    }


def test_knative_service_for_cloud_run_is_never_registered(deployed: Deployed) -> None:
    assert (deployed.dist["dev"].parent / "cloud-run" / "agent-service.k8s.yaml").is_file()
    assert not [r for r in deployed.registrations if "knative" in r.type]


@pytest.mark.skipif(
    not REAL_DEV_MANIFESTS.is_dir(),
    reason=f"{REAL_DEV_MANIFESTS.relative_to(REPO_ROOT)} is absent: run `make synth` to write it",
)
def test_main_registers_every_committed_dev_object(deployed: Deployed) -> None:
    assert deployed.main_ran
    assert_registers_every_object(deployed, "main", REAL_DEV_MANIFESTS)
    assert not [r for r in deployed.registrations if "serving.knative.dev" in r.type]
    assert_custom_resources_wait_for_their_release(deployed, "main", CUSTOM_GROUPS)
    assert_workloads_wait_for_the_secret(deployed, "main")
    config = load_config("dev")
    assert deployed.exports == {
        "namespace": config.kubernetes.namespace if config.kubernetes else None,
        "endpoint": service_endpoint(config),
    }


@pytest.mark.skipif(
    not REAL_PROD_MANIFESTS.is_dir(),
    reason=f"{REAL_PROD_MANIFESTS.relative_to(REPO_ROOT)} is absent: run `make synth` to write it",
)
def test_registers_every_committed_prod_object(deployed: Deployed) -> None:
    assert_registers_every_object(deployed, "prod", REAL_PROD_MANIFESTS)
    assert_custom_resources_wait_for_their_release(deployed, "prod", CUSTOM_GROUPS)
    assert_workloads_wait_for_the_secret(deployed, "prod")
    # config/prod.yaml: vpa_mode Initial, so the VPA's admission controller sizes new pods.
    vpa = deployed.one("prod", RELEASE_TYPE, "-vpa").inputs["values"]
    assert vpa["admissionController"] == {"enabled": True}
    assert vpa["updater"] == {"enabled": False}


# --- (b) ordering: the CRDs' releases, the Namespace, the Secret ---------------------------------


def assert_custom_resources_wait_for_their_release(
    deployed: Deployed, scenario: str, groups: set[str]
) -> None:
    releases = {
        r.inputs["chart"]: r.urn for r in deployed.children(scenario) if r.type == RELEASE_TYPE
    }
    custom = [r for r in deployed.manifest_children(scenario) if r.group in CUSTOM_GROUPS]
    assert {r.group for r in custom} == groups
    for registration in custom:
        chart = "keda" if registration.group == "keda.sh" else "vpa"
        assert releases[chart] in registration.dependencies, registration.name
    # The releases install nothing in the agent's namespace; built-in objects never wait for them.
    for registration in deployed.manifest_children(scenario):
        if registration not in custom:
            assert not set(releases.values()) & set(registration.dependencies), registration.name


def test_every_custom_resource_depends_on_the_release_that_installs_its_crd(
    deployed: Deployed,
) -> None:
    assert_custom_resources_wait_for_their_release(deployed, "dev", CUSTOM_GROUPS)
    assert_custom_resources_wait_for_their_release(deployed, "lean", {"keda.sh"})


def test_namespaced_objects_and_the_secret_depend_on_the_namespace(deployed: Deployed) -> None:
    namespace = deployed.one("dev", "kubernetes:core/v1:Namespace")
    namespaced = [r for r in deployed.children("dev") if r.type != RELEASE_TYPE and r != namespace]
    assert len(namespaced) > 10
    for registration in namespaced:
        assert namespace.urn in registration.dependencies, registration.name


def assert_workloads_wait_for_the_secret(deployed: Deployed, scenario: str) -> None:
    secret = deployed.one(scenario, SECRET_TYPE)
    workloads = [r for r in deployed.manifest_children(scenario) if r.inputs["kind"] in WORKLOADS]
    assert workloads
    for registration in workloads:
        assert secret.urn in registration.dependencies, registration.name


def test_workloads_and_secret_readers_depend_on_the_secret(deployed: Deployed) -> None:
    assert_workloads_wait_for_the_secret(deployed, "dev")
    secret = deployed.one("dev", SECRET_TYPE)
    waiting = {
        (r.inputs["kind"], r.name)
        for r in deployed.manifest_children("dev")
        if secret.urn in r.dependencies
    }
    assert waiting == {
        ("Deployment", "dev:agent-dev/agent-dev-service"),  # secretKeyRef
        ("Deployment", "dev:agent-dev/agent-dev-worker"),  # envFrom secretRef
        ("TriggerAuthentication", "dev:agent-dev/agent-dev-worker"),  # secretTargetRef
    }


def test_releases_are_pinned_and_sized_for_the_vpa_modes(deployed: Deployed) -> None:
    keda = deployed.one("dev", RELEASE_TYPE, "-keda").inputs
    assert (keda["chart"], keda["version"], keda["namespace"]) == (
        "keda",
        KEDA_CHART_VERSION,
        "keda",
    )
    assert keda["repositoryOpts"] == {"repo": "https://kedacore.github.io/charts"}
    assert keda["createNamespace"] is True
    # The worker's TriggerAuthentication uses AWS pod identity: KEDA's operator gets its role.
    irsa = {"enabled": True, "roleArn": KEDA_ROLE_ARN}
    assert keda["values"] == {"podIdentity": {"aws": {"irsa": irsa}}}
    vpa = deployed.one("dev", RELEASE_TYPE, "-vpa").inputs
    assert (vpa["chart"], vpa["version"]) == ("vpa", VPA_CHART_VERSION)
    # config/dev.yaml: vpa_mode Off -> recommendations only, no webhook, no evictions.
    assert vpa["values"] == {
        "recommender": {"enabled": True},
        "admissionController": {"enabled": False},
        "updater": {"enabled": False},
    }


def test_install_vpa_false_skips_the_vpa_with_a_warning(deployed: Deployed) -> None:
    assert [r.inputs["chart"] for r in deployed.children("lean") if r.type == RELEASE_TYPE] == [
        "keda"
    ]
    assert not [r for r in deployed.children("lean") if r.group == "autoscaling.k8s.io"]
    warnings = [m for m in deployed.logs if m.startswith("WARNING") and "installVpa" in m]
    assert len(warnings) == 1, deployed.logs


def test_aws_pod_identity_without_a_keda_role_is_warned_about(deployed: Deployed) -> None:
    lean_keda = deployed.one("lean", RELEASE_TYPE, "-keda").inputs
    assert "values" not in lean_keda or lean_keda["values"] == {}
    warnings = [m for m in deployed.logs if "kedaOperatorRoleArn" in m]
    assert len(warnings) == 1 and warnings[0].startswith("WARNING"), deployed.logs


def test_vpa_components_follow_the_update_modes() -> None:
    def values(mode: str) -> dict[str, Any]:
        spec = {"updatePolicy": {"updateMode": mode}}
        doc = obj("autoscaling.k8s.io/v1", "VerticalPodAutoscaler", "v", "n", spec=spec)
        return agent_stack._vpa_values([agent_stack.ManifestObject(Path("x"), 0, doc)])

    assert values("Initial")["admissionController"] == {"enabled": True}
    assert values("Initial")["updater"] == {"enabled": False}
    assert values("Recreate")["updater"] == {"enabled": True}


# --- (c) the Secret ----------------------------------------------------------------------------


def _without_secrets(value: Any) -> Any:
    """``value`` with every secret-wrapped part removed."""
    if rpc.is_rpc_secret(value):
        return "[secret]"
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def test_secret_holds_the_config_secrets_as_secrets(deployed: Deployed) -> None:
    secret = deployed.one("dev", SECRET_TYPE)
    assert secret.inputs["metadata"]["name"] == "agent-secrets"
    assert secret.inputs["metadata"]["namespace"] == "agent-dev"
    # Sent to the engine as a secret (the SDK wraps the whole map once any value is secret), and
    # every value read from the stack's config is a secret on its own, so none depends on that.
    assert rpc.is_rpc_secret(secret.raw["stringData"]), "stringData sent in clear text"
    assert deployed.outputs["dev"]["config_secrets_are_secret"] == {
        "service_auth_token": True,
        "redis_password": True,
        "llm_api_key": True,
    }
    assert rpc.unwrap_rpc_secret(secret.inputs["stringData"]) == {
        defaults.SECRET_KEY_SERVICE_AUTH_TOKEN: SECRET_VALUES["serviceAuthToken"],
        defaults.SECRET_KEY_REDIS_PASSWORD: SECRET_VALUES["redisPassword"],
        defaults.SECRET_KEY_LLM_API_KEY: SECRET_VALUES["llmApiKey"],
    }
    assert {"data", "stringData"} <= set(secret.additional_secret_outputs)
    assert deployed.outputs["dev"]["secret_is_secret"] is True
    # Bedrock: no LLM key in the Secret, and none was asked for.
    lean = rpc.unwrap_rpc_secret(deployed.one("lean", SECRET_TYPE).inputs["stringData"])
    assert set(lean) == {defaults.SECRET_KEY_SERVICE_AUTH_TOKEN, defaults.SECRET_KEY_REDIS_PASSWORD}


def test_with_the_llm_key_by_arn_the_secret_holds_no_llm_key(deployed: Deployed) -> None:
    prod = load_config("prod")
    assert prod.kubernetes is not None and prod.kubernetes.aws.llm_api_key_secret_arn
    # llmApiKey set: left out, with one warning naming the setting and how to remove it.
    assert deployed.args["prod"].secrets.llm_api_key is None
    warnings = [m for m in deployed.logs if "llmApiKey" in m]
    assert len(warnings) == 1 and warnings[0].startswith("WARNING"), deployed.logs
    assert "pulumi config rm llmApiKey" in warnings[0]
    # llmApiKey unset: not required (require_secret would have raised).
    without = deployed.args["prod-without-llm-key"].secrets
    assert without.llm_api_key is None
    assert set(without.string_data()) == {
        defaults.SECRET_KEY_SERVICE_AUTH_TOKEN,
        defaults.SECRET_KEY_REDIS_PASSWORD,
    }
    if "prod" in deployed.components:
        # The committed prod manifests read no llm-api-key, and the Secret has none.
        secret = rpc.unwrap_rpc_secret(deployed.one("prod", SECRET_TYPE).inputs["stringData"])
        assert set(secret) == set(without.string_data())


def test_secret_values_never_appear_in_plain_text(deployed: Deployed) -> None:
    everything = json.dumps(
        {
            "inputs": [_without_secrets(r.raw) for r in deployed.registrations],
            "names": [r.name for r in deployed.registrations],
            "logs": deployed.logs,
            "outputs": deployed.outputs,
            "exports": deployed.exports,
        },
        default=str,
    )
    wrapped = json.dumps([r.raw for r in deployed.registrations], default=str)
    for value in SECRET_VALUES.values():
        assert value in wrapped  # the search can find them: they are there, inside secrets
        assert value not in everything


# --- (d) outputs ------------------------------------------------------------------------------


def test_outputs_endpoint_and_namespace(deployed: Deployed) -> None:
    assert deployed.outputs["dev"]["endpoint"] == "https://agent-dev.example.com"
    assert deployed.outputs["dev"]["namespace"] == "agent-dev"
    assert deployed.outputs["lean"]["endpoint"] == (
        "http://agent-lean-service.agent-lean.svc.cluster.local"
    )
    assert deployed.outputs["lean"]["namespace"] == "agent-lean"
    assert deployed.outputs["dev"]["namespace_is_secret"] is False


def test_endpoint_follows_the_ingress_config() -> None:
    dev = load_config("dev")
    kubernetes = dev.kubernetes
    assert kubernetes is not None and kubernetes.ingress is not None
    ingress = kubernetes.ingress

    def with_ingress(**changes: Any) -> DeploymentConfig:
        new_ingress = None if changes.get("none") else ingress.model_copy(update=changes)
        return dev.model_copy(
            update={"kubernetes": kubernetes.model_copy(update={"ingress": new_ingress})}
        )

    assert service_endpoint(dev) == "https://agent-dev.example.com"
    plain = with_ingress(tls_secret_name=None, allow_plain_http=True)
    assert service_endpoint(plain) == "http://agent-dev.example.com"
    alb = with_ingress(
        controller="alb",
        tls_secret_name=None,
        certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/"
        "00000000-0000-0000-0000-000000000000",
    )
    assert service_endpoint(alb) == "https://agent-dev.example.com"
    assert service_endpoint(with_ingress(none=True)) == (
        "http://agent-dev-service.agent-dev.svc.cluster.local"
    )


# --- (e) bad input: clear errors before anything is registered ------------------------------------


def _args(
    folder: Path, config: DeploymentConfig | None = None, llm_api_key: str | None = "k"
) -> AgentDeploymentArgs:
    return AgentDeploymentArgs(
        config=config or load_config("dev"),
        secrets=AgentSecrets(service_auth_token="t", redis_password="r", llm_api_key=llm_api_key),
        manifests_dir=folder,
    )


def _raised_outside_pulumi(exc: BaseException) -> bool:
    files = [frame.filename for frame in traceback.extract_tb(exc.__traceback__)]
    return not [f for f in files if "site-packages" in f and "pulumi" in f]


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p], ids=["absent", "empty"])
def test_missing_manifests_name_the_folder_and_the_synth_command(tmp_path: Path, make: Any) -> None:
    folder = make(tmp_path)
    with pytest.raises(ManifestsMissingError) as raised:
        AgentDeployment("dev", _args(folder))
    message = str(raised.value)
    assert str(folder) in message
    assert "`make synth`" in message
    # A RunError: Pulumi prints the message alone, no traceback; and nothing of Pulumi ran yet.
    assert isinstance(raised.value, pulumi.RunError)
    assert _raised_outside_pulumi(raised.value)


def test_missing_manifests_of_an_env_name_its_dist_folder() -> None:
    # The stack's env picks k8s/dist/<env>/kubernetes/, shown relative to the repository.
    assert manifests_dir("dev") == REPO_ROOT / "k8s" / "dist" / "dev" / "kubernetes"
    with pytest.raises(ManifestsMissingError) as raised:
        load_manifests(manifests_dir("no-such-env"))
    assert str(raised.value) == (
        "k8s/dist/no-such-env/kubernetes: no synthesized manifests (*.k8s.yaml); run `make "
        "synth` (it writes k8s/dist/no-such-env/kubernetes) and try again"
    )


def test_manifests_of_another_config_are_refused(tmp_path: Path) -> None:
    folder = write_dist(tmp_path, "dev", load_config("dev"))
    prod = load_config("prod")
    with pytest.raises(DeployInputError) as raised:
        AgentDeployment("prod", _args(folder, prod))
    message = str(raised.value)
    assert "does not match config agent-prod" in message
    assert "namespace 'agent-dev', expected 'agent-prod'" in message
    assert "no Service 'agent-prod-service'" in message
    assert "`make synth`" in message


def test_a_secret_key_read_by_a_pod_but_not_provided_is_refused(tmp_path: Path) -> None:
    folder = write_dist(tmp_path, "dev", load_config("dev"))  # the Deployment reads llm-api-key
    with pytest.raises(DeployInputError, match="pulumi config set --secret llmApiKey"):
        AgentDeployment("dev", _args(folder, llm_api_key=None))


def test_manifests_reading_the_llm_key_from_the_secret_are_refused_in_arn_mode(
    tmp_path: Path,
) -> None:
    folder = write_dist(tmp_path, "dev", load_config("dev"))  # the Deployment reads llm-api-key
    raw = load_config("dev").model_dump(by_alias=True, mode="json", exclude_unset=True)
    raw["kubernetes"]["aws"]["llm_api_key_secret_arn"] = (
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:agent-dev/llm-api-key-AbCdEf"
    )
    by_arn = DeploymentConfig.model_validate(raw)
    with pytest.raises(DeployInputError) as raised:
        AgentDeployment("dev", _args(folder, by_arn, llm_api_key=None))
    message = str(raised.value)
    assert "reads key 'llm-api-key' of the Secret" in message
    assert "kubernetes.aws.llm_api_key_secret_arn" in message
    assert "`make synth`" in message


def test_unknown_kinds_are_refused(tmp_path: Path) -> None:
    folder = write_dist(tmp_path, "dev", load_config("dev"))
    docs = list(yaml.safe_load_all((folder / "agent-worker.k8s.yaml").read_text()))
    odd = copy.deepcopy(docs[0]) | {"apiVersion": "apps/v1", "kind": "StatefulSet"}
    (folder / "agent-worker.k8s.yaml").write_text(yaml.safe_dump_all([*docs, odd]))
    with pytest.raises(DeployInputError, match="apps/v1 StatefulSet is not a kind"):
        AgentDeployment("dev", _args(folder))


# --- the project files -------------------------------------------------------------------------


def test_constants_agree_with_the_cdk8s_app() -> None:
    from k8s.app import CLUSTER_DIR, DIST_DIR

    assert agent_stack.DIST_ROOT == DIST_DIR
    assert agent_stack.CLUSTER_DIR == CLUSTER_DIR


def test_pulumi_project_runs_the_repository_venv() -> None:
    project = yaml.safe_load((DEPLOY_DIR / "Pulumi.yaml").read_text())
    assert project["name"] == PROJECT
    assert project["runtime"]["name"] == "python"
    venv = (DEPLOY_DIR / project["runtime"]["options"]["virtualenv"]).resolve()
    assert venv == (REPO_ROOT / ".venv").resolve()
    stack = yaml.safe_load((DEPLOY_DIR / "Pulumi.dev.yaml").read_text())["config"]
    assert stack[f"{PROJECT}:env"] == "dev"
    # Secrets are set with `pulumi config set --secret`, never committed in the example.
    assert not {f"{PROJECT}:{key}" for key in SECRET_VALUES} & stack.keys()
    assert "secure:" not in json.dumps(stack)
