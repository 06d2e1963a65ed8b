"""AWS Backup for a deployment's data: a CMK-encrypted vault, a plan of rules, one selection."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Aws, Duration, Fn, TimeZone
from aws_cdk import aws_backup as backup
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms

from constructs import Construct
from constructs.acknowledgements import acknowledge_nag
from constructs.secure_defaults import (
    BACKUP_ROLE_MANAGED_POLICIES,
    BACKUP_VAULT_REMOVAL_POLICY,
    KMS_KEY_ROTATION,
    KMS_PENDING_WINDOW,
)

# AWS Backup's own limits (the config checks the same; these guard direct use of the construct).
_COLD_STORAGE_MIN_DAYS = 90
_MIN_START_WINDOW_MINUTES = 60
_MIN_LOCK_COOLING_OFF_DAYS = 3
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,41}$")
# Why AWS Backup's role carries AWS managed policies (cdk-nag AwsSolutions-IAM4), per policy.
_MANAGED_POLICY_REASONS = {
    "service-role/AWSBackupServiceRolePolicyForBackup": (
        "AWS Backup's service-role policy, on a role only backup.amazonaws.com can assume: AWS "
        "keeps its per-service backup actions (DynamoDB backups, Aurora snapshots, KMS grants) "
        "current, and the backup selection names each table and cluster by ARN"
    ),
    "service-role/AWSBackupServiceRolePolicyForRestores": (
        "the restore jobs of docs/restore-runbook.md run as this role (only backup.amazonaws.com "
        "can assume it); a restore creates a new table or cluster whose ARN no policy can name "
        "in advance, and AWS keeps the per-service restore actions current"
    ),
}


@dataclass(frozen=True)
class BackupRuleProps:
    """One rule of the plan: when it runs and how long its recovery points are kept."""

    name: str
    schedule: str
    """An AWS Backup cron expression, e.g. ``cron(0 3 * * ? *)``, read in ``timezone``."""
    timezone: str
    retention_days: int
    cold_storage_after_days: int | None
    start_window_minutes: int
    completion_window_minutes: int


@dataclass(frozen=True)
class VaultLockProps:
    min_retention_days: int
    max_retention_days: int | None
    changeable_for_days: int | None
    """None: governance mode (removable with IAM permission); a number: compliance mode after
    that many days (immutable)."""


@dataclass(frozen=True)
class BackupPlanProps:
    resource_arns: Sequence[str]
    """Every resource the plan backs up, by ARN (tables, database clusters)."""
    rules: Sequence[BackupRuleProps]
    vault_lock: VaultLockProps | None
    block_recovery_point_deletion: bool
    """Deny deleting recovery points or shortening their lifecycle by hand (vault policy)."""
    name: str
    """Names the plan and prefixes the vault's name (``<name>-<8 hex digits>``)."""
    description: str


class BackupPlan(Construct):
    """``self.vault`` (encrypted with ``self.key``), ``self.plan``, ``self.selection``.

    The vault and its key are always retained, whatever the deployment's removal policy: a vault
    that still holds recovery points cannot be deleted (a DESTROY would fail the stack's
    deletion), and deleting the key would make every recovery point unreadable. A retained vault
    empties itself as its recovery points reach the end of their lifecycle.

    ``self.role`` is what AWS Backup assumes to back up and to restore the selected resources;
    restore jobs (docs/restore-runbook.md) pass it as ``--iam-role-arn``.
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: BackupPlanProps) -> None:
        super().__init__(scope, construct_id)
        _check(props)
        self.key = kms.Key(
            self,
            "VaultKey",
            description=f"{props.description}: AWS Backup vault",
            enable_key_rotation=KMS_KEY_ROTATION,
            pending_window=KMS_PENDING_WINDOW,
            removal_policy=BACKUP_VAULT_REMOVAL_POLICY,
        )
        self.vault = backup.BackupVault(
            self,
            "Vault",
            # Unique per stack creation: a vault kept after a teardown must not block the next
            # deployment of the same config (vault names are unique per account and region).
            backup_vault_name=f"{props.name}-{_stack_instance_suffix()}",
            encryption_key=self.key,
            removal_policy=BACKUP_VAULT_REMOVAL_POLICY,
            block_recovery_point_deletion=props.block_recovery_point_deletion,
            lock_configuration=_lock(props.vault_lock),
        )
        self.plan = backup.BackupPlan(
            self,
            "Plan",
            backup_plan_name=props.name,
            backup_vault=self.vault,
            backup_plan_rules=[_rule(rule) for rule in props.rules],
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("backup.amazonaws.com"),
            description=f"{props.description}: AWS Backup backs up and restores the selection",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(name)
                for name in BACKUP_ROLE_MANAGED_POLICIES
            ],
        )
        for name in BACKUP_ROLE_MANAGED_POLICIES:
            acknowledge_nag(
                self.role,
                f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{name}]",
                _MANAGED_POLICY_REASONS[name],
            )
        self.selection = self.plan.add_selection(
            "Selection",
            resources=[backup.BackupResource.from_arn(arn) for arn in props.resource_arns],
            role=self.role,
            # The managed policies are on the role already; CDK would attach a second copy.
            disable_default_backup_policy=True,
            allow_restores=False,
        )


def _stack_instance_suffix() -> str:
    """The first 8 hex digits of the stack's id (a UUID CloudFormation draws per creation)."""
    stack_uuid = Fn.select(2, Fn.split("/", Aws.STACK_ID))
    return Fn.select(0, Fn.split("-", stack_uuid))


