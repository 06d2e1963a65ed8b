"""The serverless agent: API Gateway -> Lambda -> DynamoDB, the LLM key in Secrets Manager."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, Stack
from aws_cdk import aws_secretsmanager as secretsmanager

from config.environment import agent_environment, usage_environment
from config.model import DeploymentConfig
from constructs import Construct
from constructs.acknowledgements import acknowledge_nag, skip_checkov
from constructs.agent_api import AgentApi, AgentApiProps
from constructs.agent_function import AgentFunction, AgentFunctionProps
from constructs.dashboards import PatternDashboard
from constructs.data_key import DataKey
from constructs.function_alarms import FunctionAlarmProps, FunctionAlarms
from constructs.key_rotation import KeyRotation, key_rotation_props
from constructs.secure_defaults import SERVERLESS_HANDLER
from constructs.session_table import SessionTable
from stacks.dr_placement import DrPlacement
from stacks.shared import (
    api_stage_props,
    grant_bedrock_invoke,
    lambda_releases,
    llm_usage_metrics,
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
        dr: DrPlacement | None = None,
        web_acl_arn: str | None = None,
    ) -> None:
        """``web_acl_arn``: the deployment's regional web ACL (config ``waf``), for the stage."""
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
        # With dr: a global table (primary region) or its replica (standby region).
        sessions = SessionTable(
            self,
            "Sessions",
            encryption_key=data_key,
            removal_policy=removal,
            global_table=dr.global_table(self, "sessions") if dr else None,
        )

        self.llm_secret: secretsmanager.Secret | None = None
        self.key_rotation: KeyRotation | None = None
        # What the function reads: this stack's secret, or in a DR standby the primary's replica.
        llm_key: secretsmanager.ISecret | None = None
        if config.llm.api_key_secret_name is not None and dr is not None and dr.standby:
            llm_key = dr.replicated_secret(self, "LlmApiKey", config.llm.api_key_secret_name)
        elif config.llm.api_key_secret_name is not None:
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
                # With dr: the same secret (name and value) in the secondary region too.
                replica_regions=dr.secret_replicas(self) if dr else None,
            )
            llm_key = self.llm_secret
            if config.rotation.llm_key is not None:
                # The rotation Lambda and schedule (docs/key-rotation.md); DR replicas follow.
                self.key_rotation = KeyRotation(
                    self,
                    "LlmKeyRotation",
                    props=key_rotation_props(
                        config,
                        secret=self.llm_secret,
                        encryption_key=data_key,
                        log_retention=retention,
                        removal_policy=removal,
                    ),
                )
            else:
                acknowledge_nag(
                    self.llm_secret,
                    "AwsSolutions-SMG4",
                    "config rotation.llm_key is off for this deployment, so the key is rotated by "
                    "hand (put-secret-value, docs/key-rotation.md); turning it on adds the "
                    "rotation Lambda and schedule",
                )
        environment = agent_environment(
            config,
            session_table_name=sessions.table.table_name,
            llm_secret_arn=llm_key.secret_arn if llm_key else None,
        ) | usage_environment(config)

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
                xray_sdk=config.observability.xray_sdk_subsegments,
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
        if llm_key is not None:
            llm_key.grant_read(agent.role)
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
                stage=api_stage_props(config, data_key, web_acl_arn),
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
        # Safe releases: a new version reaches the live alias through CodeDeploy.
        self.releases = lambda_releases(
            self, config, {"Agent": (agent.alias, "agent sessions API")}
        )
        self.rollback_alarms = self.releases.rollback_alarms
        # With dr.domain: this region's half of the API's Route 53 failover pair.
        self.failover_dns = dr.failover_dns(self, self.api.api) if dr else None
        # With dr (primary region): DynamoDB's replication latency against the RPO.
        self.replication_alarms = [a for a in (sessions.replication_alarm,) if a is not None]
        self.dashboard: PatternDashboard | None = None
        if config.observability.dashboards:
            self.dashboard = PatternDashboard(self, "Dashboard", name=self.stack_name)
            self.dashboard.header(f"{config.name}: serverless agent")
            self.dashboard.rest_api(self.api.api, "Sessions API")
            self.dashboard.lambda_function(agent.function, "Agent function")
            self.dashboard.table(sessions.table, "Session table")
            usage = llm_usage_metrics(config)
            if usage is not None:
                self.dashboard.llm_usage(usage)
        self.session_table = sessions.table
        CfnOutput(self, "ApiUrl", value=self.api.api.url, description="Agent API base URL")
        CfnOutput(self, "SessionTableName", value=sessions.table.table_name)
        if self.llm_secret is not None:
            # For kubernetes.aws.llm_api_key_secret_arn: pods read the rotated key by this ARN.
            CfnOutput(
                self,
                "LlmApiKeySecretArn",
                value=self.llm_secret.secret_arn,
                description="The LLM key secret's complete ARN (put the key here; pods read it)",
            )
