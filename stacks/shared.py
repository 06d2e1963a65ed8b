"""What the agent stacks build the same way: removal, log retention, API stage, Bedrock access.
One definition, so the functions and containers cannot drift apart. The runtime's environment
contract is in config/environment.py, shared with the Kubernetes charts."""

from __future__ import annotations

from aws_cdk import Duration, Fn, RemovalPolicy, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

from config.environment import usage_environment
from config.model import LOG_RETENTION_DAYS, DeploymentConfig, LlmConfig
from constructs.acknowledgements import acknowledge_nag
from constructs.agent_function import AgentFunction
from constructs.canary_release import LambdaReleaseProps, LambdaReleases
from constructs.cost_alerts import LlmUsageMetrics
from constructs.rest_api import ApiStageProps
from constructs.usage_plans import TenantPlan

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


def llm_usage_metrics(config: DeploymentConfig) -> LlmUsageMetrics | None:
    """The runtime's usage metrics as the stacks' environment configures them (the same
    namespace and dimension values, from one function); None when usage_metrics is off."""
    environment = usage_environment(config)
    if not environment:
        return None
    return LlmUsageMetrics(
        namespace=environment["USAGE_METRICS_NAMESPACE"],
        service=environment["USAGE_METRICS_SERVICE"],
        model_id=config.llm.model_id,
    )


def log_retention(config: DeploymentConfig) -> logs.RetentionDays:
    return _RETENTION[config.logs.retention_days]


def api_stage_props(
    config: DeploymentConfig, encryption_key: kms.IKey, web_acl_arn: str | None = None
) -> ApiStageProps:
    """Stage throttling, auth, tenants and logging from ``config.api``; every API of a
    deployment alike. ``web_acl_arn``: the deployment's regional web ACL (config ``waf``)."""
    return ApiStageProps(
        throttle_rate_limit=config.api.throttle_rate_limit,
        throttle_burst_limit=config.api.throttle_burst_limit,
        auth=config.api.auth,
        quota_per_day=config.api.quota_per_day,
        log_retention=log_retention(config),
        encryption_key=encryption_key,
        removal_policy=removal_policy(config),
        tenants=tuple(
            TenantPlan(
                name=tenant.name,
                throttle_rate_limit=tenant.throttle_rate_limit,
                throttle_burst_limit=tenant.throttle_burst_limit,
                quota_limit=tenant.quota.limit if tenant.quota else None,
                quota_period=tenant.quota.period if tenant.quota else "day",
            )
            for tenant in config.api.tenants
        ),
        web_acl_arn=web_acl_arn,
    )


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


def grant_bedrock_model_to_role(role: iam.Role, model_id: str) -> None:
    """Let ``role`` call ``bedrock:InvokeModel`` on one foundation model in the stack's region.

    For the memory's embedding model: a single request and response, so no streaming action.
    """
    stack = Stack.of(role)
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["bedrock:InvokeModel"],
            resources=[
                f"arn:{stack.partition}:bedrock:{stack.region}::foundation-model/{model_id}"
            ],
        )
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


def deploy_time_azs(count: int) -> list[str]:
    """The region's first ``count`` AZs, resolved at deploy time: no lookup (and no AWS
    credentials) at synth, even when the config pins account and region."""
    return [Fn.select(index, Fn.get_azs()) for index in range(count)]


def lambda_releases(
    stack: Stack, config: DeploymentConfig, aliases: dict[str, tuple[lambda_.Alias, str]]
) -> LambdaReleases:
    """Safe releases (config ``releases``) for ``stack``'s live aliases, id -> (alias, what).

    A new version reaches each alias through CodeDeploy (``releases.lambda_deployment``) and
    rolls back on the alias's own error or p99 alarm; any other live alias in the stack (e.g. the
    key rotation function's) is released the same way.
    """
    releases = LambdaReleases(
        stack,
        "Releases",
        props=LambdaReleaseProps(
            deployment=config.releases.lambda_deployment,
            errors_per_period=config.alarms.errors_per_period,
            p99_duration_ms=config.alarms.p99_duration_ms,
            period=Duration.minutes(config.alarms.period_minutes),
        ),
    )
    for alias_id, (alias, what) in aliases.items():
        releases.add(alias_id, alias, what)
    releases.add_every_live_alias(stack)
    return releases
