"""A session for driving agents in tests, and a helper to run one turn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attrs import field, frozen

from agentvisor.agent import Agent, AgentEvent


@frozen
class FakeSession:
    """What the worker runtime hands an agent: an id, metadata and earlier messages."""

    id: str = "session-1"
    metadata: Mapping[str, Any] = field(factory=dict)
    history: Sequence[Mapping[str, Any]] = ()


async def run_turn(
    agent: Agent, message: str, session: FakeSession | None = None
) -> list[AgentEvent]:
    """Every event of one turn, in order."""
    return [event async for event in agent.stream(message, session or FakeSession())]
