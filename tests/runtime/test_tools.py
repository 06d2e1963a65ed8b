"""The tool registry (validation, error results, truncation) and the two built-in tools."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from runtime.llm.types import ToolCall
from runtime.tools import (
    MAX_EXPRESSION_CHARS,
    CalculatorError,
    Tool,
    ToolRegistry,
    calculate,
    default_registry,
)
from tests.fakes.clock import FakeClock


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(id="call_x", name=name, arguments=arguments)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("7 / 2", "3.5"),
        ("6 / 3", "2"),
        ("7 // 2", "3"),
        ("-7 % 3", "2"),
        ("2 ** 10", "1024"),
        ("2 ** -1", "0.5"),
        ("-(3 - 5)", "2"),
        ("+4", "4"),
        ("0.1 + 0.2", "0.30000000000000004"),
        ("1e3 / 4", "250"),
        (" 1_000 * 3 ", "3000"),
        ("123456789 * 987654321", "121932631112635269"),
    ],
)
def test_calculator_computes(expression: str, expected: str) -> None:
    assert calculate(expression) == expected


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os').system('true')", "Call is not allowed"),
        ("x + 1", "Name is not allowed"),
        ("(1).real", "Attribute is not allowed"),
        ("'a' * 3", "only numbers"),
        ("True + 1", "only numbers"),
        ("[1, 2][0]", "not allowed"),
        ("1 if 1 else 2", "not allowed"),
        ("2 ^ 3", "use \\*\\* for powers"),
        ("1 << 10", "not allowed"),
        ("lambda: 1", "not allowed"),
        ("2 ** 100000", "exponent larger than"),
        ("9 ** 999 ** 999", "result too large"),
        ("2 ** 2 ** 2 ** 2 ** 2", "exponent larger than"),
        ("(9 ** 999) ** 999", "result too large"),
        ("(2 ** 999) * (2 ** 999) * (2 ** 999) * (2 ** 999) * (2 ** 999)", "result too large"),
        ("10.0 ** 999", "result too large"),
        ("1e308 * 10", "not a finite number"),
        ("(-8) ** 0.5", "not a real number"),
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("1 +", "not a valid arithmetic expression"),
        ("1\x00", "not a valid arithmetic expression"),
        ("1 + " * 60 + "1", f"longer than {MAX_EXPRESSION_CHARS}"),
    ],
)
def test_calculator_refuses(expression: str, reason: str) -> None:
    started = time.monotonic()
    with pytest.raises(CalculatorError, match=reason):
        calculate(expression)
    # The bounds exist to stop expensive inputs before they run.
    assert time.monotonic() - started < 0.5


def test_registry_runs_calculator() -> None:
    assert default_registry().run(call("calculator", expression="6 * 7")) == "42"


def test_specs_describe_every_tool_for_the_model() -> None:
    specs = default_registry().specs()

    assert [spec.name for spec in specs] == ["calculator", "current_time"]
    calculator = specs[0]
    assert calculator.parameters["required"] == ["expression"]
    assert calculator.parameters["properties"]["expression"]["type"] == "string"
    assert "**" in calculator.description
    json.dumps([spec.parameters for spec in specs])  # sent to providers as JSON


def test_current_time_is_utc_iso8601_from_the_clock() -> None:
    registry = default_registry(clock=FakeClock(1_714_564_800.0))

    assert registry.run(call("current_time")) == "2024-05-01T12:00:00+00:00"


def test_unknown_tool_is_an_error_result_listing_the_real_ones() -> None:
    result = default_registry().execute(call("web_search", query="x"))

    assert result.is_error
    assert "unknown tool 'web_search'" in result.output
    assert "calculator, current_time" in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "arguments.expression: is required"),
        ({"expression": 42}, "arguments.expression: expected string, got integer"),
        ({"expression": "1", "mode": "fast"}, "arguments.mode: unexpected field"),
        ({"expression": ""}, "arguments.expression: must have at least 1 characters"),
        (
            {"expression": "1" * (MAX_EXPRESSION_CHARS + 1)},
            f"must have at most {MAX_EXPRESSION_CHARS} characters",
        ),
    ],
)
def test_calculator_arguments_are_validated_before_the_call(
    arguments: dict[str, Any], message: str
) -> None:
    result = default_registry().execute(ToolCall(id="c", name="calculator", arguments=arguments))

    assert result.is_error
    assert result.output.startswith("Error: invalid arguments for calculator")
    assert message in result.output


def recording_tool(schema: dict[str, Any], seen: list[dict[str, Any]]) -> Tool:
    def record(**kwargs: Any) -> str:
        seen.append(kwargs)
        return "ok"

    return Tool(name="record", description="records", parameters=schema, func=record)


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "unit": {"type": "string", "enum": ["c", "f"]},
        "count": {"type": "integer", "minimum": 1, "maximum": 10},
        "ratio": {"type": "number"},
        "loud": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "where": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
    "required": ["unit"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"unit": "k"}, 'arguments.unit: must be one of "c", "f"'),
        ({"unit": "c", "count": True}, "arguments.count: expected integer, got boolean"),
        ({"unit": "c", "count": 2.5}, "arguments.count: expected integer, got number"),
        ({"unit": "c", "count": 0}, "arguments.count: must be >= 1"),
        ({"unit": "c", "count": 11}, "arguments.count: must be <= 10"),
        ({"unit": "c", "ratio": "0.5"}, "arguments.ratio: expected number, got string"),
        ({"unit": "c", "loud": 1}, "arguments.loud: expected boolean, got integer"),
        ({"unit": "c", "tags": ["a", 1]}, "arguments.tags[1]: expected string, got integer"),
        ({"unit": "c", "tags": ["a", "b", "c"]}, "arguments.tags: must have at most 2 items"),
        ({"unit": "c", "where": {}}, "arguments.where.city: is required"),
        ({"unit": "c", "where": "Paris"}, "arguments.where: expected object, got string"),
    ],
)
def test_schema_subset_rejects_with_the_field_path(arguments: dict[str, Any], message: str) -> None:
    seen: list[dict[str, Any]] = []
    registry = ToolRegistry()
    registry.register(recording_tool(SCHEMA, seen))

    result = registry.execute(ToolCall(id="c", name="record", arguments=arguments))

    assert result.is_error
    assert message in result.output
    assert seen == []


def test_valid_arguments_reach_the_tool_unchanged() -> None:
    seen: list[dict[str, Any]] = []
    registry = ToolRegistry()
    registry.register(recording_tool(SCHEMA, seen))
    arguments = {
        "unit": "f",
        "count": 3,
        "ratio": 1,
        "loud": False,
        "tags": ["x"],
        "where": {"city": "Oslo"},
    }

    assert registry.run(ToolCall(id="c", name="record", arguments=arguments)) == "ok"
    assert seen == [arguments]


def test_exception_inside_a_tool_becomes_an_error_result() -> None:
    def explode() -> str:
        raise RuntimeError("disk on fire")

    registry = ToolRegistry()
    registry.register(Tool("explode", "fails", {"type": "object"}, explode))

    result = registry.execute(call("explode"))

    assert result.is_error
    assert result.output == "Error: explode failed: RuntimeError: disk on fire"


def test_calculator_refusal_reaches_the_model_as_an_error_result() -> None:
    result = default_registry().execute(call("calculator", expression="__import__('os')"))

    assert result.is_error
    assert "CalculatorError" in result.output
    assert "not allowed" in result.output


def test_output_is_truncated_to_the_bound() -> None:
    registry = ToolRegistry(max_output_chars=100)
    registry.register(Tool("chatty", "talks", {"type": "object"}, lambda: "y" * 5000))

    output = registry.run(call("chatty"))

    assert output.startswith("y" * 100)
    assert "y" * 101 not in output
    assert "[output truncated: 4900 more characters]" in output
    assert len(output) < 200


def test_non_string_results_are_sent_as_json() -> None:
    registry = ToolRegistry()
    registry.register(Tool("data", "returns data", {"type": "object"}, lambda: {"n": 1.5}))

    assert json.loads(registry.run(call("data"))) == {"n": 1.5}


def test_registering_twice_or_with_a_bad_schema_fails_fast() -> None:
    registry = default_registry()
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Tool("calculator", "dup", {"type": "object"}, lambda: ""))
    with pytest.raises(ValueError, match="type object"):
        registry.register(Tool("flat", "bad", {"type": "string"}, lambda: ""))
    with pytest.raises(ValueError, match="unsupported JSON schema type 'text'"):
        registry.register(
            Tool(
                "typo",
                "bad",
                {"type": "object", "properties": {"q": {"type": "text"}}},
                lambda **_: "",
            )
        )
