"""OpenAIChat's wire handling without a server: SSE framing, tool-call fragments, messages."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agentvisor.agent import ReasoningDelta, TextDelta, ToolRequest
from agentvisor.agent.llm.openai import (
    SSEDecoder,
    ToolCallAssembler,
    chunk_deltas,
    message_deltas,
    wire_message,
)


def decode(lines: list[str]) -> list[str]:
    decoder = SSEDecoder()
    events = [data for line in lines for data in decoder.feed(line)]
    return events + list(decoder.flush())


def test_sse_events_end_at_blank_lines_and_join_multiline_data() -> None:
    lines = [": keep-alive", "event: chunk", 'data: {"a":', "data:1}", "", "data: [DONE]", ""]
    assert decode(lines) == ['{"a":\n1}', "[DONE]"]


def test_an_unterminated_last_event_is_flushed() -> None:
    assert decode(["data: x"]) == ["x"]


def fragment(index: int, **fields: Any) -> dict[str, Any]:
    function = {k: v for k, v in fields.items() if k in ("name", "arguments")}
    out: dict[str, Any] = {"index": index, "function": function}
    if "id" in fields:
        out["id"] = fields["id"]
    return out


def test_interleaved_fragments_assemble_into_whole_calls() -> None:
    calls = ToolCallAssembler()
    calls.feed([fragment(0, id="a", name="get_weather", arguments="")])
    calls.feed([fragment(1, id="b", name="get_weather", arguments='{"ci')])
    calls.feed([fragment(0, arguments='{"city": "Pa'), fragment(1, arguments='ty": "Tokyo"}')])
    calls.feed([fragment(0, arguments='ris"}')])
    assert calls.finish() == [
        ToolRequest("get_weather", {"city": "Paris"}, call_id="a"),
        ToolRequest("get_weather", {"city": "Tokyo"}, call_id="b"),
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=4), st.data())
def test_arguments_split_anywhere_reassemble_to_the_same_object(
    arguments: dict[str, Any], data: st.DataObject
) -> None:
    text = json.dumps(arguments, ensure_ascii=data.draw(st.booleans()))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    calls = ToolCallAssembler()
    calls.feed([fragment(0, id="a", name="f", arguments="")])
    for piece in pieces:
        calls.feed([fragment(0, arguments=piece)])
    assert calls.finish() == [ToolRequest("f", arguments, call_id="a")]


def test_parallel_calls_that_all_use_index_zero_are_told_apart_by_id() -> None:
    calls = ToolCallAssembler()
    calls.feed([fragment(0, id="a", name="f", arguments='{"x": 1}')])
    calls.feed([fragment(0, id="b", name="f", arguments='{"x": 2}')])
    assert [(r.call_id, dict(r.arguments)) for r in calls.finish()] == [
        ("a", {"x": 1}),
        ("b", {"x": 2}),
    ]


def test_a_fresh_id_on_every_fragment_of_one_call_does_not_split_it() -> None:
    calls = ToolCallAssembler()
    calls.feed([fragment(0, id="a1", name="f", arguments='{"x"')])
    calls.feed([fragment(0, id="a2", name="f", arguments=": 1}")])
    assert calls.finish() == [ToolRequest("f", {"x": 1}, call_id="a1")]


def test_bad_arguments_are_reported_not_guessed() -> None:
    calls = ToolCallAssembler()
    calls.feed([fragment(0, id="a", name="f", arguments='{"x": ')])
    calls.feed([fragment(1, id="b", name="g", arguments="[1, 2]")])
    calls.feed([fragment(2, id="c", name="h")])
    bad_json, not_object, empty = calls.finish()
    assert bad_json.arguments == {}
    assert bad_json.arguments_error == "the arguments are not valid JSON: '{\"x\":'"
    assert not_object.arguments_error == "the arguments are not a JSON object: '[1, 2]'"
    assert (empty.arguments, empty.arguments_error) == ({}, None)


def test_chunks_give_text_and_reasoning_and_ignore_other_choices() -> None:
    calls = ToolCallAssembler()
    chunk = {
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "reasoning_content": "hm", "content": "Hi"},
            },
            {"index": 1, "delta": {"content": "other choice"}},
        ]
    }
    assert list(chunk_deltas(chunk, calls)) == [ReasoningDelta("hm"), TextDelta("Hi")]
    assert list(chunk_deltas({"choices": [], "usage": {"total_tokens": 3}}, calls)) == []


def test_a_complete_non_streamed_reply_gives_the_same_deltas() -> None:
    completion = {
        "choices": [
            {
                "message": {
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "a",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                }
            }
        ]
    }
    assert list(message_deltas(completion)) == [
        TextDelta("Checking."),
        ToolRequest("f", call_id="a"),
    ]


def test_history_with_object_arguments_is_sent_as_json_text() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": {"city": "北京"}}}],
    }
    assert wire_message(message)["tool_calls"] == [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"city": "北京"}'}}
    ]
    assert message["tool_calls"][0]["function"]["arguments"] == {"city": "北京"}  # not mutated
