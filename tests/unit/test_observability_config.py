"""The observability section: profiles, defaults, and errors that name the field and the fix;
the usage-metric environment the stacks derive from it and costs/prices.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import load_config
from config.environment import model_token_prices, usage_environment
from config.model import DeploymentConfig, ObservabilityConfig
from costs.estimate import load_prices
from tests.unit.test_config import assert_one_problem_naming, base, merged, problems_for


def test_defaults_cost_nothing_idle() -> None:
    defaults = ObservabilityConfig()
    assert defaults.dashboards is False
    assert defaults.usage_metrics is True
    assert defaults.cost_per_hour_alarm_usd is None


def test_prod_turns_everything_on() -> None:
    observability = load_config("prod").observability
    assert observability.dashboards is True
    assert observability.usage_metrics is True
    assert observability.cost_per_hour_alarm_usd == 5


@pytest.mark.parametrize("env", ["dev", "hybrid"])
def test_dev_profiles_have_no_dashboards_but_the_spend_alarm(env: str) -> None:
    observability = load_config(env).observability
    assert observability.dashboards is False
    assert observability.usage_metrics is True
    assert observability.cost_per_hour_alarm_usd == 1


def test_a_config_without_the_section_gets_the_defaults(tmp_path: Path) -> None:
    from config.loader import load_config_file
    from tests.unit.test_config import write

    config = load_config_file(write(tmp_path, merged(base(), {"observability": None})))
    assert config.observability == ObservabilityConfig()


def test_the_cost_alarm_needs_usage_metrics(tmp_path: Path) -> None:
    assert_one_problem_naming(
        tmp_path,
        {"observability": {"usage_metrics": False, "cost_per_hour_alarm_usd": 2}},
        "observability.cost_per_hour_alarm_usd watches the runtime's EstimatedCostUSD metric: "
        "set observability.usage_metrics: true or cost_per_hour_alarm_usd: null",
    )


def test_the_cost_alarm_needs_the_operations_topic(tmp_path: Path) -> None:
    [problem] = problems_for(tmp_path, merged(base(), {"operations": None}))
    assert (
        "observability.cost_per_hour_alarm_usd needs the operations section: its alert topic "
        "(operations.alert_emails) is where the alarm goes; add operations: or set "
        "cost_per_hour_alarm_usd: null"
    ) in problem


@pytest.mark.parametrize("threshold", [0, -1, 2_000_000])
def test_the_threshold_is_a_positive_amount(tmp_path: Path, threshold: float) -> None:
    [problem] = problems_for(
        tmp_path, merged(base(), {"observability": {"cost_per_hour_alarm_usd": threshold}})
    )
    assert "observability.cost_per_hour_alarm_usd" in problem


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    [problem] = problems_for(tmp_path, merged(base(), {"observability": {"dashboard": True}}))
    assert "observability.dashboard" in problem


# --- the runtime environment ------------------------------------------------------------------


def _with(config: DeploymentConfig, **changes: object) -> DeploymentConfig:
    """``config`` with ``section__key`` values replaced (not re-validated: the function under
    test must check what validation cannot, the price table)."""
    sections: dict[str, dict[str, object]] = {}
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        sections.setdefault(section, {})[key] = value
    return config.model_copy(
        update={
            section: getattr(config, section).model_copy(update=values)
            for section, values in sections.items()
        }
    )


def test_prices_come_from_the_price_table() -> None:
    prod = load_config("prod")
    environment = usage_environment(prod)
    table_in, table_out = load_prices().tokens(prod.llm.model_id)
    assert environment == {
        "USAGE_METRICS_NAMESPACE": "agent-prod",
        "USAGE_METRICS_SERVICE": "agent-prod",
        "LLM_INPUT_PRICE_USD_PER_MILLION": "2.5",
        "LLM_OUTPUT_PRICE_USD_PER_MILLION": "10",
    }
    assert (table_in, table_out) == (2.5, 10.0)


def test_a_model_without_prices_gets_token_metrics_only() -> None:
    config = _with(
        load_config("dev"),
        llm__model_id="my-private-model",
        observability__cost_per_hour_alarm_usd=None,
    )
    assert model_token_prices("my-private-model") is None
    assert usage_environment(config) == {
        "USAGE_METRICS_NAMESPACE": "agent-dev",
        "USAGE_METRICS_SERVICE": "agent-dev",
    }


def test_a_cost_alarm_on_a_model_without_prices_fails_the_synth() -> None:
    config = _with(load_config("dev"), llm__model_id="my-private-model")
    with pytest.raises(ValueError, match="add them under llm_per_million_tokens in costs/prices"):
        usage_environment(config)


def test_usage_metrics_off_sets_nothing() -> None:
    config = _with(
        load_config("dev"),
        observability__usage_metrics=False,
        observability__cost_per_hour_alarm_usd=None,
    )
    assert usage_environment(config) == {}
