"""The releases section: the committed profiles choose their rollout, bad values fail with one
line naming the field and the fix."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest

from config import load_config
from config.loader import load_config_file
from config.model import LAMBDA_DEPLOYMENTS, LambdaDeployment, ReleasesConfig
from tests.unit.test_config import assert_one_problem_naming, base, merged, write


def test_prod_releases_through_a_canary_and_blue_green_dev_at_once() -> None:
    prod = load_config("prod").releases
    assert (prod.lambda_deployment, prod.ecs_deployment) == (
        "canary_10_percent_5_minutes",
        "blue_green",
    )
    assert prod.ecs_bake_minutes >= load_config("prod").alarms.period_minutes
    dev = load_config("dev").releases
    assert (dev.lambda_deployment, dev.ecs_deployment) == ("all_at_once", "rolling")


def test_a_config_without_releases_deploys_at_once_and_rolls(tmp_path: Path) -> None:
    config = load_config_file(write(tmp_path, merged(base(), {"releases": None})))
    assert config.releases == ReleasesConfig()
    assert (config.releases.lambda_deployment, config.releases.ecs_deployment) == (
        "all_at_once",
        "rolling",
    )


def test_every_deployment_name_has_a_monitored_window() -> None:
    # The Literal the config accepts and the table of windows list the same names.
    assert set(typing.get_args(LambdaDeployment)) == set(LAMBDA_DEPLOYMENTS)
    assert LAMBDA_DEPLOYMENTS["all_at_once"] == 0
    assert LAMBDA_DEPLOYMENTS["canary_10_percent_5_minutes"] == 5
    assert LAMBDA_DEPLOYMENTS["linear_10_percent_every_1_minute"] == 10


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"releases": {"lambda_deployment": "canary_50_percent"}},
            "releases.lambda_deployment",
        ),
        ({"releases": {"ecs_deployment": "canary"}}, "releases.ecs_deployment"),
        (
            {"releases": {"ecs_deployment": "blue_green", "ecs_bake_time_minutes": 1441}},
            "releases.ecs_bake_time_minutes",
        ),
        ({"releases": {"rollout": "fast"}}, "releases.rollout"),
    ],
)
def test_unknown_values_name_the_field(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    assert_one_problem_naming(tmp_path, change, expected)


def test_an_unknown_lambda_deployment_lists_the_choices(tmp_path: Path) -> None:
    assert_one_problem_naming(
        tmp_path,
        {"releases": {"lambda_deployment": "canary_50_percent"}},
        "canary_10_percent_5_minutes",
    )


def test_bake_time_needs_blue_green(tmp_path: Path) -> None:
    assert_one_problem_naming(
        tmp_path,
        {"releases": {"ecs_deployment": "rolling", "ecs_bake_time_minutes": 10}},
        "ecs_bake_time_minutes applies only to ecs_deployment: blue_green",
    )


def test_a_canary_shorter_than_the_alarm_period_is_refused(tmp_path: Path) -> None:
    assert_one_problem_naming(
        tmp_path,
        {
            "alarms": {"period_minutes": 10},
            "releases": {"lambda_deployment": "canary_10_percent_5_minutes"},
        },
        "shorter than alarms.period_minutes (10)",
    )


def test_all_at_once_needs_no_window(tmp_path: Path) -> None:
    data = merged(
        base(), {"alarms": {"period_minutes": 60}, "releases": {"lambda_deployment": "all_at_once"}}
    )
    assert load_config_file(write(tmp_path, data)).releases.lambda_monitored_minutes == 0


def test_a_bake_shorter_than_the_alarm_period_is_refused(tmp_path: Path) -> None:
    assert_one_problem_naming(
        tmp_path,
        {
            "alarms": {"period_minutes": 15},
            "releases": {
                "lambda_deployment": "canary_10_percent_30_minutes",
                "ecs_deployment": "blue_green",
                "ecs_bake_time_minutes": 5,
            },
        },
        "releases.ecs_bake_time_minutes (5) is shorter than alarms.period_minutes (15)",
    )


def test_a_blue_green_bake_of_the_alarm_period_is_enough(tmp_path: Path) -> None:
    data = merged(
        base(),
        {
            "alarms": {"period_minutes": 5},
            "releases": {"ecs_deployment": "blue_green", "ecs_bake_time_minutes": 5},
        },
    )
    releases = load_config_file(write(tmp_path, data)).releases
    assert (releases.ecs_deployment, releases.ecs_bake_minutes) == ("blue_green", 5)


def test_blue_green_without_a_bake_time_bakes_ten_minutes(tmp_path: Path) -> None:
    data = merged(base(), {"releases": {"ecs_deployment": "blue_green"}})
    releases = load_config_file(write(tmp_path, data)).releases
    assert (releases.ecs_bake_time_minutes, releases.ecs_bake_minutes) == (None, 10)


def test_a_dumped_config_loads_again() -> None:
    # Tests and tools round-trip configs (model_dump, then validate): the defaults must pass.
    for env in ("dev", "prod"):
        config = load_config(env)
        again = type(config).model_validate(config.model_dump(by_alias=True))
        assert again.releases == config.releases
