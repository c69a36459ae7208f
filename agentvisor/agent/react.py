"""``create_react_agent``: the ReAct loop — ask the model, run the tools it asks for, repeat.

One turn, as events (``agentvisor.agent.types``):

1. messages = system prompt + ``session.history`` + the user's message;
2. ask the model; its text streams out as ``PartialAnswer`` (reasoning, when
   the server sends it apart, as ``Thinking``);
3. if it asked for tools: a ``ToolCall`` for each, then the calls run —
   concurrently when there are several — and a ``ToolOutput`` comes out for
   each as it finishes; the results go back to the model as ``tool``
   messages and the loop goes to 2;
4. otherwise its text is the ``FinalAnswer``. After ``max_steps`` model calls
   the turn ends with a ``FinalAnswer`` saying the limit was reached.

A tool that fails, raises, is unknown or gets malformed arguments produces a
failed ``ToolOutput`` the model can read and react to; only the model being
unreachable (``LLMError``) or cancellation ends a turn early. Everything runs
on anyio, so the worker may host the agent on asyncio or trio, and no task
outlives the await that started it: cancelling the turn's task cancels the
model request and the tools, and closing the stream early closes the request.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import anyio
from attrs import field, frozen

from agentvisor.agent.llm.base import (
    LLM,
    Message,
    ReasoningDelta,
    TextDelta,
    ToolRequest,
)
from agentvisor.agent.llm.default import default_llm
from agentvisor.agent.tools import BaseTool, ToolResult, json_compatible, tool_message_content
from agentvisor.agent.types import (
    AgentEvent,
    FinalAnswer,
    PartialAnswer,
    Session,
    Thinking,
    ToolCall,
    ToolOutput,
)

__all__ = ["ReactAgent", "create_react_agent"]

T = TypeVar("T")


def create_react_agent(
    name: str,
    tools: Iterable[BaseTool] = (),
    system_prompt: str = "",
    max_steps: int = 10,
    llm: LLM | None = None,
) -> ReactAgent:
    """An agent that answers with ``llm`` (``default_llm()`` when None) and ``tools``."""
    if llm is None:
        llm = default_llm()
    return ReactAgent(
        name=name, tools=tuple(tools), system_prompt=system_prompt, max_steps=max_steps, llm=llm
    )


class ReactAgent:
    """The agent ``create_react_agent`` builds; implements the ``Agent`` protocol.

    ``stream(message, session)`` is what the worker calls; ``arun(message)``
    runs one turn without history and returns the final answer (the seeds'
    style, handy in scripts and tests).
    """

    def __init__(
        self,
        *,
        name: str,
        tools: Sequence[BaseTool],
        system_prompt: str,
        max_steps: int,
        llm: LLM,
    ) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        self.name = name
        self.system_prompt = system_prompt
        self.max_steps = max_steps
        self.llm = llm
        self.tools: dict[str, BaseTool] = {}
        for tool in tools:
            _check_tool(tool)
            if tool.name in self.tools:
                raise ValueError(f"two tools are named {tool.name!r}; tool names must be unique")
            self.tools[tool.name] = tool
        self._definitions = [tool.schema() for tool in self.tools.values()]

    def __repr__(self) -> str:
        return f"ReactAgent(name={self.name!r}, tools={list(self.tools)!r}, llm={self.llm!r})"

    async def stream(self, message: str, session: Session) -> AsyncIterator[AgentEvent]:
        """One turn of the loop, as events; see the module docstring."""
        messages: list[Message] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.extend(dict(m) for m in session.history)
        messages.append({"role": "user", "content": message})
        for _ in range(self.max_steps):
            text: list[str] = []
            requests: list[ToolRequest] = []
            async with _closing(self.llm.complete(messages, self._definitions)) as deltas:
                async for delta in deltas:
                    if isinstance(delta, TextDelta):
                        text.append(delta.text)
                        yield PartialAnswer(delta.text)
                    elif isinstance(delta, ReasoningDelta):
                        yield Thinking(delta.text)
                    else:
                        requests.append(delta)
            if not requests:
                yield FinalAnswer("".join(text))
                return
            messages.append(_assistant_message("".join(text), requests))
            for request in requests:
                yield ToolCall(request.call_id, request.name, dict(request.arguments))
            finished = await self._run_tools(requests)
            for request, result in finished:
                yield ToolOutput(
                    call_id=request.call_id,
                    tool=request.name,
                    success=result.success,
                    output=json_compatible(result.output),
                    error=result.error,
                )
            results = {id(request): result for request, result in finished}
            messages.extend(
                {
                    "role": "tool",
                    "tool_call_id": request.call_id,
                    "content": tool_message_content(results[id(request)]),
                }
                for request in requests
            )
        yield FinalAnswer(
            f"I stopped after {self.max_steps} steps without reaching a final answer "
            f"(the step limit of agent {self.name!r})."
        )

    async def arun(self, message: str) -> str:
        """Run one turn with an empty history; return the final answer's text."""
        answer = ""
        async with _closing(self.stream(message, _EmptySession())) as events:
            async for event in events:
                if isinstance(event, FinalAnswer):
                    answer = event.content
        return answer

    async def _run_tools(
        self, requests: Sequence[ToolRequest]
    ) -> list[tuple[ToolRequest, ToolResult]]:
        """Run the calls, concurrently when several; results in the order they finished.

        No event is yielded while the task group is open: a generator must
        not suspend inside a task group (its cancel scope would leak into the
        consumer), so outputs are reported once all calls are done.
        """
        finished: list[tuple[ToolRequest, ToolResult]] = []

        async def run_one(request: ToolRequest) -> None:
            finished.append((request, await self._call(request)))

        if len(requests) == 1:
            await run_one(requests[0])
            return finished
        async with anyio.create_task_group() as group:
            for request in requests:
                group.start_soon(run_one, request)
        return finished

    async def _call(self, request: ToolRequest) -> ToolResult:
        tool = self.tools.get(request.name)
        if tool is None:
            known = ", ".join(self.tools) or "none"
            return ToolResult(
                success=False, error=f"unknown tool {request.name!r} (available: {known})"
            )
        if request.arguments_error is not None:
            return ToolResult(
                success=False, error=f"invalid call to {tool.name}: {request.arguments_error}"
            )
        return await tool.run(request.arguments)


def _check_tool(tool: Any) -> None:
    if isinstance(tool, type) and issubclass(tool, BaseTool):
        raise TypeError(f"pass an instance of the tool, {tool.__name__}(), not the class")
    if not isinstance(tool, BaseTool):
        raise TypeError(f"tools must be BaseTool instances, got {tool!r}")
    if not tool.name:
        raise ValueError(f"tool {type(tool).__name__} has no name; set its `name` attribute")


def _assistant_message(text: str, requests: Sequence[ToolRequest]) -> Message:
    return {
        "role": "assistant",
        "content": text or None,
        "tool_calls": [
            {
                "id": request.call_id,
                "type": "function",
                "function": {
                    "name": request.name,
                    "arguments": json.dumps(dict(request.arguments), ensure_ascii=False),
                },
            }
            for request in requests
        ],
    }


@contextlib.asynccontextmanager
async def _closing(iterator: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Close an async generator when the block ends, even early (the ``LLM`` may hold a request)."""
    try:
        yield iterator
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


@frozen
class _EmptySession:
    """The session of ``arun``: no id worth keeping, no history."""

    id: str = "arun"
    metadata: Mapping[str, Any] = field(factory=dict)
    history: Sequence[Mapping[str, Any]] = ()
