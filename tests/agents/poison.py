"""A test agent with one tool that kills its worker (``os._exit(3)``) on the input ``poison``.

Any other message is answered after a call of the same tool, which then returns the
message's length (the issue 9 poison-message scenario).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from agentvisor.agent import BaseTool
from agentvisor.agent.types import AgentEvent, FinalAnswer, Session, ToolCall, ToolOutput


class MeasureTool(BaseTool):
    name = "measure"
    description = "The length of a text; takes the worker down on the text 'poison'."

    async def execute(self, text: str) -> int:
        if text == "poison":
            os._exit(3)
        return len(text)


class PoisonAgent:
    def __init__(self) -> None:
        self.tool = MeasureTool()

    async def stream(self, message: str, session: Session) -> AsyncIterator[AgentEvent]:
        yield ToolCall("call-1", self.tool.name, {"text": message})
        length = await self.tool.execute(text=message)
        yield ToolOutput("call-1", self.tool.name, True, length)
        yield FinalAnswer(f"{message} has {length} characters")


def create_agent() -> PoisonAgent:
    return PoisonAgent()
