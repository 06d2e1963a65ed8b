"""What every REST API of this repository shares: stage, logs, auth defaults, errors, usage plan.

:class:`RestApiScaffold` is a base construct: a subclass calls ``super().__init__`` (access logs,
the ``RestApi`` with its stage, JSON gateway errors, a request validator), adds its routes, then
calls :meth:`RestApiScaffold.finish` (usage plan, acknowledgements). The children keep the same
construct paths a single class would give them, so a template built through the scaffold is the
template built without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_kms as kms
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
from constructs.usage_plans import TenantPlan, TenantUsagePlans
from constructs.web_acl import associate_web_acl


@dataclass(frozen=True)
class ApiStageProps:
    """Throttling, auth and logging of one API's ``v1`` stage."""

    throttle_rate_limit: float
    throttle_burst_limit: int
    auth: Literal["iam", "api_key"]
    quota_per_day: int | None
    log_retention: logs.RetentionDays
    encryption_key: kms.IKey
    removal_policy: RemovalPolicy
    tenants: tuple[TenantPlan, ...] = ()
    """Per-tenant keys and usage plans; set: every method with the API's auth needs a key."""
    web_acl_arn: str | None = None
    """The regional web ACL the stage is associated with; None: config ``waf`` is unset."""


@dataclass(frozen=True)
class ScaffoldReasons:
    """Why this API may have no WAF (config ``waf`` unset) and has no cache: checked by
    reviewers, so specific to the API."""

    no_waf: str
    no_cache: str


class RestApiScaffold(Construct):
    """``self.api`` (regional, throttled, traced, logged), ``self.validator``, ``self.access_logs``.

    Every method gets IAM authorization by default, or an API key when ``auth`` is ``api_key``;
    with tenants, IAM (unless ``auth`` is ``api_key``) and a tenant's API key.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, description: str, stage: ApiStageProps
    ) -> None:
        super().__init__(scope, construct_id)
        self._stage_props = stage
        self.use_api_keys = stage.auth == "api_key" or bool(stage.tenants)
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=stage.log_retention,
            encryption_key=stage.encryption_key,
            removal_policy=stage.removal_policy,
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            # API Gateway's metrics are keyed by this name (dimension ApiName); CDK's default,
            # the construct id "Api", is the same for every API of every deployment in the
            # account, so their graphs and alarms would mix.
            rest_api_name=f"{Stack.of(self).stack_name}-{construct_id}",
            description=description,
            endpoint_types=[API_ENDPOINT_TYPE],
            # Execution and access logging need the account-level CloudWatch role.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=stage.removal_policy,
            deploy_options=apigw.StageOptions(
                stage_name=API_STAGE_NAME,
                throttling_rate_limit=stage.throttle_rate_limit,
                throttling_burst_limit=stage.throttle_burst_limit,
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
                if stage.auth != "api_key"
                else apigw.AuthorizationType.NONE,
                api_key_required=self.use_api_keys,
            ),
        )
        self._json_errors()
        self.validator = self.api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )

    def finish(self, *, methods: Sequence[apigw.Method], reasons: ScaffoldReasons) -> None:
        """After the routes: usage plans (API keys), the web ACL, the acknowledgements.

        ``methods`` are those with the API's own auth (IAM or API key); a method with other
        authentication acknowledges its own findings.
        """
        stage = self.api.deployment_stage
        self.tenant_plans: TenantUsagePlans | None = None
        if self._stage_props.tenants:
            self.tenant_plans = TenantUsagePlans(
                self, "Tenants", api=self.api, tenants=self._stage_props.tenants
            )
        elif self.use_api_keys:
            self._usage_plan()
        if self._stage_props.web_acl_arn is not None:
            associate_web_acl(
                self,
                "WebAcl",
                web_acl_arn=self._stage_props.web_acl_arn,
                resource_arn=stage.stage_arn,
                resource=stage.node.default_child,  # type: ignore[arg-type]
            )
        else:
            acknowledge_nag(stage, "AwsSolutions-APIG3", reasons.no_waf)
        skip_checkov(self.api.deployment_stage, "CKV_AWS_120", reasons.no_cache)
        for method in methods:
            acknowledge_nag(
                method,
                "AwsSolutions-COG4",
                "methods require a usage-plan API key (config api.auth: api_key); a Cognito user "
                "pool is for browser sign-in, which this machine API does not have"
                if self._stage_props.auth == "api_key"
                else "methods use IAM (SigV4) authorization, which AwsSolutions-APIG4 accepts; a "
                "Cognito user pool is for browser sign-in, which this machine API does not have",
            )
            if self._stage_props.auth == "api_key":
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

    def _usage_plan(self) -> None:
        stage = self._stage_props
        plan = self.api.add_usage_plan(
            "UsagePlan",
            throttle=apigw.ThrottleSettings(
                rate_limit=stage.throttle_rate_limit, burst_limit=stage.throttle_burst_limit
            ),
            quota=apigw.QuotaSettings(limit=stage.quota_per_day, period=apigw.Period.DAY)
            if stage.quota_per_day
            else None,
        )
        plan.add_api_stage(stage=self.api.deployment_stage)
        plan.add_api_key(self.api.add_api_key("DefaultKey"))
