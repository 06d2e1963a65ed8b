"""Route 53 failover for a regional REST API: one name, answered by whichever region is healthy.

Each region's stack builds one of these with the same ``record_name``: a custom domain on its API
(a regional endpoint and an ACM certificate validated in the hosted zone), a health check, and a
failover alias record (PRIMARY in the primary region, SECONDARY in the standby).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_route53 as route53

from constructs import Construct
from constructs.acknowledgements import acknowledge_nag, skip_checkov
from constructs.secure_defaults import API_DOMAIN_SECURITY_POLICY, HEALTH_PATH

_HEALTH_ROUTE_REASON = (
    "GET /healthz is a mock integration that returns a fixed 200 for Route 53 health checkers, "
    "which cannot sign requests; it reaches no function and no data, and the stage throttles it"
)


@dataclass(frozen=True)
class FailoverDnsProps:
    api: apigw.RestApi
    hosted_zone_id: str
    hosted_zone_name: str
    record_name: str
    role: Literal["PRIMARY", "SECONDARY"]
    health_check_interval: Duration
    health_check_failure_threshold: int


class FailoverDns(Construct):
    """``self.record`` (failover alias record), ``self.health_check``, ``self.domain``.

    The health check calls this region's API on its own execute-api host
    (``/<stage>/healthz``), not ``record_name``: that name resolves to whichever region is
    active, so checking it would test the other region half the time. The set identifier is the
    region, so the two records of a pair tell where they point.
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: FailoverDnsProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        api = props.api
        self.health_method = api.root.add_resource(HEALTH_PATH).add_method(
            "GET",
            apigw.MockIntegration(
                request_templates={"application/json": '{"statusCode": 200}'},
                integration_responses=[
                    apigw.IntegrationResponse(
                        status_code="200",
                        response_templates={"application/json": '{"status": "ok"}'},
                    )
                ],
            ),
            method_responses=[apigw.MethodResponse(status_code="200")],
            authorization_type=apigw.AuthorizationType.NONE,
            api_key_required=False,
        )
        for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
            acknowledge_nag(self.health_method, rule, _HEALTH_ROUTE_REASON)
        skip_checkov(self.health_method, "CKV_AWS_59", _HEALTH_ROUTE_REASON)

        zone = route53.HostedZone.from_hosted_zone_attributes(
            self,
            "Zone",
            hosted_zone_id=props.hosted_zone_id,
            zone_name=props.hosted_zone_name,
        )
        # One certificate per region: ACM certificates work only in their own region.
        self.certificate = acm.Certificate(
            self,
            "Certificate",
            domain_name=props.record_name,
            validation=acm.CertificateValidation.from_dns(zone),
        )
        self.domain = apigw.DomainName(
            self,
            "Domain",
            domain_name=props.record_name,
            certificate=self.certificate,
            endpoint_type=apigw.EndpointType.REGIONAL,
            security_policy=API_DOMAIN_SECURITY_POLICY,
            mapping=api,
        )
        self.health_check = route53.HealthCheck(
            self,
            "HealthCheck",
            type=route53.HealthCheckType.HTTPS,
            fqdn=f"{api.rest_api_id}.execute-api.{stack.region}.{stack.url_suffix}",
            port=443,
            resource_path=f"/{api.deployment_stage.stage_name}/{HEALTH_PATH}",
            request_interval=props.health_check_interval,
            failure_threshold=props.health_check_failure_threshold,
        )
        self.record = route53.CfnRecordSet(
            self,
            "Record",
            hosted_zone_id=props.hosted_zone_id,
            name=props.record_name,
            type="A",
            set_identifier=stack.region,
            failover=props.role,
            health_check_id=self.health_check.health_check_id,
            alias_target=route53.CfnRecordSet.AliasTargetProperty(
                dns_name=self.domain.domain_name_alias_domain_name,
                hosted_zone_id=self.domain.domain_name_alias_hosted_zone_id,
                # Also follow the target's health: Route 53 requires it for failover aliases.
                evaluate_target_health=True,
            ),
        )
