"""What matters in the webhook/async stack for security and reliability, asserted directly.

Queues (visibility, redrive, retention, encryption, TLS, alarms), event sources, per-role grants,
API routes and their auth, removal policies, secrets, and the environment contract the runtime
reads: every function's environment, as synthesized, must validate with the runtime's own
settings models.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import App, Duration, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms

from config.environment import task_environment
from config.model import (
    LAMBDA_MAX_TIMEOUT_SECONDS,
    SQS_VISIBILITY_TIMEOUT_FACTOR,
    DeploymentConfig,
)
from constructs.json_schema import to_api_gateway_schema
from constructs.secure_defaults import (
    CALLBACK_WORKER_HANDLER,
    QUEUE_VISIBILITY_TIMEOUT_FACTOR,
    TASK_WORKER_HANDLER,
    WEBHOOK_INGRESS_HANDLER,
)
from constructs.task_queue import TaskQueue, TaskQueueProps
from runtime.settings import RuntimeSettings
from runtime.tasks.schema import task_request_schema
from runtime.tasks.settings import TaskSettings
from stacks.async_agent_stack import AsyncAgentStack
from tests.infra.cfn import (
    TABLE_TYPES,
    as_list,
    ids_of_type,
    of_type,
    one,
    refers_to,
    table_properties,
    tables,
)
from tests.infra.conftest import Synthesized, all_configs

CONFIGS = {c.name: c for c in all_configs()}
NAMES = sorted(CONFIGS)
HANDLERS = {
    "ingress": WEBHOOK_INGRESS_HANDLER,
    "worker": TASK_WORKER_HANDLER,
    "callback": CALLBACK_WORKER_HANDLER,
}


@dataclass(frozen=True)
class Layout:
    """Logical ids of the async stack's parts, found from how they are wired, not their names."""

    template: dict[str, Any]
    functions: dict[str, str]  # ingress/worker/callback -> function logical id
    roles: dict[str, str]  # ingress/worker/callback -> role logical id
    mappings: dict[str, str]  # worker/callback -> event source mapping logical id
    task_queue: str
    task_dlq: str
    callback_queue: str
    callback_dlq: str

    def resource(self, logical_id: str) -> dict[str, Any]:
        resource: dict[str, Any] = self.template["Resources"][logical_id]
        return resource

    def props(self, logical_id: str) -> dict[str, Any]:
        props: dict[str, Any] = self.resource(logical_id)["Properties"]
        return props

    def statements(self, role: str) -> list[dict[str, Any]]:
        """Every statement of the policies attached to the role of ``role`` (ingress, ...)."""
        return [
            statement
            for policy in of_type(self.template, "AWS::IAM::Policy")
            if refers_to(policy["Properties"]["Roles"], self.roles[role])
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        ]

    def actions_on(self, role: str, logical_id: str) -> set[str]:
        return {
            action
            for statement in self.statements(role)
            if refers_to(statement["Resource"], logical_id)
            for action in as_list(statement["Action"])
        }

    def actions(self, role: str, prefix: str) -> set[str]:
        return {
            action
            for statement in self.statements(role)
            for action in as_list(statement["Action"])
            if action.startswith(prefix)
        }


def layout(synth: Synthesized, name: str) -> Layout:
    template = synth.template(name, "async")
    functions = {}
    for logical_id in ids_of_type(template, "AWS::Lambda::Function"):
        handler = template["Resources"][logical_id]["Properties"]["Handler"]
        [role] = [role for role, h in HANDLERS.items() if h == handler]
        functions[role] = logical_id
    roles = {
        role: template["Resources"][fn]["Properties"]["Role"]["Fn::GetAtt"][0]
        for role, fn in functions.items()
    }
    aliases = {
        alias_id: role
        for alias_id in ids_of_type(template, "AWS::Lambda::Alias")
        for role, fn in functions.items()
        if refers_to(template["Resources"][alias_id]["Properties"]["FunctionName"], fn)
    }
    mappings, sources = {}, {}
    for logical_id in ids_of_type(template, "AWS::Lambda::EventSourceMapping"):
        props = template["Resources"][logical_id]["Properties"]
        [role] = [r for alias, r in aliases.items() if refers_to(props["FunctionName"], alias)]
        mappings[role] = logical_id
        sources[role] = props["EventSourceArn"]["Fn::GetAtt"][0]

    def dlq_of(queue: str) -> str:
        target = template["Resources"][queue]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
        dlq: str = target["Fn::GetAtt"][0]
        return dlq

    return Layout(
        template=template,
        functions=functions,
        roles=roles,
        mappings=mappings,
        task_queue=sources["worker"],
        task_dlq=dlq_of(sources["worker"]),
        callback_queue=sources["callback"],
        callback_dlq=dlq_of(sources["callback"]),
    )


@pytest.fixture(scope="module")
def layouts(synth: Synthesized) -> dict[str, Layout]:
    return {name: layout(synth, name) for name in NAMES}


