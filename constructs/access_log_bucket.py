"""An S3 bucket for load balancer access logs: encrypted, TLS-only, private, self-expiring."""

from __future__ import annotations

from aws_cdk import CfnCondition, Duration, Fn, Stack, Token
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk.region_info import FactName

from constructs import Construct
from constructs.secure_defaults import ACCESS_LOG_ENCRYPTION, ACCESS_LOG_REMOVAL_POLICY

# Regions CDK knows without an Elastic Load Balancing account (opened since August 2022) get this
# in the lookup map; their log delivery uses the service principal below instead.
_NO_ELB_ACCOUNT = "none"
_ELB_LOG_DELIVERY = "logdelivery.elasticloadbalancing.amazonaws.com"


class AccessLogBucket(Construct):
    """``self.bucket``, and ``log_access_of`` to point a load balancer's access logs at it.

    CDK's ``logAccessLogs`` needs the stack's region at synth time (the log-writing account
    differs per region); these stacks are environment-agnostic, so the bucket policy looks the
    account up at deploy time instead: the Elastic Load Balancing account of the region where
    AWS has one, the log delivery service principal everywhere (newer regions use only that).
    """

    def __init__(self, scope: Construct, construct_id: str, *, retention: Duration) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=ACCESS_LOG_ENCRYPTION,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-logs",
                    expiration=retention,
                    # Versioning keeps overwritten or expired objects; a day is enough to undo.
                    noncurrent_version_expiration=Duration.days(1),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=ACCESS_LOG_REMOVAL_POLICY,
        )

    def log_access_of(self, load_balancer: elbv2.ApplicationLoadBalancer, prefix: str) -> None:
        """Turn on ``load_balancer``'s access logs into ``<bucket>/<prefix>/``."""
        stack = Stack.of(self)
        objects = self.bucket.arn_for_objects(f"{prefix}/AWSLogs/{stack.account}/*")
        elb_account = stack.regional_fact(FactName.ELBV2_ACCOUNT, _NO_ELB_ACCOUNT)
        # Where the region has no ELB account, the statement names this account instead, which
        # grants nothing an identity policy in the account does not already grant.
        own_account = f"arn:{stack.partition}:iam::{stack.account}:root"
        if Token.is_unresolved(stack.region):
            # Environment-agnostic: the region, and so the answer, is known at deploy time only.
            has_elb_account = CfnCondition(
                self,
                "RegionHasElbAccount",
                expression=Fn.condition_not(Fn.condition_equals(elb_account, _NO_ELB_ACCOUNT)),
            )
            writer = Fn.condition_if(
                has_elb_account.logical_id,
                f"arn:{stack.partition}:iam::{elb_account}:root",
                own_account,
            ).to_string()
        else:
            # A stack with a region (config dr, or account and region pinned): decided here, as a
            # condition on two constants would be (cfn-lint W8003).
            writer = (
                own_account
                if elb_account == _NO_ELB_ACCOUNT
                else f"arn:{stack.partition}:iam::{elb_account}:root"
            )
        for statement in (
            iam.PolicyStatement(
                principals=[iam.ArnPrincipal(writer)], actions=["s3:PutObject"], resources=[objects]
            ),
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal(_ELB_LOG_DELIVERY)],
                actions=["s3:PutObject"],
                resources=[objects],
            ),
        ):
            self.bucket.add_to_resource_policy(statement)
        load_balancer.set_attribute("access_logs.s3.enabled", "true")
        load_balancer.set_attribute("access_logs.s3.bucket", self.bucket.bucket_name)
        load_balancer.set_attribute("access_logs.s3.prefix", prefix)
        # The load balancer checks that it may write when the attribute is set.
        if self.bucket.policy is not None:
            load_balancer.node.add_dependency(self.bucket.policy)
