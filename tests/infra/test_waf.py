"""AWS WAF on every public entry point, and per-tenant API keys with usage plans.

The gate: for every config with ``waf``, each public entry point of every stack of the deployment
(REST API stages, internet-facing load balancers, CloudFront distributions) has exactly one web
ACL: an association, or the distribution's WebACLId. The front door's HTTP API is the documented
exception (AWS WAF cannot protect API Gateway HTTP APIs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template

from config.model import DeploymentConfig, TenantConfig, TenantQuotaConfig, WafConfig
from constructs.acknowledgements import collect_from_assembly
from constructs.data_key import DataKey
from constructs.web_acl import (
    RATE_RULE_NAME,
    REDACTED_HEADERS,
    WAF_LOG_GROUP_PREFIX,
    WebAcl,
    WebAclProps,
)
from tests.infra.cfn import ids_of_type, of_type, one, refers_to
from tests.infra.conftest import Synthesized, all_configs

CONFIGS = {c.name: c for c in all_configs()}
WITH_WAF = sorted(name for name, c in CONFIGS.items() if c.waf is not None)
WITHOUT_WAF = sorted(name for name, c in CONFIGS.items() if c.waf is None)
WAF_FINDINGS = {"AwsSolutions-APIG3", "AwsSolutions-CFR2", "CKV_AWS_68"}


def deployment_templates(synth: Synthesized, name: str) -> dict[str, dict[str, Any]]:
    return {
        stack: template
        for stack, template in synth.templates.items()
        if stack.startswith(f"{name}-")
        and not any(stack.startswith(f"{other}-") and len(other) > len(name) for other in CONFIGS)
    }


def associations_of(template: dict[str, Any], logical_id: str) -> list[dict[str, Any]]:
    return [
        association["Properties"]
        for association in of_type(template, "AWS::WAFv2::WebACLAssociation")
        if refers_to(association["Properties"]["ResourceArn"], logical_id)
    ]


def public_entry_points(template: dict[str, Any]) -> list[tuple[str, str]]:
    """(type, logical id) of each resource of ``template`` reachable from the internet."""
    found = [("stage", i) for i in ids_of_type(template, "AWS::ApiGateway::Stage")]
    for logical_id in ids_of_type(template, "AWS::ElasticLoadBalancingV2::LoadBalancer"):
        props = template["Resources"][logical_id]["Properties"]
        if props.get("Scheme", "internet-facing") == "internet-facing":
            found.append(("load_balancer", logical_id))
    found += [("distribution", i) for i in ids_of_type(template, "AWS::CloudFront::Distribution")]
    return found


# --- the gate: every public entry point --------------------------------------------------------


@pytest.mark.parametrize("name", WITH_WAF)
def test_every_public_entry_point_has_exactly_one_web_acl(synth: Synthesized, name: str) -> None:
    checked = []
    for stack, template in deployment_templates(synth, name).items():
        for kind, logical_id in public_entry_points(template):
            if kind == "distribution":
                config = template["Resources"][logical_id]["Properties"]["DistributionConfig"]
                assert "WebACLId" in config, f"{stack}/{logical_id} has no web ACL"
                continue
            found = associations_of(template, logical_id)
            if kind == "stage":
                # The stage's ARN names its API and the stage; the association names both.
                api = template["Resources"][logical_id]["Properties"]["RestApiId"]["Ref"]
                found = [a for a in associations_of(template, api) if a in found]
            assert len(found) == 1, f"{stack}/{logical_id}: {len(found)} web ACL associations"
            checked.append((stack, kind))
    kinds = {kind for _, kind in checked}
    assert "stage" in kinds  # the agent API and the webhook API at least
    if CONFIGS[name].container.enabled:
        assert "load_balancer" in kinds


def reads_web_acl_of(value: Any, waf_stack: str, waf_template: dict[str, Any]) -> bool:
    """Whether ``value`` is the ARN the ``waf_stack`` publishes (an export or a stack output)."""
    [acl_id] = ids_of_type(waf_template, "AWS::WAFv2::WebACL")
    outputs = {
        name: output
        for name, output in waf_template.get("Outputs", {}).items()
        if output["Value"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    }
    if "Fn::ImportValue" in value:
        return value["Fn::ImportValue"] in {
            o.get("Export", {}).get("Name") for o in outputs.values()
        }
    reference = value.get("Fn::GetStackOutput", {})
    return reference.get("StackName") == waf_stack and reference.get("OutputName") in outputs


@pytest.mark.parametrize("name", WITH_WAF)
def test_regional_entry_points_share_the_deployment_web_acl(synth: Synthesized, name: str) -> None:
    patterns = ["serverless", "async", *(["container"] if CONFIGS[name].container.enabled else [])]
    waf_template = synth.template(name, "waf")
    for pattern in patterns:
        associations = of_type(synth.template(name, pattern), "AWS::WAFv2::WebACLAssociation")
        assert len(associations) == 1, pattern
        for association in associations:
            web_acl = association["Properties"]["WebACLArn"]
            assert reads_web_acl_of(web_acl, f"{name}-waf", waf_template), (pattern, web_acl)
            # A stage's ARN is built from its name: the association must wait for the stage.
            if pattern != "container":
                assert association.get("DependsOn"), "association does not wait for the stage"


@pytest.mark.parametrize("name", WITH_WAF)
def test_the_web_acl_has_the_managed_groups_and_the_rate_rule(
    synth: Synthesized, name: str
) -> None:
    waf = CONFIGS[name].waf
    assert waf is not None
    acl = one(synth.template(name, "waf"), "AWS::WAFv2::WebACL")["Properties"]
    assert_rules(acl, waf, scope="REGIONAL")


def assert_rules(acl: dict[str, Any], waf: WafConfig, *, scope: str) -> None:
    assert acl["Scope"] == scope
    assert acl["DefaultAction"] == {"Allow": {}}
    rules = sorted(acl["Rules"], key=lambda rule: rule["Priority"])
    managed = rules[:-1]
    assert [rule["Name"] for rule in managed] == list(waf.managed_rule_groups)
    for rule in managed:
        statement = rule["Statement"]["ManagedRuleGroupStatement"]
        assert statement["VendorName"] == "AWS"
        assert rule["OverrideAction"] == {"None": {}}
        overrides = statement.get("RuleActionOverrides", [])
        assert [o["Name"] for o in overrides] == list(waf.count_only_rules.get(rule["Name"], ()))
        assert all(o["ActionToUse"] == {"Count": {}} for o in overrides)
        assert rule["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True
    rate = rules[-1]
    assert rate["Name"] == RATE_RULE_NAME
    assert rate["Action"] == {"Block": {}}
    statement = dict(rate["Statement"]["RateBasedStatement"])
    statement.pop("ScopeDownStatement", None)  # the hybrid's VPC-link exemption, tested below
    assert statement == {
        "Limit": waf.rate_limit_per_5_minutes,
        "AggregateKeyType": "IP",
        "EvaluationWindowSec": 300,
    }
    assert acl["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True


@pytest.mark.parametrize("name", WITH_WAF)
def test_waf_logs_are_encrypted_kept_and_redact_credentials(synth: Synthesized, name: str) -> None:
    config = CONFIGS[name]
    assert config.waf is not None
    patterns = ["waf", *(["edge"] if f"{name}-edge" in synth.templates else [])]
    for pattern in patterns:
        template = synth.template(name, pattern)
        logging = one(template, "AWS::WAFv2::LoggingConfiguration")["Properties"]
        redacted = {field["SingleHeader"]["Name"] for field in logging["RedactedFields"]}
        assert {"authorization", "x-api-key"} <= redacted == set(REDACTED_HEADERS)
        destination = json.dumps(logging["LogDestinationConfigs"])
        assert f"log-group:{WAF_LOG_GROUP_PREFIX}{name}-" in destination
        assert not destination.endswith(':*"]')
        group = one(template, "AWS::Logs::LogGroup")["Properties"]
        assert group["LogGroupName"].startswith(WAF_LOG_GROUP_PREFIX)
        assert "KmsKeyId" in group
        assert group["RetentionInDays"] == config.logs.retention_days
        if config.waf.log_allowed_requests:
            assert "LoggingFilter" not in logging
        else:
            kept = logging["LoggingFilter"]["Filters"][0]["Conditions"]
            assert logging["LoggingFilter"]["DefaultBehavior"] == "DROP"
            assert {c["ActionCondition"]["Action"] for c in kept} >= {"BLOCK", "COUNT"}


def test_hybrid_cloudfront_gets_a_us_east_1_web_acl(synth: Synthesized) -> None:
    name = "agent-hybrid"
    config = CONFIGS[name]
    assert config.waf is not None and config.hybrid is not None and config.hybrid.cloudfront
    edge = synth.template(name, "edge")
    assert_rules(one(edge, "AWS::WAFv2::WebACL")["Properties"], config.waf, scope="CLOUDFRONT")
    parameter = one(edge, "AWS::SSM::Parameter")["Properties"]
    assert parameter["Name"] == f"/{name}/waf/cloudfront-web-acl-arn"
    front_door = synth.template(name, "frontdoor")
    distribution = one(front_door, "AWS::CloudFront::Distribution")["Properties"]
    web_acl = distribution["DistributionConfig"]["WebACLId"]
    # Read at deploy time from us-east-1's SSM by CDK's AwsCustomResource.
    assert "Fn::GetAtt" in web_acl and web_acl["Fn::GetAtt"][1] == "Parameter.Value"
    reader = front_door["Resources"][web_acl["Fn::GetAtt"][0]]
    assert json.loads(reader["Properties"]["Create"])["region"] == "us-east-1"
    # Least privilege: the reader may get that one parameter.
    [statement] = [
        s
        for p in of_type(front_door, "AWS::IAM::Policy")
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "ssm:GetParameter"
    ]
    assert "parameter/agent-hybrid/waf/cloudfront-web-acl-arn" in json.dumps(statement["Resource"])
    stack = synth.app.node.find_child(f"{name}-frontdoor")
    assert f"{name}-edge" in {d.stack_name for d in stack.dependencies}
    assert synth.app.node.find_child(f"{name}-edge").region == "us-east-1"


@pytest.mark.parametrize("name", WITH_WAF)
def test_only_the_hybrid_vpc_link_is_exempt_from_the_rate_rule(
    synth: Synthesized, name: str
) -> None:
    config = CONFIGS[name]
    template = synth.template(name, "waf")
    acl = one(template, "AWS::WAFv2::WebACL")["Properties"]
    [rate] = [rule for rule in acl["Rules"] if rule["Name"] == RATE_RULE_NAME]
    scope_down = rate["Statement"]["RateBasedStatement"].get("ScopeDownStatement")
    vpc_link = config.hybrid is not None and config.hybrid.sync_backend == "container"
    if not vpc_link:
        assert scope_down is None
        assert not of_type(template, "AWS::WAFv2::IPSet")
        return
    [ip_set_id] = ids_of_type(template, "AWS::WAFv2::IPSet")
    ip_set = template["Resources"][ip_set_id]["Properties"]
    # Private networks only: no internet client can send from them to a public endpoint.
    assert sorted(ip_set["Addresses"]) == ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
    reference = scope_down["NotStatement"]["Statement"]["IPSetReferenceStatement"]
    assert reference["Arn"] == {"Fn::GetAtt": [ip_set_id, "Arn"]}


def test_the_http_api_is_the_documented_exception(synth: Synthesized) -> None:
    # AWS WAF protects REST APIs, not HTTP APIs: the front door's HTTP API is reachable without
    # a web ACL (README "WAF and tenant usage plans" says what bounds it instead).
    for name in WITH_WAF:
        for stack, template in deployment_templates(synth, name).items():
            http_apis = of_type(template, "AWS::ApiGatewayV2::Api")
            assert not http_apis or stack == f"{name}-frontdoor", stack


@pytest.mark.parametrize("name", WITH_WAF)
def test_no_waf_finding_is_acknowledged_where_waf_is_on(synth: Synthesized, name: str) -> None:
    for stack_name in deployment_templates(synth, name):
        rules = {ack.rule for ack in collect_from_assembly(synth.outdir, stacks={stack_name})}
        assert not rules & WAF_FINDINGS, (stack_name, rules & WAF_FINDINGS)


@pytest.mark.parametrize("name", WITHOUT_WAF)
def test_without_waf_nothing_is_built_and_the_findings_say_why(
    synth: Synthesized, name: str
) -> None:
    for stack_name, template in deployment_templates(synth, name).items():
        assert not of_type(template, "AWS::WAFv2::WebACL"), stack_name
        assert not of_type(template, "AWS::WAFv2::WebACLAssociation"), stack_name
    acknowledged = collect_from_assembly(synth.outdir, stacks={f"{name}-serverless"})
    reasons = [a.reason for a in acknowledged if a.rule == "AwsSolutions-APIG3"]
    assert reasons and all(r.startswith("config waf is unset") for r in reasons)


# --- the construct on its own ---------------------------------------------------------------------


def _props(stack: Stack, **changes: Any) -> WebAclProps:
    from aws_cdk import RemovalPolicy
    from aws_cdk import aws_logs as logs

    fields: dict[str, Any] = {
        "name": "unit",
        "scope": "REGIONAL",
        "rate_limit_per_5_minutes": 100,
        "managed_rule_groups": ("AWSManagedRulesKnownBadInputsRuleSet",),
        "count_only_rules": {},
        "log_allowed_requests": False,
        "log_retention": logs.RetentionDays.ONE_WEEK,
        "encryption_key": DataKey(
            stack, "Key", description="k", removal_policy=RemovalPolicy.DESTROY
        ).key,
        "removal_policy": RemovalPolicy.DESTROY,
    }
    fields.update(changes)
    return WebAclProps(**fields)


def test_a_cloudfront_web_acl_outside_us_east_1_is_refused() -> None:
    stack = Stack(App(), "s")  # environment-agnostic: the region is unknown until deploy
    with pytest.raises(ValueError, match="a CLOUDFRONT web ACL must be created in a stack pinned"):
        WebAcl(stack, "Acl", props=_props(stack, scope="CLOUDFRONT"))


def test_count_only_rules_of_an_absent_group_are_refused() -> None:
    stack = Stack(App(), "s")
    props = _props(stack, count_only_rules={"AWSManagedRulesCommonRuleSet": ("X",)})
    with pytest.raises(ValueError, match="count_only_rules names AWSManagedRulesCommonRuleSet"):
        WebAcl(stack, "Acl", props=props)


def test_the_construct_logs_every_request_when_asked() -> None:
    stack = Stack(App(), "s")
    WebAcl(stack, "Acl", props=_props(stack, log_allowed_requests=True))
    template = dict(Template.from_stack(stack).to_json())
    logging = one(template, "AWS::WAFv2::LoggingConfiguration")["Properties"]
    assert "LoggingFilter" not in logging


# --- per-tenant usage plans ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tenant_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The serverless and async stacks of prod with two tenants and WAF (one small synthesis)."""
    from stacks.composition import build_app
    from tests.infra.conftest import cdk_json_context

    prod = CONFIGS["agent-prod"]
    data = prod.model_dump(by_alias=True)
    data["name"] = "agent-tenants"
    data["dr"] = None
    data["backup"] = None
    data["kubernetes"] = None
    data["container"] = {**data["container"], "enabled": False}
    data["api"]["tenants"] = [
        {
            "name": "acme",
            "throttle_rate_limit": 20,
            "throttle_burst_limit": 40,
            "quota": {"limit": 100_000, "period": "month"},
        },
        {"name": "globex", "throttle_rate_limit": 5, "throttle_burst_limit": 10},
    ]
    config = DeploymentConfig.model_validate(data)
    outdir = Path(tmp_path_factory.mktemp("tenants"))
    app = App(outdir=str(outdir), context={**cdk_json_context(), "aws:cdk:bundling-stacks": []})
    build_app(app, [config])
    assembly = app.synth()
    return {stack.stack_name: stack.template for stack in assembly.stacks}


