"""The ReAct loop driven by ScriptedLLM: tools, concurrency, failures, limits, cancellation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import pytest

from agentvisor.agent import (
    BaseTool,
    FinalAnswer,
    LLMDelta,
    PartialAnswer,
    ReasoningDelta,
    ScriptedLLM,
    TextDelta,
    Thinking,
    ToolCall,
    ToolOutput,
    ToolRequest,
    ToolResult,
    create_react_agent,
)
from tests.unit.agent.fake_session import FakeSession, run_turn

DEADLINE = 5  # seconds; never reached when things work


class Weather(BaseTool):
    name = "get_weather"
    description = "Weather for a city"

    async def execute(self, city: str) -> ToolResult:
        return ToolResult(output=f"{city}: sunny")


class Handshake(BaseTool):
    """Sets its own event, then waits for its partner's: completes only if both run at once."""

    def __init__(self, name: str, mine: anyio.Event, partner: anyio.Event) -> None:
        self.name = name
        self.mine = mine
        self.partner = partner

    async def execute(self) -> str:
        self.mine.set()
        await self.partner.wait()
        return f"{self.name} done"


class Boom(BaseTool):
    name = "boom"

    async def execute(self) -> str:
        raise RuntimeError("disk on fire")


class Forever(BaseTool):
    name = "forever"

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.cancelled = False

    async def execute(self) -> str:
        self.started.set()
        try:
            await anyio.sleep_forever()
        finally:
            self.cancelled = True
        return "unreachable"


def partials(events: Sequence[Any]) -> str:
    return "".join(e.delta for e in events if isinstance(e, PartialAnswer))


def without_partials(events: Sequence[Any]) -> list[Any]:
    return [e for e in events if not isinstance(e, PartialAnswer)]


async def tool_then_answer() -> None:
    """A turn with one tool call: call → output → streamed answer → final answer."""
    llm = ScriptedLLM(
        [ToolRequest("get_weather", {"city": "Paris"}, call_id="c1"), "It is sunny in Paris."]
    )
    agent = create_react_agent("weather", [Weather()], system_prompt="Be brief.", llm=llm)
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    with anyio.fail_after(DEADLINE):
        events = await run_turn(agent, "weather in Paris?", FakeSession(history=history))
    assert without_partials(events) == [
        ToolCall("c1", "get_weather", {"city": "Paris"}),
        ToolOutput("c1", "get_weather", success=True, output="Paris: sunny"),
        FinalAnswer("It is sunny in Paris."),
    ]
    assert partials(events) == "It is sunny in Paris."
    assert llm.calls[0] == [
        {"role": "system", "content": "Be brief."},
        *history,
        {"role": "user", "content": "weather in Paris?"},
    ]
    assert llm.calls[1][4:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Paris: sunny"},
    ]


async def tools_run_concurrently() -> None:
    """Two tools that each wait for the other: the turn only ends if they overlap."""
    a_ready, b_ready = anyio.Event(), anyio.Event()
    tools = [Handshake("a", a_ready, b_ready), Handshake("b", b_ready, a_ready)]
    llm = ScriptedLLM([[ToolRequest("a", call_id="ca"), ToolRequest("b", call_id="cb")], "both"])
    agent = create_react_agent("pair", tools, llm=llm)
    with anyio.fail_after(DEADLINE):
        events = await run_turn(agent, "go")
    outputs = [e for e in events if isinstance(e, ToolOutput)]
    assert sorted((o.call_id, o.output) for o in outputs) == [("ca", "a done"), ("cb", "b done")]
    assert events[:2] == [ToolCall("ca", "a", {}), ToolCall("cb", "b", {})]
    assert events[-1] == FinalAnswer("both")
    assert [m["tool_call_id"] for m in llm.calls[1] if m["role"] == "tool"] == ["ca", "cb"]


async def test_a_tool_call_is_followed_by_its_output_and_the_final_answer() -> None:
    await tool_then_answer()


async def test_several_tool_calls_run_concurrently() -> None:
    await tools_run_concurrently()


@pytest.mark.parametrize("scenario", [tool_then_answer, tools_run_concurrently])
def test_the_loop_runs_on_asyncio_too(scenario: Any) -> None:
    anyio.run(scenario, backend="asyncio")


