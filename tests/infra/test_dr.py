"""Multi-region disaster recovery (config ``dr``): global tables with KMS-encrypted, PITR replicas,
replicated secrets, a standby copy of the serverless and async stacks per secondary region,
Route 53 failover records with health checks, ECR replication, replication latency alarms.

prod has dr without a domain; the variant config has dr with a Route 53 domain; dev has none and
must keep its single-region ``AWS::DynamoDB::Table`` templates."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk.assertions import Template

from config.model import DrConfig
from constructs.image_replication import ImageReplication
from tests.infra.cfn import ids_of_type, of_type, one
from tests.infra.conftest import Synthesized, all_configs

CONFIGS = {c.name: c for c in all_configs()}
WITH_DR = sorted(name for name, c in CONFIGS.items() if c.dr is not None)
WITHOUT_DR = sorted(name for name, c in CONFIGS.items() if c.dr is None)
# The primary stack that owns each global table, and the table's fixed name suffix.
GLOBAL_TABLES = [("serverless", "sessions"), ("async", "tasks"), ("async", "async-sessions")]


def _dr(config_name: str) -> DrConfig:
    dr = CONFIGS[config_name].dr
    assert isinstance(dr, DrConfig)
    return dr


def _tables_by_name(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        t["Properties"]["TableName"]: t["Properties"]
        for t in of_type(template, "AWS::DynamoDB::GlobalTable")
    }


def test_prod_and_the_variant_are_multi_region_and_dev_is_not() -> None:
    assert {"agent-prod", "agent-variant"} <= set(WITH_DR)
    assert "agent-dev" in WITHOUT_DR
    # The variant is where Route 53 failover is exercised.
    assert _dr("agent-variant").domain is not None and _dr("agent-prod").domain is None


@pytest.mark.parametrize("config_name", WITH_DR)
def test_every_session_and_task_table_is_global_with_a_replica_in_the_secondary_region(
    synth: Synthesized, config_name: str
) -> None:
    dr = _dr(config_name)
    retain = CONFIGS[config_name].removal_policy == "retain"
    for pattern, purpose in GLOBAL_TABLES:
        template = synth.template(config_name, pattern)
        assert not of_type(template, "AWS::DynamoDB::Table"), "a single-region table is left"
        table = _tables_by_name(template)[f"{config_name}-{purpose}"]
        replicas = {r["Region"]: r for r in table["Replicas"]}
        assert set(replicas) == {dr.primary_region, dr.secondary_region}
        assert table["BillingMode"] == "PAY_PER_REQUEST"
        assert table["TimeToLiveSpecification"] == {
            "AttributeName": "expires_at",
            "Enabled": True,
        }
        assert table["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
        for region, replica in replicas.items():
            # PITR, deletion protection and a customer-managed key in every region.
            assert replica["PointInTimeRecoverySpecification"] == {
                "PointInTimeRecoveryEnabled": True
            }
            assert replica["DeletionProtectionEnabled"] is retain
            key = json.dumps(replica["SSESpecification"]["KMSMasterKeyId"])
            if region == dr.secondary_region:
                # The DR key stack's key in that region, named by its alias.
                assert f"arn:aws:kms:{region}:" in key
                assert f":alias/{config_name}/dr-data" in key
            else:
                assert "DataKey" in key  # this stack's own key


@pytest.mark.parametrize("config_name", WITH_DR)
def test_each_replica_has_a_replication_latency_alarm_at_the_rpo(
    synth: Synthesized, config_name: str
) -> None:
    dr = _dr(config_name)
    for pattern, purpose in GLOBAL_TABLES:
        template = synth.template(config_name, pattern)
        [table_id] = [
            k
            for k, r in template["Resources"].items()
            if r["Type"] == "AWS::DynamoDB::GlobalTable"
            and r["Properties"]["TableName"] == f"{config_name}-{purpose}"
        ]
        [alarm] = [
            a["Properties"]
            for a in of_type(template, "AWS::CloudWatch::Alarm")
            if a["Properties"].get("MetricName") == "ReplicationLatency"
            and {"Name": "TableName", "Value": {"Ref": table_id}} in a["Properties"]["Dimensions"]
        ]
        assert alarm["Namespace"] == "AWS/DynamoDB"
        assert {"Name": "ReceivingRegion", "Value": dr.secondary_region} in alarm["Dimensions"]
        assert alarm["Threshold"] == dr.rpo_minutes * 60_000
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        # No writes, no data points: an idle table is not a breach.
        assert alarm["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize("config_name", WITH_DR)
def test_the_stacks_sit_in_their_regions_and_deploy_in_order(
    synth: Synthesized, config_name: str
) -> None:
    dr = _dr(config_name)
    stacks = {child.node.id: child for child in synth.app.node.children if isinstance(child, Stack)}
    primary = [f"{config_name}-serverless", f"{config_name}-async", f"{config_name}-dr-registry"]
    standby = [
        f"{config_name}-serverless-{dr.secondary_region}",
        f"{config_name}-async-{dr.secondary_region}",
    ]
    keys = f"{config_name}-dr-keys"
    for stack_id in primary:
        assert stacks[stack_id].region == dr.primary_region, stack_id
    for stack_id in [*standby, keys]:
        assert stacks[stack_id].region == dr.secondary_region, stack_id
        assert f"{stack_id}" in synth.templates
    # Keys before the primary's tables (they name the key), primary before the standby.
    for stack_id in primary[:2]:
        assert stacks[keys] in stacks[stack_id].dependencies
    assert stacks[primary[0]] in stacks[standby[0]].dependencies
    assert stacks[primary[1]] in stacks[standby[1]].dependencies


@pytest.mark.parametrize("config_name", WITH_DR)
def test_the_standby_stacks_use_the_replicas_and_replicated_secrets(
    synth: Synthesized, config_name: str
) -> None:
    dr = _dr(config_name)
    config = CONFIGS[config_name]
    for pattern, purposes in (("serverless", ["sessions"]), ("async", ["tasks", "async-sessions"])):
        template = synth.template(config_name, f"{pattern}-{dr.secondary_region}")
        # Nothing created twice: the primary owns the tables and the secrets.
        assert not of_type(template, "AWS::DynamoDB::Table")
        assert not of_type(template, "AWS::DynamoDB::GlobalTable")
        assert not of_type(template, "AWS::SecretsManager::Secret")
        variables = [
            f["Properties"]["Environment"]["Variables"]
            for f in of_type(template, "AWS::Lambda::Function")
            if "Environment" in f["Properties"]
        ]
        assert variables
        table_names = {v for env in variables for k, v in env.items() if k.endswith("TABLE_NAME")}
        assert table_names == {f"{config_name}-{p}" for p in purposes}
        # Secrets are read in this region (the replicas), never across regions.
        for env in variables:
            for key, value in env.items():
                if key.endswith("SECRET_ARN"):
                    assert f"secretsmanager:{dr.secondary_region}:" in json.dumps(value), key
    if config.llm.api_key_secret_name is not None:
        serverless = synth.template(config_name, f"serverless-{dr.secondary_region}")
        assert config.llm.api_key_secret_name in json.dumps(serverless)


@pytest.mark.parametrize("config_name", WITH_DR)
def test_the_primary_secrets_replicate_under_the_dr_key(
    synth: Synthesized, config_name: str
) -> None:
    dr = _dr(config_name)
    config = CONFIGS[config_name]
    # What the standby functions read; other secrets (e.g. key rotation's) stay in the primary.
    read_by_the_standby = {
        config.llm.api_key_secret_name,
        config.callback_signing_secret_name,
        config.webhook.inbound_signature.secret_name if config.webhook.inbound_signature else None,
    } - {None}
    secrets = {
        s["Properties"]["Name"]: s["Properties"]
        for pattern in ("serverless", "async")
        for s in of_type(synth.template(config_name, pattern), "AWS::SecretsManager::Secret")
    }
    assert read_by_the_standby <= set(secrets)
    for name in read_by_the_standby:
        secret = secrets[name]
        [replica] = secret["ReplicaRegions"]
        assert replica["Region"] == dr.secondary_region
        assert f":alias/{config_name}/dr-data" in json.dumps(replica["KmsKeyId"])


@pytest.mark.parametrize("config_name", WITH_DR)
def test_the_dr_key_has_rotation_and_the_alias_the_primary_names(
    synth: Synthesized, config_name: str
) -> None:
    template = synth.template(config_name, "dr-keys")
    key = one(template, "AWS::KMS::Key")["Properties"]
    assert key["EnableKeyRotation"] is True
    alias = one(template, "AWS::KMS::Alias")["Properties"]
    assert alias["AliasName"] == f"alias/{config_name}/dr-data"


@pytest.mark.parametrize("config_name", WITH_DR)
def test_ecr_replicates_to_the_secondary_region_once(synth: Synthesized, config_name: str) -> None:
    dr = _dr(config_name)
    found = {
        name: of_type(template, "AWS::ECR::ReplicationConfiguration")
        for name, template in synth.templates.items()
        if name.startswith(f"{config_name}-")
    }
    assert {name for name, resources in found.items() if resources} == {
        f"{config_name}-dr-registry"
    }
    [configuration] = found[f"{config_name}-dr-registry"]
    [rule] = configuration["Properties"]["ReplicationConfiguration"]["Rules"]
    assert rule["Destinations"] == [
        {"Region": dr.secondary_region, "RegistryId": {"Ref": "AWS::AccountId"}}
    ]


def test_route53_failover_pair_with_a_health_check_per_region(synth: Synthesized) -> None:
    dr = _dr("agent-variant")
    domain = dr.domain
    assert domain is not None
    records = {}
    for stack_suffix, region, role in (
        ("serverless", dr.primary_region, "PRIMARY"),
        (f"serverless-{dr.secondary_region}", dr.secondary_region, "SECONDARY"),
    ):
        template = synth.template("agent-variant", stack_suffix)
        record = one(template, "AWS::Route53::RecordSet")["Properties"]
        [check_id] = ids_of_type(template, "AWS::Route53::HealthCheck")
        [api_id] = ids_of_type(template, "AWS::ApiGateway::RestApi")
        check = template["Resources"][check_id]["Properties"]["HealthCheckConfig"]
        assert record["Failover"] == role
        assert record["SetIdentifier"] == region
        assert record["HealthCheckId"] == {"Ref": check_id}
        assert (record["Name"], record["Type"]) == (domain.record_name, "A")
        assert record["HostedZoneId"] == domain.hosted_zone_id
        assert record["AliasTarget"]["EvaluateTargetHealth"] is True
        [domain_id] = ids_of_type(template, "AWS::ApiGateway::DomainName")
        assert record["AliasTarget"]["DNSName"] == {"Fn::GetAtt": [domain_id, "RegionalDomainName"]}
        # This region's own API (not the failover name, which points at either region).
        assert check["Type"] == "HTTPS"
        assert check["FullyQualifiedDomainName"]["Fn::Join"][1][:2] == [
            {"Ref": api_id},
            f".execute-api.{region}.",
        ]
        assert json.dumps(check["ResourcePath"]).endswith('"/healthz"]]}')
        assert check["RequestInterval"] == domain.health_check_interval_seconds
        assert check["FailureThreshold"] == domain.health_check_failure_threshold
        api_domain = one(template, "AWS::ApiGateway::DomainName")["Properties"]
        assert api_domain["DomainName"] == domain.record_name
        assert api_domain["SecurityPolicy"] == "TLS_1_2"
        assert api_domain["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
        # The health route answers without auth from a mock: no function, no data behind it.
        [health] = [
            m["Properties"]
            for m in of_type(template, "AWS::ApiGateway::Method")
            if m["Properties"]["Integration"].get("Type") == "MOCK"
            and m["Properties"]["HttpMethod"] == "GET"
            and m["Properties"].get("AuthorizationType") == "NONE"
            and not m["Properties"].get("ApiKeyRequired", False)
        ]
        assert health["MethodResponses"] == [{"StatusCode": "200"}]
        records[role] = record
    assert records["PRIMARY"]["SetIdentifier"] != records["SECONDARY"]["SetIdentifier"]


def test_without_a_domain_there_is_no_dns(synth: Synthesized) -> None:
    for name, template in synth.templates.items():
        if name.startswith("agent-prod-"):
            assert not of_type(template, "AWS::Route53::RecordSet"), name
            assert not of_type(template, "AWS::Route53::HealthCheck"), name


@pytest.mark.parametrize("config_name", WITHOUT_DR)
def test_single_region_configs_keep_plain_tables_and_no_dr_stacks(
    synth: Synthesized, config_name: str
) -> None:
    names = [n for n in synth.templates if n.startswith(f"{config_name}-")]
    assert not [n for n in names if "-dr-" in n]
    for name in names:
        template = synth.templates[name]
        assert not of_type(template, "AWS::DynamoDB::GlobalTable"), name
        assert not of_type(template, "AWS::ECR::ReplicationConfiguration"), name
        for secret in of_type(template, "AWS::SecretsManager::Secret"):
            assert "ReplicaRegions" not in secret["Properties"], name
    assert len(of_type(synth.template(config_name, "serverless"), "AWS::DynamoDB::Table")) == 1


def test_image_replication_refuses_its_own_region() -> None:
    stack = Stack(App(), "Registry", env=Environment(region="eu-west-1"))
    with pytest.raises(ValueError, match="destination_region eu-west-1 is this stack's own region"):
        ImageReplication(stack, "Replication", destination_region="eu-west-1")


def test_image_replication_filters_by_prefix() -> None:
    stack = Stack(App(), "Registry", env=Environment(region="eu-west-1"))
    ImageReplication(
        stack, "Replication", destination_region="eu-central-1", repository_prefixes=("agent",)
    )
    template = dict(Template.from_stack(stack).to_json())
    configuration = one(template, "AWS::ECR::ReplicationConfiguration")["Properties"]
    [rule] = configuration["ReplicationConfiguration"]["Rules"]
    assert rule["RepositoryFilters"] == [{"Filter": "agent", "FilterType": "PREFIX_MATCH"}]
