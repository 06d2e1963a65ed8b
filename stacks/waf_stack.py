"""The deployment's web ACLs (config ``waf``): one stack per AWS WAF scope.

``<name>-waf`` (the deployment's region) holds the REGIONAL web ACL that the serverless and async
stacks associate with their REST API stages and the container stack with its load balancer: one
web ACL for all of them, so its fixed price ($5/month plus $1 per rule) is paid once and the
per-IP rate limit counts a client's requests to any of them together.

``<name>-edge`` (pinned to us-east-1, where AWS WAF keeps every CLOUDFRONT web ACL) holds the
hybrid distribution's web ACL and publishes its ARN as an SSM parameter there, which the front door
stack reads at deploy time (:class:`EdgeWebAclArn`): the front door stays environment-agnostic,
and ``cdk deploy --all`` deploys the edge stack first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from aws_cdk import CfnOutput, Environment, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from aws_cdk import custom_resources as cr

from config.model import DeploymentConfig
from constructs import Construct
from constructs.acknowledgements import acknowledge_nag, skip_checkov
from constructs.data_key import DataKey
from constructs.web_acl import WebAcl, WebAclProps
from stacks.shared import log_retention, removal_policy

# AWS WAF creates web ACLs for CloudFront in this region only.
CLOUDFRONT_WAF_REGION = "us-east-1"
# RFC 1918: where the hybrid front door's VPC link reaches the load balancer from.
PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


def edge_web_acl_parameter(config: DeploymentConfig) -> str:
    """The SSM parameter (in us-east-1) holding the CloudFront web ACL's ARN."""
    return f"/{config.name}/waf/cloudfront-web-acl-arn"


class WafStack(Stack):
    """``self.web_acl``: the deployment's web ACL for one scope (REGIONAL or CLOUDFRONT)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        waf_scope: Literal["REGIONAL", "CLOUDFRONT"],
        env: Environment | None = None,
    ) -> None:
        waf = config.waf
        if waf is None:
            raise ValueError(
                "WafStack: the config has no waf section; add waf: to the config or leave this "
                "stack out"
            )
        cloudfront = waf_scope == "CLOUDFRONT"
        if cloudfront and (env is None or env.region != CLOUDFRONT_WAF_REGION):
            raise ValueError(
                f"WafStack: a CLOUDFRONT web ACL needs env with region {CLOUDFRONT_WAF_REGION}"
            )
        super().__init__(
            scope,
            construct_id,
            env=env,
            description=f"{config.name}: AWS WAF web ACL "
            + ("for CloudFront (us-east-1)" if cloudfront else "for the APIs and load balancer"),
        )
        removal = removal_policy(config)
        count_only: dict[str, Sequence[str]] = {
            group: rules for group, rules in waf.count_only_rules.items()
        }
        data_key = DataKey(
            self,
            "DataKey",
            description=f"{config.name}: WAF logs at rest",
            removal_policy=removal,
        ).key
        self.web_acl = WebAcl(
            self,
            "WebAcl",
            props=WebAclProps(
                name=f"{config.name}-{'edge' if cloudfront else 'regional'}",
                scope=waf_scope,
                rate_limit_per_5_minutes=waf.rate_limit_per_5_minutes,
                managed_rule_groups=waf.managed_rule_groups,
                count_only_rules=count_only,
                log_allowed_requests=waf.log_allowed_requests,
                log_retention=log_retention(config),
                encryption_key=data_key,
                removal_policy=removal,
                # The hybrid front door reaches the load balancer through a VPC link, from a few
                # private addresses: counted per IP, all its clients would share one budget.
                # Those requests passed the front door's throttle (and, through CloudFront, its
                # web ACL) already; the managed rules still inspect them here.
                rate_exempt_cidrs=PRIVATE_NETWORKS
                if not cloudfront
                and config.hybrid is not None
                and config.hybrid.sync_backend == "container"
                else (),
            ),
        )
        CfnOutput(self, "WebAclArn", value=self.web_acl.arn)
        CfnOutput(self, "WafLogGroup", value=self.web_acl.log_group.log_group_name)
        if cloudfront:
            # Read by the front door stack (another region) at deploy time.
            ssm.StringParameter(
                self,
                "WebAclArnParameter",
                parameter_name=edge_web_acl_parameter(config),
                string_value=self.web_acl.arn,
                description=f"{config.name}: the CloudFront web ACL's ARN, for the front door",
            )


class EdgeWebAclArn(Construct):
    """``self.arn``: the CloudFront web ACL's ARN, read from us-east-1's SSM at deploy time.

    A CloudFormation stack cannot reference a resource in another region, and the front door's
    stack is environment-agnostic (CDK's cross-region references need both regions pinned). A
    CDK ``AwsCustomResource`` calls ``ssm:GetParameter`` on that one parameter when the stack is
    created or the parameter's name changes; the web ACL's ARN is stable (its name is fixed per
    deployment), so no later read is needed.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        encryption_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # The provider function's own logs: kept as long as the deployment's, encrypted.
        self.logs = logs.LogGroup(
            self,
            "ReaderLogs",
            retention=log_retention(config),
            encryption_key=encryption_key,
            removal_policy=removal_policy(config),
        )
        name = edge_web_acl_parameter(config)
        call = cr.AwsSdkCall(
            service="SSM",
            action="getParameter",
            parameters={"Name": name},
            region=CLOUDFRONT_WAF_REGION,
            physical_resource_id=cr.PhysicalResourceId.of(name),
        )
        self.reader = cr.AwsCustomResource(
            self,
            "Reader",
            on_create=call,
            on_update=call,
            policy=cr.AwsCustomResourcePolicy.from_sdk_calls(
                resources=[
                    stack.format_arn(
                        service="ssm",
                        region=CLOUDFRONT_WAF_REGION,
                        resource="parameter",
                        resource_name=name.lstrip("/"),
                    )
                ]
            ),
            install_latest_aws_sdk=False,
            # One small SDK call; explicit, so the provider does not run on Lambda's default.
            memory_size=256,
            log_group=self.logs,
        )
        self.arn = self.reader.get_response_field("Parameter.Value")


def acknowledge_sdk_reader(stack: Stack) -> None:
    """The findings of CDK's AwsCustomResource provider (a singleton function at the stack root)."""
    [provider] = [
        child for child in stack.node.children if child.node.id.startswith("AWS679f53fac002430cb")
    ]
    why = (
        "CDK's AwsCustomResource provider runs only when CloudFormation deploys the stack, to "
        "read the CloudFront web ACL's ARN from SSM in us-east-1; "
    )
    acknowledge_nag(
        provider,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSLambdaBasicExecutionRole]",
        why + "its role has the AWS-managed logging policy CDK gives it (own logs only)",
    )
    for rule, reason in (
        ("Serverless-LambdaDLQ", "CloudFormation invokes it synchronously and sees errors"),
        ("Serverless-LambdaTracing", "a deploy-time read has no request path to trace"),
    ):
        acknowledge_nag(provider, rule, why + reason)
    for check, reason in (
        ("CKV_AWS_115", "CloudFormation runs it once per deployment; no concurrency to cap"),
        ("CKV_AWS_116", "CloudFormation invokes it synchronously and sees its errors"),
        ("CKV_AWS_117", "it calls the SSM API only; a VPC would isolate nothing"),
    ):
        skip_checkov(provider, check, why + reason)
