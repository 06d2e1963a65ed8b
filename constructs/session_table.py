"""The DynamoDB table that holds agent sessions, with TTL, PITR and encryption."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms

from constructs import Construct
from constructs.secure_defaults import (
    SESSION_PARTITION_KEY,
    SESSION_TTL_ATTRIBUTE,
    TABLE_BILLING_MODE,
    TABLE_POINT_IN_TIME_RECOVERY,
)


class SessionTable(Construct):
    """``self.table``: key ``session_id``; ``expires_at`` (epoch seconds) expires items.

    Deletion protection follows the removal policy: a table kept on stack deletion is also
    protected from a delete by hand.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        encryption_key: kms.IKey,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.table = ttl_table(
            self,
            partition_key=SESSION_PARTITION_KEY,
            ttl_attribute=SESSION_TTL_ATTRIBUTE,
            encryption_key=encryption_key,
            removal_policy=removal_policy,
        )
        self.ttl_attribute = SESSION_TTL_ATTRIBUTE


def ttl_table(
    scope: Construct,
    *,
    partition_key: str,
    ttl_attribute: str,
    encryption_key: kms.IKey,
    removal_policy: RemovalPolicy,
) -> dynamodb.Table:
    """``scope``'s ``Table``: string partition key, TTL, PITR, on-demand, customer-managed key."""
    retain = removal_policy == RemovalPolicy.RETAIN
    # Table, not TableV2: TableV2 cannot render a customer-managed key in a stack without
    # a region.
    return dynamodb.Table(
        scope,
        "Table",
        partition_key=dynamodb.Attribute(name=partition_key, type=dynamodb.AttributeType.STRING),
        billing_mode=TABLE_BILLING_MODE,
        time_to_live_attribute=ttl_attribute,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=TABLE_POINT_IN_TIME_RECOVERY
        ),
        encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryption_key=encryption_key,
        deletion_protection=retain,
        removal_policy=removal_policy,
    )
