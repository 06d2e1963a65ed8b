"""Tools the agent can call, and the registry that validates and runs them.

Whatever goes wrong with a tool call (an unknown name, arguments that break the schema, an exception
inside the tool) comes back as an error string in the tool result rather than an exception: the
model reads it and can correct itself, and one bad call never aborts the whole step.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from runtime.llm.types import ToolCall, ToolSpec
from runtime.session_store import Clock, wall_clock

# Tool results are sent back to the model on every later call and stored in the session item
# (400 KB DynamoDB limit), so one chatty tool must not be able to flood either.
DEFAULT_MAX_OUTPUT_CHARS = 8_000

_JSON_TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")


class ArgumentsError(ValueError):
    """The arguments do not match the tool's schema; the message names the offending field."""


@dataclass(frozen=True)
class Tool:
    """A callable the model may invoke with keyword arguments described by a JSON schema."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    func: Callable[..., object]

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)


@dataclass(frozen=True)
class ToolResult:
    """What a call produced; ``is_error`` lets adapters flag failures without parsing the text."""

    output: str
    is_error: bool = False


@dataclass
class ToolRegistry:
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS
    _tools: dict[str, Tool] = field(default_factory=dict, init=False, repr=False)

    def register(self, tool: Tool) -> Tool:
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        if tool.parameters.get("type") != "object":
            # Both providers require an object schema at the top of tool parameters.
            raise ValueError(f"tool {tool.name!r}: parameters must be a JSON schema of type object")
        _check_schema_types(tool.parameters, where=tool.name)
        self._tools[tool.name] = tool
        return tool

    def names(self) -> list[str]:
        return sorted(self._tools)

    def specs(self) -> list[ToolSpec]:
        return [self._tools[name].spec() for name in self.names()]

    def run(self, call: ToolCall) -> str:
        return self.execute(call).output

    def execute(self, call: ToolCall) -> ToolResult:
        tool = self._tools.get(call.name)
        if tool is None:
            available = ", ".join(self.names()) or "none"
            return ToolResult(
                f"Error: unknown tool {call.name!r}. Available tools: {available}.", is_error=True
            )
        try:
            validate(call.arguments, tool.parameters, path="arguments")
        except ArgumentsError as exc:
            return ToolResult(
                f"Error: invalid arguments for {tool.name}: {exc}. Fix them and call it again.",
                is_error=True,
            )
        try:
            value = tool.func(**dict(call.arguments))
        except Exception as exc:
            # The model only needs the kind and message to recover; a traceback would be noise.
            return ToolResult(
                self._truncate(f"Error: {tool.name} failed: {type(exc).__name__}: {exc}"),
                is_error=True,
            )
        return ToolResult(self._truncate(_to_text(value)))

    def _truncate(self, text: str) -> str:
        if len(text) <= self.max_output_chars:
            return text
        dropped = len(text) - self.max_output_chars
        return f"{text[: self.max_output_chars]}\n[output truncated: {dropped} more characters]"


def _to_text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def validate(value: Any, schema: Mapping[str, Any], *, path: str) -> None:
    """Check ``value`` against the subset of JSON Schema that tool definitions use.

    Supported: ``type`` (one name or a list), ``enum``, ``properties``, ``required``,
    ``additionalProperties`` (``false`` or a schema), ``maxProperties``, ``pattern``,
    ``minLength``/``maxLength``, ``minimum``/``maximum``, ``items``, ``minItems``/``maxItems``.
    Unknown keywords are ignored, as JSON Schema does.
    """
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else list(expected)
        if not any(_is_type(value, name) for name in names):
            raise ArgumentsError(f"{path}: expected {' or '.join(names)}, got {_type_name(value)}")
    if "enum" in schema and not any(_json_equal(value, option) for option in schema["enum"]):
        options = ", ".join(json.dumps(option) for option in schema["enum"])
        raise ArgumentsError(f"{path}: must be one of {options}")
    if isinstance(value, str):
        _check_bounds(path, len(value), schema, "minLength", "maxLength", "characters")
        # JSON Schema patterns are unanchored searches; ours are written with ^...$.
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            raise ArgumentsError(f"{path}: must match {schema['pattern']}")
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            raise ArgumentsError(f"{path}: must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise ArgumentsError(f"{path}: must be <= {schema['maximum']}")
    if isinstance(value, list):
        _check_bounds(path, len(value), schema, "minItems", "maxItems", "items")
        item_schema = schema.get("items")
        if isinstance(item_schema, Mapping):
            for index, item in enumerate(value):
                validate(item, item_schema, path=f"{path}[{index}]")
    if isinstance(value, Mapping):
        _validate_object(value, schema, path)


def _validate_object(value: Mapping[str, Any], schema: Mapping[str, Any], path: str) -> None:
    properties: Mapping[str, Any] = schema.get("properties") or {}
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        raise ArgumentsError(f"{path}: must have at most {schema['maxProperties']} fields")
    for name in schema.get("required") or ():
        if name not in value:
            raise ArgumentsError(f"{path}.{name}: is required")
    for name, item in value.items():
        if name in properties:
            validate(item, properties[name], path=f"{path}.{name}")
        elif isinstance(schema.get("additionalProperties"), Mapping):
            validate(item, schema["additionalProperties"], path=f"{path}.{name}")
        elif schema.get("additionalProperties") is False:
            allowed = ", ".join(sorted(properties)) or "none"
            raise ArgumentsError(f"{path}.{name}: unexpected field (allowed: {allowed})")


def _check_bounds(
    path: str, size: int, schema: Mapping[str, Any], low: str, high: str, unit: str
) -> None:
    if low in schema and size < schema[low]:
        raise ArgumentsError(f"{path}: must have at least {schema[low]} {unit}")
    if high in schema and size > schema[high]:
        raise ArgumentsError(f"{path}: must have at most {schema[high]} {unit}")


def _is_type(value: Any, name: str) -> bool:
    # bool is a subclass of int in Python but a distinct type in JSON.
    match name:
        case "object":
            return isinstance(value, Mapping)
        case "array":
            return isinstance(value, list | tuple)
        case "string":
            return isinstance(value, str)
        case "boolean":
            return isinstance(value, bool)
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "null":
            return value is None
    return False


def _check_schema_types(schema: Mapping[str, Any], *, where: str) -> None:
    # A typo in a schema's type would otherwise reject every call at run time, blaming the model.
    expected = schema.get("type")
    names = [] if expected is None else [expected] if isinstance(expected, str) else expected
    for name in names:
        if name not in _JSON_TYPES:
            raise ValueError(f"tool {where!r}: unsupported JSON schema type {name!r}")
    for name, child in (schema.get("properties") or {}).items():
        _check_schema_types(child, where=f"{where}.{name}")
    if isinstance(schema.get("items"), Mapping):
        _check_schema_types(schema["items"], where=f"{where}[]")


def _type_name(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is_type(value, name):
            return name
    return type(value).__name__


def _json_equal(left: Any, right: Any) -> bool:
    return bool(left == right and isinstance(left, bool) == isinstance(right, bool))


# --- calculator -------------------------------------------------------------------------------

MAX_EXPRESSION_CHARS = 200
MAX_EXPONENT = 1_000
# Bounds every intermediate integer: chained powers such as (9**999)**999 would otherwise
# allocate gigabytes and stall the Lambda, long before any exponent check alone would notice.
MAX_RESULT_BITS = 4_096

_BINARY_OPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY_OPS: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


class CalculatorError(ValueError):
    """The expression is not plain arithmetic, or its result would be unreasonably large."""


def calculate(expression: str) -> str:
    """Evaluate arithmetic by walking a whitelisted AST; nothing reaches ``eval``."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError):
        raise CalculatorError("not a valid arithmetic expression") from None
    try:
        result = _evaluate(tree.body)
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except OverflowError:
        raise CalculatorError("result too large") from None
    return _format_number(result)


