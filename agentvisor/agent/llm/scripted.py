"""``ScriptedLLM``: a deterministic, offline stand-in for a language model.

It exists so that tests run without a network and so that the examples work
out of the box, and it is honest about it: every reply it makes up starts
with ``[offline model]``. It either replays a script (tests) or, once the
script is used up or when there is none, follows the rules of
``agentvisor.agent.llm.rules``: call the tools the last user message asks for,
then answer with a sentence quoting what they returned.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import anyio.lowlevel

from agentvisor.agent.llm.base import LLMDelta, Message, TextDelta, ToolDefinition, ToolRequest
from agentvisor.agent.llm.rules import plan_tool_calls

__all__ = ["OFFLINE_PREFIX", "Reply", "ScriptedLLM"]

OFFLINE_PREFIX = "[offline model] "
RECORDED_CALLS = 100

Reply = str | ToolRequest | Sequence[ToolRequest]
"""One scripted reply: a text answer, one tool call, or several tool calls at once."""

_WORD_PIECES = re.compile(r"\s*\S+\s*|\s+")


class ScriptedLLM:
    """Replays ``script`` one reply per ``complete`` call, then follows the rules.

    ``script`` replies are given back verbatim (a test knows what it wrote);
    only the rule-made replies carry ``[offline model]``. ``triggers`` maps a
    tool name to extra trigger words (``{"get_weather": ["天气", "forecast"]}``).
    """

    def __init__(
        self,
        script: Iterable[Reply] = (),
        *,
        triggers: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._script: deque[Reply] = deque(script)
        self._triggers = dict(triggers or {})
        # The messages of the latest calls, for tests; bounded, as a worker may run it for days.
        self.calls: deque[list[dict[str, Any]]] = deque(maxlen=RECORDED_CALLS)

    async def complete(
        self, messages: Sequence[Message], tools: Sequence[ToolDefinition]
    ) -> AsyncIterator[LLMDelta]:
        """Yield the next reply's deltas, with a checkpoint before each (cancellable)."""
        self.calls.append([dict(m) for m in messages])
        reply = self._script.popleft() if self._script else self._by_rules(messages, tools)
        if isinstance(reply, str):
            for piece in _WORD_PIECES.findall(reply):
                await anyio.lowlevel.checkpoint()
                yield TextDelta(piece)
            return
        for request in [reply] if isinstance(reply, ToolRequest) else reply:
            await anyio.lowlevel.checkpoint()
            yield request

    def _by_rules(self, messages: Sequence[Message], tools: Sequence[ToolDefinition]) -> Reply:
        last_user = max(
            (i for i, m in enumerate(messages) if m.get("role") == "user"), default=None
        )
        if last_user is None:
            return OFFLINE_PREFIX + "There is no message to answer."
        results = [m for m in messages[last_user + 1 :] if m.get("role") == "tool"]
        if results:
            return _summarise(messages[last_user + 1 :], results)
        text = _text_of(messages[last_user])
        plan = plan_tool_calls(text, tools, self._triggers)
        if plan.requests:
            return list(plan.requests)
        if plan.missing:
            return (
                OFFLINE_PREFIX
                + f"I could not find what I need in your message: {'; '.join(plan.missing)}."
            )
        return OFFLINE_PREFIX + _fallback(text, tools)


def _summarise(turn: Sequence[Message], results: Sequence[Message]) -> str:
    """A sentence quoting each tool result, named after the call it answers."""
    names: dict[str, str] = {}
    for message in turn:
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            names[str(call.get("id"))] = str(function.get("name", "tool"))
    parts = []
    for result in results:
        name = names.get(str(result.get("tool_call_id")), "tool")
        content = _text_of(result)
        verb = "failed" if content.startswith("Error: ") else "returned"
        parts.append(f"{name} {verb}: {content.removeprefix('Error: ')}")
    return OFFLINE_PREFIX + "; ".join(parts)


def _fallback(text: str, tools: Sequence[ToolDefinition]) -> str:
    setup = "Set OPENAI_API_KEY or OPENAI_BASE_URL to talk to a real model."
    if not tools:
        return f"No language model is configured, so I can only repeat you: {text} {setup}"
    described = "; ".join(
        f"{f.get('name')} ({f.get('description') or 'no description'})"
        for f in (t.get("function") or {} for t in tools)
    )
    return f"No language model is configured; offline I can only use my tools: {described}. {setup}"


def _text_of(message: Message) -> str:
    """The text of a message whose ``content`` is a string or a list of text parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""