TENANTS = (
    TenantConfig(
        name="acme",
        throttle_rate_limit=20,
        throttle_burst_limit=40,
        quota=TenantQuotaConfig(limit=100_000, period="month"),
    ),
    TenantConfig(name="globex", throttle_rate_limit=5, throttle_burst_limit=10),
)


@pytest.mark.parametrize("pattern", ["serverless", "async"])
def test_one_usage_plan_per_tenant_with_its_limits(
    tenant_templates: dict[str, dict[str, Any]], pattern: str
) -> None:
    template = tenant_templates[f"agent-tenants-{pattern}"]
    plans = of_type(template, "AWS::ApiGateway::UsagePlan")
    assert len(plans) == len(TENANTS)
    [stage_id] = ids_of_type(template, "AWS::ApiGateway::Stage")
    by_tenant = {plan["Properties"]["Description"].split(":")[0]: plan for plan in plans}
    for tenant in TENANTS:
        props = by_tenant[f"tenant {tenant.name}"]["Properties"]
        assert props["Throttle"] == {
            "RateLimit": tenant.throttle_rate_limit,
            "BurstLimit": tenant.throttle_burst_limit,
        }
        if tenant.quota is None:
            assert "Quota" not in props
        else:
            assert props["Quota"] == {"Limit": tenant.quota.limit, "Period": "MONTH"}
        [api_stage] = props["ApiStages"]
        assert refers_to(api_stage["Stage"], stage_id)
    keys = of_type(template, "AWS::ApiGateway::ApiKey")
    assert len(keys) == len(TENANTS)
    # API Gateway generates every value: none is in the template.
    assert all("Value" not in key["Properties"] for key in keys)
    links = of_type(template, "AWS::ApiGateway::UsagePlanKey")
    assert len(links) == len(TENANTS)
    outputs = [
        o
        for o in template["Outputs"].values()
        if "API key id of tenant" in o.get("Description", "")
    ]
    assert len(outputs) == len(TENANTS)
    assert all("Ref" in o["Value"] for o in outputs)  # the key's id, not its value


