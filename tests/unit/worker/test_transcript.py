"""A turn's events become a valid chat-completions history (pure)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agentvisor.agent.types import (
    AgentEvent,
    FinalAnswer,
    PartialAnswer,
    Thinking,
    ToolCall,
    ToolOutput,
)
from agentvisor.worker.transcript import NO_RESULT, Transcript
from tests.unit.worker.strategies import agent_events, final_answers


def run(events: list[AgentEvent], final: FinalAnswer | None) -> list[dict[str, Any]]:
    transcript = Transcript("question")
    for event in events:
        transcript.add(event)
    return transcript.finish(final)


def assert_valid(messages: list[dict[str, Any]]) -> None:
    """Every assistant tool call is answered by exactly one tool message before anything else."""
    assert messages[0] == {"role": "user", "content": "question"}
    waiting: set[str] = set()
    for message in messages[1:]:
        if message["role"] == "tool":
            assert message["tool_call_id"] in waiting
            waiting.remove(message["tool_call_id"])
            assert isinstance(message["content"], str)
            continue
        assert not waiting, f"unanswered calls {waiting} before {message}"
        assert message["role"] == "assistant"
        ids = [call["id"] for call in message.get("tool_calls", [])]
        assert len(ids) == len(set(ids))
        waiting = set(ids)
    assert not waiting


def test_a_turn_with_a_tool_call() -> None:
    messages = run(
        [
            Thinking("hmm"),
            PartialAnswer("Let me look. "),
            ToolCall("c1", "weather", {"city": "Paris"}),
            ToolOutput("c1", "weather", True, {"sky": "clear"}),
            PartialAnswer("Clear."),
        ],
        FinalAnswer("It is clear in Paris."),
    )
    assert messages == [
        {"role": "user", "content": "question"},
        {
            "role": "assistant",
            "content": "Let me look. ",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"sky": "clear"}'},
        {"role": "assistant", "content": "It is clear in Paris."},
    ]


def test_parallel_calls_share_one_assistant_message() -> None:
    messages = run(
        [
            ToolCall("a", "t", {}),
            ToolCall("b", "t", {}),
            ToolOutput("b", "t", True, "B"),
            ToolOutput("a", "t", False, None, "boom"),
        ],
        FinalAnswer("done"),
    )
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert messages[1]["content"] is None
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["a", "b"]
    assert messages[3] == {"role": "tool", "tool_call_id": "a", "content": "boom"}
    assert_valid(messages)


def test_a_cancelled_turn_answers_open_calls_and_keeps_the_text_shown() -> None:
    messages = run([PartialAnswer("so far"), ToolCall("a", "t", {})], None)
    assert messages[-1] == {"role": "tool", "tool_call_id": "a", "content": NO_RESULT}
    assert_valid(messages)
    assert run([PartialAnswer("half an ans"), PartialAnswer("wer")], None)[-1] == {
        "role": "assistant",
        "content": "half an answer",
    }
    assert run([Thinking("x")], None) == [{"role": "user", "content": "question"}]


def test_an_output_for_an_unknown_call_gets_its_call() -> None:
    messages = run([ToolOutput("zz", "t", True, "x")], FinalAnswer("ok"))
    assert messages[1]["tool_calls"][0]["id"] == "zz"
    assert_valid(messages)


def test_answer_so_far_is_the_text_since_the_last_tool_round() -> None:
    transcript = Transcript("q")
    for event in (
        PartialAnswer("a"),
        ToolCall("c", "t", {}),
        PartialAnswer("b"),
        PartialAnswer("c"),
    ):
        transcript.add(event)
    assert transcript.answer_so_far == "bc"


@given(st.lists(agent_events, max_size=12), final_answers)
def test_any_event_sequence_gives_a_valid_history(
    events: list[AgentEvent], final: FinalAnswer | None
) -> None:
    messages = run(events, final)
    assert_valid(messages)
    if final is not None:
        assert messages[-1] == {"role": "assistant", "content": final.content}
