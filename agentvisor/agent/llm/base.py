"""What a language model is to the ReAct loop: a stream of deltas.

The loop does not care which model answers or how it is reached; it asks
``llm.complete(messages, tools)`` and reads what comes back. Text arrives in
pieces (so the user sees the answer being written); tool calls arrive whole,
because an implementation that streams them in fragments (as chat-completions
does) must assemble them anyway before anyone can run them.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from attrs import field, frozen

from agentvisor.errors import AgentvisorError

Message = Mapping[str, Any]
"""A chat-completions message: ``{"role": ..., "content": ..., ...}``."""

ToolDefinition = Mapping[str, Any]
"""An OpenAI tool definition: ``{"type": "function", "function": {...}}``."""

_call_numbers = itertools.count(1)


def new_call_id() -> str:
    """A call id for models (and scripts) that do not name their tool calls."""
    return f"call_{next(_call_numbers)}"


@frozen
class TextDelta:
    """The next piece of the reply's text."""

    text: str


@frozen
class ReasoningDelta:
    """The next piece of the model's visible reasoning (``reasoning_content``).

    Some OpenAI-compatible servers (DeepSeek, vLLM with a reasoning parser)
    stream it apart from the answer; the loop shows it as ``Thinking``.
    """

    text: str


@frozen
class ToolRequest:
    """The model asks for one tool call, complete.

    ``arguments`` is already parsed. When the model produced arguments that
    are not a JSON object, ``arguments`` is empty and ``arguments_error`` says
    why, so the loop can report a failed tool call instead of guessing.
    """

    name: str
    arguments: Mapping[str, Any] = field(factory=dict)
    call_id: str = field(factory=new_call_id)
    arguments_error: str | None = None


LLMDelta = TextDelta | ReasoningDelta | ToolRequest


@runtime_checkable
class LLM(Protocol):
    """A language model the ReAct loop can talk to.

    ``messages`` are chat-completions messages, oldest first; ``tools`` are
    OpenAI tool definitions (possibly empty). The stream yields text and
    reasoning pieces as they come and each tool call once it is complete; a
    reply with no ``ToolRequest`` is a final answer. Implementations raise
    ``LLMError`` for failures people should read (bad key, unreachable
    endpoint) and must let cancellation through.
    """

    def complete(
        self, messages: Sequence[Message], tools: Sequence[ToolDefinition]
    ) -> AsyncIterator[LLMDelta]: ...


class LLMError(AgentvisorError):
    """The model could not be asked or did not answer.

    ``status`` is the HTTP status when there was one (0 otherwise), so callers
    can tell a bad key (401) from an overloaded server (429, 5xx).
    """

    code = "AGENT_ERROR"

    def __init__(self, message: str, *, status: int = 0, api_code: str | None = None) -> None:
        super().__init__(message, status=status, api_code=api_code)
        self.status = status
        self.api_code = api_code
