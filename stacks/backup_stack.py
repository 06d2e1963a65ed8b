"""Backup and recovery for one deployment: AWS Backup of every table and database it holds.

Its own stack, built after the stacks that hold the data: it references their tables and
database by ARN (cross-stack, one direction), and none of them knows it exists. Point-in-time
recovery on the tables and the database's automated backups are set where those are built; the
restore procedures are in docs/restore-runbook.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import CfnOutput, Environment, Stack

from config.model import BackupConfig, DeploymentConfig
from constructs import Construct
from constructs.backup_plan import BackupPlan, BackupPlanProps, BackupRuleProps, VaultLockProps


class BackupStack(Stack):
    """``self.backup``: the vault, its key, the plan (daily and weekly rules) and the selection.

    ``resource_arns``: the ARN of every DynamoDB table and database cluster of the deployment;
    composition.py collects them, and a test checks that none is missing.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        resource_arns: Sequence[str],
        env: Environment | None = None,
    ) -> None:
        settings = config.backup
        if settings is None:
            raise ValueError(
                "BackupStack: the config has no backup section; add backup: to the config or "
                "leave this stack out"
            )
        super().__init__(
            scope,
            construct_id,
            env=env,
            description=f"{config.name}: AWS Backup plan, vault and selection of every table "
            f"and database",
        )
        lock = settings.vault_lock
        self.backup = BackupPlan(
            self,
            "Backup",
            props=BackupPlanProps(
                resource_arns=resource_arns,
                rules=_rules(settings),
                vault_lock=(
                    VaultLockProps(
                        min_retention_days=lock.min_retention_days,
                        max_retention_days=lock.max_retention_days,
                        changeable_for_days=lock.changeable_for_days,
                    )
                    if lock is not None
                    else None
                ),
                # A deployment that keeps its data also keeps its backups from a hand (or a
                # stolen credential) deleting them early; a disposable one lets them go.
                block_recovery_point_deletion=config.removal_policy == "retain",
                name=f"{config.name}-backup",
                description=config.name,
            ),
        )
        # What docs/restore-runbook.md asks for: the vault to list recovery points in, and the
        # role a restore job runs as.
        CfnOutput(self, "BackupVaultName", value=self.backup.vault.backup_vault_name)
        CfnOutput(self, "BackupVaultArn", value=self.backup.vault.backup_vault_arn)
        CfnOutput(self, "BackupPlanId", value=self.backup.plan.backup_plan_id)
        CfnOutput(self, "BackupRoleArn", value=self.backup.role.role_arn)


def _rules(settings: BackupConfig) -> list[BackupRuleProps]:
    """The daily and the weekly rule: same windows and time zone, their own schedule and
    retention; only the weekly one's long tail may move to cold storage."""
    return [
        BackupRuleProps(
            name=name,
            schedule=schedule,
            timezone=settings.timezone,
            retention_days=retention_days,
            cold_storage_after_days=cold,
            start_window_minutes=settings.start_window_minutes,
            completion_window_minutes=settings.completion_window_minutes,
        )
        for name, schedule, retention_days, cold in (
            ("Daily", settings.daily_schedule, settings.daily_retention_days, None),
            (
                "Weekly",
                settings.weekly_schedule,
                settings.weekly_retention_days,
                settings.weekly_cold_storage_after_days,
            ),
        )
    ]
