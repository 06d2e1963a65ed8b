"""The agent's Lambda function: runtime code, log group, role, tracing and a ``live`` alias."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

from constructs import Construct
from constructs.acknowledgements import acknowledge_nag
from constructs.python_bundle import runtime_code
from constructs.secure_defaults import (
    LAMBDA_ARCHITECTURE,
    LAMBDA_RUNTIME,
    LAMBDA_TRACING,
    LOG_LEVEL,
    POWERTOOLS_LAYER_ACCOUNT,
    POWERTOOLS_LAYER_NAME,
)
from runtime.handlers.tracing import ENV_VAR as XRAY_SDK_ENV_VAR


@dataclass(frozen=True)
class AgentFunctionProps:
    handler: str
    description: str
    service_name: str
    memory_mb: int
    timeout: Duration
    reserved_concurrency: int
    provisioned_concurrency: int | None
    environment: Mapping[str, str]
    log_retention: logs.RetentionDays
    encryption_key: kms.IKey
    removal_policy: RemovalPolicy
    powertools_layer_version: int
    # The X-Ray SDK in the function (runtime/handlers/tracing.py); active tracing either way.
    xray_sdk: bool = False


class AgentFunction(Construct):
    """``self.function`` and ``self.alias`` (``live``; callers invoke the alias, never $LATEST).

    The role is created here without AWS-managed policies: it may write only to its own log
    group. Grants to data (table, secret, model) are the stack's job.
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: AgentFunctionProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=props.log_retention,
            encryption_key=props.encryption_key,
            removal_policy=props.removal_policy,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{props.description} (execution role)",
        )
        self.log_group.grant_write(self.role)
        # The role's inline policy, which every later grant extends; acknowledgements sit on it.
        self.role_policy = self.role.node.find_child("DefaultPolicy")

        powertools = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "Powertools",
            f"arn:{stack.partition}:lambda:{stack.region}:{POWERTOOLS_LAYER_ACCOUNT}:layer:"
            f"{POWERTOOLS_LAYER_NAME}:{props.powertools_layer_version}",
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=props.description,
            runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            handler=props.handler,
            code=runtime_code(runtime=LAMBDA_RUNTIME, architecture=LAMBDA_ARCHITECTURE),
            layers=[powertools],
            memory_size=props.memory_mb,
            timeout=props.timeout,
            reserved_concurrent_executions=props.reserved_concurrency,
            tracing=LAMBDA_TRACING,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            role=self.role,
            environment={
                "POWERTOOLS_SERVICE_NAME": props.service_name,
                "POWERTOOLS_METRICS_NAMESPACE": props.service_name,
                "POWERTOOLS_LOG_LEVEL": LOG_LEVEL,
                **({XRAY_SDK_ENV_VAR: "true"} if props.xray_sdk else {}),
                **props.environment,
            },
            environment_encryption=props.encryption_key,
        )
        self.alias = lambda_.Alias(
            self,
            "Live",
            alias_name="live",
            version=self.function.current_version,
            provisioned_concurrent_executions=props.provisioned_concurrency,
        )
        acknowledge_nag(
            self.role_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords have no resource-level permissions; "
            "CDK adds them for active tracing and AWS documents Resource * as the only option",
        )
