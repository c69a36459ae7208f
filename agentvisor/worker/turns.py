"""Running one turn: the agent's stream → numbered events, history, the session store.

A turn ends with exactly one of ``agent.final_answer``, ``agent.cancelled``
or ``agent.error``. Its user message is saved before the agent runs, and the
whole turn is saved before the client sees the event that ends it. Agent
exceptions become ``AGENT_ERROR`` with the exception's message; the
traceback goes to the worker's log, never to the client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.lowlevel

from agentvisor.agent.types import (
    Agent,
    AgentEvent,
    FinalAnswer,
    PartialAnswer,
    Thinking,
    ToolCall,
    ToolOutput,
)
from agentvisor.worker.protocol import ErrorCode, agent_event_fields, error_fields
from agentvisor.worker.session import Session, SessionView, Turn
from agentvisor.worker.stats import WorkerStats
from agentvisor.worker.store import OpenTurn, SessionStore, StoreError
from agentvisor.worker.transcript import Transcript

log = logging.getLogger("agentvisor.worker")

_EVENT_TYPES = (Thinking, PartialAnswer, ToolCall, ToolOutput, FinalAnswer)
SAVE_TIMEOUT = 5.0  # bound on a save that must finish while the turn is being cancelled


def utc_timestamp() -> str:
    """Now, as RFC 3339 UTC with milliseconds: ``2025-01-31T12:00:00.123Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AgentMisbehaved(Exception):
    """The agent broke the ``Agent`` protocol (its stream or an event had the wrong type)."""


async def drive_stream(
    agent: Agent, message: str, session: SessionView, on_event: Callable[[AgentEvent], None]
) -> FinalAnswer | None:
    """Run ``agent.stream`` to its ``FinalAnswer`` (None if it ends without one).

    Events after the final answer are not read; the stream is closed either way.
    """
    stream = agent.stream(message, session)
    if not hasattr(stream, "__anext__"):
        raise AgentMisbehaved(
            f"stream() returned {type(stream).__name__}, not an async iterator of agent events"
        )
    try:
        while True:
            try:
                event = await stream.__anext__()
            except StopAsyncIteration:
                return None
            if isinstance(event, FinalAnswer):
                return event
            if not isinstance(event, _EVENT_TYPES):
                raise AgentMisbehaved(
                    f"the agent yielded {type(event).__name__}; expected Thinking, "
                    "PartialAnswer, ToolCall, ToolOutput or FinalAnswer"
                )
            on_event(event)
            await anyio.lowlevel.checkpoint()
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


def describe_exception(error: BaseException) -> str:
    text = str(error)
    if isinstance(error, AgentMisbehaved):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class TurnRunner:
    """Runs turns of one agent and saves sessions to the store."""

    def __init__(
        self,
        agent: Agent,
        store: SessionStore,
        stats: WorkerStats,
        *,
        clock: Callable[[], float] = anyio.current_time,
        wall_clock: Callable[[], float] = time.time,
        timestamp: Callable[[], str] = utc_timestamp,
    ) -> None:
        self.agent = agent
        self.store = store
        self.stats = stats
        self.clock = clock
        self.wall_clock = wall_clock
        self.timestamp = timestamp

    async def save(self, session: Session) -> bool:
        """Write what changed in ``session`` to the store; False (logged) if that failed."""
        delta = session.delta(self.wall_clock())
        try:
            await self.store.save(delta)
        except StoreError as error:
            log.error("session %s not saved: %s", session.id, error)
            return False
        session.mark_saved(delta)
        return True

    async def save_bounded(self, session: Session) -> None:
        """``save``, even while being cancelled, for at most ``SAVE_TIMEOUT`` seconds."""
        with anyio.move_on_after(SAVE_TIMEOUT, shield=True):
            await self.save(session)

    async def run(self, session: Session, turn: Turn) -> None:
        message = turn.message
        extra: dict[str, Any] = (
            {} if message.message_id is None else {"message_id": message.message_id}
        )
        view = session.view()
        transcript = Transcript(message.content)
        session.history.append(transcript.messages[0])
        session.remember(message.message_id)
        session.open_turn = OpenTurn(message.message_id, turn.deaths)
        self.stats.turn_started()

        def on_event(event: AgentEvent) -> None:
            transcript.add(event)
            session.emit(agent_event_fields(event) | extra, self.timestamp())

        final: FinalAnswer | None = None
        failure: BaseException | None = None
        with turn.scope:
            await self.save(session)  # the user's message is stored before the agent runs
            try:
                final = await drive_stream(self.agent, message.content, view, on_event)
            except Exception as error:
                failure = error
                log.error(
                    "agent failed in session %s: %s",
                    session.id,
                    describe_exception(error),
                    exc_info=error,
                )
            else:
                if final is None:  # ended without a final answer: the runtime supplies one
                    final = FinalAnswer(transcript.answer_so_far)
        cancelled = final is None and failure is None
        if final is not None:
            end = {"event": "agent.final_answer", "content": final.content} | extra
        elif failure is not None:
            end = error_fields(
                ErrorCode.AGENT_ERROR, describe_exception(failure), message_id=message.message_id
            )
        else:
            end = {"event": "agent.cancelled"} | extra | {"reason": turn.cancel_reason or "user"}
        session.history.extend(transcript.finish(final)[1:])
        session.open_turn = None
        session.emit(end, self.timestamp(), commit=False)
        await self.save_bounded(session)  # stored before the client sees the end of the turn
        session.commit()
        self.stats.turn_finished(
            self.clock() - turn.started_at, error=failure is not None, cancelled=cancelled
        )