def _evaluate(node: ast.expr) -> int | float:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CalculatorError(f"only numbers are allowed, not {value!r}")
        return value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPS:
        result: int | float = _UNARY_OPS[type(node.op)](_evaluate(node.operand))
        return result
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
        left = _evaluate(node.left)
        right = _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        result = _BINARY_OPS[type(node.op)](left, right)
        if isinstance(result, complex):
            raise CalculatorError("result is not a real number")
        if isinstance(result, int) and result.bit_length() > MAX_RESULT_BITS:
            raise CalculatorError("result too large")
        return result
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitXor):
        raise CalculatorError("'^' is not supported; use ** for powers")
    raise CalculatorError(f"{type(node).__name__} is not allowed; use numbers and + - * / // % **")


def _check_power(base: int | float, exponent: int | float) -> None:
    if abs(exponent) > MAX_EXPONENT:
        raise CalculatorError(f"exponent larger than {MAX_EXPONENT}")
    # Estimated before computing, so the huge number is never built.
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and (abs(base).bit_length() - 1) * exponent > MAX_RESULT_BITS
    ):
        raise CalculatorError("result too large")


def _format_number(value: int | float) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CalculatorError("result is not a finite number")
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    return str(value)


def calculator_tool() -> Tool:
    return Tool(
        name="calculator",
        description=(
            "Evaluate an arithmetic expression exactly. Supports numbers, parentheses and the "
            "operators + - * / // % ** (e.g. '(2 + 3) * 4 ** 2'). Use it instead of mental math."
        ),
        parameters={
            "type": "object",
            "properties": {
                "expression": {
                    "type": "string",
                    "description": "The arithmetic expression to evaluate.",
                    "minLength": 1,
                    "maxLength": MAX_EXPRESSION_CHARS,
                }
            },
            "required": ["expression"],
            "additionalProperties": False,
        },
        func=calculate,
    )


def current_time_tool(clock: Clock = wall_clock) -> Tool:
    def current_time() -> str:
        return datetime.fromtimestamp(clock(), tz=UTC).isoformat(timespec="seconds")

    return Tool(
        name="current_time",
        description="Return the current date and time in UTC as an ISO-8601 string.",
        parameters={"type": "object", "properties": {}, "additionalProperties": False},
        func=current_time,
    )


def default_registry(
    *, clock: Clock = wall_clock, extra: Sequence[Tool] = (), max_output_chars: int | None = None
) -> ToolRegistry:
    """The tools every deployment ships with, plus any ``extra`` ones an adapter adds."""
    registry = ToolRegistry(max_output_chars=max_output_chars or DEFAULT_MAX_OUTPUT_CHARS)
    for tool in (calculator_tool(), current_time_tool(clock), *extra):
        registry.register(tool)
    return registry
