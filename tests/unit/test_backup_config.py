"""The backup section: the committed profiles load, AWS Backup's rules are checked before synth,
and a bad value fails with one line naming the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config import load_config
from config.loader import load_config_file
from config.model import BackupConfig, BackupVaultLockConfig
from tests.unit.test_config import assert_one_problem_naming, base, merged, write

# dev.yaml has no backup section; the cases add one to it.
BACKUP: dict[str, Any] = {"daily_retention_days": 7, "weekly_retention_days": 35}


def test_prod_backs_up_by_default_with_a_locked_vault() -> None:
    prod = load_config("prod")
    assert prod.backup is not None and prod.removal_policy == "retain"
    assert prod.backup.daily_retention_days >= 35, "at least PITR's 35 days"
    assert prod.backup.weekly_retention_days >= 365
    lock = prod.backup.vault_lock
    assert lock is not None and lock.min_retention_days <= prod.backup.daily_retention_days
    assert prod.container.redis.snapshot_retention_days > 0


def test_hybrid_backs_up_its_database_without_a_lock() -> None:
    hybrid = load_config("hybrid")
    assert hybrid.backup is not None and hybrid.backup.vault_lock is None


def test_dev_has_no_backup_plan() -> None:
    # PITR on the tables still covers a bad deploy; the vault and its key would outlive every
    # teardown of a profile that is torn down often.
    assert load_config("dev").backup is None


def test_defaults() -> None:
    backup = BackupConfig()
    assert (backup.daily_retention_days, backup.weekly_retention_days) == (35, 90)
    assert (backup.daily_schedule, backup.weekly_schedule) == (
        "cron(0 3 * * ? *)",
        "cron(0 4 ? * SUN *)",
    )
    assert backup.timezone == "UTC" and backup.vault_lock is None
    assert backup.weekly_cold_storage_after_days is None


def test_a_full_section_loads(tmp_path: Path) -> None:
    section = {
        **BACKUP,
        "weekly_retention_days": 200,
        "weekly_cold_storage_after_days": 110,
        "timezone": "Europe/Berlin",
        "vault_lock": {"min_retention_days": 7, "max_retention_days": 365},
    }
    config = load_config_file(write(tmp_path, merged(base(), {"backup": section})))
    assert config.backup is not None
    assert config.backup.vault_lock == BackupVaultLockConfig(
        min_retention_days=7, max_retention_days=365
    )
    assert config.backup.weekly_cold_storage_after_days == 110


def test_cold_storage_at_exactly_90_days_before_expiry_is_allowed() -> None:
    BackupConfig(weekly_retention_days=120, weekly_cold_storage_after_days=30)


def test_compliance_mode_lock_is_allowed_when_data_is_retained(tmp_path: Path) -> None:
    section = {**BACKUP, "vault_lock": {"min_retention_days": 7, "changeable_for_days": 3}}
    data = merged(base(), {"backup": section, "removal_policy": "retain"})
    data["container"]["redis"]["snapshot_retention_days"] = 1
    config = load_config_file(write(tmp_path, data))
    assert config.backup is not None and config.backup.vault_lock is not None
    assert config.backup.vault_lock.changeable_for_days == 3


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            {"daily_retention_days": 40, "weekly_retention_days": 30},
            "backup: weekly_retention_days (30) must be at least daily_retention_days (40): "
            "the weekly copies are the long tail",
        ),
        (
            {**BACKUP, "weekly_cold_storage_after_days": 10},
            "backup: weekly_retention_days (35) must be at least weekly_cold_storage_after_days "
            "+ 90 (100): AWS Backup keeps a recovery point in cold storage at least 90 days",
        ),
        (
            {**BACKUP, "start_window_minutes": 30},
            "backup.start_window_minutes: Input should be greater than or equal to 60",
        ),
        (
            {**BACKUP, "start_window_minutes": 600, "completion_window_minutes": 600},
            "backup: completion_window_minutes (600) must be greater than start_window_minutes "
            "(600)",
        ),
        (
            {**BACKUP, "daily_schedule": "rate(1 day)"},
            "backup.daily_schedule: is not an AWS Backup cron expression: use six fields",
        ),
        (
            {**BACKUP, "weekly_schedule": "cron(0 4 ? * SUN)"},
            "backup.weekly_schedule: is not an AWS Backup cron expression",
        ),
        (
            {**BACKUP, "timezone": "Mars/Olympus"},
            "backup.timezone: is not an IANA time zone such as UTC or Europe/Berlin",
        ),
        (
            {**BACKUP, "daily_retention_days": 0},
            "backup.daily_retention_days: Input should be greater than or equal to 1",
        ),
        (
            {**BACKUP, "vault_lock": {"min_retention_days": 10}},
            "backup: vault_lock.min_retention_days (10) exceeds daily_retention_days (7): the "
            "locked vault would refuse every daily backup",
        ),
        (
            {**BACKUP, "vault_lock": {"min_retention_days": 1, "max_retention_days": 30}},
            "backup: vault_lock.max_retention_days (30) is below weekly_retention_days (35): the "
            "locked vault would refuse every weekly backup",
        ),
        (
            {**BACKUP, "vault_lock": {"min_retention_days": 5, "max_retention_days": 5}},
            "backup.vault_lock: max_retention_days (5) must be greater than min_retention_days (5)",
        ),
        (
            {**BACKUP, "vault_lock": {"min_retention_days": 1, "changeable_for_days": 2}},
            "backup.vault_lock.changeable_for_days: Input should be greater than or equal to 3",
        ),
        (
            {**BACKUP, "vault_lock": {"min_retention_days": 1, "changeable_for_days": 3}},
            "backup.vault_lock.changeable_for_days puts the vault lock in compliance mode",
        ),
        (
            {**BACKUP, "vault_lock": {}},
            "backup.vault_lock.min_retention_days: required setting is missing",
        ),
        ({**BACKUP, "retention_days": 7}, "backup.retention_days: unknown setting"),
    ],
)
def test_bad_backup_values_give_one_line_naming_the_field(
    tmp_path: Path, section: dict[str, Any], expected: str
) -> None:
    assert_one_problem_naming(tmp_path, {"backup": section}, expected)


def test_a_retained_deployment_with_backup_must_snapshot_its_cache(tmp_path: Path) -> None:
    change = {
        "backup": BACKUP,
        "removal_policy": "retain",
        "container": {"enabled": True, "redis": {"snapshot_retention_days": 0}},
    }
    assert_one_problem_naming(
        tmp_path,
        change,
        "container.redis.snapshot_retention_days is 0, but this deployment retains its data "
        "and backs it up (backup:): ElastiCache is not in AWS Backup",
    )


def test_a_deployment_without_the_container_needs_no_cache_snapshots(tmp_path: Path) -> None:
    change = {
        "backup": BACKUP,
        "removal_policy": "retain",
        "container": {"enabled": False, "redis": {"snapshot_retention_days": 0}},
    }
    config = load_config_file(write(tmp_path, merged(base(), change)))
    assert config.backup is not None


def test_cache_restore_takes_a_snapshot_name(tmp_path: Path) -> None:
    change = {"container": {"redis": {"restore_from_snapshot": "agent-dev-manual-202601310959"}}}
    config = load_config_file(write(tmp_path, merged(base(), change)))
    assert config.container.redis.restore_from_snapshot == "agent-dev-manual-202601310959"


def test_cache_restore_refuses_a_name_elasticache_would_refuse(tmp_path: Path) -> None:
    assert_one_problem_naming(
        tmp_path,
        {"container": {"redis": {"restore_from_snapshot": "1-starts-with-a-digit"}}},
        "container.redis.restore_from_snapshot: String should match pattern",
    )
