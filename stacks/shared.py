"""What the agent stacks build the same way: removal, log retention, API stage, the environment
contract, Bedrock access. One definition, so the functions and containers cannot drift apart."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs

from config.model import LOG_RETENTION_DAYS, DeploymentConfig, LlmConfig
from constructs.acknowledgements import acknowledge_nag
from constructs.agent_function import AgentFunction
from constructs.rest_api import ApiStageProps
from constructs.secure_defaults import CONTAINER_PORT, VPC_CIDR

# Bedrock cross-region inference profiles prefix the model id with a geography.
_INFERENCE_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "global.")
# RetentionDays members are named in words but listed in the same order as CloudWatch's periods.
_RETENTION = dict(
    zip(
        LOG_RETENTION_DAYS,
        [m for m in logs.RetentionDays if m is not logs.RetentionDays.INFINITE],
        strict=True,
    )
)


def removal_policy(config: DeploymentConfig) -> RemovalPolicy:
    return RemovalPolicy.RETAIN if config.removal_policy == "retain" else RemovalPolicy.DESTROY


def log_retention(config: DeploymentConfig) -> logs.RetentionDays:
    return _RETENTION[config.logs.retention_days]


def api_stage_props(config: DeploymentConfig, encryption_key: kms.IKey) -> ApiStageProps:
    """Stage throttling, auth and logging from ``config.api``; every API of a deployment alike."""
    return ApiStageProps(
        throttle_rate_limit=config.api.throttle_rate_limit,
        throttle_burst_limit=config.api.throttle_burst_limit,
        auth=config.api.auth,
        quota_per_day=config.api.quota_per_day,
        log_retention=log_retention(config),
        encryption_key=encryption_key,
        removal_policy=removal_policy(config),
    )


def agent_environment(
    config: DeploymentConfig,
    *,
    session_table_name: str | None = None,
    redis_url: str | None = None,
    llm_secret_arn: str | None,
) -> dict[str, str]:
    """Every ``runtime.settings.RuntimeSettings`` variable: the agent a function or task runs.

    Sessions live in DynamoDB (``session_table_name``) or in Redis (``redis_url``; the password
    and, for containers, the LLM key arrive as ECS secrets, not here).
    """
    if (session_table_name is None) == (redis_url is None):
        raise ValueError(
            "agent_environment: pass exactly one of session_table_name (DynamoDB sessions) or "
            "redis_url (Redis sessions)"
        )
    environment = {}
    if session_table_name is not None:
        environment["SESSION_TABLE_NAME"] = session_table_name
    else:
        environment["SESSION_STORE"] = "redis"
        environment["REDIS_URL"] = str(redis_url)
    environment |= {
        "SESSION_TTL_SECONDS": str(config.session.ttl_seconds),
        "LLM_PROVIDER": config.llm.provider,
        "LLM_MODEL_ID": config.llm.model_id,
        "LLM_REQUEST_TIMEOUT_SECONDS": str(config.llm.request_timeout_seconds),
        "LLM_MAX_ATTEMPTS": str(config.llm.max_attempts),
        "AGENT_MAX_ITERATIONS": str(config.agent.max_iterations),
        "AGENT_SYSTEM_PROMPT": config.agent.system_prompt,
        "MAX_MESSAGE_CHARS": str(config.agent.max_message_chars),
        "MAX_BODY_BYTES": str(config.agent.max_body_bytes),
    }
    if llm_secret_arn is not None:
        environment["LLM_API_KEY_SECRET_ARN"] = llm_secret_arn
    if config.llm.base_url is not None:
        environment["LLM_BASE_URL"] = str(config.llm.base_url)
    return environment


def service_environment(config: DeploymentConfig, *, stop_timeout_seconds: int) -> dict[str, str]:
    """The container service's ``runtime.service.settings.ServiceSettings`` variables."""
    container = config.container
    return {
        "SERVICE_PORT": str(CONTAINER_PORT),
        "SERVICE_MAX_CONCURRENT_SESSIONS": str(container.max_concurrent_sessions),
        # One WebSocket frame carries one step request: the same limit as an HTTP body.
        "SERVICE_MAX_FRAME_BYTES": str(config.agent.max_body_bytes),
        "SERVICE_WS_HEARTBEAT_SECONDS": str(container.ws_heartbeat_seconds),
        # The service checks its heartbeat and drain against the platform's values.
        "SERVICE_LB_IDLE_TIMEOUT_SECONDS": str(container.alb_idle_timeout_seconds),
        "SERVICE_DRAIN_SECONDS": str(container.drain_seconds),
        "SERVICE_STOP_TIMEOUT_SECONDS": str(stop_timeout_seconds),
        # X-Forwarded-For/-Proto are believed only from inside the VPC: the load balancer.
        "SERVICE_FORWARDED_ALLOW_IPS": VPC_CIDR,
    }


def worker_environment(config: DeploymentConfig) -> dict[str, str]:
    """The container queue worker's ``runtime.queue_worker.WorkerSettings`` variables."""
    container = config.container
    return {
        # Task messages only: callbacks stay with the async stack's callback Lambda.
        "WORKER_QUEUES": "task",
        "WORKER_VISIBILITY_SECONDS": str(container.worker.visibility_seconds),
        "WORKER_DRAIN_SECONDS": str(container.drain_seconds),
    }


def grant_bedrock_invoke(function: AgentFunction, llm: LlmConfig) -> None:
    """Let ``function`` invoke the configured Bedrock model, and only that one."""
    grant_bedrock_invoke_to_role(function.role, llm)


def grant_bedrock_invoke_to_role(role: iam.Role, llm: LlmConfig) -> None:
    """Let ``role`` invoke the configured Bedrock model, and only that one."""
    stack = Stack.of(role)
    statement = bedrock_invoke_statement(stack, llm)
    role.add_to_principal_policy(statement)
    policy = role.node.find_child("DefaultPolicy")
    for resource in statement.resources:
        if "bedrock:*:" in resource:
            acknowledge_nag(
                policy,
                "AwsSolutions-IAM5[Resource::" + nag_resource(stack, resource) + "]",
                "a cross-region inference profile routes to its base model in any region "
                "of its geography; the wildcard spans regions for this one model only",
            )


def bedrock_invoke_statement(stack: Stack, llm: LlmConfig) -> iam.PolicyStatement:
    """``bedrock:InvokeModel`` on the configured model only (Converse authorizes as InvokeModel)."""
    model_id = llm.model_id
    if model_id.startswith(_INFERENCE_PROFILE_PREFIXES):
        # An inference profile routes to the base model in any region of its geography.
        base_model = model_id.split(".", 1)[1]
        resources = [
            f"arn:{stack.partition}:bedrock:{stack.region}:{stack.account}:inference-profile/{model_id}",
            f"arn:{stack.partition}:bedrock:*::foundation-model/{base_model}",
        ]
    else:
        resources = [f"arn:{stack.partition}:bedrock:{stack.region}::foundation-model/{model_id}"]
    return iam.PolicyStatement(
        actions=["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
        resources=resources,
    )


def nag_resource(stack: Stack, arn: str) -> str:
    """An ARN built from the stack's pseudo parameters, as cdk-nag prints it in a finding id.

    cdk-nag shows an unresolved pseudo parameter as ``<AWS::Region>``; a region or account the
    config pins is a plain string and stays as it is.
    """
    for value, shown in (
        (stack.partition, "<AWS::Partition>"),
        (stack.region, "<AWS::Region>"),
        (stack.account, "<AWS::AccountId>"),
    ):
        if Token.is_unresolved(value):
            arn = arn.replace(value, shown)
    return arn
