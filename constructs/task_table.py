"""The DynamoDB table of the asynchronous pattern: tasks, idempotency keys, gone endpoints."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms

from constructs import Construct
from constructs.secure_defaults import TASK_PARTITION_KEY, TASK_TTL_ATTRIBUTE
from constructs.session_table import GlobalTable, ttl_table


class TaskTable(Construct):
    """``self.table``: key ``pk`` (``task#<id>``, ``idem#<hash>``, ``endpoint#<hash>``).

    Every item carries ``expires_at`` (epoch seconds), so finished tasks, idempotency windows and
    gone endpoints clean themselves up. Same guarantees as the session table: on-demand, PITR,
    the stack's key, deletion protection when the stack retains its data, and with
    ``global_table`` a replica in a second region (see ``constructs/session_table.py``).
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
            partition_key=TASK_PARTITION_KEY,
            ttl_attribute=TASK_TTL_ATTRIBUTE,
            encryption_key=encryption_key,
            removal_policy=removal_policy,
            global_table=global_table,
        )
        self.ttl_attribute = TASK_TTL_ATTRIBUTE