def logical_id_of(template: dict[str, Any], resource_type: str, fragment: str) -> str:
    [found] = [k for k in ids_of_type(template, resource_type) if fragment in k]
    return found


def table_id_of(template: dict[str, Any], fragment: str) -> str:
    """A Table's logical id, or with config dr a GlobalTable's."""
    [found] = [k for t in TABLE_TYPES for k in ids_of_type(template, t) if fragment in k]
    return found


# --- queues ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_visibility_timeout_is_six_times_the_consumer_timeout(
    layouts: dict[str, Layout], name: str
) -> None:
    lay = layouts[name]
    for consumer, queue in (("worker", lay.task_queue), ("callback", lay.callback_queue)):
        timeout = lay.props(lay.functions[consumer])["Timeout"]
        window = lay.props(lay.mappings[consumer]).get("MaximumBatchingWindowInSeconds", 0)
        visibility = lay.props(queue)["VisibilityTimeout"]
        assert visibility >= 6 * timeout + window, (consumer, visibility, timeout, window)
    # The config's retention rule computes the same value the construct builds.
    assert lay.props(lay.task_queue)["VisibilityTimeout"] == (
        CONFIGS[name].webhook.worker_visibility_timeout_seconds
    )


def test_config_and_construct_use_the_same_visibility_factor() -> None:
    assert SQS_VISIBILITY_TIMEOUT_FACTOR == QUEUE_VISIBILITY_TIMEOUT_FACTOR == 6


@pytest.mark.parametrize("name", NAMES)
def test_redrive_policy_and_dlq_retention(layouts: dict[str, Layout], name: str) -> None:
    lay = layouts[name]
    queue_config = CONFIGS[name].webhook.queue
    for queue, dlq in ((lay.task_queue, lay.task_dlq), (lay.callback_queue, lay.callback_dlq)):
        redrive = lay.props(queue)["RedrivePolicy"]
        assert redrive["maxReceiveCount"] == queue_config.max_receive_count
        assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq, "Arn"]}
        source_retention = lay.props(queue)["MessageRetentionPeriod"]
        dlq_retention = lay.props(dlq)["MessageRetentionPeriod"]
        assert source_retention == queue_config.retention_days * 86_400
        assert dlq_retention == queue_config.dlq_retention_days * 86_400
        # SQS keeps the original enqueue time: the DLQ must keep messages longer.
        assert dlq_retention > source_retention
        assert "RedrivePolicy" not in lay.props(dlq)


def test_committed_configs_dead_letter_after_five_receives_and_keep_14_days(
    layouts: dict[str, Layout],
) -> None:
    for name in ("agent-dev", "agent-prod"):
        lay = layouts[name]
        for queue, dlq in ((lay.task_queue, lay.task_dlq), (lay.callback_queue, lay.callback_dlq)):
            assert lay.props(queue)["RedrivePolicy"]["maxReceiveCount"] == 5
            assert lay.props(dlq)["MessageRetentionPeriod"] == 1_209_600