async def test_a_tool_exception_is_a_failed_output_and_the_loop_goes_on() -> None:
    llm = ScriptedLLM([ToolRequest("boom", call_id="c1"), "Sorry, the tool broke."])
    agent = create_react_agent("a", [Boom()], llm=llm)
    events = await run_turn(agent, "boom")
    assert without_partials(events) == [
        ToolCall("c1", "boom", {}),
        ToolOutput("c1", "boom", success=False, error="RuntimeError: disk on fire"),
        FinalAnswer("Sorry, the tool broke."),
    ]
    assert llm.calls[1][-1] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": "Error: RuntimeError: disk on fire",
    }


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (ToolRequest("nope", call_id="c1"), "unknown tool 'nope' (available: get_weather)"),
        (
            ToolRequest("get_weather", {"town": "Paris"}, call_id="c1"),
            "invalid arguments for get_weather: missing required argument 'city'",
        ),
        (
            ToolRequest("get_weather", call_id="c1", arguments_error="not JSON: '{'"),
            "invalid call to get_weather: not JSON: '{'",
        ),
    ],
)
async def test_calls_that_cannot_run_are_failed_outputs(request_: ToolRequest, error: str) -> None:
    agent = create_react_agent("a", [Weather()], llm=ScriptedLLM([request_, "ok"]))
    events = await run_turn(agent, "x")
    assert events[1] == ToolOutput("c1", request_.name, success=False, error=error)
    assert events[-1] == FinalAnswer("ok")


async def test_the_step_limit_ends_the_turn_with_a_final_answer_saying_so() -> None:
    script = [ToolRequest("get_weather", {"city": "Paris"}, call_id=f"c{i}") for i in range(5)]
    llm = ScriptedLLM(script)
    agent = create_react_agent("looper", [Weather()], max_steps=3, llm=llm)
    events = await run_turn(agent, "loop")
    assert [e.call_id for e in events if isinstance(e, ToolCall)] == ["c0", "c1", "c2"]
    assert len([e for e in events if isinstance(e, ToolOutput)]) == 3
    assert events[-1] == FinalAnswer(
        "I stopped after 3 steps without reaching a final answer"
        " (the step limit of agent 'looper')."
    )
    assert len(llm.calls) == 3


async def test_reasoning_is_shown_as_thinking() -> None:
    class Reasoner:
        async def complete(self, messages: Any, tools: Any) -> AsyncIterator[LLMDelta]:
            yield ReasoningDelta("hmm")
            yield TextDelta("42")

    events = await run_turn(create_react_agent("r", llm=Reasoner()), "?")
    assert events == [Thinking("hmm"), PartialAnswer("42"), FinalAnswer("42")]


async def test_cancelling_the_turn_cancels_its_tools() -> None:
    tool = Forever()
    agent = create_react_agent("a", [tool], llm=ScriptedLLM([ToolRequest("forever")]))
    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as group:
            group.start_soon(run_turn, agent, "go")
            await tool.started.wait()
            group.cancel_scope.cancel()
    assert tool.cancelled


async def test_closing_the_stream_early_closes_the_model_request() -> None:
    closed = anyio.Event()

    class Slow:
        async def complete(self, messages: Any, tools: Any) -> AsyncIterator[LLMDelta]:
            try:
                yield TextDelta("first")
                await anyio.sleep_forever()
            finally:
                closed.set()

    stream = create_react_agent("s", llm=Slow()).stream("x", FakeSession())
    assert await stream.__anext__() == PartialAnswer("first")
    await stream.aclose()  # type: ignore[attr-defined]
    assert closed.is_set()


async def test_arun_returns_the_final_answer_of_a_turn_without_history() -> None:
    llm = ScriptedLLM([ToolRequest("get_weather", {"city": "Oslo"}), "Sunny in Oslo."])
    agent = create_react_agent("w", [Weather()], llm=llm)
    assert await agent.arun("weather in Oslo") == "Sunny in Oslo."
    assert llm.calls[0] == [{"role": "user", "content": "weather in Oslo"}]


def test_tools_are_checked_when_the_agent_is_made() -> None:
    with pytest.raises(
        TypeError, match=r"pass an instance of the tool, Weather\(\), not the class"
    ):
        create_react_agent("a", [Weather], llm=ScriptedLLM())  # type: ignore[list-item]
    with pytest.raises(ValueError, match="two tools are named 'get_weather'"):
        create_react_agent("a", [Weather(), Weather()], llm=ScriptedLLM())
    with pytest.raises(ValueError, match="has no name"):
        create_react_agent("a", [BaseTool()], llm=ScriptedLLM())
    with pytest.raises(ValueError, match="max_steps must be at least 1"):
        create_react_agent("a", [], max_steps=0, llm=ScriptedLLM())