@pytest.mark.parametrize("pattern", ["serverless", "async"])
def test_methods_require_a_key_on_top_of_iam(
    tenant_templates: dict[str, dict[str, Any]], pattern: str
) -> None:
    methods = of_type(tenant_templates[f"agent-tenants-{pattern}"], "AWS::ApiGateway::Method")
    assert methods
    for method in methods:
        props = method["Properties"]
        assert props["AuthorizationType"] == "AWS_IAM"
        assert props["ApiKeyRequired"] is True


def test_the_tenant_stacks_pass_nag_and_keep_waf(
    tenant_templates: dict[str, dict[str, Any]],
) -> None:
    # The synthesis above ran cdk-nag (a finding raises); both stages are still associated.
    for pattern in ("serverless", "async"):
        template = tenant_templates[f"agent-tenants-{pattern}"]
        assert len(of_type(template, "AWS::WAFv2::WebACLAssociation")) == 1


# --- an organisation's existing CloudFront web ACL -----------------------------------------------

EXISTING_EDGE_ACL = (
    "arn:aws:wafv2:us-east-1:123456789012:global/webacl/org-edge/"
    "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
)


def test_an_existing_cloudfront_web_acl_replaces_the_edge_stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from stacks.composition import build_app
    from tests.infra.conftest import cdk_json_context

    data = CONFIGS["agent-hybrid"].model_dump(by_alias=True)
    data["name"] = "agent-orgacl"
    data["waf"]["cloudfront_web_acl_arn"] = EXISTING_EDGE_ACL
    config = DeploymentConfig.model_validate(data)
    outdir = Path(tmp_path_factory.mktemp("orgacl"))
    app = App(outdir=str(outdir), context={**cdk_json_context(), "aws:cdk:bundling-stacks": []})
    build_app(app, [config])
    templates = {stack.stack_name: stack.template for stack in app.synth().stacks}
    assert "agent-orgacl-edge" not in templates
    front_door = templates["agent-orgacl-frontdoor"]
    distribution = one(front_door, "AWS::CloudFront::Distribution")["Properties"]
    assert distribution["DistributionConfig"]["WebACLId"] == EXISTING_EDGE_ACL
    # No deploy-time reader, so none of its acknowledged findings either.
    assert not [key for key in front_door["Resources"] if key.startswith("AWS679f53fac002430cb")]
    assert len(of_type(templates["agent-orgacl-waf"], "AWS::WAFv2::WebACL")) == 1