@pytest.mark.parametrize("name", NAMES)
def test_every_queue_is_encrypted_with_the_stack_key(synth: Synthesized, name: str) -> None:
    template = synth.template(name, "async")
    key = one(template, "AWS::KMS::Key")
    key_id = next(k for k, r in template["Resources"].items() if r is key)
    queues = of_type(template, "AWS::SQS::Queue")
    assert len(queues) == 4
    for queue in queues:
        props = queue["Properties"]
        assert props["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
        assert props["KmsDataKeyReusePeriodSeconds"] == 300
        assert "SqsManagedSseEnabled" not in props


@pytest.mark.parametrize("name", NAMES)
def test_every_queue_denies_requests_without_tls(synth: Synthesized, name: str) -> None:
    template = synth.template(name, "async")
    protected = set()
    for policy in of_type(template, "AWS::SQS::QueuePolicy"):
        props = policy["Properties"]
        for statement in props["PolicyDocument"]["Statement"]:
            if (
                statement["Effect"] == "Deny"
                and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                and statement["Principal"] == {"AWS": "*"}
                and statement["Action"] == "sqs:*"
            ):
                protected |= {queue["Ref"] for queue in props["Queues"]}
    assert protected == set(ids_of_type(template, "AWS::SQS::Queue"))


@pytest.mark.parametrize("name", NAMES)
def test_dlq_alarms_fire_on_the_first_message(layouts: dict[str, Layout], name: str) -> None:
    lay = layouts[name]
    alarms = of_type(lay.template, "AWS::CloudWatch::Alarm")
    for dlq in (lay.task_dlq, lay.callback_dlq):
        [alarm] = [
            a["Properties"]
            for a in alarms
            if a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
            and refers_to(a["Properties"]["Dimensions"], dlq)
        ]
        assert alarm["Namespace"] == "AWS/SQS"
        assert alarm["Statistic"] == "Maximum"
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["Period"] == 60
        assert alarm["EvaluationPeriods"] == 1
        assert alarm["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize("name", NAMES)
def test_queue_age_alarms(layouts: dict[str, Layout], name: str) -> None:
    lay = layouts[name]
    threshold = CONFIGS[name].webhook.queue.oldest_message_age_alarm_seconds
    for queue in (lay.task_queue, lay.callback_queue):
        [alarm] = [
            a["Properties"]
            for a in of_type(lay.template, "AWS::CloudWatch::Alarm")
            if a["Properties"]["MetricName"] == "ApproximateAgeOfOldestMessage"
            and refers_to(a["Properties"]["Dimensions"], queue)
        ]
        assert alarm["Threshold"] == threshold
        assert alarm["Statistic"] == "Maximum"
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


@pytest.mark.parametrize("name", NAMES)
def test_worker_alarms_from_config(layouts: dict[str, Layout], name: str) -> None:
    lay = layouts[name]
    config = CONFIGS[name]
    alarms = {
        a["Properties"]["MetricName"]: a["Properties"]
        for a in of_type(lay.template, "AWS::CloudWatch::Alarm")
        if a["Properties"]["Namespace"] == "AWS/Lambda"
        # The function's own alarms; the releases' alias alarms are tests/infra/test_releases.py's.
        and not any(d["Name"] == "Resource" for d in a["Properties"]["Dimensions"])
    }
    assert set(alarms) == {"Errors", "Throttles", "Duration"}
    for alarm in alarms.values():
        assert refers_to(alarm["Dimensions"], lay.functions["worker"])
        assert alarm["Period"] == config.alarms.period_minutes * 60
    assert alarms["Duration"]["Threshold"] == config.alarms.p99_duration_ms
    assert alarms["Duration"]["Threshold"] < lay.props(lay.functions["worker"])["Timeout"] * 1000


# --- functions and event sources ------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_event_sources_report_partial_batch_failures(layouts: dict[str, Layout], name: str) -> None:
    lay = layouts[name]
    webhook = CONFIGS[name].webhook
    worker = lay.props(lay.mappings["worker"])
    assert worker["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert worker["BatchSize"] == webhook.worker.batch_size
    assert worker["MaximumBatchingWindowInSeconds"] == webhook.worker.max_batching_window_seconds
    assert worker["ScalingConfig"] == {"MaximumConcurrency": webhook.worker.max_concurrency}
    callback = lay.props(lay.mappings["callback"])
    assert callback["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert callback["BatchSize"] == webhook.callback.batch_size
    # Never more pollers than the function may run: a throttle would burn a receive.
    assert (
        callback["ScalingConfig"]["MaximumConcurrency"]
        <= lay.props(lay.functions["callback"])["ReservedConcurrentExecutions"]
    )
    assert (
        worker["ScalingConfig"]["MaximumConcurrency"]
        <= lay.props(lay.functions["worker"])["ReservedConcurrentExecutions"]
    )


@pytest.mark.parametrize("name", NAMES)
def test_function_shapes(layouts: dict[str, Layout], name: str) -> None:
    lay = layouts[name]
    webhook = CONFIGS[name].webhook
    expected = {
        "ingress": (webhook.ingress.timeout_seconds, webhook.ingress.memory_mb,
                    webhook.ingress.reserved_concurrency),
        "worker": (webhook.worker.timeout_seconds, webhook.worker.memory_mb,
                   webhook.worker.reserved_concurrency),
        "callback": (
            webhook.callback.batch_size * (webhook.callback.timeout_seconds + 2) + 5,
            webhook.callback.memory_mb,
            webhook.callback.reserved_concurrency,
        ),
    }  # fmt: skip
    for role, (timeout, memory, reserved) in expected.items():
        fn = lay.props(lay.functions[role])
        assert (fn["Timeout"], fn["MemorySize"], fn["ReservedConcurrentExecutions"]) == (
            timeout,
            memory,
            reserved,
        ), role
        assert fn["Timeout"] <= LAMBDA_MAX_TIMEOUT_SECONDS
        assert fn["Runtime"] == "python3.14"
        assert fn["Architectures"] == ["arm64"]
        assert fn["TracingConfig"] == {"Mode": "Active"}
        assert "KmsKeyArn" in fn
    # Queue consumers and the ingress keep no warm instances: idle costs nothing.
    for alias in of_type(lay.template, "AWS::Lambda::Alias"):
        assert "ProvisionedConcurrencyConfig" not in alias["Properties"]
    assert lay.props(lay.functions["ingress"])["Timeout"] < 29


def test_callback_timeout_fits_a_full_batch_of_slowest_receivers() -> None:
    from stacks.async_agent_stack import callback_function_timeout

    base = CONFIGS["agent-dev"].model_dump(by_alias=True)
    base["webhook"]["callback"] |= {"batch_size": 10, "timeout_seconds": 60}
    worst = DeploymentConfig.model_validate(base)
    assert callback_function_timeout(worst).to_seconds() == 10 * 62 + 5
    assert callback_function_timeout(worst).to_seconds() <= LAMBDA_MAX_TIMEOUT_SECONDS


# --- least privilege ------------------------------------------------------------------------------


def _llm_secret_resources(lay: Layout) -> set[str]:
    return {
        json.dumps(statement["Resource"])
        for role in lay.roles
        for statement in lay.statements(role)
        if any(a.startswith("secretsmanager:") for a in as_list(statement["Action"]))
        and "llm-api-key" in json.dumps(statement["Resource"])
    }


@pytest.mark.parametrize("name", NAMES)
def test_ingress_role_has_only_its_grants(layouts: dict[str, Layout], name: str) -> None:
    lay = layouts[name]
    template = lay.template
    task_table = table_id_of(template, "TaskTable")
    sessions = table_id_of(template, "Sessions")
    assert {"dynamodb:GetItem", "dynamodb:PutItem"} <= lay.actions_on("ingress", task_table)
    assert lay.actions_on("ingress", sessions) == set()
    assert lay.actions_on("ingress", lay.task_queue) == {
        "sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
    }  # fmt: skip
    for other in (lay.task_dlq, lay.callback_queue, lay.callback_dlq):
        assert lay.actions_on("ingress", other) == set()
    # Ingress never calls the model.
    assert lay.actions("ingress", "bedrock:") == set()
    secrets = {
        json.dumps(s["Resource"])
        for s in lay.statements("ingress")
        if any(a.startswith("secretsmanager:") for a in as_list(s["Action"]))
    }
    if CONFIGS[name].webhook.inbound_signature is None:
        assert secrets == set()
    else:
        inbound = logical_id_of(template, "AWS::SecretsManager::Secret", "InboundSignature")
        assert secrets == {json.dumps({"Ref": inbound})}


@pytest.mark.parametrize("name", NAMES)
def test_worker_role_has_only_its_grants(layouts: dict[str, Layout], name: str) -> None:
    lay = layouts[name]
    template = lay.template
    config = CONFIGS[name]
    task_table = table_id_of(template, "TaskTable")
    sessions = table_id_of(template, "Sessions")
    assert {"dynamodb:UpdateItem", "dynamodb:GetItem"} <= lay.actions_on("worker", task_table)
    assert {"dynamodb:PutItem", "dynamodb:GetItem"} <= lay.actions_on("worker", sessions)
    # Consumes the task queue and backs off failed tries with a visibility change.
    assert {
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
    } <= lay.actions_on("worker", lay.task_queue)  # fmt: skip
    assert "sqs:SendMessage" not in lay.actions_on("worker", lay.task_queue)
    assert lay.actions_on("worker", lay.callback_queue) == {
        "sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
    }  # fmt: skip
    assert lay.actions_on("worker", lay.task_dlq) == set()
    assert lay.actions_on("worker", lay.callback_dlq) == set()
    signing = logical_id_of(template, "AWS::SecretsManager::Secret", "CallbackSigning")
    assert lay.actions_on("worker", signing) == set()
    bedrock = lay.actions("worker", "bedrock:")
    if config.llm.provider == "bedrock":
        assert bedrock == {"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"}
    else:
        assert bedrock == set()


@pytest.mark.parametrize("name", NAMES)
def test_callback_role_has_only_its_grants(layouts: dict[str, Layout], name: str) -> None:
    lay = layouts[name]
    template = lay.template
    task_table = table_id_of(template, "TaskTable")
    sessions = table_id_of(template, "Sessions")
    assert {"dynamodb:UpdateItem", "dynamodb:GetItem"} <= lay.actions_on("callback", task_table)
    assert lay.actions_on("callback", sessions) == set()
    # The callback worker cannot touch the task queue: no sending tasks, no reading them.
    assert lay.actions_on("callback", lay.task_queue) == set()
    assert lay.actions_on("callback", lay.task_dlq) == set()
    assert {
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
        "sqs:SendMessage",
    } <= lay.actions_on("callback", lay.callback_queue)  # fmt: skip
    assert lay.actions_on("callback", lay.callback_dlq) == {
        "sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
    }  # fmt: skip
    signing = logical_id_of(template, "AWS::SecretsManager::Secret", "CallbackSigning")
    assert lay.actions_on("callback", signing) == {
        "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret",
    }  # fmt: skip
    assert lay.actions("callback", "bedrock:") == set()
    secrets = [
        s for s in lay.statements("callback")
        if any(a.startswith("secretsmanager:") for a in as_list(s["Action"]))
    ]  # fmt: skip
    assert len(secrets) == 1  # the signing secret only: not the LLM key, not the inbound one


@pytest.mark.parametrize("name", NAMES)
def test_only_the_worker_reads_the_llm_key(layouts: dict[str, Layout], name: str) -> None:
    lay = layouts[name]
    config = CONFIGS[name]
    llm_key_readers = {
        role
        for role in lay.roles
        for statement in lay.statements(role)
        if "llm-api-key" in json.dumps(statement["Resource"])
    }
    if config.llm.api_key_secret_name is None:
        assert llm_key_readers == set()
        assert _llm_secret_resources(lay) == set()
        return
    assert llm_key_readers == {"worker"}
    # Imported by name: the grant must match the six random characters Secrets Manager appends.
    [resource] = _llm_secret_resources(lay)
    assert f":secret:{config.llm.api_key_secret_name}-??????" in resource
    # Decrypting it is allowed only through Secrets Manager and only for that secret.
    [kms_statement] = [
        s for s in lay.statements("worker")
        if s["Action"] == "kms:Decrypt" and "Condition" in s
    ]  # fmt: skip
    conditions = json.dumps(kms_statement["Condition"])
    assert '"kms:ViaService"' in conditions and "secretsmanager." in conditions
    assert f"{config.llm.api_key_secret_name}-??????" in conditions
    assert json.dumps(kms_statement["Resource"]).endswith(':key/*"]]}')


@pytest.mark.parametrize("name", NAMES)
def test_iam_actions_are_scoped(layouts: dict[str, Layout], name: str) -> None:
    lay = layouts[name]
    for role in lay.roles:
        for statement in lay.statements(role):
            actions = as_list(statement["Action"])
            assert not any(a == "*" or a.endswith(":*") for a in actions), actions
            if as_list(statement["Resource"]) == ["*"]:
                assert all(a.startswith("xray:") for a in actions), actions
    for resource in of_type(lay.template, "AWS::IAM::Role"):
        trust = json.dumps(resource["Properties"]["AssumeRolePolicyDocument"])
        if "lambda.amazonaws.com" in trust:
            assert "ManagedPolicyArns" not in resource["Properties"]


# --- API ------------------------------------------------------------------------------------------


def _methods(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``"POST /webhook"`` -> method properties, paths rebuilt from the resources' path parts."""
    resources = template["Resources"]

    def path(resource_id: dict[str, Any]) -> str:
        if "Fn::GetAtt" in resource_id:  # the API's root resource
            return ""
        props = resources[resource_id["Ref"]]["Properties"]
        return f"{path(props['ParentId'])}/{props['PathPart']}"

    return {
        f"{m['Properties']['HttpMethod']} {path(m['Properties']['ResourceId'])}": m["Properties"]
        for m in of_type(template, "AWS::ApiGateway::Method")
    }


@pytest.mark.parametrize("name", NAMES)
def test_api_routes_and_their_auth(synth: Synthesized, name: str) -> None:
    config = CONFIGS[name]
    methods = _methods(synth.template(name, "async"))
    assert set(methods) == {"POST /webhook", "GET /tasks/{task_id}"}
    signed = config.webhook.inbound_signature is not None
    for route, props in methods.items():
        assert props["Integration"]["Type"] == "AWS_PROXY"
        assert "IngressLive" in json.dumps(props["Integration"]["Uri"])
        assert "RequestValidatorId" in props
        if route == "POST /webhook" and signed:
            # The HMAC signature is the authentication; the handler verifies it.
            assert props["AuthorizationType"] == "NONE"
            assert props["ApiKeyRequired"] is False
        elif config.api.auth == "api_key":
            assert props["ApiKeyRequired"] is True
        else:
            assert props["AuthorizationType"] == "AWS_IAM"
    assert methods["GET /tasks/{task_id}"]["RequestParameters"] == {
        "method.request.path.task_id": True
    }


def test_open_webhook_only_with_inbound_signatures(synth: Synthesized) -> None:
    for name in NAMES:
        methods = _methods(synth.template(name, "async"))
        open_routes = {
            route
            for route, props in methods.items()
            if props.get("AuthorizationType") == "NONE" and not props.get("ApiKeyRequired")
        }
        expected = {"POST /webhook"} if CONFIGS[name].webhook.inbound_signature else set()
        assert open_routes == expected, name
    assert CONFIGS["agent-variant"].webhook.inbound_signature is not None


@pytest.mark.parametrize("name", NAMES)
def test_request_model_is_the_runtimes_schema(synth: Synthesized, name: str) -> None:
    template = synth.template(name, "async")
    # A copy: the synthesized templates are shared by every test of the session.
    schema = dict(one(template, "AWS::ApiGateway::Model")["Properties"]["Schema"])
    expected = task_request_schema(CONFIGS[name].agent.max_message_chars)
    assert schema.pop("$schema") == "http://json-schema.org/draft-04/schema#"
    assert schema == expected
    validator = one(template, "AWS::ApiGateway::RequestValidator")["Properties"]
    assert validator["ValidateRequestBody"] is True
    assert validator["ValidateRequestParameters"] is True


@pytest.mark.parametrize("name", NAMES)
def test_api_stage_throttling_logging_tracing(synth: Synthesized, name: str) -> None:
    config = CONFIGS[name]
    stage = one(synth.template(name, "async"), "AWS::ApiGateway::Stage")["Properties"]
    assert stage["TracingEnabled"] is True
    assert "DestinationArn" in stage["AccessLogSetting"]
    [settings] = stage["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == config.api.throttle_rate_limit
    assert settings["ThrottlingBurstLimit"] == config.api.throttle_burst_limit
    assert settings["DataTraceEnabled"] is False


# --- state, secrets, outputs ----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_stateful_resources_follow_the_removal_policy(synth: Synthesized, name: str) -> None:
    template = synth.template(name, "async")
    retain = CONFIGS[name].removal_policy == "retain"
    expected = "Retain" if retain else "Delete"
    assert len(tables(template)) == 2
    for resource_type in (
        *TABLE_TYPES,
        "AWS::KMS::Key",
        "AWS::Logs::LogGroup",
        "AWS::SecretsManager::Secret",
        "AWS::SQS::Queue",
    ):
        resources = of_type(template, resource_type)
        # One of the two table types, depending on config dr.
        assert resources or resource_type in TABLE_TYPES, resource_type
        for resource in resources:
            assert resource["DeletionPolicy"] == expected, resource_type
            assert resource["UpdateReplacePolicy"] == expected, resource_type
    for table in tables(template):
        assert table_properties(table).get("DeletionProtectionEnabled", False) is retain


@pytest.mark.parametrize("name", NAMES)
def test_tables_ttl_pitr_encryption(synth: Synthesized, name: str) -> None:
    template = synth.template(name, "async")
    keys = set()
    for table in tables(template):
        props = table_properties(table)
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert props["SSESpecification"]["SSEType"] == "KMS"
        keys.add(props["KeySchema"][0]["AttributeName"])
    assert keys == {"pk", "session_id"}


@pytest.mark.parametrize("name", NAMES)
def test_no_secret_value_in_the_template(synth: Synthesized, name: str) -> None:
    template = synth.template(name, "async")
    config = CONFIGS[name]
    text = json.dumps(template)
    assert '"SecretString"' not in text
    assert not re.search(r"sk-[A-Za-z0-9]{8,}", text)
    secrets = {
        props["Name"]: props
        for props in (s["Properties"] for s in of_type(template, "AWS::SecretsManager::Secret"))
    }
    # Never the LLM key: the serverless stack owns that one (a second would collide by name).
    assert config.llm.api_key_secret_name not in secrets
    signing = secrets.pop(config.callback_signing_secret_name)
    assert signing["GenerateSecretString"] == {"ExcludePunctuation": True, "PasswordLength": 48}
    assert "KmsKeyId" in signing
    if config.webhook.inbound_signature is not None:
        inbound = secrets.pop(config.webhook.inbound_signature.secret_name)
        assert "GenerateSecretString" in inbound  # a placeholder, replaced after deploy
        assert "KmsKeyId" in inbound
    assert secrets == {}
    for fn in of_type(template, "AWS::Lambda::Function"):
        env = fn["Properties"]["Environment"]["Variables"]
        assert not any(
            ("KEY" in k or "SECRET" in k) and not k.endswith("_SECRET_ARN") for k in env
        ), env


def test_the_async_stack_depends_on_the_stack_that_owns_the_llm_key(synth: Synthesized) -> None:
    manifest = json.loads((synth.outdir / "manifest.json").read_text())
    for name, config in CONFIGS.items():
        dependencies = manifest["artifacts"][f"{name}-async"].get("dependencies", [])
        owns_key = config.llm.api_key_secret_name is not None
        assert (f"{name}-serverless" in dependencies) is owns_key, name


def test_an_llm_key_needs_its_owning_stack() -> None:
    with pytest.raises(ValueError, match=r"llm_secret_stack is required when llm\.api_key_secret"):
        AsyncAgentStack(App(), "x-async", config=CONFIGS["agent-dev"])


@pytest.mark.parametrize("name", NAMES)
def test_outputs(synth: Synthesized, name: str) -> None:
    outputs = synth.template(name, "async")["Outputs"]
    assert {
        "WebhookUrl", "TasksUrl", "TaskQueueUrl", "TaskDlqUrl", "CallbackDlqUrl",
        "TaskDlqArn", "CallbackDlqArn", "CallbackSigningSecretArn",
    } <= set(outputs)  # fmt: skip
    assert json.dumps(outputs["WebhookUrl"]["Value"]).endswith('"/webhook"]]}')
    assert json.dumps(outputs["TasksUrl"]["Value"]).endswith('"/tasks/"]]}')


@pytest.mark.parametrize("name", NAMES)
def test_tags_on_every_taggable_resource(synth: Synthesized, name: str) -> None:
    for queue in of_type(synth.template(name, "async"), "AWS::SQS::Queue"):
        assert {t["Key"]: t["Value"] for t in queue["Properties"]["Tags"]} == CONFIGS[name].tags


def test_dev_and_prod_async_stacks_differ_only_through_config_values(synth: Synthesized) -> None:
    def shape(name: str) -> set[tuple[str, str]]:
        # Logical ids embed the stack's name and end in hashes of paths or values.
        shapes = set()
        for logical_id, resource in synth.template(name, "async")["Resources"].items():
            generic = logical_id.replace(f"{name}-async".replace("-", ""), "<name>")
            generic = re.sub(r"(Deployment|CurrentVersion)[0-9A-Fa-f]+$", r"\1", generic)
            # config dr (prod): the same tables, global, and their replication alarms.
            if "ReplicationLatencyAlarm" in generic:
                continue
            # config observability.dashboards and waf (prod): the pattern's dashboard and the
            # web ACL's association.
            if resource["Type"] in ("AWS::CloudWatch::Dashboard", "AWS::WAFv2::WebACLAssociation"):
                continue
            kind = resource["Type"].replace("::GlobalTable", "::Table")
            shapes.add((re.sub(r"[0-9A-F]{8}", "", generic), kind))
        return shapes

    assert shape("agent-dev") == shape("agent-prod")


# --- the environment contract ---------------------------------------------------------------------


def _environment_with_placeholders(fn: dict[str, Any]) -> dict[str, str]:
    """The function's variables, each CloudFormation token replaced by a plain string."""
    variables = fn["Properties"]["Environment"]["Variables"]
    return {
        key: value if isinstance(value, str) else f"placeholder-{key.lower()}"
        for key, value in variables.items()
    }


def _aliases(model: type[Any]) -> set[str]:
    return {field.alias for field in model.model_fields.values()}


@pytest.mark.parametrize("name", NAMES)
def test_every_function_gets_the_environment_the_runtime_validates(
    layouts: dict[str, Layout], name: str
) -> None:
    lay = layouts[name]
    config = CONFIGS[name]
    environments = {
        role: lay.resource(fn)["Properties"]["Environment"]["Variables"]
        for role, fn in lay.functions.items()
    }
    # One contract: all three functions see the same variables with the same values.
    assert environments["ingress"] == environments["worker"] == environments["callback"]
    raw = environments["worker"]
    env = _environment_with_placeholders(lay.resource(lay.functions["worker"]))

    tasks = TaskSettings.from_env(env)
    runtime = RuntimeSettings.from_env(env)

    # Every variable either model reads is set, except the optional ones config leaves off.
    # Redis sessions and an injected key (LLM_API_KEY, REDIS_*) are the container pattern's.
    optional = {"INBOUND_SIGNATURE_HEADER", "INBOUND_SIGNATURE_SECRET_ARN", "LLM_BASE_URL",
                "LLM_API_KEY_SECRET_ARN", "SESSION_STORE", "REDIS_URL", "REDIS_PASSWORD",
                "LLM_API_KEY"}  # fmt: skip
    assert (_aliases(TaskSettings) | _aliases(RuntimeSettings)) - optional <= set(env)

    # The values are the config's and point at this stack's resources.
    webhook = config.webhook
    assert tasks.task_lease_seconds == webhook.worker.timeout_seconds
    assert tasks.max_receive_count == lay.props(lay.task_queue)["RedrivePolicy"]["maxReceiveCount"]
    assert tasks.task_ttl_seconds == webhook.task_ttl_seconds
    assert tasks.idempotency_window_seconds == webhook.idempotency_window_seconds
    assert tasks.task_retry_base_seconds == webhook.worker.retry_base_seconds
    assert tasks.task_retry_max_seconds == webhook.worker.retry_max_seconds
    assert tasks.callback_timeout_seconds == webhook.callback.timeout_seconds
    assert tasks.callback_max_attempts == webhook.callback.max_attempts
    assert tasks.callback_allow_http_loopback is webhook.callback.allow_http_loopback
    assert tasks.callback_gone_ttl_seconds == webhook.callback.gone_ttl_seconds
    assert raw["TASK_QUEUE_URL"] == {"Ref": lay.task_queue}
    assert raw["CALLBACK_QUEUE_URL"] == {"Ref": lay.callback_queue}
    assert raw["CALLBACK_DLQ_URL"] == {"Ref": lay.callback_dlq}
    task_table = table_id_of(lay.template, "TaskTable")
    sessions = table_id_of(lay.template, "Sessions")
    assert raw["TASK_TABLE_NAME"] == {"Ref": task_table}
    assert raw["SESSION_TABLE_NAME"] == {"Ref": sessions}
    signing = logical_id_of(lay.template, "AWS::SecretsManager::Secret", "CallbackSigning")
    assert raw["CALLBACK_SIGNING_SECRET_ARN"] == {"Ref": signing}

    inbound = webhook.inbound_signature
    if inbound is None:
        assert tasks.inbound_signature_style == "none"
        assert "INBOUND_SIGNATURE_SECRET_ARN" not in env
    else:
        assert tasks.inbound_signature_style == inbound.style
        assert tasks.inbound_signature_tolerance_seconds == inbound.tolerance_seconds
        inbound_id = logical_id_of(lay.template, "AWS::SecretsManager::Secret", "Inbound")
        assert raw["INBOUND_SIGNATURE_SECRET_ARN"] == {"Ref": inbound_id}
    assert ("INBOUND_SIGNATURE_HEADER" in env) is (
        inbound is not None and inbound.header is not None
    )

    # The agent's variables are exactly the serverless function's.
    assert runtime.llm_model_id == config.llm.model_id
    assert runtime.max_message_chars == config.agent.max_message_chars
    assert (runtime.llm_api_key_secret_arn is None) is (config.llm.api_key_secret_name is None)


def test_async_and_serverless_functions_describe_the_same_agent(synth: Synthesized) -> None:
    agent_variables = _aliases(RuntimeSettings)
    for name in NAMES:
        [serverless] = [
            fn
            for fn in of_type(synth.template(name), "AWS::Lambda::Function")
            if fn["Properties"]["Handler"] == "runtime.handlers.serverless_api.lambda_handler"
        ]
        serverless_env = serverless["Properties"]["Environment"]["Variables"]
        for fn in of_type(synth.template(name, "async"), "AWS::Lambda::Function"):
            env = fn["Properties"]["Environment"]["Variables"]
            for key in agent_variables & set(serverless_env):
                if key in ("SESSION_TABLE_NAME", "LLM_API_KEY_SECRET_ARN"):
                    continue  # this stack's own table; the secret imported by name
                assert env[key] == serverless_env[key], (name, key)
            assert set(env) >= agent_variables & set(serverless_env)


def test_an_explicit_signature_header_reaches_the_environment() -> None:
    data = CONFIGS["agent-variant"].model_dump(by_alias=True)
    data["webhook"]["inbound_signature"]["header"] = "X-Signature"
    config = DeploymentConfig.model_validate(data)
    env = task_environment(
        config,
        task_table_name="tasks",
        task_queue_url="https://sqs/q",
        callback_queue_url="https://sqs/c",
        callback_dlq_url="https://sqs/d",
        signing_secret_arn="arn:signing",
        inbound_secret_arn="arn:inbound",
    )
    assert env["INBOUND_SIGNATURE_HEADER"] == "X-Signature"
    settings = TaskSettings.from_env({**env, "MAX_BODY_BYTES": "65536", "MAX_MESSAGE_CHARS": "10"})
    assert settings.inbound_signature_header == "X-Signature"
    with pytest.raises(ValueError, match="inbound_secret_arn is required"):
        task_environment(
            config,
            task_table_name="tasks",
            task_queue_url="q",
            callback_queue_url="c",
            callback_dlq_url="d",
            signing_secret_arn="arn:signing",
            inbound_secret_arn=None,
        )


# --- constructs on a bare stack -------------------------------------------------------------------


def _queue_props(**changes: Any) -> TaskQueueProps:
    stack = Stack(App(), "bare")
    values: dict[str, Any] = {
        "purpose": "test",
        "consumer_timeout": Duration.seconds(60),
        "max_batching_window": Duration.seconds(0),
        "max_receive_count": 5,
        "retention": Duration.days(4),
        "dlq_retention": Duration.days(14),
        "oldest_message_age_alarm": Duration.minutes(15),
        "encryption_key": kms.Key(stack, "Key"),
        "removal_policy": RemovalPolicy.DESTROY,
    }
    values.update(changes)
    return TaskQueueProps(**values)


def test_task_queue_derives_the_visibility_timeout() -> None:
    props = _queue_props(
        consumer_timeout=Duration.seconds(100), max_batching_window=Duration.seconds(30)
    )
    queue = TaskQueue(Stack(App(), "s"), "Q", props=props)
    assert queue.visibility_timeout.to_seconds() == 6 * 100 + 30


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dlq_retention": Duration.days(4)}, r"dlq_retention must be longer than retention"),
        ({"retention": Duration.days(15)}, r"retention must be between 1 minute and 14 days"),
        ({"consumer_timeout": Duration.hours(3)}, r"above SQS's 12-hour visibility limit"),
        ({"max_receive_count": 0}, r"max_receive_count must be at least 1"),
    ],
)
def test_task_queue_refuses_values_that_lose_messages(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=rf"TaskQueueProps\..*{message}"):
        TaskQueue(Stack(App(), "s"), "Q", props=_queue_props(**changes))


def test_schema_converter_refuses_keywords_it_would_drop() -> None:
    with pytest.raises(ValueError, match=r"\$\.properties\.n: JSON Schema keyword\(s\) minimum"):
        to_api_gateway_schema({"type": "object", "properties": {"n": {"minimum": 1}}})
    with pytest.raises(ValueError, match=r"unknown JSON Schema type 'text'"):
        to_api_gateway_schema({"type": "text"})
