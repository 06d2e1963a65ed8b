"""The hybrid front door: one HTTP API, a ``$default`` stage with throttling and access logs."""

from __future__ import annotations

from dataclasses import dataclass

import jsii
from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs

from constructs import Construct


@dataclass(frozen=True)
class FrontDoorApiProps:
    throttle_rate_limit: float
    throttle_burst_limit: int
    log_retention: logs.RetentionDays
    encryption_key: kms.IKey
    """Encrypts the access log group."""
    removal_policy: RemovalPolicy
    description: str


class FrontDoorApi(Construct):
    """``self.api`` (routes are the stack's) served by ``self.stage``, ``$default``.

    The stage throttles every route (the account's API Gateway quota is shared) and writes one
    JSON access log line per request to an encrypted log group with retention. The API has no
    CORS configuration: the web UI calls it from CloudFront's own origin.
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: FrontDoorApiProps) -> None:
        super().__init__(scope, construct_id)
        if props.throttle_burst_limit < props.throttle_rate_limit:
            raise ValueError(
                "FrontDoorApiProps.throttle_burst_limit must be at least throttle_rate_limit"
            )
        self.api = apigwv2.HttpApi(
            self,
            "Api",
            description=props.description,
            # The stage below, with throttling and logs; HttpApi's own would have neither.
            create_default_stage=False,
        )
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=props.log_retention,
            encryption_key=props.encryption_key,
            removal_policy=props.removal_policy,
        )
        self.stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=props.throttle_rate_limit, burst_limit=props.throttle_burst_limit
            ),
            access_log_settings=_AccessLogSettings(
                apigwv2.LogGroupLogDestination(self.access_logs),
                apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
            ),
        )
        self.url = self.stage.url


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """``IAccessLogSettings`` is a jsii interface, not a struct: Python implements it."""

    def __init__(
        self, destination: apigwv2.IAccessLogDestination, log_format: apigw.AccessLogFormat
    ) -> None:
        self._destination = destination
        self._format = log_format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format
