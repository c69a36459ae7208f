"""The smallest agent: echoes the message back, streaming it word by word.

It uses no model and no SDK helper, only the agent contract: an object whose
``stream(message, session)`` yields events and ends with one ``FinalAnswer``.
Run it with ``agentvisor serve examples/echo_agent.py --port 8081``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from agentvisor.agent import AgentEvent, FinalAnswer, PartialAnswer, Session


class EchoAgent:
    """Says back what it was told, numbering the turns of the session."""

    name = "echo"

    async def stream(self, message: str, session: Session) -> AsyncIterator[AgentEvent]:
        turn = 1 + sum(1 for m in session.history if m.get("role") == "user")
        answer = f"Echo #{turn}: {message}"
        for piece in re.findall(r"\S+\s*|\s+", answer):
            yield PartialAnswer(piece)
        yield FinalAnswer(answer)


agent = EchoAgent()
