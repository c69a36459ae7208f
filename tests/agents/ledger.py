"""A test agent that answers with the whole conversation so far, slowly when asked.

The answer to a message is every user message of the session, this one last,
joined by `` | ``, then `` @ `` and the replica that answered
(``AGENTVISOR_REPLICA``, after ``AGENTVISOR_NODE/`` on a cluster's node): a
client checks that no message was lost or run twice, whichever replica
answered. A message ``slow:SECONDS:TEXT`` first sleeps SECONDS (a turn in
flight) and counts as the whole message.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import anyio

from agentvisor.agent.types import AgentEvent, FinalAnswer, Session, Thinking


class LedgerAgent:
    async def stream(self, message: str, session: Session) -> AsyncIterator[AgentEvent]:
        if message.startswith("slow:"):
            yield Thinking("taking my time")
            await anyio.sleep(float(message.split(":")[1]))
        said = [m["content"] for m in session.history if m.get("role") == "user"]
        replica = os.environ.get("AGENTVISOR_REPLICA", "?")
        if os.environ.get("AGENTVISOR_NODE"):
            replica = f"{os.environ['AGENTVISOR_NODE']}/{replica}"
        yield FinalAnswer(" | ".join([*said, message]) + f" @ {replica}")


def create_agent() -> LedgerAgent:
    return LedgerAgent()
