"""The hybrid front door: one HTTP API routing each path to its backend.

    ANY  /v1/sessions/{proxy+}  sync chat: the container service (ALB through a VPC link) or
                                the serverless agent function, per hybrid.sync_backend
    POST /webhook               the async stack's ingress function (202 and a task id)
    GET  /tasks/{task_id}       the same function (the task's status)

Authorization is each backend's own, so a request is checked once, by the same rule as on the
backend's own endpoint: IAM (SigV4) for the function routes, as on the REST APIs (``/webhook``
without gateway auth when the webhook source signs its requests, as in the async stack); the
service's bearer token for the container routes (API Gateway would otherwise take the
``Authorization`` header for SigV4, which the service then refuses). WebSockets bypass API
Gateway (it cannot proxy an upgrade to a load balancer): CloudFront, when configured, is the one
entry point for the UI, ``/agent/*`` WebSockets and the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import CfnOutput, DefaultStackSynthesizer, Duration, Environment, Fn, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_lambda as lambda_

from config.model import API_GATEWAY_INTEGRATION_TIMEOUT_SECONDS, DeploymentConfig
from constructs import Construct
from constructs.acknowledgements import acknowledge_nag, skip_checkov
from constructs.data_key import DataKey
from constructs.edge_distribution import EdgeDistribution, EdgeDistributionProps
from constructs.front_door_api import FrontDoorApi, FrontDoorApiProps
from stacks.shared import log_retention, removal_policy
from stacks.waf_stack import EdgeWebAclArn, acknowledge_sdk_reader

# The serverless API's paths under its stage (v1), so a client changes only the host.
SESSIONS_ROUTE = "/v1/sessions/{proxy+}"
WEBHOOK_ROUTE = "/webhook"
TASK_ROUTE = "/tasks/{task_id}"
# The container service's WebSocket paths (runtime/service/app.py: /agent/{session_id}).
WEBSOCKET_PATH = "/agent/*"
# The chat page (runtime/service/static/), served from S3 behind CloudFront.
UI_DIRECTORY = Path(__file__).resolve().parents[1] / "runtime" / "service" / "static"
# The container service serves the sessions API at the root: the VPC link strips /v1.
_SERVICE_SESSIONS_PATH = "/sessions/${request.path.proxy}"


@dataclass(frozen=True)
class FrontDoorBackends:
    """What the front door routes to; each field is one cross-stack reference.

    ``sessions_function`` (the serverless agent's live alias) is for ``sync_backend: lambda``;
    ``listener``, ``load_balancer`` and the VPC link's ``vpc`` and ``vpc_link_subnets`` are for
    ``sync_backend: container``; ``load_balancer`` also for ``cloudfront`` (WebSockets). Pass
    only what the config uses.
    """

    tasks_function: lambda_.IFunction
    sessions_function: lambda_.IFunction | None = None
    listener: elbv2.IApplicationListener | None = None
    load_balancer: elbv2.IApplicationLoadBalancer | None = None
    vpc: ec2.IVpc | None = None
    vpc_link_subnets: ec2.SubnetSelection | None = None


class FrontDoorStack(Stack):
    """``self.api``: the HTTP API every client but a WebSocket uses."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        backends: FrontDoorBackends,
        env: Environment | None = None,
    ) -> None:
        hybrid = config.hybrid
        if hybrid is None:
            raise ValueError(
                "FrontDoorStack: the config has no hybrid section; add hybrid: to the config or "
                "leave this stack out"
            )
        _check(config, backends)
        super().__init__(
            scope,
            construct_id,
            env=env,
            description=f"{config.name}: hybrid front door (HTTP API; CloudFront when configured)",
        )
        removal = removal_policy(config)
        data_key = DataKey(
            self,
            "DataKey",
            description=f"{config.name}: front door logs at rest",
            removal_policy=removal,
        ).key
        self._data_key = data_key
        self.front_door = FrontDoorApi(
            self,
            "FrontDoor",
            props=FrontDoorApiProps(
                throttle_rate_limit=config.api.throttle_rate_limit,
                throttle_burst_limit=config.api.throttle_burst_limit,
                log_retention=log_retention(config),
                encryption_key=data_key,
                removal_policy=removal,
                description=f"{config.name}: agent front door",
            ),
        )
        api = self.front_door.api
        iam = authorizers.HttpIamAuthorizer()

        # --- sync chat ------------------------------------------------------------------------
        self.vpc_link: apigwv2.VpcLink | None = None
        if hybrid.sync_backend == "lambda":
            assert backends.sessions_function is not None  # _check
            self.sessions_routes = api.add_routes(
                path=SESSIONS_ROUTE,
                methods=[apigwv2.HttpMethod.ANY],
                # Payload 1.0 is the REST API's event shape, which the function's Powertools
                # APIGatewayRestResolver reads (it strips the /v1 prefix from the path).
                integration=integrations.HttpLambdaIntegration(
                    "Sessions",
                    backends.sessions_function,
                    payload_format_version=apigwv2.PayloadFormatVersion.VERSION_1_0,
                ),
                authorizer=iam,
            )
        else:
            assert backends.listener is not None and backends.load_balancer is not None
            assert backends.vpc is not None and backends.vpc_link_subnets is not None
            link_group = ec2.SecurityGroup(
                self,
                "VpcLinkSecurityGroup",
                vpc=backends.vpc,
                description=f"{config.name}: API Gateway VPC link, to the load balancer only",
                allow_all_outbound=False,
            )
            self.vpc_link = apigwv2.VpcLink(
                self,
                "VpcLink",
                vpc=backends.vpc,
                subnets=backends.vpc_link_subnets,
                security_groups=[link_group],
            )
            port = 443 if config.container.certificate_arn else 80
            # From this side: both rules (egress here, ingress on the load balancer's group)
            # land in this stack, and the container stack references nothing of the front door.
            link_group.connections.allow_to(
                backends.load_balancer, ec2.Port.tcp(port), "API Gateway VPC link to the service"
            )
            self.sessions_routes = api.add_routes(
                path=SESSIONS_ROUTE,
                methods=[apigwv2.HttpMethod.ANY],
                integration=integrations.HttpAlbIntegration(
                    "Sessions",
                    backends.listener,
                    vpc_link=self.vpc_link,
                    # HTTPS to the listener, verified against the certificate's name.
                    secure_server_name=hybrid.service_domain_name,
                    parameter_mapping=apigwv2.ParameterMapping().overwrite_path(
                        apigwv2.MappingValue.custom(_SERVICE_SESSIONS_PATH)
                    ),
                    timeout=Duration.seconds(API_GATEWAY_INTEGRATION_TIMEOUT_SECONDS),
                ),
            )
            for route in self.sessions_routes:
                acknowledge_nag(
                    route,
                    "AwsSolutions-APIG4",
                    "the container service authenticates every request with its bearer token "
                    "(runtime/service/auth.py); gateway auth would take the Authorization header "
                    "for SigV4, and the service would then refuse the request",
                )

        # --- async path -----------------------------------------------------------------------
        tasks_integration = integrations.HttpLambdaIntegration(
            "Tasks",
            backends.tasks_function,
            payload_format_version=apigwv2.PayloadFormatVersion.VERSION_1_0,
        )
        signed = config.webhook.inbound_signature is not None
        self.webhook_routes = api.add_routes(
            path=WEBHOOK_ROUTE,
            methods=[apigwv2.HttpMethod.POST],
            integration=tasks_integration,
            # A signed webhook authenticates itself (HMAC, checked by the function), as on the
            # async stack's own API; otherwise IAM like every other function route.
            authorizer=None if signed else iam,
        )
        if signed:
            for route in self.webhook_routes:
                acknowledge_nag(
                    route,
                    "AwsSolutions-APIG4",
                    "webhook.inbound_signature is set: webhook sources cannot sign SigV4, so "
                    "the function verifies each request's HMAC signature and refuses the rest",
                )
        self.task_routes = api.add_routes(
            path=TASK_ROUTE,
            methods=[apigwv2.HttpMethod.GET],
            integration=tasks_integration,
            authorizer=iam,
        )
        self.api = api
        self.edge: EdgeDistribution | None = None
        if hybrid.cloudfront:
            assert backends.load_balancer is not None  # _check
            self.edge = self._edge(config, api, backends.load_balancer)
        CfnOutput(
            self,
            "ApiUrl",
            value=self.front_door.url,
            description="the front door (SigV4 clients call it directly)",
        )

    def _edge(
        self,
        config: DeploymentConfig,
        api: apigwv2.HttpApi,
        load_balancer: elbv2.IApplicationLoadBalancer,
    ) -> EdgeDistribution:
        """CloudFront: the one entry point for browsers (UI, WebSockets) and token clients.

        SigV4 cannot pass through CloudFront (the client signs CloudFront's host, API Gateway
        checks its own), so only routes that do not use IAM get a behaviour: the container's
        sessions (bearer token) and a signed webhook. SigV4 clients call the API's URL.
        """
        assert config.hybrid is not None
        api_paths = []
        if config.hybrid.sync_backend == "container":
            api_paths.append("/v1/*")
        if config.webhook.inbound_signature is not None:
            api_paths.append(WEBHOOK_ROUTE)
        domain = config.hybrid.service_domain_name
        # WAF: the organisation's CloudFront web ACL, or the one the <name>-edge stack creates
        # in us-east-1 (read from SSM there at deploy time; see stacks/waf_stack.py).
        web_acl_arn: str | None = None
        if config.waf is not None:
            web_acl_arn = config.waf.cloudfront_web_acl_arn
            if web_acl_arn is None:
                web_acl_arn = EdgeWebAclArn(
                    self, "EdgeWebAcl", config=config, encryption_key=self._data_key
                ).arn
                acknowledge_sdk_reader(self)
        edge = EdgeDistribution(
            self,
            "Edge",
            props=EdgeDistributionProps(
                ui_directory=UI_DIRECTORY,
                service_origin=domain or load_balancer.load_balancer_dns_name,
                service_https=domain is not None,
                websocket_path=WEBSOCKET_PATH,
                # https://<id>.execute-api.<region>.amazonaws.com -> the host.
                api_origin=Fn.select(2, Fn.split("/", api.api_endpoint)),
                api_paths=api_paths,
                log_retention=Duration.days(config.logs.retention_days),
                publisher_logs=log_retention(config),
                encryption_key=self._data_key,
                removal_policy=removal_policy(config),
                web_acl_arn=web_acl_arn,
            ),
        )
        self._acknowledge_edge(config, edge)
        CfnOutput(
            self,
            "WebUrl",
            value=f"https://{edge.distribution.distribution_domain_name}",
            description="the web UI; WebSockets at /agent/, token clients at /v1/",
        )
        return edge

    def _acknowledge_edge(self, config: DeploymentConfig, edge: EdgeDistribution) -> None:
        """The distribution's exceptions, and those of CDK's UI publisher (BucketDeployment)."""
        distribution = edge.distribution
        acknowledge_nag(
            distribution,
            "AwsSolutions-CFR1",
            "the chat UI and API serve users wherever they are; blocking countries is an "
            "organisation's policy to add, not a default of this reference",
        )
        if config.waf is None:
            no_waf = (
                "config waf is unset, so no web ACL filters the distribution (a config's waf: "
                "section attaches one); the service's bearer token, IAM on the API and the "
                "API's stage throttling bound abuse"
            )
            acknowledge_nag(distribution, "AwsSolutions-CFR2", no_waf)
            skip_checkov(distribution, "CKV_AWS_68", no_waf)
        default_certificate = (
            "no custom domain is configured, so viewers get CloudFront's default "
            "*.cloudfront.net certificate, whose security policy CloudFront fixes at TLSv1; "
            "browsers negotiate TLS 1.2 or 1.3 with it, and a custom domain with an ACM "
            "certificate would allow TLSv1.2_2021"
        )
        acknowledge_nag(distribution, "AwsSolutions-CFR4", default_certificate)
        skip_checkov(distribution, "CKV_AWS_174", default_certificate)
        if config.container.certificate_arn is None:
            acknowledge_nag(
                distribution,
                "AwsSolutions-CFR5",
                "container.certificate_arn is unset (development): the load balancer speaks "
                "only HTTP, so CloudFront reaches it over HTTP; with a certificate and "
                "hybrid.service_domain_name the origin is HTTPS-only with TLS 1.2",
            )
        skip_checkov(
            edge.log_bucket,
            "CKV_AWS_18",
            "this bucket receives CloudFront's and the UI bucket's access logs; S3 server "
            "access logs of it would need yet another bucket, and its objects are only "
            "written by log delivery and read by operators",
        )
        # CDK's BucketDeployment: a singleton function at the stack's root, shared by every
        # deployment in the stack, which copies the UI from the asset bucket and invalidates.
        [publisher] = [
            child
            for child in self.node.children
            if child.node.id.startswith("Custom::CDKBucketDeployment")
        ]
        publisher_reason = (
            "CDK's BucketDeployment handler runs only when CloudFormation deploys the stack, "
            "to copy the UI files; "
        )
        acknowledge_nag(
            publisher,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]",
            publisher_reason + "its role has the AWS-managed logging policy CDK gives it, "
            "which allows writing its own logs only",
        )
        ui_objects = f"<{self.resolve(edge.ui_bucket.bucket_arn)['Fn::GetAtt'][0]}.Arn>/*"
        asset_objects = (
            f"arn:<AWS::Partition>:s3:::cdk-{DefaultStackSynthesizer.DEFAULT_QUALIFIER}"
            "-assets-<AWS::AccountId>-<AWS::Region>/*"
        )
        for finding, why in (
            ("Action::s3:GetBucket*", "reads the asset bucket and the UI bucket"),
            ("Action::s3:GetObject*", "reads the UI asset it copies"),
            ("Action::s3:List*", "lists the UI bucket to prune files no longer shipped"),
            ("Action::s3:Abort*", "aborts its own failed uploads to the UI bucket"),
            ("Action::s3:DeleteObject*", "prunes files no longer shipped from the UI bucket"),
            (f"Resource::{ui_objects}", "writes any object of the UI bucket, and only that"),
            (f"Resource::{asset_objects}", "reads the CDK bootstrap asset bucket's objects"),
            ("Resource::*", "CloudFront invalidations, which CDK grants on every distribution"),
        ):
            acknowledge_nag(
                publisher,
                f"AwsSolutions-IAM5[{finding}]",
                publisher_reason + "CDK's grant: " + why,
            )
        for rule, why in (
            ("AwsSolutions-L1", "its runtime is the one CDK pins for the handler code it ships"),
            ("Serverless-LambdaDLQ", "CloudFormation invokes it synchronously and sees errors"),
            ("Serverless-LambdaLatestVersion", "CDK pins its runtime with its handler code"),
            ("Serverless-LambdaTracing", "a deploy-time copy has no request path to trace"),
        ):
            acknowledge_nag(publisher, rule, publisher_reason + why)
        function = publisher.node.default_child
        for check, why in (
            ("CKV_AWS_115", "CloudFormation runs it once per deployment; no concurrency to cap"),
            ("CKV_AWS_116", "CloudFormation invokes it synchronously and sees its errors"),
            ("CKV_AWS_117", "it talks to S3 and CloudFront APIs only; a VPC would isolate nothing"),
            ("CKV_AWS_173", "its environment holds no secrets, only CDK's handler settings"),
        ):
            skip_checkov(function or publisher, check, publisher_reason + why)
        skip_checkov(
            publisher.node.find_child("ServiceRole").node.find_child("DefaultPolicy"),
            "CKV_AWS_111",
            publisher_reason + "CDK's grant writes to the UI bucket only and creates "
            "invalidations, which have no narrower resource in CDK's policy",
        )


def _check(config: DeploymentConfig, backends: FrontDoorBackends) -> None:
    assert config.hybrid is not None
    if config.hybrid.sync_backend == "lambda" and backends.sessions_function is None:
        raise ValueError(
            "FrontDoorStack: hybrid.sync_backend is lambda, so backends.sessions_function (the "
            "serverless agent's alias) is required"
        )
    if config.hybrid.sync_backend == "container":
        missing = [
            field
            for field in ("listener", "load_balancer", "vpc", "vpc_link_subnets")
            if getattr(backends, field) is None
        ]
        if missing:
            raise ValueError(
                f"FrontDoorStack: hybrid.sync_backend is container, so backends."
                f"{', backends.'.join(missing)} are required (the container stack's load "
                f"balancer and the network's VPC)"
            )
    if config.hybrid.cloudfront and backends.load_balancer is None:
        raise ValueError(
            "FrontDoorStack: hybrid.cloudfront is true, so backends.load_balancer is required "
            "(CloudFront sends WebSockets to the container service)"
        )
