"""One turn's events as chat-completions messages for the session's history.

Pure. A turn contributes, in order: the user's message; for each round of
tool calls, one assistant message carrying the calls (and the text written
before them) followed by one tool message per call; and the assistant's
answer. The result is always a valid chat-completions sequence, whatever
order the agent's events came in and however the turn ended: a call that
never got its output (the turn was cancelled or failed) gets a tool message
saying so, and an output for an unknown call gets the call it answers.
"""

from __future__ import annotations

import json
from typing import Any

from agentvisor.agent.types import AgentEvent, FinalAnswer, PartialAnswer, ToolCall, ToolOutput

Message = dict[str, Any]

NO_RESULT = "error: the turn ended before the tool returned"


def tool_output_text(event: ToolOutput) -> str:
    """A tool message's content: the output, or the error when the tool failed."""
    if not event.success and event.error:
        return event.error
    if isinstance(event.output, str):
        return event.output
    if event.output is None:
        return "" if event.success else "error"
    return json.dumps(event.output, ensure_ascii=False, default=str)


def _call(event: ToolCall | ToolOutput, arguments: Any) -> dict[str, Any]:
    return {
        "id": event.call_id,
        "type": "function",
        "function": {
            "name": event.tool,
            "arguments": json.dumps(arguments, ensure_ascii=False, default=str),
        },
    }


class Transcript:
    """Builds the messages of one turn from the events its agent yields."""

    def __init__(self, user_message: str) -> None:
        self.messages: list[Message] = [{"role": "user", "content": user_message}]
        self._text: list[str] = []  # answer text written since the last assistant message
        self._round: Message | None = None  # the assistant message of the current tool round
        self._open: dict[str, str] = {}  # call id → tool, calls of the round without output

    def add(self, event: AgentEvent) -> None:
        match event:
            case PartialAnswer(delta=delta):
                self._text.append(delta)
            case ToolCall():
                self._add_call(event)
            case ToolOutput():
                self._add_output(event)
            case _:  # thinking is for the user to watch, not for the history
                pass

    @property
    def answer_so_far(self) -> str:
        """The answer streamed since the last tool round (the runtime's final answer if none)."""
        return "".join(self._text)

    def _start_round(self, call: dict[str, Any]) -> None:
        self._close_open_calls(NO_RESULT)
        text = self.answer_so_far
        self._text.clear()
        self._round = {"role": "assistant", "content": text or None, "tool_calls": [call]}
        self.messages.append(self._round)

    def _add_call(self, event: ToolCall) -> None:
        call = _call(event, dict(event.arguments))
        round_ids = {c["id"] for c in self._round["tool_calls"]} if self._round else set()
        if self._open and event.call_id not in round_ids:
            assert self._round is not None
            self._round["tool_calls"].append(call)  # parallel calls share one assistant message
        else:
            self._start_round(call)
        self._open[event.call_id] = event.tool

    def _add_output(self, event: ToolOutput) -> None:
        if event.call_id not in self._open:
            self._start_round(_call(event, {}))  # an output for an unknown call: supply the call
            self._open[event.call_id] = event.tool
        del self._open[event.call_id]
        self.messages.append(
            {"role": "tool", "tool_call_id": event.call_id, "content": tool_output_text(event)}
        )

    def _close_open_calls(self, content: str) -> None:
        for call_id in self._open:
            self.messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
        self._open.clear()

    def finish(self, final: FinalAnswer | None) -> list[Message]:
        """All messages of the turn; ``final`` None when it was cancelled or failed.

        A turn without a final answer keeps the text the user already saw.
        """
        self._close_open_calls(NO_RESULT)
        self._round = None
        content = final.content if final is not None else self.answer_so_far
        if final is not None or content:
            self.messages.append({"role": "assistant", "content": content})
        self._text.clear()
        return self.messages
