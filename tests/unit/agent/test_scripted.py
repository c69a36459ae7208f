"""ScriptedLLM: replays scripts, and otherwise follows its documented rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from agentvisor.agent import LLMDelta, ScriptedLLM, TextDelta, ToolRequest
from agentvisor.agent.llm.rules import plan_tool_calls, trigger_words


def tool(name: str, properties: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"the {name} tool",
            "parameters": {"type": "object", "properties": properties, "required": list(required)},
        },
    }


WEATHER = tool(
    "get_weather",
    {"city": {"type": "string", "examples": ["Beijing", "北京", "New York", "York", "Paris"]}},
    ["city"],
)
CALCULATOR = tool(
    "calculate",
    {"expression": {"type": "string", "pattern": r"\d+(?:\s*[-+*/]\s*\d+)+"}},
    ["expression"],
)
ECHO = tool("echo", {"message": {"type": "string"}}, ["message"])
CONVERT = tool(
    "convert_units",
    {
        "value": {"type": "number"},
        "unit": {"type": "string", "enum": ["km", "mi"]},
        "precision": {"type": "integer"},
    },
    ["value", "unit"],
)


def calls(message: str, *tools: dict[str, Any], **triggers: list[str]) -> list[tuple[str, Any]]:
    plan = plan_tool_calls(message, tools, triggers)
    return [(r.name, dict(r.arguments)) for r in plan.requests]


def test_trigger_words_are_the_name_its_words_and_extras() -> None:
    assert trigger_words("get_weather", ["天气"]) == ["get_weather", "天气", "weather"]
    assert trigger_words("searchWeb") == ["searchWeb", "search", "web"]


def test_a_tool_named_in_the_message_is_called_with_the_listed_value_found() -> None:
    assert calls("What's the weather in Paris?", WEATHER) == [("get_weather", {"city": "Paris"})]


def test_trigger_words_match_whole_words_only() -> None:
    assert calls("weatherproof jackets in Paris?", WEATHER, CALCULATOR) == [
        ("get_weather", {"city": "Paris"})  # found through the listed city, not the word
    ]
    assert calls("I love echoes", ECHO) == []


def test_listed_values_in_a_sentence_without_spaces_are_found() -> None:
    assert calls("北京今天天气怎么样\uff1f", WEATHER) == [("get_weather", {"city": "北京"})]


def test_several_listed_values_fan_out_into_one_call_each_in_message_order() -> None:
    assert calls("weather in Paris and New York", WEATHER) == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "New York"}),  # and not "York" again
    ]


def test_a_pattern_finds_its_argument_and_wants_the_tool_without_a_trigger_word() -> None:
    assert calls("What is 12 * 3 + 4?", WEATHER, CALCULATOR) == [
        ("calculate", {"expression": "12 * 3 + 4"})
    ]


def test_hinted_tools_are_not_called_when_another_tool_is_named() -> None:
    assert calls("echo Paris", WEATHER, ECHO) == [("echo", {"message": "Paris"})]


def test_a_free_string_is_the_text_after_the_trigger_without_filler() -> None:
    assert calls("please echo: hello world!", ECHO) == [("echo", {"message": "hello world"})]
    assert calls("weather in Berlin please?", WEATHER) == [("get_weather", {"city": "Berlin"})]


def test_numbers_and_enums_fill_typed_properties() -> None:
    assert calls("convert 12.5 km with 2 digits", CONVERT) == [
        ("convert_units", {"value": 12.5, "unit": "km", "precision": 2})
    ]


def test_extra_trigger_words_come_from_the_constructor() -> None:
    assert calls("柏林天气", WEATHER, get_weather=["天气"]) == []  # city not found: not called
    plan = plan_tool_calls("柏林天气", [WEATHER], {"get_weather": ["天气"]})
    assert plan.missing == ("get_weather needs 'city'",)


def test_an_enum_value_must_be_found() -> None:
    plan = plan_tool_calls("convert 3 parsecs", [CONVERT])
    assert plan.requests == ()
    assert plan.missing == ("convert_units needs 'unit'",)


async def reply(llm: ScriptedLLM, messages: list[dict[str, Any]], *tools: Any) -> list[LLMDelta]:
    return [delta async for delta in llm.complete(messages, tools)]


def text(deltas: Sequence[LLMDelta]) -> str:
    assert all(isinstance(d, TextDelta) for d in deltas)
    return "".join(d.text for d in deltas if isinstance(d, TextDelta))


async def test_the_script_is_replayed_verbatim_then_the_rules_take_over() -> None:
    request = ToolRequest("echo", {"message": "hi"}, call_id="c1")
    llm = ScriptedLLM(["Hello there, friend.", [request], request])
    user = [{"role": "user", "content": "nothing to see"}]
    first = await reply(llm, user)
    assert len(first) > 1  # streamed in pieces
    assert text(first) == "Hello there, friend."
    assert await reply(llm, user) == [request]
    assert await reply(llm, user) == [request]
    assert text(await reply(llm, user)).startswith("[offline model] No language model")
    assert list(llm.calls) == [user] * 4


async def test_rule_replies_call_tools_then_quote_their_results() -> None:
    llm = ScriptedLLM()
    user = {"role": "user", "content": "echo hello"}
    [request] = await reply(llm, [user], ECHO)
    assert isinstance(request, ToolRequest)
    assert (request.name, dict(request.arguments)) == ("echo", {"message": "hello"})
    turn = [
        user,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "function": {"name": "echo", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Echo: hello"},
        {"role": "tool", "tool_call_id": "c2", "content": "Error: boom"},
    ]
    assert text(await reply(llm, turn, ECHO)) == (
        "[offline model] echo returned: Echo: hello; tool failed: boom"
    )


@pytest.mark.parametrize(
    ("message", "tools", "expected"),
    [
        (
            "weather please",
            [WEATHER],
            "could not find what I need in your message: get_weather needs 'city'",
        ),
        ("hi", [WEATHER], "offline I can only use my tools: get_weather (the get_weather tool)"),
        ("hi", [], "so I can only repeat you: hi"),
    ],
)
async def test_rule_replies_say_what_they_are_and_what_is_missing(
    message: str, tools: list[Any], expected: str
) -> None:
    answer = text(await reply(ScriptedLLM(), [{"role": "user", "content": message}], *tools))
    assert answer.startswith("[offline model] ")
    assert expected in answer
