"""The waf section and api.tenants: committed profiles load, bad values fail naming the field and
the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from config import load_config
from config.loader import load_config_file
from config.model import (
    MAX_API_TENANTS,
    WAF_INCLUDED_WCU,
    WAF_MANAGED_RULE_GROUP_WCU,
    WAF_MIN_RATE_LIMIT,
    WAF_RATE_RULE_WCU,
)
from tests.unit.test_config import (
    REPO_ROOT,
    assert_one_problem_naming,
    base,
    merged,
    problems_for,
    write,
)

WAF: dict[str, Any] = {"waf": {"rate_limit_per_5_minutes": 500}}


def tenant(name: str = "acme", **fields: Any) -> dict[str, Any]:
    return {"name": name, "throttle_rate_limit": 2, "throttle_burst_limit": 4, **fields}


def test_prod_and_hybrid_have_waf_and_dev_does_not() -> None:
    # Dev stays cheap when idle: a web ACL bills every month whether or not anyone calls.
    assert load_config("dev").waf is None
    for env in ("prod", "hybrid"):
        waf = load_config(env).waf
        assert waf is not None
        assert "AWSManagedRulesCommonRuleSet" in waf.managed_rule_groups
        assert "AWSManagedRulesKnownBadInputsRuleSet" in waf.managed_rule_groups
        assert waf.count_only_rules["AWSManagedRulesCommonRuleSet"] == ("SizeRestrictions_BODY",)


def test_defaults_are_the_baseline_groups_and_count_the_body_size_rule(tmp_path: Path) -> None:
    config = load_config_file(write(tmp_path, merged(base(), {"waf": {}})))
    waf = config.waf
    assert waf is not None
    assert waf.rate_limit_per_5_minutes == 2000
    assert waf.managed_rule_groups == (
        "AWSManagedRulesAmazonIpReputationList",
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
    )
    assert waf.log_allowed_requests is False
    assert waf.cloudfront_web_acl_arn is None


def test_the_default_groups_fit_the_included_capacity() -> None:
    default = (
        "AWSManagedRulesAmazonIpReputationList",
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
    )
    used = sum(WAF_MANAGED_RULE_GROUP_WCU[group] for group in default) + WAF_RATE_RULE_WCU
    assert used <= WAF_INCLUDED_WCU


def test_a_rate_limit_below_the_waf_minimum_is_refused(tmp_path: Path) -> None:
    assert WAF_MIN_RATE_LIMIT == 10
    assert_one_problem_naming(
        tmp_path,
        {"waf": {"rate_limit_per_5_minutes": 9}},
        "waf.rate_limit_per_5_minutes: Input should be greater than or equal to 10",
    )


def test_an_unknown_rule_group_is_refused(tmp_path: Path) -> None:
    assert_one_problem_naming(
        tmp_path,
        {"waf": {"managed_rule_groups": ["AWSManagedRulesBotControlRuleSet"]}},
        "waf.managed_rule_groups.0",
    )


def test_known_bad_inputs_are_required(tmp_path: Path) -> None:
    assert_one_problem_naming(
        tmp_path,
        {"waf": {"managed_rule_groups": ["AWSManagedRulesCommonRuleSet"]}},
        "must include AWSManagedRulesKnownBadInputsRuleSet",
    )


def test_a_group_listed_twice_is_refused(tmp_path: Path) -> None:
    groups = ["AWSManagedRulesKnownBadInputsRuleSet"] * 2
    assert_one_problem_naming(
        tmp_path, {"waf": {"managed_rule_groups": groups}}, "lists a group twice"
    )


def test_count_only_rules_of_an_unlisted_group_are_refused(tmp_path: Path) -> None:
    change = {
        "waf": {
            "managed_rule_groups": [
                "AWSManagedRulesCommonRuleSet",
                "AWSManagedRulesKnownBadInputsRuleSet",
            ],
            "count_only_rules": {
                "AWSManagedRulesCommonRuleSet": ["SizeRestrictions_BODY"],
                "AWSManagedRulesSQLiRuleSet": ["SQLi_BODY"],
            },
        }
    }
    assert_one_problem_naming(
        tmp_path,
        change,
        "waf.count_only_rules names AWSManagedRulesSQLiRuleSet, which is not in "
        "waf.managed_rule_groups: add the group or remove its entry",
    )


def test_log4j_must_keep_blocking(tmp_path: Path) -> None:
    change = {"waf": {"count_only_rules": {"AWSManagedRulesKnownBadInputsRuleSet": ["Log4JRCE"]}}}
    assert_one_problem_naming(tmp_path, change, "Log4JRCE of AWSManagedRulesKnownBadInputsRuleSet")


def test_groups_beyond_the_included_capacity_are_refused(tmp_path: Path) -> None:
    groups = [
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesSQLiRuleSet",
        "AWSManagedRulesLinuxRuleSet",
        "AWSManagedRulesWindowsRuleSet",
    ]
    assert_one_problem_naming(
        tmp_path,
        {"waf": {"managed_rule_groups": groups}},
        "need 1503 WCU with the rate rule, above the 1500",
    )


def test_the_body_size_rule_must_count_when_bodies_may_exceed_it(tmp_path: Path) -> None:
    # agent.max_body_bytes in dev.yaml is 65536; the common set blocks bodies over 8 KB.
    assert_one_problem_naming(
        tmp_path,
        {"waf": {"count_only_rules": {}}},
        "SizeRestrictions_BODY blocks request bodies over 8192 bytes, but agent.max_body_bytes "
        "is 65536: add SizeRestrictions_BODY to waf.count_only_rules.AWSManagedRulesCommonRuleSet",
    )


def test_the_body_size_rule_may_block_when_bodies_fit_it(tmp_path: Path) -> None:
    change = {"waf": {"count_only_rules": {}}, "agent": {"max_body_bytes": 8192}}
    config = load_config_file(write(tmp_path, merged(base(), change)))
    assert config.waf is not None and config.waf.count_only_rules == {}


def test_a_cloudfront_acl_without_cloudfront_is_refused(tmp_path: Path) -> None:
    arn = (
        "arn:aws:wafv2:us-east-1:123456789012:global/webacl/org-edge/"
        "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    )
    assert_one_problem_naming(
        tmp_path,
        {"waf": {"cloudfront_web_acl_arn": arn}},
        "waf.cloudfront_web_acl_arn is set but no CloudFront distribution is built",
    )


def test_a_regional_acl_arn_is_not_a_cloudfront_one(tmp_path: Path) -> None:
    arn = (
        "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/org/"
        "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    )
    assert_one_problem_naming(
        tmp_path, {"waf": {"cloudfront_web_acl_arn": arn}}, "waf.cloudfront_web_acl_arn"
    )


# --- api.tenants ----------------------------------------------------------------------------------


def test_tenants_load_with_their_limits(tmp_path: Path) -> None:
    change = {
        "api": {
            "tenants": [
                tenant("acme", quota={"limit": 10_000, "period": "month"}),
                tenant("globex", throttle_rate_limit=1, throttle_burst_limit=1),
            ]
        }
    }
    api = load_config_file(write(tmp_path, merged(base(), change))).api
    assert [t.name for t in api.tenants] == ["acme", "globex"]
    assert api.tenants[0].quota is not None
    assert (api.tenants[0].quota.limit, api.tenants[0].quota.period) == (10_000, "month")
    assert api.tenants[1].quota is None
    assert api.requires_api_key  # keys on top of IAM
    assert api.auth == "iam"


def test_no_tenants_and_iam_need_no_key() -> None:
    assert not load_config("dev").api.requires_api_key


def test_tenant_names_must_be_unique(tmp_path: Path) -> None:
    assert_one_problem_naming(
        tmp_path,
        {"api": {"tenants": [tenant("acme"), tenant("acme")]}},
        "api.tenants names must be unique (each names an API key and a usage plan); acme",
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"throttle_rate_limit": 6, "throttle_burst_limit": 8},
            "api.tenants acme: throttle_rate_limit (6) exceeds the stage's api.throttle_rate_limit "
            "(5); lower the tenant's or raise the stage's",
        ),
        (
            {"throttle_burst_limit": 11},
            "api.tenants acme: throttle_burst_limit (11) exceeds the stage's "
            "api.throttle_burst_limit (10)",
        ),
        (
            {"throttle_rate_limit": 3, "throttle_burst_limit": 2},
            "tenant acme: throttle_burst_limit (2) must be at least throttle_rate_limit (3)",
        ),
    ],
)
def test_tenant_throttles_fit_the_stage(
    tmp_path: Path, fields: dict[str, Any], expected: str
) -> None:
    # dev.yaml's stage: rate 5, burst 10.
    assert_one_problem_naming(tmp_path, {"api": {"tenants": [tenant(**fields)]}}, expected)


def test_a_tenant_quota_needs_a_known_period(tmp_path: Path) -> None:
    assert_one_problem_naming(
        tmp_path,
        {"api": {"tenants": [tenant(quota={"limit": 5, "period": "year"})]}},
        "api.tenants.0.quota.period",
    )


def test_the_default_key_quota_conflicts_with_tenants(tmp_path: Path) -> None:
    change = {"api": {"auth": "api_key", "quota_per_day": 100, "tenants": [tenant()]}}
    assert_one_problem_naming(
        tmp_path,
        change,
        "api.quota_per_day is the quota of the single default key, which is not created when "
        "api.tenants is set",
    )


def test_too_many_tenants_are_refused(tmp_path: Path) -> None:
    tenants = [tenant(f"t{i:03d}") for i in range(MAX_API_TENANTS + 1)]
    assert_one_problem_naming(tmp_path, {"api": {"tenants": tenants}}, "api.tenants")


def test_tenants_are_refused_with_hybrid(tmp_path: Path) -> None:
    hybrid = yaml.safe_load((REPO_ROOT / "config" / "hybrid.yaml").read_text())
    problems = problems_for(tmp_path, merged(hybrid, {"api": {"tenants": [tenant()]}}))
    assert len(problems) == 1, problems
    assert (
        "api.tenants cannot be used with hybrid: the front door is an HTTP API, which has no API "
        "keys or usage plans, so a tenant could bypass its quota through it" in problems[0]
    )


def test_waf_section_is_optional(tmp_path: Path) -> None:
    config = load_config_file(write(tmp_path, merged(base(), WAF)))
    assert config.waf is not None and config.waf.rate_limit_per_5_minutes == 500
