"""The serverless agent: API Gateway -> Lambda -> DynamoDB, the LLM key in Secrets Manager."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, Stack
from aws_cdk import aws_secretsmanager as secretsmanager

from config.environment import agent_environment
from config.model import DeploymentConfig
from constructs import Construct
from constructs.acknowledgements import acknowledge_nag, skip_checkov
from constructs.agent_api import AgentApi, AgentApiProps
from constructs.agent_function import AgentFunction, AgentFunctionProps
from constructs.data_key import DataKey
from constructs.function_alarms import FunctionAlarmProps, FunctionAlarms
from constructs.secure_defaults import SERVERLESS_HANDLER
from constructs.session_table import SessionTable
from stacks.shared import (
    api_stage_props,
    grant_bedrock_invoke,
    log_retention,
    removal_policy,
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
        removal = removal_policy(config)
        retention = log_retention(config)

        data_key = DataKey(
            self,
            "DataKey",
            description=f"{config.name}: agent data at rest",
            removal_policy=removal,
        ).key
        sessions = SessionTable(self, "Sessions", encryption_key=data_key, removal_policy=removal)

        self.llm_secret: secretsmanager.Secret | None = None
        if config.llm.api_key_secret_name is not None:
            # Generated placeholder: the real key is put in after deploy (README), so no key value
            # ever appears in code, config, template or function environment: only the ARN does.
            # This stack owns the secret; the async stack reads the same one by name.
            self.llm_secret = secretsmanager.Secret(
                self,
                "LlmApiKey",
                secret_name=config.llm.api_key_secret_name,
                description=f"{config.name}: API key for {config.llm.model_id}; set after deploy",
                encryption_key=data_key,
                removal_policy=removal,
            )
            acknowledge_nag(
                self.llm_secret,
                "AwsSolutions-SMG4",
                "a third-party LLM API key is rotated at the provider; the rotation Lambda that "
                "follows the four-step protocol arrives with the operations issue (#7)",
            )
        environment = agent_environment(
            config,
            session_table_name=sessions.table.table_name,
            llm_secret_arn=self.llm_secret.secret_arn if self.llm_secret else None,
        )

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
            grant_bedrock_invoke(agent, config.llm)
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
                max_message_chars=config.agent.max_message_chars,
                stage=api_stage_props(config, data_key),
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
