"""Backup and recovery, asserted on the synthesized templates.

The gates: the backup selection covers every table and database of a deployment, and a deployment
that retains its data (prod; hybrid with ``removal_policy: retain``) keeps every stateful resource
on stack deletion and on replacement. Also: the rules' retention and schedule come from the config,
the vault is encrypted with a rotating key of its own, the lock is there exactly when configured,
PITR is on for every table of every config, and ElastiCache keeps snapshots.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template

from config.model import BackupConfig, DeploymentConfig
from constructs.backup_plan import BackupPlan, BackupPlanProps, BackupRuleProps, VaultLockProps
from tests.infra.cfn import of_type, one
from tests.infra.conftest import Synthesized, all_configs, cdk_json_context

CONFIGS: dict[str, DeploymentConfig] = {c.name: c for c in all_configs()}
WITH_BACKUP = sorted(name for name, c in CONFIGS.items() if c.backup is not None)
RETAINED = sorted(name for name, c in CONFIGS.items() if c.removal_policy == "retain")

# What a backup must cover: every resource that holds the deployment's records.
BACKED_UP_TYPES = (
    "AWS::DynamoDB::Table",
    "AWS::DynamoDB::GlobalTable",
    "AWS::RDS::DBCluster",
)
# Resources whose loss loses data, with the deletion policies that keep it:
# - tables, the database and the cache hold sessions, tasks and memories (the database and the
#   cache may instead leave a final snapshot: the data survives without paying for servers);
# - KMS keys: every kept table, snapshot, log group and secret encrypted with one is unreadable
#   without it;
# - secrets: the LLM key and the webhook signing secrets are set by hand after a deploy, and a
#   retained database's password is only in its secret;
# - log groups and buckets: audit evidence (access logs, flow logs, function logs);
# - queues: a task queue holds accepted (202) tasks, a dead-letter queue the ones that need a
#   person; deleting either loses work that callers were told would happen;
# - the backup vault: the recovery points themselves.
# Not listed, because they hold no data: SNS topics (no stored messages), IAM, functions,
# services, load balancers, subnet and parameter groups, and an Aurora cluster's instances (the
# storage belongs to the cluster).
STATEFUL_POLICIES: dict[str, frozenset[str]] = {
    "AWS::DynamoDB::Table": frozenset({"Retain"}),
    "AWS::DynamoDB::GlobalTable": frozenset({"Retain"}),
    "AWS::RDS::DBCluster": frozenset({"Retain", "Snapshot"}),
    "AWS::RDS::DBInstance": frozenset({"Retain", "Snapshot"}),
    "AWS::ElastiCache::ReplicationGroup": frozenset({"Retain", "Snapshot"}),
    "AWS::KMS::Key": frozenset({"Retain"}),
    "AWS::SecretsManager::Secret": frozenset({"Retain"}),
    "AWS::S3::Bucket": frozenset({"Retain"}),
    "AWS::Logs::LogGroup": frozenset({"Retain"}),
    "AWS::SQS::Queue": frozenset({"Retain"}),
    "AWS::Backup::BackupVault": frozenset({"Retain"}),
    # Not built today; listed so that one added later is held to the same rule.
    "AWS::EFS::FileSystem": frozenset({"Retain"}),
    "AWS::ECR::Repository": frozenset({"Retain"}),
    "AWS::OpenSearchService::Domain": frozenset({"Retain"}),
    "AWS::Kinesis::Stream": frozenset({"Retain"}),
}


def _backup(config_name: str) -> BackupConfig:
    backup = CONFIGS[config_name].backup
    assert backup is not None
    return backup


def _deployment(templates: dict[str, dict[str, Any]], config: DeploymentConfig) -> dict[str, Any]:
    """The templates of one deployment's stacks, by stack name."""
    return {name: t for name, t in templates.items() if name.startswith(f"{config.name}-")}


