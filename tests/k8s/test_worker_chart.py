"""The worker chart (k8s/charts/worker.py): KEDA scaling from the config, drains that cover a task,
a ScaledJob for long tasks, and every KEDA object valid against KEDA's released CRDs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cdk8s
import jsonschema
import pytest
import yaml

from config.loader import load_config
from config.model import K8S_TERMINATION_MARGIN_SECONDS, DeploymentConfig, KubernetesConfig
from k8s.charts.worker import ONE_SHOT_ARGS, WorkerChart, callback_list
from k8s.lib import defaults
from runtime.settings import RuntimeSettings
from runtime.tasks.settings import TaskSettings
from tests.k8s import crd_schemas
from tests.k8s.crd_schemas import crd_schema, undeclared_fields, validate_against_crd

FIXTURES = Path(__file__).parent / "fixtures"
KEDA = "keda.sh"
KEDA_VERSION = "v1alpha1"
SECRET = "<secret>"
# The trigger metadata each scaler reads (KEDA's scalers, `keda:"name=..."` tags): a key outside
# these is ignored by KEDA, silently.
SCALER_KEYS = {
    "aws-sqs-queue": {
        "queueURL", "queueURLFromEnv", "queueLength", "activationQueueLength", "awsRegion",
        "awsEndpoint", "scaleOnInFlight", "scaleOnDelayed",
    },
    "redis": {
        "address", "addresses", "host", "hosts", "port", "ports", "username", "listName",
        "listLength", "activationListLength", "databaseIndex", "enableTLS", "unsafeSsl",
    },
    "cron": {"timezone", "start", "end", "desiredReplicas"},
}  # fmt: skip
REQUIRED_KEYS = {
    "aws-sqs-queue": {"queueURL", "awsRegion"},
    "redis": {"address", "listName"},
    "cron": {"timezone", "start", "end", "desiredReplicas"},
}


def variant(env: str, change: Callable[[dict[str, Any]], None]) -> DeploymentConfig:
    raw = load_config(env).model_dump(by_alias=True, mode="json", exclude_unset=True)
    change(raw)
    return DeploymentConfig.model_validate(raw)


def _redis(raw: dict[str, Any]) -> None:
    raw["kubernetes"]["worker"]["queue"] = "redis"


def _long_tasks(raw: dict[str, Any]) -> None:
    raw["kubernetes"]["worker"]["max_task_seconds"] = 1800


def _redis_long_tasks(raw: dict[str, Any]) -> None:
    _redis(raw)
    _long_tasks(raw)
    raw["kubernetes"]["redis"] |= {"tls": False, "port": 6380, "db": 2}
    raw["kubernetes"]["worker"]["activation_queue_length"] = 2


def _windows(raw: dict[str, Any]) -> None:
    raw["kubernetes"]["worker"]["scaling_windows"] = [
        {"name": "morning", "start": "0 7 * * 1-5", "end": "0 10 * * 1-5",
         "timezone": "Europe/Berlin", "desired_replicas": 2},
        {"name": "us-evening", "start": "30 17 * * *", "end": "0 22 * * *",
         "timezone": "America/New_York", "desired_replicas": 3},
    ]  # fmt: skip


DEV_LLM_KEY_ARN = (
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:agent-dev/llm-api-key-AbCdEf"
)


def _llm_key_by_arn(raw: dict[str, Any]) -> None:
    raw["kubernetes"]["aws"]["llm_api_key_secret_arn"] = DEV_LLM_KEY_ARN


def _long_tasks_key_by_arn(raw: dict[str, Any]) -> None:
    _long_tasks(raw)
    _llm_key_by_arn(raw)


def _redis_key_by_arn(raw: dict[str, Any]) -> None:
    _redis(raw)
    _llm_key_by_arn(raw)


def _bedrock_without_role(raw: dict[str, Any]) -> None:
    raw["llm"] = {
        "provider": "bedrock",
        "model_id": "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        "request_timeout_seconds": 15,
    }
    raw["kubernetes"]["worker_role_arn"] = None
    raw["webhook"]["inbound_signature"] = {"style": "github", "secret_name": "agent-dev/github"}


VARIANTS: dict[str, Callable[[], DeploymentConfig]] = {
    "dev": lambda: load_config("dev"),
    "prod": lambda: load_config("prod"),
    "redis": lambda: variant("dev", _redis),
    "scaled-job": lambda: variant("dev", _long_tasks),
    "redis-scaled-job": lambda: variant("dev", _redis_long_tasks),
    "windows": lambda: variant("dev", _windows),
    "bedrock-no-role": lambda: variant("dev", _bedrock_without_role),
    # The LLM key read by ARN (kubernetes.aws.llm_api_key_secret_arn; prod sets it too).
    "scaled-job-key-by-arn": lambda: variant("dev", _long_tasks_key_by_arn),
    "redis-key-by-arn": lambda: variant("dev", _redis_key_by_arn),
}
DEPLOYMENT_VARIANTS = ("dev", "prod", "redis", "windows", "bedrock-no-role", "redis-key-by-arn")
JOB_VARIANTS = ("scaled-job", "redis-scaled-job", "scaled-job-key-by-arn")
KEY_BY_ARN_VARIANTS = ("prod", "scaled-job-key-by-arn", "redis-key-by-arn")
SQS_VARIANTS = ("dev", "prod", "windows", "bedrock-no-role", "scaled-job", "scaled-job-key-by-arn")
REDIS_VARIANTS = ("redis", "redis-scaled-job", "redis-key-by-arn")


@dataclass(frozen=True)
class Synth:
    config: DeploymentConfig
    chart: WorkerChart
    docs: list[dict[str, Any]]

    @property
    def kubernetes(self) -> KubernetesConfig:
        assert self.config.kubernetes is not None
        return self.config.kubernetes

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        (doc,) = self.all(kind)
        return doc

    def pod_template(self) -> dict[str, Any]:
        if self.kubernetes.worker.scaled_job:
            return dict(self.one("ScaledJob")["spec"]["jobTargetRef"]["template"])
        return dict(self.one("Deployment")["spec"]["template"])

    def container(self) -> dict[str, Any]:
        (container,) = self.pod_template()["spec"]["containers"]
        return dict(container)

    def env(self) -> dict[str, str]:
        return {
            variable["name"]: variable.get("value", SECRET) for variable in self.container()["env"]
        }

    def secret_keys(self) -> dict[str, str]:
        return {
            variable["name"]: variable["valueFrom"]["secretKeyRef"]["key"]
            for variable in self.container()["env"]
            if "valueFrom" in variable
        }

    def triggers(self) -> list[dict[str, Any]]:
        (scaler,) = self.all("ScaledObject") or self.all("ScaledJob")
        return list(scaler["spec"]["triggers"])


@pytest.fixture(scope="module")
def synths() -> dict[str, Synth]:
    """One synthesis per variant for the whole module."""
    result = {}
    for name, build in VARIANTS.items():
        config = build()
        chart = WorkerChart(cdk8s.Testing.app(), "agent-worker", config=config)
        result[name] = Synth(config, chart, list(cdk8s.Testing.synth(chart)))
    assert result["scaled-job"].kubernetes.worker.scaled_job
    assert not result["dev"].kubernetes.worker.scaled_job
    return result


# --- the Deployment: KEDA owns the count, a scale-in lets the task finish -------------------------


@pytest.mark.parametrize("name", DEPLOYMENT_VARIANTS)
def test_deployment_leaves_the_count_to_keda_and_drains_a_whole_task(
    synths: dict[str, Synth], name: str
) -> None:
    synth = synths[name]
    worker = synth.kubernetes.worker
    deployment = synth.one("Deployment")
    assert "replicas" not in deployment["spec"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = synth.pod_template()["spec"]
    drain = int(synth.env()["WORKER_DRAIN_SECONDS"])
    assert drain == worker.max_task_seconds
    assert pod["terminationGracePeriodSeconds"] >= drain + K8S_TERMINATION_MARGIN_SECONDS
    # The lease bounds a run's model calls: it must cover the longest task too.
    assert int(synth.env()["TASK_LEASE_SECONDS"]) >= worker.max_task_seconds
    assert synth.container()["args"] == list(defaults.WORKER_ARGS)


@pytest.mark.parametrize("name", VARIANTS)
def test_worker_pods_are_restricted_and_serve_nothing(synths: dict[str, Synth], name: str) -> None:
    synth = synths[name]
    pod = synth.pod_template()["spec"]
    assert pod["serviceAccountName"] == f"{synth.config.name}-worker"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = synth.container()
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsUser"] == defaults.RUN_AS_USER
    assert not {"ports", "livenessProbe", "readinessProbe", "startupProbe"} & set(container)
    assert container["image"] == synth.kubernetes.image


@pytest.mark.parametrize("name", VARIANTS)
def test_secrets_come_from_the_secret_only_where_needed(
    synths: dict[str, Synth], name: str
) -> None:
    synth = synths[name]
    expected = {}
    by_arn = synth.kubernetes.aws.llm_api_key_secret_arn is not None
    assert by_arn == (name in KEY_BY_ARN_VARIANTS)
    if synth.config.llm.provider == "openai-compatible" and not by_arn:
        expected["LLM_API_KEY"] = defaults.SECRET_KEY_LLM_API_KEY
    if synth.kubernetes.worker.queue == "redis":
        expected["REDIS_PASSWORD"] = defaults.SECRET_KEY_REDIS_PASSWORD
    assert synth.secret_keys() == expected
    for variable in synth.container()["env"]:
        if "valueFrom" in variable:
            assert variable["valueFrom"]["secretKeyRef"]["name"] == synth.kubernetes.secret_name


@pytest.mark.parametrize("name", VARIANTS)
def test_the_runtime_accepts_the_environment(synths: dict[str, Synth], name: str) -> None:
    environ = {key: "stand-in-secret-value" if value == SECRET else value
               for key, value in synths[name].env().items()}  # fmt: skip
    RuntimeSettings.from_env(environ)
    TaskSettings.from_env(environ)
    assert environ["SESSION_TABLE_NAME"] == synths[name].kubernetes.aws.session_table_name


@pytest.mark.parametrize("name", VARIANTS)
def test_the_llm_key_comes_by_arn_when_the_config_gives_one(
    synths: dict[str, Synth], name: str
) -> None:
    synth = synths[name]
    arn = synth.kubernetes.aws.llm_api_key_secret_arn
    env = synth.env()
    if arn is None:
        assert not {"LLM_API_KEY_SECRET_ARN", "AWS_REGION", "AWS_DEFAULT_REGION"} & set(env)
        return
    # Read by ARN with the worker's IRSA role, Deployment or ScaledJob alike: a rotated key
    # reaches a running worker, and the Secret holds no copy.
    assert env["LLM_API_KEY_SECRET_ARN"] == arn
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == synth.kubernetes.aws.region
    assert "LLM_API_KEY" not in env
    assert defaults.SECRET_KEY_LLM_API_KEY not in synth.secret_keys().values()
    assert RuntimeSettings.from_env(env).llm_api_key_secret_arn == arn


def test_the_worker_verifies_no_webhook_signature(synths: dict[str, Synth]) -> None:
    synth = synths["bedrock-no-role"]
    assert synth.config.webhook.inbound_signature is not None
    assert synth.env()["INBOUND_SIGNATURE_STYLE"] == "none"
    assert "INBOUND_SIGNATURE_SECRET_ARN" not in synth.env()


@pytest.mark.parametrize("name", VARIANTS)
def test_service_account_carries_the_worker_role(synths: dict[str, Synth], name: str) -> None:
    synth = synths[name]
    account = synth.one("ServiceAccount")
    assert account["metadata"]["name"] == f"{synth.config.name}-worker"
    annotations = account["metadata"].get("annotations", {})
    role = synth.kubernetes.worker_role_arn
    assert annotations.get("eks.amazonaws.com/role-arn") == role
    assert account["automountServiceAccountToken"] is False


# --- KEDA: triggers and scaling from the config ---------------------------------------------------


@pytest.mark.parametrize("name", ("dev", "prod", "windows", "bedrock-no-role"))
def test_scaled_object_reads_the_sqs_queue_as_configured(
    synths: dict[str, Synth], name: str
) -> None:
    synth = synths[name]
    worker, aws = synth.kubernetes.worker, synth.kubernetes.aws
    spec = synth.one("ScaledObject")["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": synth.one("Deployment")["metadata"]["name"],
    }
    assert spec["minReplicaCount"] == worker.min_replicas
    assert spec["maxReplicaCount"] == worker.max_replicas
    # The CRD's CEL rule, which jsonschema does not evaluate.
    assert spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert spec["pollingInterval"] == worker.polling_interval_seconds
    assert spec["cooldownPeriod"] == worker.cooldown_seconds
    (sqs,) = [t for t in spec["triggers"] if t["type"] == "aws-sqs-queue"]
    assert sqs["metadata"] == {
        "queueURL": aws.task_queue_url,
        "awsRegion": aws.region,
        "queueLength": str(worker.target_queue_length),
        "activationQueueLength": str(worker.activation_queue_length),
        "scaleOnInFlight": "true",
        "scaleOnDelayed": "false",
    }
    assert (
        sqs["authenticationRef"]["name"] == synth.one("TriggerAuthentication")["metadata"]["name"]
    )


def test_dev_scales_to_zero(synths: dict[str, Synth]) -> None:
    assert synths["dev"].one("ScaledObject")["spec"]["minReplicaCount"] == 0


@pytest.mark.parametrize("name", DEPLOYMENT_VARIANTS)
def test_hpa_scale_down_is_gentle(synths: dict[str, Synth], name: str) -> None:
    synth = synths[name]
    worker = synth.kubernetes.worker
    behavior = synth.one("ScaledObject")["spec"]["advanced"]["horizontalPodAutoscalerConfig"]
    scale_down = behavior["behavior"]["scaleDown"]
    assert scale_down["stabilizationWindowSeconds"] == min(worker.cooldown_seconds, 3600)
    (policy,) = scale_down["policies"]
    assert (policy["type"], policy["value"]) == ("Pods", 1)
    assert worker.polling_interval_seconds <= policy["periodSeconds"] <= 1800


@pytest.mark.parametrize("name", ("prod", "windows"))
def test_one_cron_trigger_per_scaling_window(synths: dict[str, Synth], name: str) -> None:
    synth = synths[name]
    windows = synth.kubernetes.worker.scaling_windows
    assert windows
    crons = [t for t in synth.triggers() if t["type"] == "cron"]
    assert [(t["name"], t["metadata"]) for t in crons] == [
        (
            window.name,
            {
                "timezone": window.timezone,
                "start": window.start,
                "end": window.end,
                "desiredReplicas": str(window.desired_replicas),
            },
        )
        for window in windows
    ]


@pytest.mark.parametrize("name", SQS_VARIANTS)
def test_trigger_authentication_uses_aws_pod_identity(synths: dict[str, Synth], name: str) -> None:
    synth = synths[name]
    spec = synth.one("TriggerAuthentication")["spec"]
    # With a worker role, KEDA reads the queue as the worker's ServiceAccount does.
    owner = "workload" if synth.kubernetes.worker_role_arn else "keda"
    assert spec == {"podIdentity": {"provider": "aws", "identityOwner": owner}}


def test_without_a_worker_role_keda_uses_its_own(synths: dict[str, Synth]) -> None:
    spec = synths["bedrock-no-role"].one("TriggerAuthentication")["spec"]
    assert spec["podIdentity"]["identityOwner"] == "keda"


@pytest.mark.parametrize("name", REDIS_VARIANTS)
def test_redis_queue_scales_on_the_lists_with_the_secret_password(
    synths: dict[str, Synth], name: str
) -> None:
    synth = synths[name]
    worker, redis = synth.kubernetes.worker, synth.kubernetes.redis
    triggers = synth.triggers()
    assert {t["type"] for t in triggers} == {"redis"}
    ready = next(t for t in triggers if t["metadata"]["listName"] == redis.task_list)
    target = 1 if worker.scaled_job else worker.target_queue_length
    assert ready["metadata"] == {
        "address": f"{redis.host}:{redis.port}",
        "listName": redis.task_list,
        "listLength": str(target),
        "activationListLength": str(worker.activation_queue_length),
        "databaseIndex": str(redis.db),
        "enableTLS": "true" if redis.tls else "false",
    }
    authentication = synth.one("TriggerAuthentication")
    assert authentication["spec"] == {
        "secretTargetRef": [
            {
                "parameter": "password",
                "name": synth.kubernetes.secret_name,
                "key": defaults.SECRET_KEY_REDIS_PASSWORD,
            }
        ]
    }
    assert {t["authenticationRef"]["name"] for t in triggers} == {
        authentication["metadata"]["name"]
    }
    env = synth.env()
    assert env["TASK_QUEUE_URL"] == redis.url(fragment=redis.task_list)
    assert env["CALLBACK_QUEUE_URL"] == redis.url(fragment=callback_list(redis))
    assert env["CALLBACK_DLQ_URL"].startswith(redis.url() + "#")
    assert len({env["TASK_QUEUE_URL"], env["CALLBACK_QUEUE_URL"], env["CALLBACK_DLQ_URL"]}) == 3
    # No callback Lambda reads a Redis list: the worker delivers the callbacks too.
    assert env["WORKER_QUEUES"] == "both"


def test_redis_deployment_keeps_a_worker_while_messages_are_held_or_delayed(
    synths: dict[str, Synth],
) -> None:
    synth = synths["redis"]
    redis = synth.kubernetes.redis
    keys = {t["metadata"]["listName"]: t for t in synth.triggers()}
    for queue in (redis.task_list, callback_list(redis)):
        assert {queue, f"{queue}:inflight", f"{queue}:delayed"} <= set(keys)
        for held in (f"{queue}:inflight", f"{queue}:delayed"):
            assert keys[held]["metadata"]["activationListLength"] == "0"
    # A callback is owed to a client: no threshold holds it back.
    assert keys[callback_list(redis)]["metadata"]["activationListLength"] == "0"


def test_sqs_worker_takes_task_messages_only(synths: dict[str, Synth]) -> None:
    env = synths["dev"].env()
    assert env["WORKER_QUEUES"] == "task"
    assert env["TASK_QUEUE_URL"] == synths["dev"].kubernetes.aws.task_queue_url


# --- ScaledJob: long tasks as one Job per message -------------------------------------------------


@pytest.mark.parametrize("name", JOB_VARIANTS)
def test_long_tasks_run_as_a_scaled_job(synths: dict[str, Synth], name: str) -> None:
    synth = synths[name]
    worker = synth.kubernetes.worker
    assert not synth.all("Deployment") and not synth.all("ScaledObject")
    assert not synth.all("PodDisruptionBudget")
    spec = synth.one("ScaledJob")["spec"]
    job = spec["jobTargetRef"]
    assert synth.container()["args"] == [*defaults.WORKER_ARGS, *ONE_SHOT_ARGS]
    assert ONE_SHOT_ARGS == ("--max-messages", "1")
    assert job["activeDeadlineSeconds"] >= worker.max_task_seconds + K8S_TERMINATION_MARGIN_SECONDS
    assert job["backoffLimit"] == 0
    assert (job["parallelism"], job["completions"]) == (1, 1)
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    # Evicted only by a node drain, and then it releases its message within the grace period.
    drain = int(synth.env()["WORKER_DRAIN_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] >= drain + K8S_TERMINATION_MARGIN_SECONDS
    annotations = job["template"]["metadata"]["annotations"]
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert annotations["karpenter.sh/do-not-disrupt"] == "true"
    assert spec["pollingInterval"] == worker.polling_interval_seconds
    assert spec["maxReplicaCount"] == worker.max_replicas
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["failedJobsHistoryLimit"] >= spec["successfulJobsHistoryLimit"]
    assert spec["scalingStrategy"]["strategy"] == "accurate"
    assert spec["rollout"] == {"strategy": "gradual"}
    assert int(synth.env()["TASK_LEASE_SECONDS"]) >= worker.max_task_seconds


def test_scaled_job_counts_waiting_messages_one_job_each(synths: dict[str, Synth]) -> None:
    (sqs,) = synths["scaled-job"].triggers()
    assert sqs["type"] == "aws-sqs-queue"
    assert sqs["metadata"]["queueLength"] == "1"
    # In-flight messages already have their Job ("accurate" subtracts only pending ones).
    assert sqs["metadata"]["scaleOnInFlight"] == "false"
    redis = synths["redis-scaled-job"]
    lists = [t["metadata"]["listName"] for t in redis.triggers()]
    assert lists == [redis.kubernetes.redis.task_list, callback_list(redis.kubernetes.redis)]
    assert {t["metadata"]["listLength"] for t in redis.triggers()} == {"1"}
    activation = redis.kubernetes.worker.activation_queue_length
    assert activation > 0
    activations = [t["metadata"]["activationListLength"] for t in redis.triggers()]
    assert activations == [str(activation), "0"]
    spec = redis.one("ScaledJob")["spec"]
    assert spec["scalingStrategy"]["multipleScalersCalculation"] == "sum"


@pytest.mark.parametrize("name", VARIANTS)
def test_never_a_scaled_object_and_a_scaled_job_together(
    synths: dict[str, Synth], name: str
) -> None:
    synth = synths[name]
    kinds = [doc["kind"] for doc in synth.docs]
    assert (kinds.count("ScaledObject"), kinds.count("ScaledJob")) in {(1, 0), (0, 1)}
    assert kinds.count("ScaledJob") == int(synth.kubernetes.worker.scaled_job)
    assert kinds.count("TriggerAuthentication") == 1
    assert (synth.chart.scaled_job is None) == (not synth.kubernetes.worker.scaled_job)
    assert (synth.chart.deployment is None) == synth.kubernetes.worker.scaled_job


# --- disruption budget and network policy ---------------------------------------------------------


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    match = selector["matchLabels"]
    return bool(match) and all(labels.get(key) == value for key, value in match.items())


@pytest.mark.parametrize("name", VARIANTS)
def test_one_budget_and_one_policy_select_the_worker_pods(
    synths: dict[str, Synth], name: str
) -> None:
    synth = synths[name]
    labels = synth.pod_template()["metadata"]["labels"]
    budgets = [
        b for b in synth.all("PodDisruptionBudget") if _selects(b["spec"]["selector"], labels)
    ]
    policies = [p for p in synth.all("NetworkPolicy") if _selects(p["spec"]["podSelector"], labels)]
    assert len(policies) == 1 == len(synth.all("NetworkPolicy"))
    if synth.kubernetes.worker.scaled_job:
        assert budgets == []
    else:
        assert len(budgets) == 1 == len(synth.all("PodDisruptionBudget"))
        assert budgets[0]["spec"]["maxUnavailable"] == 1
        deployment = synth.one("Deployment")
        assert _selects(deployment["spec"]["selector"], labels)


@pytest.mark.parametrize("name", VARIANTS)
def test_network_policy_admits_nothing_and_lets_out_dns_https_redis(
    synths: dict[str, Synth], name: str
) -> None:
    synth = synths[name]
    spec = synth.one("NetworkPolicy")["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in spec
    ports = {(port["protocol"], port["port"]) for rule in spec["egress"] for port in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", synth.kubernetes.redis.port)}
    (redis_rule,) = [r for r in spec["egress"] if {"port": synth.kubernetes.redis.port,
                                                    "protocol": "TCP"} in r["ports"]]  # fmt: skip
    assert [peer["ipBlock"]["cidr"] for peer in redis_rule["to"]] == list(
        synth.kubernetes.redis.cidrs
    )


# --- KEDA objects against KEDA's CRDs -------------------------------------------------------------


def test_every_keda_object_validates_against_its_crd(synths: dict[str, Synth]) -> None:
    checked: dict[str, int] = {}
    for synth in synths.values():
        for doc in synth.docs:
            group, _, version = doc["apiVersion"].rpartition("/")
            if group != KEDA:
                continue
            assert version == KEDA_VERSION
            validate_against_crd(doc, crd_schema(KEDA, doc["kind"], version))
            checked[doc["kind"]] = checked.get(doc["kind"], 0) + 1
    assert checked == {
        "TriggerAuthentication": len(VARIANTS),
        "ScaledObject": len(DEPLOYMENT_VARIANTS),
        "ScaledJob": len(JOB_VARIANTS),
    }


def test_trigger_metadata_uses_only_keys_the_scalers_read(synths: dict[str, Synth]) -> None:
    for synth in synths.values():
        for trigger in synth.triggers():
            keys = set(trigger["metadata"])
            assert keys <= SCALER_KEYS[trigger["type"]], trigger
            assert REQUIRED_KEYS[trigger["type"]] <= keys, trigger
            assert all(isinstance(value, str) for value in trigger["metadata"].values())
        names = [trigger["name"] for trigger in synth.triggers()]
        assert len(names) == len(set(names))


def test_the_bad_scaled_object_is_rejected_by_the_crd_schema() -> None:
    bad = yaml.safe_load((FIXTURES / "bad-scaledobject.yaml").read_text())
    schema = crd_schema(KEDA, "ScaledObject", KEDA_VERSION)
    with pytest.raises(jsonschema.ValidationError, match="is not of type 'string'"):
        jsonschema.validate(bad, schema, cls=jsonschema.Draft7Validator)
    with pytest.raises(AssertionError, match="queueLength"):
        validate_against_crd(bad, schema)
    bad["spec"]["triggers"][0]["metadata"]["queueLength"] = "5"
    validate_against_crd(bad, schema)


def test_a_misspelt_field_fails_though_jsonschema_accepts_it(synths: dict[str, Synth]) -> None:
    doc = yaml.safe_load(yaml.safe_dump(synths["dev"].one("ScaledObject")))
    doc["spec"]["pollingIntervall"] = 5
    doc["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"][
        "stabilisationWindowSeconds"
    ] = 60
    schema = crd_schema(KEDA, "ScaledObject", KEDA_VERSION)
    # The API server would prune both fields without a word; jsonschema alone sees no problem.
    jsonschema.validate(doc, schema, cls=jsonschema.Draft7Validator)
    assert sorted(undeclared_fields(doc, schema)) == [
        "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilisationWindowSeconds",
        "spec.pollingIntervall",
    ]
    with pytest.raises(AssertionError, match="pollingIntervall"):
        validate_against_crd(doc, schema)


def test_missing_schemas_skip_locally_and_fail_on_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(crd_schemas.ENV_VAR, str(tmp_path / "absent"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"keda-<version>-crds\.yaml"):
        crd_schema(KEDA, "ScaledObject", KEDA_VERSION)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="config/crd/bases"):
        crd_schema(KEDA, "ScaledObject", KEDA_VERSION)
    # A folder without the CRD asked for is as good as none.
    monkeypatch.setenv(crd_schemas.ENV_VAR, str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"ScaledObject\.keda\.sh"):
        crd_schema(KEDA, "ScaledObject", KEDA_VERSION)
