"""A test agent whose message says what to do (``verb[:argument]``).

- ``tools:CITY`` thinking, a tool call and its result, streamed answer, final answer
- ``history`` the answer is the JSON of the session's history (without this message)
- ``count`` the answer is ``history=N`` (N messages before this one)
- ``sleep:SECONDS`` sleeps (anyio, so both runtimes), answers ``slept peak=P``, P the
  largest number of turns that were sleeping at the same time in this worker
- ``asyncio-sleep:SECONDS`` sleeps with ``asyncio.sleep`` (asyncio runtime only)
- ``stream:N`` N partial answers and no final answer (the runtime supplies it)
- ``wait`` partial answer "waiting", then sleeps for an hour (to be cancelled)
- ``fail:TEXT`` raises ``ValueError(TEXT)`` after one partial answer
- ``meta`` the answer is the JSON of the session's metadata
- anything else: echoed back as the final answer
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import anyio

from agentvisor.agent.types import (
    AgentEvent,
    FinalAnswer,
    PartialAnswer,
    Session,
    Thinking,
    ToolCall,
    ToolOutput,
)


class ScriptedAgent:
    def __init__(self) -> None:
        self.sleeping = 0
        self.peak = 0

    async def stream(self, message: str, session: Session) -> AsyncIterator[AgentEvent]:
        verb, _, argument = message.partition(":")
        if verb == "tools":
            yield Thinking(f"looking up {argument}")
            yield ToolCall("call-1", "weather", {"city": argument})
            yield ToolOutput("call-1", "weather", True, f"sunny in {argument}")
            yield PartialAnswer("It is ")
            yield PartialAnswer(f"sunny in {argument}.")
            yield FinalAnswer(f"It is sunny in {argument}.")
        elif verb == "history":
            yield FinalAnswer(json.dumps(list(session.history)))
        elif verb == "count":
            yield FinalAnswer(f"history={len(session.history)}")
        elif verb == "meta":
            yield FinalAnswer(json.dumps(dict(session.metadata)))
        elif verb in ("sleep", "asyncio-sleep"):
            self.sleeping += 1
            self.peak = max(self.peak, self.sleeping)
            try:
                if verb == "sleep":
                    await anyio.sleep(float(argument))
                else:
                    await asyncio.sleep(float(argument))
            finally:
                self.sleeping -= 1
            yield FinalAnswer(f"slept peak={self.peak}")
        elif verb == "stream":
            for index in range(int(argument)):
                yield PartialAnswer(f"{index} ")
        elif verb == "wait":
            yield PartialAnswer("waiting")
            await anyio.sleep(3600)
            yield FinalAnswer("woke up")
        elif verb == "fail":
            yield PartialAnswer("about to fail")
            raise ValueError(argument)
        else:
            yield FinalAnswer(message)


def create_agent() -> ScriptedAgent:
    return ScriptedAgent()
