"""BaseTool: schemas declared or derived, argument checks, and results that never raise."""

from __future__ import annotations

from typing import Any, Literal

import pytest

from agentvisor.agent import BaseTool, ToolResult
from agentvisor.agent.tools import json_compatible, tool_message_content


class Greet(BaseTool):
    name = "greet"
    description = "Greet someone"
    parameters = {
        "type": "object",
        "properties": {"name": {"type": "string", "description": "who"}},
        "required": ["name"],
    }

    async def execute(self, name: str) -> ToolResult:
        return ToolResult(output=f"Hello, {name}!")


class Derived(BaseTool):
    name: str = "derived"  # the seeds annotate their class attributes
    description: str = "Parameters come from the signature"

    async def execute(
        self,
        city: str,
        days: int,
        scale: float = 1.0,
        metric: bool = True,
        tags: list[str] | None = None,
        extra: dict[str, Any] | None = None,
        unit: Literal["c", "f"] = "c",
        anything=None,
    ) -> str:
        return f"{city}/{days}/{scale}/{metric}/{tags}/{extra}/{unit}/{anything}"


def test_declared_parameters_become_the_openai_tool_definition() -> None:
    assert Greet().schema() == {
        "type": "function",
        "function": {
            "name": "greet",
            "description": "Greet someone",
            "parameters": Greet.parameters,
        },
    }


def test_parameters_are_derived_from_the_signature_of_execute() -> None:
    assert Derived().input_schema == {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "scale": {"type": "number"},
            "metric": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "extra": {"type": "object"},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "anything": {},
        },
        "required": ["city", "days"],
    }


def test_a_tool_without_execute_parameters_takes_no_arguments() -> None:
    class Ping(BaseTool):
        name = "ping"

        async def execute(self) -> str:
            return "pong"

    assert Ping().input_schema == {"type": "object", "properties": {}, "required": []}


def test_tool_result_accepts_content_as_a_synonym_of_output() -> None:
    assert ToolResult(content="x") == ToolResult(output="x")
    assert ToolResult(success=True, content="x").content == "x"
    assert ToolResult("x").output == "x"


def test_tool_result_with_an_error_is_a_failure_unless_told_otherwise() -> None:
    assert ToolResult(error="no such city").success is False
    assert ToolResult(output=1).success is True
    assert ToolResult(success=False).error is None


def test_tool_result_refuses_two_different_values() -> None:
    with pytest.raises(ValueError, match="both output= and content="):
        ToolResult(output="a", content="b")


async def test_run_returns_the_tools_result() -> None:
    assert await Greet().run({"name": "Ada"}) == ToolResult(output="Hello, Ada!")


async def test_a_plain_return_value_is_wrapped_in_a_successful_result() -> None:
    result = await Derived().run({"city": "Paris", "days": 2})
    assert result == ToolResult(output="Paris/2/1.0/True/None/None/c/None")


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({}, "missing required argument 'name'"),
        ({"name": 3}, "argument 'name' must be string, got integer 3"),
        ({"name": "Ada", "age": 3}, "unexpected argument 'age' (expected: name)"),
    ],
)
async def test_bad_arguments_give_a_failed_result_without_calling_execute(
    arguments: dict[str, Any], problem: str
) -> None:
    result = await Greet().run(arguments)
    assert result == ToolResult(success=False, error=f"invalid arguments for greet: {problem}")


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"city": "x", "days": True}, "argument 'days' must be integer, got boolean True"),
        ({"city": "x", "days": 1.5}, "argument 'days' must be integer, got number 1.5"),
        ({"city": "x", "days": 1, "unit": "k"}, "argument 'unit' must be one of ['c', 'f']"),
        ({"city": None, "days": 1}, "argument 'city' must be string, got null None"),
    ],
)
async def test_derived_schemas_check_types_and_enums(
    arguments: dict[str, Any], problem: str
) -> None:
    result = await Derived().run(arguments)
    assert result.success is False
    assert problem in (result.error or "")


async def test_an_integral_float_passes_for_an_integer_and_arrives_as_int() -> None:
    result = await Derived().run({"city": "x", "days": 2.0})
    assert result.output.startswith("x/2/")


async def test_extra_arguments_reach_a_tool_that_takes_kwargs() -> None:
    class Loose(BaseTool):
        name = "loose"

        async def execute(self, **kwargs: Any) -> dict[str, Any]:
            return kwargs

    assert (await Loose().run({"a": 1})).output == {"a": 1}


async def test_an_exception_in_execute_becomes_a_failed_result() -> None:
    class Broken(BaseTool):
        name = "broken"

        async def execute(self) -> str:
            raise RuntimeError("disk on fire")

    assert await Broken().run({}) == ToolResult(success=False, error="RuntimeError: disk on fire")


async def test_a_tool_without_execute_fails_cleanly() -> None:
    class Lazy(BaseTool):
        name = "lazy"

    result = await Lazy().run({})
    assert result.success is False
    assert "does not define execute()" in (result.error or "")


def test_outputs_that_are_not_json_are_sent_as_text() -> None:
    marker = object()
    assert json_compatible({"a": [1, 2]}) == {"a": [1, 2]}
    assert json_compatible(marker) == str(marker)


def test_tool_messages_carry_text_json_or_the_error() -> None:
    assert tool_message_content(ToolResult(output="sunny")) == "sunny"
    assert tool_message_content(ToolResult(output={"t": "25°C"})) == '{"t": "25°C"}'
    assert tool_message_content(ToolResult(error="no data")) == "Error: no data"
