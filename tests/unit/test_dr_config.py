"""The dr section (multi-region disaster recovery): prod has it, bad values fail with one line
naming the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config import load_config
from config.loader import load_config_file
from tests.unit.test_config import assert_one_problem_naming, base, merged, write

DR = {"primary_region": "us-east-1", "secondary_region": "us-west-2"}
DOMAIN = {
    "hosted_zone_id": "Z0123456789ABCDEFGHIJ",
    "hosted_zone_name": "example.com",
    "record_name": "agent.example.com",
}


def with_dr(**changes: Any) -> dict[str, Any]:
    return {"dr": {**DR, **changes}}


def test_prod_is_multi_region_and_dev_is_not() -> None:
    prod = load_config("prod").dr
    assert prod is not None
    assert prod.regions == ("us-east-1", "us-west-2")
    assert (prod.rto_minutes, prod.rpo_minutes) == (30, 1)
    assert load_config("dev").dr is None


def test_defaults_and_a_domain(tmp_path: Path) -> None:
    config = load_config_file(write(tmp_path, merged(base(), with_dr(domain=DOMAIN))))
    dr = config.dr
    assert dr is not None and dr.domain is not None
    assert (dr.rto_minutes, dr.rpo_minutes, dr.image_repository_prefixes) == (30, 1, ())
    # 3 failures x 30 s before Route 53 fails over.
    assert dr.domain.failover_seconds == 90


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            with_dr(secondary_region="us-east-1"),
            "dr.secondary_region is the same as dr.primary_region (us-east-1): a replica in the "
            "same region survives no regional outage; choose another region",
        ),
        (with_dr(primary_region="US-EAST-1"), "dr.primary_region: String should match pattern"),
        (with_dr(secondary_region="mars-1"), "dr.secondary_region: String should match pattern"),
        (with_dr(rpo_minutes=0), "dr.rpo_minutes: Input should be greater than or equal to 1"),
        (with_dr(surprise=1), "dr.surprise: unknown setting"),
        (
            with_dr(image_repository_prefixes=["UPPER"]),
            "dr.image_repository_prefixes.0: String should match pattern",
        ),
        (
            with_dr(domain={**DOMAIN, "record_name": "agent.example.org"}),
            "dr.domain.record_name 'agent.example.org' is not in dr.domain.hosted_zone_name "
            "'example.com': use a name that ends in .example.com",
        ),
        (
            with_dr(domain={**DOMAIN, "hosted_zone_id": "not-a-zone"}),
            "dr.domain.hosted_zone_id: String should match pattern",
        ),
        (
            with_dr(domain={**DOMAIN, "health_check_interval_seconds": 20}),
            "dr.domain.health_check_interval_seconds: Input should be 10 or 30",
        ),
        (
            with_dr(rto_minutes=1, domain={**DOMAIN, "health_check_failure_threshold": 3}),
            "dr.rto_minutes (1) is shorter than the Route 53 failover time (90 s = "
            "health_check_interval_seconds x health_check_failure_threshold); raise rto_minutes "
            "or check more often",
        ),
        (
            {**with_dr(), "region": "eu-west-1"},
            "region is eu-west-1 but dr.primary_region is us-east-1: the primary stacks deploy "
            "to dr.primary_region, so remove region or make the two equal",
        ),
        (
            {
                **with_dr(),
                "container": {
                    "enabled": True,
                    "allow_plain_http": False,
                    "certificate_arn": "arn:aws:acm:eu-west-1:123456789012:certificate/"
                    "00000000-0000-0000-0000-000000000000",
                },
            },
            "container.certificate_arn is in eu-west-1 but the load balancer runs in "
            "dr.primary_region (us-east-1), and ACM certificates work only in their own region: "
            "use a certificate from us-east-1",
        ),
    ],
)
def test_bad_dr_values_give_one_line_naming_the_field(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    assert_one_problem_naming(tmp_path, change, expected)


def test_a_record_at_the_zone_apex_is_allowed(tmp_path: Path) -> None:
    domain = {**DOMAIN, "record_name": "example.com"}
    config = load_config_file(write(tmp_path, merged(base(), with_dr(domain=domain))))
    assert config.dr is not None and config.dr.domain is not None
    assert config.dr.domain.record_name == "example.com"


def test_region_equal_to_the_primary_region_is_allowed(tmp_path: Path) -> None:
    config = load_config_file(write(tmp_path, merged(base(), {**with_dr(), "region": "us-east-1"})))
    assert config.region == "us-east-1"
