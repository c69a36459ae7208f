"""Serve agents of other shapes without changing them: ``as_agent(obj) -> Agent``.

Accepted shapes, tried in this order:

- an object with ``stream(message, session)`` yielding agent events: used as is;
- an object with ``async arun(message) -> str`` (the seeds' style): its
  answer becomes one ``FinalAnswer``;
- an async generator function ``(message)`` or ``(message, session)``
  yielding strings (each one a ``PartialAnswer``, then a ``FinalAnswer``
  with them joined) or agent events;
- an async function ``(message)`` or ``(message, session)`` returning the
  answer as a string.

Anything else is a ``TypeError`` that says which shapes are accepted.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any, cast

from agentvisor.agent.types import (
    Agent,
    AgentEvent,
    FinalAnswer,
    PartialAnswer,
    Session,
    Thinking,
    ToolCall,
    ToolOutput,
)

__all__ = ["ACCEPTED_SHAPES", "as_agent"]

ACCEPTED_SHAPES = (
    "an object with stream(message, session) yielding agent events, "
    "an object with async arun(message) -> str, "
    "an async function (message[, session]) -> str, "
    "or an async generator function (message[, session]) yielding str or agent events"
)

_EVENT_TYPES = (Thinking, PartialAnswer, ToolCall, ToolOutput, FinalAnswer)


def _describe(obj: object) -> str:
    name = getattr(obj, "__qualname__", None)
    return name if isinstance(name, str) else f"{type(obj).__name__} object"


def _answer_text(result: object) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, FinalAnswer):
        return result.content
    return "" if result is None else str(result)


def _passes_session(function: Callable[..., Any], what: str) -> bool:
    """Whether ``function`` takes (message, session) rather than (message)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return True
    positional = [
        parameter
        for parameter in signature.parameters.values()
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]
    if any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values()):
        return True
    required = [p for p in positional if p.default is p.empty]
    if len(required) > 2 or not positional:
        raise TypeError(
            f"{what} must take (message) or (message, session), "
            f"not {len(required) if required else 'no'} positional arguments"
        )
    return len(positional) >= 2


class ArunAgent:
    """An object with ``async arun(message) -> str``: one final answer per turn."""

    def __init__(self, target: Any) -> None:
        self.target = target

    async def stream(self, message: str, session: Session) -> AsyncIterator[AgentEvent]:
        yield FinalAnswer(_answer_text(await self.target.arun(message)))


class FunctionAgent:
    """An async function returning the answer."""

    def __init__(self, function: Callable[..., Any], pass_session: bool) -> None:
        self.function = function
        self.pass_session = pass_session

    async def stream(self, message: str, session: Session) -> AsyncIterator[AgentEvent]:
        args = (message, session) if self.pass_session else (message,)
        yield FinalAnswer(_answer_text(await self.function(*args)))


class GeneratorAgent:
    """An async generator function yielding text pieces or agent events."""

    def __init__(self, function: Callable[..., Any], pass_session: bool) -> None:
        self.function = function
        self.pass_session = pass_session

    async def stream(self, message: str, session: Session) -> AsyncIterator[AgentEvent]:
        args = (message, session) if self.pass_session else (message,)
        parts: list[str] = []
        async with aclosing(self.function(*args)) as items:
            async for item in items:
                if isinstance(item, str):
                    parts.append(item)
                    yield PartialAnswer(item)
                elif isinstance(item, FinalAnswer):
                    yield item
                    return
                elif isinstance(item, _EVENT_TYPES):
                    if isinstance(item, PartialAnswer):
                        parts.append(item.delta)
                    yield item
                else:
                    raise TypeError(
                        f"the agent yielded {type(item).__name__}; expected str or an agent event"
                    )
        yield FinalAnswer("".join(parts))


def _is_async_generator_function(obj: object) -> bool:
    return inspect.isasyncgenfunction(obj) or inspect.isasyncgenfunction(
        getattr(obj, "__call__", None)  # noqa: B004 - callable objects with an async __call__
    )


def _is_coroutine_function(obj: object) -> bool:
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(
        getattr(obj, "__call__", None)  # noqa: B004
    )


def as_agent(obj: object) -> Agent:
    """``obj`` as an ``Agent``; ``TypeError`` naming the accepted shapes if it is none."""
    if inspect.isclass(obj):
        raise TypeError(
            f"{_describe(obj)} is a class; give an instance of it (or return one from "
            f"create_agent()); accepted: {ACCEPTED_SHAPES}"
        )
    if callable(getattr(obj, "stream", None)):
        return cast(Agent, obj)
    arun = getattr(obj, "arun", None)
    if callable(arun):
        if not _is_coroutine_function(arun):
            raise TypeError(f"{_describe(obj)} has arun(), but it is not async (async def arun)")
        return ArunAgent(obj)
    if _is_async_generator_function(obj):
        function = cast(Callable[..., Any], obj)
        return GeneratorAgent(function, _passes_session(function, _describe(obj)))
    if _is_coroutine_function(obj):
        function = cast(Callable[..., Any], obj)
        return FunctionAgent(function, _passes_session(function, _describe(obj)))
    if callable(obj):
        raise TypeError(
            f"{_describe(obj)} is a plain function; agent functions must be async "
            f"(async def); accepted: {ACCEPTED_SHAPES}"
        )
    raise TypeError(f"{_describe(obj)} is not an agent; accepted: {ACCEPTED_SHAPES}")
