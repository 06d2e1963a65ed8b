"""The operations section (cost alerts): the committed profiles load, bad values fail with one
line naming the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config import load_config
from config.loader import load_config_file
from tests.unit.test_config import assert_one_problem_naming, base, merged, problems_for, write


def test_committed_profiles_have_cost_alerts_filtered_by_their_environment_tag() -> None:
    for env in ("dev", "prod", "hybrid"):
        config = load_config(env)
        assert config.operations is not None
        assert config.operations.alert_emails
        assert config.cost_filter == ("environment", env)
    # prod's budget is above its idle cost (README "Cost estimate"), or it would alert every month.
    prod = load_config("prod").operations
    assert prod is not None and prod.monthly_budget_usd >= 500


def test_a_config_without_operations_has_no_cost_alerts(tmp_path: Path) -> None:
    # observability too: dev's cost-per-hour alarm needs the operations topic.
    change = {"operations": None, "observability": None}
    config = load_config_file(write(tmp_path, merged(base(), change)))
    assert config.operations is None
    assert config.cost_filter is None


def test_defaults_filter_by_the_environment_tag(tmp_path: Path) -> None:
    data = merged(base(), {"operations": None})
    data["operations"] = {"monthly_budget_usd": 10, "alert_emails": ["a@example.com"]}
    operations = load_config_file(write(tmp_path, data)).operations
    assert operations is not None
    assert (operations.cost_filter_tag, operations.anomaly_threshold_usd) == ("environment", 100)


def test_cost_filter_null_watches_the_whole_account(tmp_path: Path) -> None:
    data = merged(base(), {"operations": {"cost_filter_tag": None}})
    data["operations"]["cost_filter_tag"] = None
    assert load_config_file(write(tmp_path, data)).cost_filter is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"operations": {"monthly_budget_usd": 0}},
            "operations.monthly_budget_usd: Input should be greater than 0",
        ),
        (
            {"operations": {"monthly_budget_usd": -5}},
            "operations.monthly_budget_usd: Input should be greater than 0",
        ),
        (
            {"operations": {"anomaly_threshold_usd": 0}},
            "operations.anomaly_threshold_usd: Input should be greater than 0",
        ),
        (
            {"operations": {"alert_emails": []}},
            "operations.alert_emails: Tuple should have at least 1 item",
        ),
        (
            {"operations": {"alert_emails": ["ops.example.com"]}},
            "operations.alert_emails: 'ops.example.com' is not an email address "
            "such as ops@example.com",
        ),
        (
            {"operations": {"alert_emails": ["ops@example"]}},
            "operations.alert_emails: 'ops@example' is not an email address",
        ),
        (
            {"operations": {"alert_emails": ["ops@example.com", "ops@example.com"]}},
            "operations.alert_emails: each address may appear once",
        ),
        (
            {"operations": {"cost_filter_tag": "team"}},
            "operations.cost_filter_tag is 'team', which is not a key of tags (environment, "
            "project): add tags.team, choose one of those keys, or set cost_filter_tag: null to "
            "watch the whole account",
        ),
        ({"operations": {"budget": 10}}, "operations.budget: unknown setting"),
    ],
)
def test_bad_operations_values_give_one_line_naming_the_field(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    assert_one_problem_naming(tmp_path, change, expected)


def test_operations_needs_a_budget_and_an_address(tmp_path: Path) -> None:
    data = merged(base(), {"operations": None})
    data["operations"] = {}
    problems = problems_for(tmp_path, data)
    assert sorted(p.split(": ")[1] for p in problems) == [
        "operations.alert_emails",
        "operations.monthly_budget_usd",
    ]
    assert all(p.endswith("required setting is missing") for p in problems)
