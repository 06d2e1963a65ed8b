"""A customer-managed KMS key for one stack's data at rest: table, logs, secret, environment."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms

from constructs import Construct
from constructs.secure_defaults import KMS_KEY_ROTATION, KMS_PENDING_WINDOW


class DataKey(Construct):
    """``self.key`` encrypts everything a stack stores; CloudWatch Logs may use it too.

    One key per stack rather than one per resource: the same people may read all of it, and each
    key costs $1 a month.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        description: str,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.key = kms.Key(
            self,
            "Key",
            description=description,
            enable_key_rotation=KMS_KEY_ROTATION,
            pending_window=KMS_PENDING_WINDOW,
            removal_policy=removal_policy,
        )
        # Log groups are encrypted by the CloudWatch Logs service itself, which needs the key;
        # the condition keeps it to log groups of this account and region.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.{stack.url_suffix}")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:*"
                        )
                    }
                },
            )
        )
