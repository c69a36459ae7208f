"""``as_agent``: other agent shapes served without change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentvisor.agent.adapters import as_agent
from agentvisor.agent.types import (
    Agent,
    AgentEvent,
    FinalAnswer,
    PartialAnswer,
    Session,
    Thinking,
)
from agentvisor.worker.session import SessionView

SESSION = SessionView("s1", {"user": "u"}, ({"role": "user", "content": "earlier"},))


async def turn(agent: Agent, message: str = "hello") -> list[AgentEvent]:
    return [event async for event in agent.stream(message, SESSION)]


class Streaming:
    async def stream(self, message: str, session: Session) -> AsyncIterator[AgentEvent]:
        yield FinalAnswer(message)


class SeedsStyle:
    async def arun(self, message: str) -> str:
        return f"arun: {message}"


async def test_an_object_with_stream_is_used_as_is() -> None:
    agent = Streaming()
    assert as_agent(agent) is agent


async def test_an_object_with_arun_gives_one_final_answer() -> None:
    assert await turn(as_agent(SeedsStyle())) == [FinalAnswer("arun: hello")]


async def test_async_functions_with_and_without_session() -> None:
    async def with_session(message: str, session: Session) -> str:
        return f"{message} after {len(session.history)}"

    async def message_only(message: str) -> str:
        return message.upper()

    assert await turn(as_agent(with_session)) == [FinalAnswer("hello after 1")]
    assert await turn(as_agent(message_only)) == [FinalAnswer("HELLO")]


async def test_async_generators_of_strings_stream_then_answer() -> None:
    async def words(message: str) -> AsyncIterator[str]:
        for word in message.split():
            yield word + " "

    assert await turn(as_agent(words), "a b") == [
        PartialAnswer("a "),
        PartialAnswer("b "),
        FinalAnswer("a b "),
    ]


async def test_async_generators_may_yield_agent_events() -> None:
    async def mixed(message: str, session: Session) -> AsyncIterator[Any]:
        yield Thinking("thinking")
        yield "part"
        yield FinalAnswer("the answer")
        yield "never read"

    assert await turn(as_agent(mixed)) == [
        Thinking("thinking"),
        PartialAnswer("part"),
        FinalAnswer("the answer"),
    ]


async def test_a_generator_yielding_something_else_fails_its_turn() -> None:
    async def bad(message: str) -> AsyncIterator[Any]:
        yield 42

    with pytest.raises(TypeError, match="yielded int"):
        await turn(as_agent(bad))


async def test_callable_objects_with_async_call() -> None:
    class Callable:
        async def __call__(self, message: str) -> str:
            return "called"

    assert await turn(as_agent(Callable())) == [FinalAnswer("called")]


@pytest.mark.parametrize(
    ("obj", "words"),
    [
        (42, "int object is not an agent; accepted: an object with stream"),
        (Streaming, "is a class; give an instance"),
        (lambda message: message, "plain function; agent functions must be async"),
        (object(), "async generator function"),
    ],
)
def test_anything_else_is_a_type_error_naming_the_shapes(obj: object, words: str) -> None:
    with pytest.raises(TypeError, match=words):
        as_agent(obj)


def test_functions_taking_too_many_arguments_are_refused() -> None:
    async def three(a: str, b: str, c: str) -> str:
        return a

    with pytest.raises(TypeError, match=r"\(message\) or \(message, session\)"):
        as_agent(three)


def test_a_sync_arun_is_refused() -> None:
    class Sync:
        def arun(self, message: str) -> str:
            return message

    with pytest.raises(TypeError, match="not async"):
        as_agent(Sync())
