"""OpenAIChat and the ReAct loop against a local OpenAI-compatible server over real HTTP."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

import anyio
import pytest

from agentvisor.agent import (
    BaseTool,
    FinalAnswer,
    LLMDelta,
    LLMError,
    OpenAIChat,
    PartialAnswer,
    TextDelta,
    ToolCall,
    ToolOutput,
    ToolRequest,
    ToolResult,
    create_react_agent,
)
from tests.integration.agent.fake_openai import (
    Reply,
    open_fake_openai,
    text_chunks,
    tool_call_chunks,
)
from tests.unit.agent.fake_session import FakeSession, run_turn

DEADLINE = 10  # seconds; never reached when things work

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


async def complete(
    llm: OpenAIChat, messages: Sequence[dict[str, Any]], tools: Sequence[Any] = ()
) -> list[LLMDelta]:
    return [delta async for delta in llm.complete(messages, tools)]


async def test_text_is_streamed_in_the_pieces_the_server_sends() -> None:
    with anyio.fail_after(DEADLINE):
        async with open_fake_openai(Reply(text_chunks("Hel", "lo, ", "world"))) as server:
            llm = OpenAIChat(model="fake-model", base_url=server.base_url, api_key="sk-test")
            deltas = await complete(llm, [{"role": "user", "content": "hi"}])
    assert deltas == [TextDelta("Hel"), TextDelta("lo, "), TextDelta("world")]
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body == {
        "model": "fake-model",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }


async def test_tool_calls_split_across_chunks_are_assembled() -> None:
    calls = [
        ("call_a", "get_weather", '{"city": "Paris"}'),
        ("call_b", "get_weather", '{"city": "東京"}'),
    ]
    with anyio.fail_after(DEADLINE):
        async with open_fake_openai(Reply(tool_call_chunks(*calls, pieces=4))) as server:
            llm = OpenAIChat(model="m", base_url=server.base_url, api_key="")
            deltas = await complete(llm, [{"role": "user", "content": "weather?"}], [WEATHER_TOOL])
    assert deltas == [
        ToolRequest("get_weather", {"city": "Paris"}, call_id="call_a"),
        ToolRequest("get_weather", {"city": "東京"}, call_id="call_b"),
    ]
    assert server.requests[0].body["tools"] == [WEATHER_TOOL]
    assert "authorization" not in server.requests[0].headers  # no key, no header


async def test_an_http_error_raises_llm_error_with_status_and_the_apis_message() -> None:
    body = {
        "error": {
            "message": "Incorrect API key provided: sk-bad.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    with anyio.fail_after(DEADLINE):
        async with open_fake_openai(Reply(status=401, body=body)) as server:
            llm = OpenAIChat(model="m", base_url=server.base_url, api_key="sk-bad")
            with pytest.raises(LLMError) as caught:
                await complete(llm, [{"role": "user", "content": "hi"}])
    error = caught.value
    assert (error.status, error.api_code, error.code) == (401, "invalid_api_key", "AGENT_ERROR")
    assert str(error) == (
        f"The model endpoint {server.base_url}/chat/completions refused the request (HTTP 401): "
        "Incorrect API key provided: sk-bad; check OPENAI_API_KEY."
    )


async def test_an_error_inside_the_stream_raises_llm_error() -> None:
    reply = Reply([*text_chunks("partial")[:2], {"error": {"message": "model overloaded"}}])
    with anyio.fail_after(DEADLINE):
        async with open_fake_openai(reply) as server:
            llm = OpenAIChat(model="m", base_url=server.base_url)
            with pytest.raises(LLMError, match="reported: model overloaded"):
                await complete(llm, [{"role": "user", "content": "hi"}])


async def test_a_server_that_ignores_stream_still_works() -> None:
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}}]}
    with anyio.fail_after(DEADLINE):
        async with open_fake_openai(Reply(body=completion)) as server:
            llm = OpenAIChat(model="m", base_url=server.base_url)
            assert await complete(llm, [{"role": "user", "content": "hi"}]) == [TextDelta("Hi!")]


async def test_cancelling_a_reply_closes_the_connection() -> None:
    with anyio.fail_after(DEADLINE):
        async with open_fake_openai(Reply(text_chunks("first")[:2], hang=True)) as server:
            llm = OpenAIChat(model="m", base_url=server.base_url)
            reply = llm.complete([{"role": "user", "content": "hi"}], [])
            with anyio.CancelScope() as scope:
                async with contextlib.aclosing(reply) as deltas:  # type: ignore[type-var]
                    async for delta in deltas:
                        assert delta == TextDelta("first")
                        scope.cancel()
                        await anyio.sleep_forever()
            await server.disconnected.wait()


class Weather(BaseTool):
    name = "get_weather"
    description = "Weather for a city"

    async def execute(self, city: str) -> ToolResult:
        return ToolResult(output={"city": city, "sky": "sunny", "celsius": 21})


async def full_turn() -> None:
    """One turn through a real HTTP model: tool call, tool result fed back, streamed answer."""
    replies = [
        Reply(tool_call_chunks(("call_1", "get_weather", '{"city": "Paris"}'))),
        Reply(text_chunks("It is ", "sunny in Paris (21°C).")),
    ]
    with anyio.fail_after(DEADLINE):
        async with open_fake_openai(*replies) as server:
            llm = OpenAIChat(model="fake-model", base_url=server.base_url, api_key="sk-test")
            agent = create_react_agent("weather", [Weather()], system_prompt="Be brief.", llm=llm)
            history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
            events = await run_turn(agent, "Weather in Paris?", FakeSession(history=history))
    output = {"city": "Paris", "sky": "sunny", "celsius": 21}
    assert [e for e in events if not isinstance(e, PartialAnswer)] == [
        ToolCall("call_1", "get_weather", {"city": "Paris"}),
        ToolOutput("call_1", "get_weather", success=True, output=output),
        FinalAnswer("It is sunny in Paris (21°C)."),
    ]
    assert [e for e in events if isinstance(e, PartialAnswer)] == [
        PartialAnswer("It is "),
        PartialAnswer("sunny in Paris (21°C)."),
    ]
    first, second = (r.body for r in server.requests)
    assert first["tools"] == [Weather().schema()]
    assert first["messages"] == [
        {"role": "system", "content": "Be brief."},
        *history,
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert second["messages"][4:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps(output)},
    ]


async def test_a_react_agent_does_a_full_turn_with_a_tool_call_over_http() -> None:
    await full_turn()


def test_the_full_turn_works_on_asyncio_too() -> None:
    anyio.run(full_turn, backend="asyncio")
