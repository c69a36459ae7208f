"""What an agent is to the worker runtime: the events it yields and the session it reads.

The worker runtime (``agentvisor.worker``) calls ``agent.stream(message,
session)`` for each turn, numbers and timestamps the events it yields, sends
them to the client as PROTOCOL.md's ``agent.*`` events, appends them to the
session's history and persists it. Agents never see sockets, seq numbers or
the session store.

History entries are chat-completions messages (``{"role": "user", "content":
...}``, ``{"role": "assistant", "content": ..., "tool_calls": [...]}``,
``{"role": "tool", "tool_call_id": ..., "content": ...}``), so an LLM-backed
agent can send ``session.history`` to a model as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from attrs import field, frozen


@frozen
class Thinking:
    """``agent.thinking``: what the agent is doing, for the user to watch."""

    content: str


@frozen
class PartialAnswer:
    """``agent.partial_answer``: the next piece of the answer being written."""

    delta: str


@frozen
class ToolCall:
    """``agent.tool_call``: the agent calls a tool."""

    call_id: str
    tool: str
    arguments: Mapping[str, Any] = field(factory=dict)


@frozen
class ToolOutput:
    """``agent.tool_result``: what a tool returned (``success`` false and ``error`` on failure)."""

    call_id: str
    tool: str
    success: bool
    output: Any = None
    error: str | None = None


@frozen
class FinalAnswer:
    """``agent.final_answer``: the answer; ends the turn."""

    content: str


AgentEvent = Thinking | PartialAnswer | ToolCall | ToolOutput | FinalAnswer


class Session(Protocol):
    """The session an agent's turn belongs to (read-only for the agent)."""

    @property
    def id(self) -> str: ...

    @property
    def metadata(self) -> Mapping[str, Any]: ...

    @property
    def history(self) -> Sequence[Mapping[str, Any]]:
        """Earlier messages of this session, oldest first, without the current message."""
        ...


@runtime_checkable
class Agent(Protocol):
    """Anything that answers a message with a stream of events.

    A turn's stream ends with exactly one ``FinalAnswer``; the runtime
    supplies one from the partial answers if the agent ends without it.
    """

    def stream(self, message: str, session: Session) -> AsyncIterator[AgentEvent]: ...