def _referenced(value: Any, stack: str, templates: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every (stack, logical id) that ``value`` points at, through cross-stack references."""
    if isinstance(value, list):
        for item in value:
            yield from _referenced(item, stack, templates)
        return
    if not isinstance(value, dict):
        return
    if "Ref" in value and not str(value["Ref"]).startswith("AWS::"):
        yield stack, value["Ref"]
    elif "Fn::GetAtt" in value:
        yield stack, value["Fn::GetAtt"][0]
    elif "Fn::GetStackOutput" in value:
        out = value["Fn::GetStackOutput"]
        producer = out["StackName"]
        yield from _referenced(
            templates[producer]["Outputs"][out["OutputName"]]["Value"], producer, templates
        )
    elif "Fn::ImportValue" in value:
        export = value["Fn::ImportValue"]
        [(producer, output)] = [
            (name, o)
            for name, t in templates.items()
            for o in t.get("Outputs", {}).values()
            if o.get("Export", {}).get("Name") == export
        ]
        yield from _referenced(output["Value"], producer, templates)
    else:
        for item in value.values():
            yield from _referenced(item, stack, templates)


def _selection(synth: Synthesized, config_name: str) -> dict[str, Any]:
    selection = one(synth.template(config_name, "backup"), "AWS::Backup::BackupSelection")
    result: dict[str, Any] = selection["Properties"]["BackupSelection"]
    return result


# --- the gate: the selection covers every table and database -------------------------------------


def test_committed_deployment_profiles_are_backed_up() -> None:
    # prod by default; hybrid for its database; variant for the options the others leave off.
    assert {"agent-prod", "agent-hybrid", "agent-variant"} <= set(WITH_BACKUP)
    prod = _backup("agent-prod")
    assert prod.vault_lock is not None, "prod locks its vault"


@pytest.mark.parametrize("config_name", WITH_BACKUP)
def test_selection_covers_every_table_and_database(synth: Synthesized, config_name: str) -> None:
    config = CONFIGS[config_name]
    stacks = _deployment(synth.templates, config)
    data = {
        (stack, logical_id): resource["Type"]
        for stack, template in stacks.items()
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] in BACKED_UP_TYPES
    }
    entries = _selection(synth, config_name)["Resources"]
    selected = []
    for entry in entries:
        # Each entry names exactly one table or cluster, by explicit ARN (no wildcards, no tags).
        targets = {ref for ref in _referenced(entry, f"{config.name}-backup", synth.templates)}
        hits = [ref for ref in targets if ref in data]
        assert len(hits) == 1, f"{config_name}: selection entry {entry} names {hits}"
        selected.append(hits[0])
    assert len(selected) == len(set(selected)), f"{config_name}: a resource is selected twice"
    missing = sorted(set(data) - set(selected))
    assert not missing, f"{config_name}: not in the backup selection: {missing}"
    assert _selection(synth, config_name).get("ListOfTags") in (None, [])
    # The deployment's shape: three tables, plus the vector store with hybrid.
    tables = [r for r in data.values() if r != "AWS::RDS::DBCluster"]
    clusters = [r for r in data.values() if r == "AWS::RDS::DBCluster"]
    assert len(tables) >= 3
    assert len(clusters) == (1 if config.hybrid is not None else 0)


def test_configs_without_backup_build_no_backup_stack(synth: Synthesized) -> None:
    for name, config in CONFIGS.items():
        assert (f"{name}-backup" in synth.templates) == (config.backup is not None)


# --- the plan, the vault, the role ----------------------------------------------------------------


@pytest.mark.parametrize("config_name", WITH_BACKUP)
def test_rules_take_schedule_and_retention_from_config(
    synth: Synthesized, config_name: str
) -> None:
    backup = _backup(config_name)
    plan = one(synth.template(config_name, "backup"), "AWS::Backup::BackupPlan")
    rules = {r["RuleName"]: r for r in plan["Properties"]["BackupPlan"]["BackupPlanRule"]}
    assert set(rules) == {"Daily", "Weekly"}
    expected = {
        "Daily": (backup.daily_schedule, backup.daily_retention_days, None),
        "Weekly": (
            backup.weekly_schedule,
            backup.weekly_retention_days,
            backup.weekly_cold_storage_after_days,
        ),
    }
    for name, (schedule, retention, cold) in expected.items():
        rule = rules[name]
        assert rule["ScheduleExpression"] == schedule
        assert rule["ScheduleExpressionTimezone"] == backup.timezone
        assert rule["Lifecycle"]["DeleteAfterDays"] == retention
        assert rule["Lifecycle"].get("MoveToColdStorageAfterDays") == cold
        assert rule["StartWindowMinutes"] == backup.start_window_minutes
        assert rule["CompletionWindowMinutes"] == backup.completion_window_minutes
        assert rule["RecoveryPointTags"] == {"backup-rule": name}
        assert rule["TargetBackupVault"] == {
            "Fn::GetAtt": [_vault_id(synth, config_name), "BackupVaultName"]
        }


def _vault_id(synth: Synthesized, config_name: str) -> str:
    template = synth.template(config_name, "backup")
    vault_ids: list[str] = [
        k for k, r in template["Resources"].items() if r["Type"] == "AWS::Backup::BackupVault"
    ]
    assert len(vault_ids) == 1
    return vault_ids[0]


@pytest.mark.parametrize("config_name", WITH_BACKUP)
def test_vault_is_encrypted_with_a_rotating_key_of_its_own_and_both_are_kept(
    synth: Synthesized, config_name: str
) -> None:
    template = synth.template(config_name, "backup")
    vault = template["Resources"][_vault_id(synth, config_name)]
    [key_id] = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::KMS::Key"]
    assert vault["Properties"]["EncryptionKeyArn"] == {"Fn::GetAtt": [key_id, "Arn"]}
    key = template["Resources"][key_id]
    assert key["Properties"]["EnableKeyRotation"] is True
    # Kept in every config, removal_policy destroy included: a vault with recovery points cannot
    # be deleted, and without the key its recovery points are unreadable.
    for resource in (vault, key):
        assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain", "Retain")
    # Named per stack creation, so a kept vault never blocks the next deployment.
    name = vault["Properties"]["BackupVaultName"]
    assert name["Fn::Join"][1][0] == f"{config_name}-backup-"
    assert '"Ref": "AWS::StackId"' in str(name).replace("'", '"')


@pytest.mark.parametrize("config_name", WITH_BACKUP)
def test_vault_lock_is_present_exactly_when_configured(
    synth: Synthesized, config_name: str
) -> None:
    lock = _backup(config_name).vault_lock
    vault = synth.template(config_name, "backup")["Resources"][_vault_id(synth, config_name)]
    rendered = vault["Properties"].get("LockConfiguration")
    if lock is None:
        assert rendered is None
        return
    expected = {"MinRetentionDays": lock.min_retention_days}
    if lock.max_retention_days is not None:
        expected["MaxRetentionDays"] = lock.max_retention_days
    if lock.changeable_for_days is not None:
        expected["ChangeableForDays"] = lock.changeable_for_days
    assert rendered == expected


@pytest.mark.parametrize("config_name", WITH_BACKUP)
def test_recovery_points_cannot_be_deleted_by_hand_when_data_is_retained(
    synth: Synthesized, config_name: str
) -> None:
    vault = synth.template(config_name, "backup")["Resources"][_vault_id(synth, config_name)]
    statements = (vault["Properties"].get("AccessPolicy") or {}).get("Statement", [])
    denies = [
        s
        for s in statements
        if s["Effect"] == "Deny" and "backup:DeleteRecoveryPoint" in s["Action"]
    ]
    retained = CONFIGS[config_name].removal_policy == "retain"
    assert bool(denies) == retained
    for deny in denies:
        assert deny["Principal"] == {"AWS": "*"}
        assert "backup:UpdateRecoveryPointLifecycle" in deny["Action"]


@pytest.mark.parametrize("config_name", WITH_BACKUP)
def test_selection_runs_as_a_role_only_aws_backup_can_assume(
    synth: Synthesized, config_name: str
) -> None:
    template = synth.template(config_name, "backup")
    [role_id] = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"]
    role = template["Resources"][role_id]["Properties"]
    [statement] = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "backup.amazonaws.com"}
    policies = sorted(str(p["Fn::Join"][1][-1]) for p in role["ManagedPolicyArns"])
    assert policies == [
        ":iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
        ":iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores",
    ]
    assert not of_type(template, "AWS::IAM::Policy"), "no inline grants beyond AWS Backup's"
    assert _selection(synth, config_name)["IamRoleArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
    outputs = template["Outputs"]
    assert {"BackupVaultName", "BackupVaultArn", "BackupPlanId", "BackupRoleArn"} <= set(outputs)


# --- PITR and ElastiCache snapshots ---------------------------------------------------------------


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_point_in_time_recovery_is_on_for_every_table(synth: Synthesized, config_name: str) -> None:
    tables = 0
    for stack, template in _deployment(synth.templates, CONFIGS[config_name]).items():
        for logical_id, resource in template["Resources"].items():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::DynamoDB::Table":
                specs = [props.get("PointInTimeRecoverySpecification")]
            elif resource["Type"] == "AWS::DynamoDB::GlobalTable":
                specs = [r.get("PointInTimeRecoverySpecification") for r in props["Replicas"]]
            else:
                continue
            tables += 1
            for spec in specs:
                assert spec and spec["PointInTimeRecoveryEnabled"] is True, (
                    f"{stack}/{logical_id}: point-in-time recovery is off"
                )
    assert tables >= 3


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_elasticache_keeps_the_configured_snapshots(synth: Synthesized, config_name: str) -> None:
    config = CONFIGS[config_name]
    groups = [
        r
        for t in _deployment(synth.templates, config).values()
        for r in of_type(t, "AWS::ElastiCache::ReplicationGroup")
    ]
    assert len(groups) == (1 if config.container.enabled else 0)
    for group in groups:
        retention = config.container.redis.snapshot_retention_days
        assert group["Properties"]["SnapshotRetentionLimit"] == retention
        if config.removal_policy == "retain":
            # Daily snapshots, and a final one when the cache is deleted or replaced.
            assert retention > 0
            assert (group["DeletionPolicy"], group["UpdateReplacePolicy"]) == (
                "Snapshot",
                "Snapshot",
            )


def test_prod_snapshots_its_cache_daily() -> None:
    prod = CONFIGS["agent-prod"]
    assert prod.container.enabled and prod.container.redis.snapshot_retention_days > 0


# --- the gate: RETAIN on every stateful resource where the config retains data ----------------


@pytest.fixture(scope="module")
def retained_hybrid(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The hybrid profile with ``removal_policy: retain``: the only way to check the vector
    store, the network's flow logs and the front door's buckets under retain (prod has no hybrid
    section). Same build_app and nag packs as the real synthesis."""
    from stacks.composition import build_app

    config = CONFIGS["agent-hybrid"].model_copy(
        update={"name": "agent-hybridkeep", "removal_policy": "retain"}
    )
    outdir = Path(tmp_path_factory.mktemp("retained-hybrid"))
    app = App(outdir=str(outdir), context={**cdk_json_context(), "aws:cdk:bundling-stacks": []})
    build_app(app, [config])
    return {stack.stack_name: stack.template for stack in app.synth().stacks}


def _not_retained(stacks: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    for stack, template in sorted(stacks.items()):
        for logical_id, resource in template["Resources"].items():
            allowed = STATEFUL_POLICIES.get(resource["Type"])
            if allowed is None:
                continue
            policies = (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy"))
            if not set(policies) <= allowed:
                problems.append(f"{stack}/{logical_id} ({resource['Type']}): {policies}")
    return problems


def _stateful_types(stacks: dict[str, dict[str, Any]]) -> set[str]:
    return {r["Type"] for t in stacks.values() for r in t["Resources"].values()} & set(
        STATEFUL_POLICIES
    )


@pytest.mark.parametrize("config_name", RETAINED)
def test_every_stateful_resource_is_kept_where_the_config_retains_data(
    synth: Synthesized, config_name: str
) -> None:
    stacks = _deployment(synth.templates, CONFIGS[config_name])
    assert not _not_retained(stacks)
    if config_name == "agent-prod":
        # The check has something to check: prod's keys, secrets, logs, queues, cache, vault,
        # and its tables (plain or, with dr, global).
        found = _stateful_types(stacks)
        assert {
            "AWS::KMS::Key",
            "AWS::SecretsManager::Secret",
            "AWS::Logs::LogGroup",
            "AWS::SQS::Queue",
            "AWS::ElastiCache::ReplicationGroup",
            "AWS::S3::Bucket",
            "AWS::Backup::BackupVault",
        } <= found
        assert found & {"AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"}


def test_prod_retains_its_data() -> None:
    assert "agent-prod" in RETAINED


def test_every_stateful_resource_of_hybrid_is_kept_under_retain(
    retained_hybrid: dict[str, dict[str, Any]],
) -> None:
    assert not _not_retained(retained_hybrid)
    assert {"AWS::RDS::DBCluster", "AWS::Backup::BackupVault", "AWS::S3::Bucket"} <= (
        _stateful_types(retained_hybrid)
    )


def test_the_retain_check_catches_a_resource_that_would_be_deleted() -> None:
    template = {
        "Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Delete"},
            "Cache": {
                "Type": "AWS::ElastiCache::ReplicationGroup",
                "DeletionPolicy": "Snapshot",
                "UpdateReplacePolicy": "Snapshot",
            },
            "Key": {"Type": "AWS::KMS::Key", "DeletionPolicy": "Retain"},
            "Topic": {"Type": "AWS::SNS::Topic"},
        }
    }
    # Delete on the table, and a key kept on deletion but not on replacement.
    assert _not_retained({"s": template}) == [
        "s/Table (AWS::DynamoDB::Table): ('Delete', None)",
        "s/Key (AWS::KMS::Key): ('Retain', None)",
    ]


# --- the construct on a bare stack ----------------------------------------------------------------


def _props(**change: Any) -> BackupPlanProps:
    rule = BackupRuleProps(
        name="Daily",
        schedule="cron(0 3 * * ? *)",
        timezone="UTC",
        retention_days=30,
        cold_storage_after_days=None,
        start_window_minutes=60,
        completion_window_minutes=120,
    )
    values: dict[str, Any] = {
        "resource_arns": ["arn:aws:dynamodb:us-east-1:123456789012:table/sessions"],
        "rules": [rule],
        "vault_lock": None,
        "block_recovery_point_deletion": False,
        "name": "unit-backup",
        "description": "unit",
    }
    values.update(change)
    return BackupPlanProps(**values)


def _build(props: BackupPlanProps) -> Template:
    stack = Stack(App(), "Unit")
    BackupPlan(stack, "Backup", props=props)
    return Template.from_stack(stack)


def test_compliance_mode_lock_renders_its_cooling_off_period() -> None:
    lock = VaultLockProps(min_retention_days=7, max_retention_days=60, changeable_for_days=3)
    template = _build(_props(vault_lock=lock))
    template.has_resource_properties(
        "AWS::Backup::BackupVault",
        {
            "LockConfiguration": {
                "MinRetentionDays": 7,
                "MaxRetentionDays": 60,
                "ChangeableForDays": 3,
            }
        },
    )


def test_selection_lists_the_given_arns_and_nothing_else() -> None:
    arns = [
        "arn:aws:dynamodb:us-east-1:123456789012:table/a",
        "arn:aws:rds:us-east-1:123456789012:cluster:memory",
    ]
    template = _build(_props(resource_arns=arns))
    template.has_resource_properties(
        "AWS::Backup::BackupSelection", {"BackupSelection": {"Resources": arns}}
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"resource_arns": []}, "resource_arns is empty"),
        ({"resource_arns": ["arn:x", "arn:x"]}, "lists a resource twice"),
        ({"rules": []}, "rules is empty"),
        ({"name": "x" * 42}, "BackupPlanProps.name must be 1-41"),
        (
            {"vault_lock": VaultLockProps(31, None, None)},
            "Daily: retention_days \\(30\\) is outside the vault lock's range",
        ),
        (
            {"vault_lock": VaultLockProps(1, 29, None)},
            "Daily: retention_days \\(30\\) is outside the vault lock's range",
        ),
        ({"vault_lock": VaultLockProps(1, None, 2)}, "changeable_for_days must be at least 3"),
    ],
)
def test_construct_refuses_inputs_aws_backup_would_refuse(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _build(_props(**change))


def test_construct_refuses_cold_storage_shorter_than_90_days() -> None:
    rule = BackupRuleProps(
        name="Weekly",
        schedule="cron(0 4 ? * SUN *)",
        timezone="UTC",
        retention_days=100,
        cold_storage_after_days=30,
        start_window_minutes=60,
        completion_window_minutes=120,
    )
    with pytest.raises(ValueError, match="Weekly: retention_days must be at least"):
        _build(_props(rules=[rule]))


# --- the cache restore path (container.redis.restore_from_snapshot) -------------------------------


def _cache_template(snapshot_name: str | None) -> Template:
    from aws_cdk import RemovalPolicy
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_kms as kms

    from constructs.session_cache import SessionCache, SessionCacheProps

    stack = Stack(App(), "Unit")
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        max_azs=2,
        nat_gateways=0,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        ],
    )
    SessionCache(
        stack,
        "Cache",
        props=SessionCacheProps(
            vpc=vpc,
            subnets=ec2.SubnetSelection(subnet_group_name="data"),
            engine="valkey",
            node_type="cache.t4g.micro",
            num_replicas=0,
            snapshot_retention_days=7,
            encryption_key=kms.Key(stack, "Key"),
            removal_policy=RemovalPolicy.RETAIN,
            description="unit",
            snapshot_name=snapshot_name,
        ),
    )
    return Template.from_stack(stack)


def test_cache_is_seeded_from_the_configured_snapshot() -> None:
    template = _cache_template("agent-prod-manual-202601310959")
    template.has_resource(
        "AWS::ElastiCache::ReplicationGroup",
        {
            "Properties": {
                "SnapshotName": "agent-prod-manual-202601310959",
                "SnapshotRetentionLimit": 7,
            },
            # The cache it replaces leaves a final snapshot.
            "DeletionPolicy": "Snapshot",
            "UpdateReplacePolicy": "Snapshot",
        },
    )
    # A generated group id: CloudFormation can replace the cache (a fixed id would block it).
    [group] = of_type(dict(template.to_json()), "AWS::ElastiCache::ReplicationGroup")
    assert "ReplicationGroupId" not in group["Properties"]


def test_cache_without_a_restore_has_no_snapshot_name(synth: Synthesized) -> None:
    for name, config in CONFIGS.items():
        if config.container.enabled:
            assert config.container.redis.restore_from_snapshot is None
            group = one(synth.template(name, "container"), "AWS::ElastiCache::ReplicationGroup")
            assert "SnapshotName" not in group["Properties"]
