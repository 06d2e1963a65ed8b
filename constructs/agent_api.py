"""The REST API in front of the agent: routes, validation, auth, throttling, logs, X-Ray."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

from constructs import Construct
from constructs.acknowledgements import acknowledge_nag, skip_checkov
from constructs.secure_defaults import (
    API_DATA_TRACE,
    API_DEFAULT_AUTHORIZATION,
    API_ENDPOINT_TYPE,
    API_LOGGING_LEVEL,
    API_STAGE_NAME,
)

# The same limits the handler enforces; API Gateway rejects obvious garbage before it costs an
# invocation, the handler stays the authority (it also runs behind other front doors).
SESSION_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


@dataclass(frozen=True)
class AgentApiProps:
    handler: lambda_.IFunction
    throttle_rate_limit: float
    throttle_burst_limit: int
    auth: Literal["iam", "api_key"]
    quota_per_day: int | None
    max_message_chars: int
    log_retention: logs.RetentionDays
    encryption_key: kms.IKey
    removal_policy: RemovalPolicy


class AgentApi(Construct):
    """``self.api``: ``POST /sessions/{session_id}/messages`` and ``GET /sessions/{session_id}``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: AgentApiProps) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=props.log_retention,
            encryption_key=props.encryption_key,
            removal_policy=props.removal_policy,
        )
        use_api_keys = props.auth == "api_key"
        self.api = apigw.RestApi(
            self,
            "Api",
            description="Agent sessions API",
            endpoint_types=[API_ENDPOINT_TYPE],
            # Execution and access logging need the account-level CloudWatch role.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=props.removal_policy,
            deploy_options=apigw.StageOptions(
                stage_name=API_STAGE_NAME,
                throttling_rate_limit=props.throttle_rate_limit,
                throttling_burst_limit=props.throttle_burst_limit,
                tracing_enabled=True,
                logging_level=API_LOGGING_LEVEL,
                data_trace_enabled=API_DATA_TRACE,
                metrics_enabled=True,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
            ),
            default_method_options=apigw.MethodOptions(
                authorization_type=API_DEFAULT_AUTHORIZATION
                if not use_api_keys
                else apigw.AuthorizationType.NONE,
                api_key_required=use_api_keys,
            ),
        )
        self._json_errors()

        validator = self.api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        message_model = self.api.add_model(
            "MessageRequest",
            content_type="application/json",
            schema=apigw.JsonSchema(
                schema=apigw.JsonSchemaVersion.DRAFT4,
                type=apigw.JsonSchemaType.OBJECT,
                required=["message"],
                additional_properties=False,
                properties={
                    "message": apigw.JsonSchema(
                        type=apigw.JsonSchemaType.STRING,
                        min_length=1,
                        max_length=props.max_message_chars,
                    ),
                    "expected_version": apigw.JsonSchema(
                        type=apigw.JsonSchemaType.INTEGER, minimum=0
                    ),
                },
            ),
        )
        integration = apigw.LambdaIntegration(props.handler, proxy=True)
        sessions = self.api.root.add_resource("sessions")
        session = sessions.add_resource("{session_id}")
        path_params = {"method.request.path.session_id": True}
        self.get_session = session.add_method(
            "GET", integration, request_parameters=path_params, request_validator=validator
        )
        self.post_message = session.add_resource("messages").add_method(
            "POST",
            integration,
            request_parameters=path_params,
            request_validator=validator,
            request_models={"application/json": message_model},
        )
        if use_api_keys:
            self._usage_plan(props)
        self._acknowledge(use_api_keys)

    def _json_errors(self) -> None:
        # API Gateway's own rejections get the same JSON error shape as the handler's.
        for response_type, code in (
            (apigw.ResponseType.BAD_REQUEST_BODY, "validation_error"),
            (apigw.ResponseType.BAD_REQUEST_PARAMETERS, "validation_error"),
            (apigw.ResponseType.DEFAULT_4_XX, "request_rejected"),
            (apigw.ResponseType.DEFAULT_5_XX, "gateway_error"),
        ):
            self.api.add_gateway_response(
                f"{code}-{response_type.response_type}",
                type=response_type,
                templates={
                    "application/json": f'{{"error": {{"code": "{code}", "message": '
                    "$context.error.messageString, "
                    '"detail": "$context.error.validationErrorString"}}'
                },
            )

    def _usage_plan(self, props: AgentApiProps) -> None:
        plan = self.api.add_usage_plan(
            "UsagePlan",
            throttle=apigw.ThrottleSettings(
                rate_limit=props.throttle_rate_limit, burst_limit=props.throttle_burst_limit
            ),
            quota=apigw.QuotaSettings(limit=props.quota_per_day, period=apigw.Period.DAY)
            if props.quota_per_day
            else None,
        )
        plan.add_api_stage(stage=self.api.deployment_stage)
        plan.add_api_key(self.api.add_api_key("DefaultKey"))

    def _acknowledge(self, use_api_keys: bool) -> None:
        acknowledge_nag(
            self.api.deployment_stage,
            "AwsSolutions-APIG3",
            "WAFv2 is attached by the operations profile (issue #7); until then IAM "
            "authorization and stage throttling bound abuse of this regional API",
        )
        skip_checkov(
            self.api.deployment_stage,
            "CKV_AWS_120",
            "responses are per-session agent turns (POST) or live session state; a cache would "
            "serve stale conversations",
        )
        for method in (self.get_session, self.post_message):
            acknowledge_nag(
                method,
                "AwsSolutions-COG4",
                "methods use IAM (SigV4) authorization, which AwsSolutions-APIG4 accepts; a "
                "Cognito user pool is for browser sign-in, which this machine API does not have",
            )
            if use_api_keys:
                acknowledge_nag(
                    method,
                    "AwsSolutions-APIG4",
                    "config api.auth is api_key: callers present a usage-plan key, which "
                    "throttles and meters them; IAM auth is the default in this repository",
                )
        role = self.api.node.find_child("CloudWatchRole")
        acknowledge_nag(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "the account-level API Gateway logging role must use this AWS-managed policy; it "
            "grants log writes only and API Gateway assumes it for every API in the account",
        )
