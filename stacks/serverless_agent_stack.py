"""The serverless agent: API Gateway -> Lambda -> DynamoDB, the LLM key in Secrets Manager."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager

from config.model import LOG_RETENTION_DAYS, DeploymentConfig, LlmConfig
from constructs import Construct
from constructs.acknowledgements import acknowledge_nag, skip_checkov
from constructs.agent_api import AgentApi, AgentApiProps
from constructs.agent_function import AgentFunction, AgentFunctionProps
from constructs.data_key import DataKey
from constructs.function_alarms import FunctionAlarmProps, FunctionAlarms
from constructs.secure_defaults import SERVERLESS_HANDLER
from constructs.session_table import SessionTable

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


class ServerlessAgentStack(Stack):
    """Everything one serverless agent needs; its shape depends only on ``config`` values."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=env,
            description=f"{config.name}: serverless agent (API Gateway, Lambda, DynamoDB)",
        )
        removal = (
            RemovalPolicy.RETAIN if config.removal_policy == "retain" else RemovalPolicy.DESTROY
        )
        retention = _RETENTION[config.logs.retention_days]

        data_key = DataKey(
            self,
            "DataKey",
            description=f"{config.name}: agent data at rest",
            removal_policy=removal,
        ).key
        sessions = SessionTable(self, "Sessions", encryption_key=data_key, removal_policy=removal)

        environment = {
            "SESSION_TABLE_NAME": sessions.table.table_name,
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
        self.llm_secret: secretsmanager.Secret | None = None
        if config.llm.api_key_secret_name is not None:
            # Generated placeholder: the real key is put in after deploy (README), so no key value
            # ever appears in code, config, template or function environment: only the ARN does.
            self.llm_secret = secretsmanager.Secret(
                self,
                "LlmApiKey",
                secret_name=config.llm.api_key_secret_name,
                description=f"{config.name}: API key for {config.llm.model_id}; set after deploy",
                encryption_key=data_key,
                removal_policy=removal,
            )
            environment["LLM_API_KEY_SECRET_ARN"] = self.llm_secret.secret_arn
            acknowledge_nag(
                self.llm_secret,
                "AwsSolutions-SMG4",
                "a third-party LLM API key is rotated at the provider; the rotation Lambda that "
                "follows the four-step protocol arrives with the operations issue (#7)",
            )
        if config.llm.base_url is not None:
            environment["LLM_BASE_URL"] = str(config.llm.base_url)

        agent = AgentFunction(
            self,
            "Agent",
            props=AgentFunctionProps(
                handler=SERVERLESS_HANDLER,
                description=f"{config.name}: agent sessions API handler",
                service_name=config.name,
                memory_mb=config.lambda_.memory_mb,
                timeout=Duration.seconds(config.lambda_.timeout_seconds),
                reserved_concurrency=config.lambda_.reserved_concurrency,
                provisioned_concurrency=config.lambda_.provisioned_concurrency,
                environment=environment,
                log_retention=retention,
                encryption_key=data_key,
                removal_policy=removal,
                powertools_layer_version=config.lambda_.powertools_layer_version,
            ),
        )
        self.agent = agent
        acknowledge_nag(
            agent.function,
            "Serverless-LambdaDLQ",
            "invoked synchronously by API Gateway only; a dead-letter queue receives failed "
            "asynchronous invocations, which this function never gets",
        )
        skip_checkov(
            agent.function,
            "CKV_AWS_116",
            "invoked synchronously by API Gateway only; a dead-letter queue receives failed "
            "asynchronous invocations, which this function never gets",
        )
        skip_checkov(
            agent.function,
            "CKV_AWS_117",
            "reaches only public AWS endpoints and the LLM API; a VPC would add NAT gateway "
            "cost and cold-start latency without isolating anything",
        )

        # The stack grants; constructs never reach into each other.
        sessions.table.grant_read_write_data(agent.role)
        if self.llm_secret is not None:
            self.llm_secret.grant_read(agent.role)
        if config.llm.provider == "bedrock":
            statement = _bedrock_invoke_statement(self, config.llm)
            agent.role.add_to_policy(statement)
            for resource in statement.resources:
                if "bedrock:*:" in resource:
                    acknowledge_nag(
                        agent.role_policy,
                        "AwsSolutions-IAM5[Resource::"
                        + resource.replace(self.partition, "<AWS::Partition>")
                        + "]",
                        "a cross-region inference profile routes to its base model in any region "
                        "of its geography; the wildcard spans regions for this one model only",
                    )
        for action in ("kms:ReEncrypt*", "kms:GenerateDataKey*"):
            acknowledge_nag(
                agent.role_policy,
                f"AwsSolutions-IAM5[Action::{action}]",
                "CDK's table grant needs the KMS data-key actions of the table's customer-managed "
                "key; the statement names that one key, so the wildcard spans actions, not keys",
            )

        self.api = AgentApi(
            self,
            "Api",
            props=AgentApiProps(
                handler=agent.alias,
                throttle_rate_limit=config.api.throttle_rate_limit,
                throttle_burst_limit=config.api.throttle_burst_limit,
                auth=config.api.auth,
                quota_per_day=config.api.quota_per_day,
                max_message_chars=config.agent.max_message_chars,
                log_retention=retention,
                encryption_key=data_key,
                removal_policy=removal,
            ),
        )
        self.alarms = FunctionAlarms(
            self,
            "Alarms",
            props=FunctionAlarmProps(
                function=agent.function,
                errors_per_period=config.alarms.errors_per_period,
                throttles_per_period=config.alarms.throttles_per_period,
                p99_duration_ms=config.alarms.p99_duration_ms,
                period=Duration.minutes(config.alarms.period_minutes),
                evaluation_periods=config.alarms.evaluation_periods,
            ),
        )
        self.session_table = sessions.table
        CfnOutput(self, "ApiUrl", value=self.api.api.url, description="Agent API base URL")
        CfnOutput(self, "SessionTableName", value=sessions.table.table_name)


def _bedrock_invoke_statement(stack: Stack, llm: LlmConfig) -> iam.PolicyStatement:
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