def _rule(rule: BackupRuleProps) -> backup.BackupPlanRule:
    cold = rule.cold_storage_after_days
    return backup.BackupPlanRule(
        rule_name=rule.name,
        schedule_expression=events.Schedule.expression(rule.schedule),
        schedule_expression_timezone=TimeZone.of(rule.timezone),
        delete_after=Duration.days(rule.retention_days),
        move_to_cold_storage_after=Duration.days(cold) if cold is not None else None,
        start_window=Duration.minutes(rule.start_window_minutes),
        completion_window=Duration.minutes(rule.completion_window_minutes),
        # Lets an operator list one rule's recovery points (docs/restore-runbook.md).
        recovery_point_tags={"backup-rule": rule.name},
    )


def _lock(lock: VaultLockProps | None) -> backup.LockConfiguration | None:
    if lock is None:
        return None
    return backup.LockConfiguration(
        min_retention=Duration.days(lock.min_retention_days),
        max_retention=(
            Duration.days(lock.max_retention_days) if lock.max_retention_days is not None else None
        ),
        changeable_for=(
            Duration.days(lock.changeable_for_days)
            if lock.changeable_for_days is not None
            else None
        ),
    )


def _check(props: BackupPlanProps) -> None:
    if not _NAME.fullmatch(props.name):
        raise ValueError(
            f"BackupPlanProps.name must be 1-41 letters, digits, '-' or '_' (the vault's name "
            f"adds 9 characters, AWS allows 50); got {props.name!r}"
        )
    if not props.resource_arns:
        raise ValueError(
            "BackupPlanProps.resource_arns is empty: pass the ARN of every table and database "
            "to back up (a plan without a selection backs up nothing)"
        )
    if len(set(props.resource_arns)) != len(props.resource_arns):
        raise ValueError("BackupPlanProps.resource_arns lists a resource twice")
    if not props.rules:
        raise ValueError("BackupPlanProps.rules is empty: add at least one rule")
    names = [rule.name for rule in props.rules]
    if len(set(names)) != len(names):
        raise ValueError(f"BackupPlanProps.rules: rule names must be unique; got {names}")
    for rule in props.rules:
        if rule.start_window_minutes < _MIN_START_WINDOW_MINUTES:
            raise ValueError(
                f"BackupRuleProps {rule.name}: start_window_minutes must be at least "
                f"{_MIN_START_WINDOW_MINUTES} (got {rule.start_window_minutes})"
            )
        if rule.completion_window_minutes <= rule.start_window_minutes:
            raise ValueError(
                f"BackupRuleProps {rule.name}: completion_window_minutes must be greater than "
                f"start_window_minutes"
            )
        cold = rule.cold_storage_after_days
        if cold is not None and rule.retention_days < cold + _COLD_STORAGE_MIN_DAYS:
            raise ValueError(
                f"BackupRuleProps {rule.name}: retention_days must be at least "
                f"cold_storage_after_days + {_COLD_STORAGE_MIN_DAYS} (AWS Backup's minimum "
                f"time in cold storage)"
            )
    lock = props.vault_lock
    if lock is None:
        return
    if lock.changeable_for_days is not None and (
        lock.changeable_for_days < _MIN_LOCK_COOLING_OFF_DAYS
    ):
        raise ValueError(
            f"VaultLockProps.changeable_for_days must be at least {_MIN_LOCK_COOLING_OFF_DAYS} "
            f"(AWS Backup's cooling-off period)"
        )
    for rule in props.rules:
        too_short = rule.retention_days < lock.min_retention_days
        too_long = (
            lock.max_retention_days is not None and rule.retention_days > lock.max_retention_days
        )
        if too_short or too_long:
            raise ValueError(
                f"BackupRuleProps {rule.name}: retention_days ({rule.retention_days}) is outside "
                f"the vault lock's range; the locked vault would refuse every job of this rule"
            )
