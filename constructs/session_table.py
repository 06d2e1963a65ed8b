"""The DynamoDB table that holds agent sessions, with TTL, PITR and encryption.

One region: a ``Table``. With disaster recovery (``dr`` in the config) the primary region builds a
global table (``TableV2``) with a replica in the secondary region, and the secondary region's
stacks import that replica by name (``GlobalTableReplica``).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms

from constructs import Construct
from constructs.secure_defaults import (
    GLOBAL_TABLE_BILLING,
    REPLICATION_LATENCY_PERIOD,
    SESSION_PARTITION_KEY,
    SESSION_TTL_ATTRIBUTE,
    TABLE_BILLING_MODE,
    TABLE_POINT_IN_TIME_RECOVERY,
)


@dataclass(frozen=True)
class GlobalTablePrimary:
    """Build a global table here, replicated to ``replica_region``.

    The name is fixed: the replica region's functions find the replica by it (a global table has
    one name in every region). ``replica_key_arn`` is the replica region's customer-managed key,
    by alias ARN, because that key lives in a stack of the other region (deployed first).
    """

    table_name: str
    replica_region: str
    replica_key_arn: str
    # Alarm when an item takes longer than this to reach the replica: the RPO is at risk.
    max_replication_latency: Duration


@dataclass(frozen=True)
class GlobalTableReplica:
    """Use the replica of the global table ``table_name`` that the primary region created."""

    table_name: str
    # The key that encrypts the replica (the one the primary named by alias ARN).
    encryption_key: kms.IKey


GlobalTable = GlobalTablePrimary | GlobalTableReplica


class SessionTable(Construct):
    """``self.table``: key ``session_id``; ``expires_at`` (epoch seconds) expires items.

    Deletion protection follows the removal policy: a table kept on stack deletion is also
    protected from a delete by hand. ``self.replication_alarm`` is set on a global table's
    primary side only.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        encryption_key: kms.IKey,
        removal_policy: RemovalPolicy,
        global_table: GlobalTable | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.table, self.replication_alarm = ttl_table(
            self,
            partition_key=SESSION_PARTITION_KEY,
            ttl_attribute=SESSION_TTL_ATTRIBUTE,
            encryption_key=encryption_key,
            removal_policy=removal_policy,
            global_table=global_table,
        )
        self.ttl_attribute = SESSION_TTL_ATTRIBUTE


def ttl_table(
    scope: Construct,
    *,
    partition_key: str,
    ttl_attribute: str,
    encryption_key: kms.IKey,
    removal_policy: RemovalPolicy,
    global_table: GlobalTable | None = None,
) -> tuple[dynamodb.ITable, cloudwatch.Alarm | None]:
    """``scope``'s table: string partition key, TTL, PITR, on-demand, customer-managed key.

    Returns the table and, for a global table's primary side, its replication latency alarm.
    """
    if isinstance(global_table, GlobalTableReplica):
        # Created and configured (TTL, PITR, key) by the primary region's stack.
        replica = dynamodb.TableV2.from_table_attributes(
            scope,
            "Table",
            table_name=global_table.table_name,
            encryption_key=global_table.encryption_key,
        )
        return replica, None
    retain = removal_policy == RemovalPolicy.RETAIN
    pitr = dynamodb.PointInTimeRecoverySpecification(
        point_in_time_recovery_enabled=TABLE_POINT_IN_TIME_RECOVERY
    )
    key = dynamodb.Attribute(name=partition_key, type=dynamodb.AttributeType.STRING)
    if global_table is None:
        # Table, not TableV2: TableV2 cannot render a customer-managed key in a stack without
        # a region (a single-region config stays environment-agnostic).
        table = dynamodb.Table(
            scope,
            "Table",
            partition_key=key,
            billing_mode=TABLE_BILLING_MODE,
            time_to_live_attribute=ttl_attribute,
            point_in_time_recovery_specification=pitr,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=encryption_key,
            deletion_protection=retain,
            removal_policy=removal_policy,
        )
        return table, None
    # A global table (AWS::DynamoDB::GlobalTable): the same guarantees in every replica, each
    # region's copy under that region's own key.
    table_v2 = dynamodb.TableV2(
        scope,
        "Table",
        table_name=global_table.table_name,
        partition_key=key,
        billing=GLOBAL_TABLE_BILLING,
        time_to_live_attribute=ttl_attribute,
        point_in_time_recovery_specification=pitr,
        encryption=dynamodb.TableEncryptionV2.customer_managed_key(
            encryption_key, {global_table.replica_region: global_table.replica_key_arn}
        ),
        deletion_protection=retain,
        removal_policy=removal_policy,
        replicas=[
            dynamodb.ReplicaTableProps(
                region=global_table.replica_region,
                deletion_protection=retain,
                point_in_time_recovery_specification=pitr,
            )
        ],
    )
    return table_v2, replication_latency_alarm(scope, table_v2, global_table)


def replication_latency_alarm(
    scope: Construct, table: dynamodb.TableV2, global_table: GlobalTablePrimary
) -> cloudwatch.Alarm:
    """Alarm when writes take longer than the RPO to reach the replica.

    DynamoDB publishes ReplicationLatency in the region the write happened in, per receiving
    region. No writes, no data points: missing data is not a breach.
    """
    metric = cloudwatch.Metric(
        namespace="AWS/DynamoDB",
        metric_name="ReplicationLatency",
        dimensions_map={
            "TableName": table.table_name,
            "ReceivingRegion": global_table.replica_region,
        },
        statistic="Maximum",
        period=REPLICATION_LATENCY_PERIOD,
        region=Stack.of(scope).region,
    )
    return cloudwatch.Alarm(
        scope,
        "ReplicationLatencyAlarm",
        alarm_description=(
            f"{global_table.table_name}: items take longer than "
            f"{global_table.max_replication_latency.to_seconds()} s (the RPO) to reach "
            f"{global_table.replica_region}"
        ),
        metric=metric,
        threshold=global_table.max_replication_latency.to_milliseconds(),
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
