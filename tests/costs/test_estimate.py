"""The cost model on hand-written templates (exact arithmetic) and on the real synthesized app."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from costs.__main__ import main
from costs.estimate import (
    DAYS_PER_MONTH,
    FREE_TYPES,
    HOURS_PER_MONTH,
    PRICED_TYPES,
    Load,
    StackEstimate,
    agent_reserved_concurrency,
    break_even,
    estimate_stack,
    llm_item,
    load_prices,
    mean_concurrency,
    read_templates,
)
from tests.infra.conftest import Synthesized

REPO_ROOT = Path(__file__).resolve().parents[2]
PRICES = load_prices()
LOAD = Load(requests_per_day=1000, mean_duration_seconds=20, input_tokens=3000, output_tokens=500)
PER_MONTH = 1000 * DAYS_PER_MONTH


def template(**resources: dict[str, Any]) -> dict[str, Any]:
    return {"Resources": resources}


def res(rtype: str, **props: Any) -> dict[str, Any]:
    return {"Type": rtype, "Properties": props}


def total(est: StackEstimate, requests_per_month: float = PER_MONTH) -> float:
    return est.monthly(requests_per_month)


# --- exact arithmetic on toy templates -----------------------------------------------------------


def test_a_global_table_bills_writes_and_storage_in_every_replica() -> None:
    tpl = template(T=res("AWS::DynamoDB::GlobalTable", Replicas=[{"Region": "a"}, {"Region": "b"}]))
    est = estimate_stack("s", tpl, PRICES, LOAD)
    assert est.idle == 0  # on demand, no stored data assumed
    per_request = (0.125 * 1 + 0.625 * 2 + 0.625 * 2) / 1e6  # reads, writes, replicated writes
    assert math.isclose(total(est), PER_MONTH * per_request)


def test_a_web_acl_bills_per_acl_rule_and_request() -> None:
    tpl = template(Acl=res("AWS::WAFv2::WebACL", Rules=[{}, {}, {}]))
    est = estimate_stack("s", tpl, PRICES, LOAD)
    assert math.isclose(est.idle, 5.00 + 3 * 1.00)
    assert math.isclose(total(est), 8.00 + PER_MONTH * 0.60 / 1e6)


def test_a_route53_health_check_bills_its_optional_features() -> None:
    https_fast = {"Type": "HTTPS", "RequestInterval": 10}
    basic = {"Type": "HTTP", "RequestInterval": 30}
    for config, idle in ((https_fast, 0.50 + 2 * 1.00), (basic, 0.50)):
        tpl = template(H=res("AWS::Route53::HealthCheck", HealthCheckConfig=config))
        assert math.isclose(estimate_stack("s", tpl, PRICES, LOAD).idle, idle), config


def test_lambda_arm64_gb_seconds_and_requests() -> None:
    tpl = template(
        Fn=res(
            "AWS::Lambda::Function",
            MemorySize=512,
            Architectures=["arm64"],
            Timeout=25,
            Handler="runtime.handlers.serverless_api.lambda_handler",
        )
    )
    est = estimate_stack("s", tpl, PRICES, LOAD)
    expected = PER_MONTH * 20 * 0.5 * PRICES.price("lambda_arm64_gb_second") + (
        PER_MONTH / 1e6 * PRICES.price("lambda_requests")
    )
    assert est.idle == 0
    assert math.isclose(total(est), expected, rel_tol=1e-12)


def test_only_the_longest_timeout_function_runs_the_agent() -> None:
    handler = "runtime.handlers.x.lambda_handler"
    tpl = template(
        Ingress=res("AWS::Lambda::Function", MemorySize=1024, Timeout=10, Handler=handler),
        Worker=res("AWS::Lambda::Function", MemorySize=1024, Timeout=300, Handler=handler),
        # CDK's deploy-time helpers are not invoked by traffic.
        Deploy=res("AWS::Lambda::Function", MemorySize=1024, Timeout=900, Handler="index.handler"),
    )
    est = estimate_stack("s", tpl, PRICES, LOAD)
    gb_s = {i.resource: i.per_request_quantity for i in est.items if "GB" in i.what}
    assert gb_s == {"Ingress": pytest.approx(0.2), "Worker": pytest.approx(20.0)}
    # x86 (no Architectures) is priced at the x86 rate.
    assert {i.unit_price for i in est.items if "GB" in i.what} == {
        PRICES.price("lambda_x86_gb_second")
    }


def test_nat_gateway_is_730_hours() -> None:
    est = estimate_stack("s", template(Nat=res("AWS::EC2::NatGateway")), PRICES, LOAD)
    assert math.isclose(est.idle, 730 * PRICES.price("nat_gateway_hour"))


def test_fargate_arm64_task_at_min_capacity() -> None:
    tpl = template(
        Task=res(
            "AWS::ECS::TaskDefinition",
            Cpu="256",
            Memory="512",
            RuntimePlatform={"CpuArchitecture": "ARM64"},
        ),
        Svc=res("AWS::ECS::Service", TaskDefinition={"Ref": "Task"}),
        Target=res(
            "AWS::ApplicationAutoScaling::ScalableTarget",
            MinCapacity=3,
            ResourceId={"Fn::Join": ["", ["service/", {"Fn::GetAtt": ["Svc", "Name"]}]]},
        ),
    )
    est = estimate_stack("s", tpl, PRICES, LOAD)
    expected = (
        3
        * 730
        * (
            0.25 * PRICES.price("fargate_arm64_vcpu_hour")
            + 0.5 * PRICES.price("fargate_arm64_gb_hour")
        )
    )
    assert math.isclose(est.idle, expected)
    assert est.per_request == 0


def test_elasticache_node_hours_by_engine_and_node_count() -> None:
    tpl = template(
        Rg=res(
            "AWS::ElastiCache::ReplicationGroup",
            CacheNodeType="cache.m7g.large",
            NumCacheClusters=2,
            Engine="valkey",
        ),
        Cluster=res(
            "AWS::ElastiCache::ReplicationGroup",
            CacheNodeType="cache.t4g.small",
            NumNodeGroups=2,
            ReplicasPerNodeGroup=1,
            Engine="redis",
        ),
    )
    est = estimate_stack("s", tpl, PRICES, LOAD)
    expected = 2 * 730 * PRICES.node_hour("valkey", "cache.m7g.large") + 4 * 730 * (
        PRICES.node_hour("redis", "cache.t4g.small")
    )
    assert math.isclose(est.idle, expected)


def test_aurora_at_min_zero_acu_costs_storage_only() -> None:
    tpl = template(
        Db=res("AWS::RDS::DBCluster", ServerlessV2ScalingConfiguration={"MinCapacity": 0})
    )
    est = estimate_stack("s", tpl, PRICES, LOAD)
    compute = [i for i in est.items if i.unit == "ACU-hour"]
    assert [i.idle for i in compute] == [0]
    assert math.isclose(est.idle, 1.0 * PRICES.price("aurora_storage"))


def test_provisioned_concurrency_is_idle_cost() -> None:
    tpl = template(
        Fn=res(
            "AWS::Lambda::Function",
            MemorySize=1024,
            Architectures=["arm64"],
            Handler="runtime.handlers.a.h",
        ),
        Ver=res("AWS::Lambda::Version", FunctionName={"Ref": "Fn"}),
        Alias=res(
            "AWS::Lambda::Alias",
            FunctionVersion={"Fn::GetAtt": ["Ver", "Version"]},
            ProvisionedConcurrencyConfig={"ProvisionedConcurrentExecutions": 2},
        ),
    )
    est = estimate_stack("s", tpl, PRICES, LOAD)
    assert math.isclose(
        est.idle, 2 * 1 * 730 * 3600 * PRICES.price("lambda_provisioned_arm64_gb_second")
    )


def test_dead_letter_queues_get_no_traffic_and_gateway_endpoints_are_free() -> None:
    tpl = template(
        Dlq=res("AWS::SQS::Queue"),
        Q=res(
            "AWS::SQS::Queue", RedrivePolicy={"deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]}}
        ),
        S3=res("AWS::EC2::VPCEndpoint", VpcEndpointType="Gateway"),
        Ecr=res("AWS::EC2::VPCEndpoint", VpcEndpointType="Interface", SubnetIds=["a", "b"]),
    )
    est = estimate_stack("s", tpl, PRICES, LOAD)
    per_request = {i.resource: i.per_request_quantity for i in est.items}
    assert per_request["Dlq"] == 0
    assert per_request["Q"] == pytest.approx(3e-6)
    assert "S3" not in per_request
    assert math.isclose(est.idle, 2 * 730 * PRICES.price("vpc_interface_endpoint_hour"))


def test_unknown_resource_types_are_listed_not_dropped() -> None:
    tpl = template(Odd=res("AWS::Some::NewThing"), Role=res("AWS::IAM::Role"))
    est = estimate_stack("s", tpl, PRICES, LOAD)
    assert est.not_priced == [("Odd", "AWS::Some::NewThing")]
    assert est.items == []


def test_llm_line_is_token_prices() -> None:
    item = llm_item("m", "gpt-4o-mini", PRICES, LOAD)
    price_in, price_out = PRICES.tokens("gpt-4o-mini")
    assert math.isclose(
        item.monthly(PER_MONTH), PER_MONTH * (3000 * price_in + 500 * price_out) / 1e6
    )


# --- break-even ----------------------------------------------------------------------------------


def test_break_even_is_where_the_lines_cross() -> None:
    handler = "runtime.handlers.a.h"
    serverless = estimate_stack(
        "s",
        template(
            Fn=res(
                "AWS::Lambda::Function", MemorySize=1024, Architectures=["arm64"], Handler=handler
            )
        ),
        PRICES,
        LOAD,
    )
    container = estimate_stack("c", template(Nat=res("AWS::EC2::NatGateway")), PRICES, LOAD)
    result = break_even([serverless], [container])
    assert result.requests_per_day is not None
    at = result.requests_per_day * DAYS_PER_MONTH
    assert math.isclose(total(serverless, at), total(container, at), rel_tol=1e-9)
    # Below it serverless is cheaper, above it the container is.
    assert total(serverless, at * 0.9) < total(container, at * 0.9)
    assert total(serverless, at * 1.1) > total(container, at * 1.1)
    # Closed form for this toy: NAT hours / (Lambda's per-request cost - the NAT's data charge
    # for the model traffic, 3,500 tokens x 4 bytes).
    slope_s = 20 * PRICES.price("lambda_arm64_gb_second") + PRICES.price("lambda_requests") / 1e6
    slope_c = 3500 * 4 / 1e9 * PRICES.price("nat_gateway_gb")
    expected = 730 * PRICES.price("nat_gateway_hour") / (slope_s - slope_c)
    assert math.isclose(at, expected, rel_tol=1e-9)


def test_no_break_even_when_serverless_is_never_cheaper() -> None:
    costly = estimate_stack("s", template(Nat=res("AWS::EC2::NatGateway")), PRICES, LOAD)
    cheap = estimate_stack("c", template(), PRICES, LOAD)
    assert break_even([costly], [cheap]).requests_per_day is None


# --- the price table -----------------------------------------------------------------------------


def test_price_table_is_dated_and_every_figure_has_a_source() -> None:
    import datetime

    import yaml

    raw = yaml.safe_load((REPO_ROOT / "costs" / "prices.yaml").read_text())
    datetime.date.fromisoformat(raw["as_of"])
    for key, entry in raw["prices"].items():
        assert entry["source"].startswith("https://"), key
        assert entry["value"] > 0 and entry["unit"], key
    assert raw["elasticache_node_hour"]["source"].startswith("https://")
    for model, entry in raw["llm_per_million_tokens"].items():
        assert entry["source"].startswith("https://"), model


# --- the real synthesized app ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def real_templates(synth: Synthesized) -> dict[str, dict[str, Any]]:
    """The session's one synthesis of the whole app (tests/conftest.py), read as the CLI reads
    cdk.out: a cdk.out left by an older `make synth` could be stale."""
    return read_templates(synth.outdir)


def test_every_resource_type_in_the_real_templates_is_classified(
    real_templates: dict[str, dict[str, Any]],
) -> None:
    seen = {r["Type"] for t in real_templates.values() for r in t["Resources"].values()}
    unclassified = seen - FREE_TYPES - PRICED_TYPES - {"AWS::S3::Bucket"}
    assert not unclassified, f"add a price or a FREE_TYPES entry for {sorted(unclassified)}"


def test_every_priced_resource_in_the_real_templates_has_a_price(
    real_templates: dict[str, dict[str, Any]],
) -> None:
    # A missing figure (a new ElastiCache node type, say) raises PriceError here.
    for name, tpl in real_templates.items():
        est = estimate_stack(name, tpl, PRICES, LOAD)
        assert all(rtype.startswith("AWS::S3::Bucket") for _, rtype in est.not_priced), name
        assert est.idle >= 0


def test_real_prod_container_idle_has_the_nat_alb_redis_and_task(
    real_templates: dict[str, dict[str, Any]],
) -> None:
    est = estimate_stack("c", real_templates["agent-prod-container"], PRICES, LOAD)
    units = {i.unit for i in est.items if i.idle > 0}
    assert {"hour", "node-hour", "vCPU-hour", "GB-hour"} <= units
    serverless = estimate_stack("s", real_templates["agent-prod-serverless"], PRICES, LOAD)
    assert serverless.idle < est.idle


def test_dev_is_cheap_when_idle(real_templates: dict[str, dict[str, Any]]) -> None:
    # The dev profile deploys nothing that bills by the hour: no NAT gateway, load balancer,
    # cache node or always-on task (container.enabled: false); what is left is per-resource
    # monthly fees (KMS keys, secrets, alarms, dashboards).
    dev = {n: t for n, t in real_templates.items() if n.startswith("agent-dev-")}
    assert "agent-dev-container" not in dev and dev
    hourly = [
        (name, item.what)
        for name, tpl in dev.items()
        for item in estimate_stack(name, tpl, PRICES, LOAD).items
        if item.idle > 0 and item.unit.endswith("hour")
    ]
    assert hourly == []
    idle = sum(estimate_stack(n, t, PRICES, LOAD).idle for n, t in dev.items())
    assert 0 < idle < 25


def test_every_config_model_has_a_token_price() -> None:
    from config.loader import available_envs, load_config

    for env in available_envs():
        PRICES.tokens(load_config(env).llm.model_id)


# --- the CLI -------------------------------------------------------------------------------------

ARGS = ["--requests-per-day", "100", "--mean-duration-seconds", "10"]
TOKENS = ["--input-tokens", "1000", "--output-tokens", "200"]


def test_cli_missing_cdk_out_names_make_synth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*ARGS, *TOKENS, "--cdk-out", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "make synth" in err and len(err.strip().splitlines()) == 1


def test_cli_negative_load_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--requests-per-day", "-1", "--mean-duration-seconds", "10", *TOKENS]) == 2
    assert "zero or more" in capsys.readouterr().err


def test_cli_unknown_profile_exits_2(
    real_templates: dict[str, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x.template.json").write_text("{}")
    assert main([*ARGS, *TOKENS, "--cdk-out", str(tmp_path), "--profile", "staging"]) == 2
    err = capsys.readouterr().err
    assert "unknown profile staging" in err and "dev" in err


def test_cli_prints_each_profile_and_the_break_even(
    real_templates: dict[str, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    for name, tpl in real_templates.items():
        (tmp_path / f"{name}.template.json").write_text(json.dumps(tpl))
    assert main([*ARGS, *TOKENS, "--cdk-out", str(tmp_path), "--profile", "dev"]) == 0
    out = capsys.readouterr().out
    assert "== profile dev" in out and "agent-dev-serverless" in out
    assert "container pattern off: container.enabled is false" in out
    assert main([*ARGS, *TOKENS, "--cdk-out", str(tmp_path), "--profile", "prod"]) == 0
    out = capsys.readouterr().out
    assert "break-even:" in out and "requests/day" in out
    assert f"{HOURS_PER_MONTH:g}" in out  # the month length is stated


def test_break_even_concurrency_helpers() -> None:
    tpl = template(
        Fn=res(
            "AWS::Lambda::Function",
            Timeout=25,
            ReservedConcurrentExecutions=5,
            Handler="runtime.handlers.a.h",
        )
    )
    assert agent_reserved_concurrency(tpl) == 5
    assert agent_reserved_concurrency(template()) is None
    # 86,400 requests/day of 10 s each keep 10 runs in flight on average.
    assert mean_concurrency(86400, 10) == 10


def test_cli_profile_without_templates_exits_2_before_printing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "agent-dev-serverless.template.json").write_text('{"Resources": {}}')
    assert main([*ARGS, *TOKENS, "--cdk-out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "agent-hybrid-*" in captured.err and "make synth" in captured.err
