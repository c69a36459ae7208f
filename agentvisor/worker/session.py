"""One session's state in a worker: history, seq, replay buffer, attached connection, turn.

A session belongs to the worker, not to a connection. Its events are numbered
(``seq``), kept in a bounded replay buffer and delivered to the connection
attached at the time, if any; a client that comes back with
``user.resume_session`` gets the events it missed from the buffer.

An event can be emitted *uncommitted*: numbered and buffered but held back
from the client until ``commit``. The runtime uses this for the event that
ends a turn, so that the turn is in the session store before the client sees
its answer (a client that saw an answer can resume it on another replica).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

import anyio
from attrs import define, field, frozen

from agentvisor.worker.poison import NO_DEATHS, Deaths
from agentvisor.worker.protocol import ErrorCode, MessageId, UserMessage, encode_event, stamp
from agentvisor.worker.store import (
    MAX_MESSAGE_IDS,
    BufferedEvent,
    OpenTurn,
    SessionDelta,
    StoredSession,
)


class Outbox(Protocol):
    """The sending side of one client connection, as sessions see it."""

    attached: set[str]  # ids of the sessions attached to this connection

    def push(self, text: str) -> bool:
        """Queue a text frame; False once the connection is gone (never blocks)."""
        ...


@frozen
class SessionView:
    """The ``agentvisor.agent.types.Session`` an agent's turn gets (read-only)."""

    id: str
    metadata: Mapping[str, Any]
    history: Sequence[Mapping[str, Any]]


@define(eq=False)
class Turn:
    """The turn running in a session; cancelling it cancels the task running the agent."""

    message: UserMessage
    started_at: float
    scope: anyio.CancelScope = field(factory=anyio.CancelScope)
    done: anyio.Event = field(factory=anyio.Event)
    cancel_reason: str | None = None  # user | interrupt | close | shutdown
    deaths: Deaths = NO_DEATHS  # worker deaths counted against it (a resumed turn)

    @property
    def message_id(self) -> MessageId | None:
        return self.message.message_id

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self.scope.cancel()


@define(eq=False)
class Session:
    id: str
    metadata: Mapping[str, Any]
    buffer: deque[BufferedEvent]
    last_activity: float
    history: list[dict[str, Any]] = field(factory=list)
    seq: int = 0
    committed_seq: int = 0  # events up to here may be sent
    delivered_seq: int = 0  # events up to here were sent to (or skipped for) the connection
    saved_seq: int = 0
    saved_history: int = 0
    open_turn: OpenTurn | None = None
    saved_open_turn: OpenTurn | None = None
    connection: Outbox | None = None
    turn: Turn | None = None
    queue: deque[UserMessage] | None = None
    closed: bool = False
    message_ids: list[MessageId] = field(factory=list)  # of the user messages stored
    interrupted: UserMessage | None = None  # restored with a turn its worker died in
    interrupted_deaths: Deaths = NO_DEATHS
    pending_error: tuple[ErrorCode, MessageId | None] | None = None  # to report once attached

    @classmethod
    def new(
        cls, session_id: str, metadata: Mapping[str, Any], *, replay_limit: int, now: float
    ) -> Session:
        return cls(session_id, dict(metadata), deque(maxlen=replay_limit), now)

    @classmethod
    def restore(
        cls, stored: StoredSession, *, replay_limit: int, now: float, last_seq: int = 0
    ) -> Session:
        """A session loaded from the store, numbering on after what the client already saw."""
        session = cls(stored.session_id, dict(stored.metadata), deque(maxlen=replay_limit), now)
        session.history = [dict(message) for message in stored.history]
        session.buffer.extend(stored.events)
        seq = max(stored.seq, last_seq, stored.events[-1][0] if stored.events else 0)
        session.seq = session.committed_seq = session.delivered_seq = seq
        session.saved_seq, session.saved_history = seq, len(session.history)
        session.open_turn = session.saved_open_turn = stored.open_turn
        session.message_ids = list(stored.message_ids)
        return session

    def remember(self, message_id: MessageId | None) -> None:
        """A user message is being stored: a copy of it sent again is not run again."""
        if message_id is None or message_id in self.message_ids:
            return
        self.message_ids.append(message_id)
        del self.message_ids[:-MAX_MESSAGE_IDS]

    def knows(self, message_id: MessageId | None) -> bool:
        """Whether a user message with this id was stored, is running or waiting, or is to be
        resumed."""
        if message_id is None:
            return False
        if message_id in self.message_ids:
            return True
        waiting = list(self.queue or ())
        if self.turn is not None:
            waiting.append(self.turn.message)
        if self.interrupted is not None:
            waiting.append(self.interrupted)
        return any(request.message_id == message_id for request in waiting)

    @property
    def busy(self) -> bool:
        return self.turn is not None or bool(self.queue)

    @property
    def unused(self) -> bool:
        """Held only as a cache of the store: no client, no turn, nothing left to report."""
        return (
            self.connection is None
            and not self.busy
            and not self.closed
            and self.interrupted is None
            and self.pending_error is None
        )

    def behind(self, stored: StoredSession) -> bool:
        """Whether the store has events this copy does not (it went on on another replica)."""
        return stored.seq > self.seq

    # ------------------------------------------------------------ events

    def emit(self, fields: Mapping[str, Any], timestamp: str, *, commit: bool = True) -> int:
        """Number, stamp, buffer and (when ``commit``) deliver one event; return its seq."""
        self.seq += 1
        text = encode_event(stamp(fields, timestamp, session_id=self.id, seq=self.seq))
        self.buffer.append((self.seq, text))
        if commit:
            self.commit()
        return self.seq

    def commit(self) -> None:
        """Let every buffered event go out, in seq order."""
        self.committed_seq = self.seq
        count = self.committed_seq - self.delivered_seq
        if count > 0 and self.connection is not None:
            texts = [text for _, text in _newest(self.buffer, count)]
            for text in texts:
                if not self.connection.push(text):
                    self.detach(self.connection)
                    break
        self.delivered_seq = self.committed_seq

    def attach(self, connection: Outbox) -> None:
        """Send this session's next events to ``connection`` (and no longer to the last one)."""
        if self.connection is connection:
            return
        if self.connection is not None:
            self.connection.attached.discard(self.id)
        self.connection = connection
        connection.attached.add(self.id)
        self.delivered_seq = self.committed_seq

    def detach(self, connection: Outbox) -> None:
        if self.connection is connection:
            connection.attached.discard(self.id)
            self.connection = None

    def replay(self, connection: Outbox, last_seq: int) -> int:
        """Attach ``connection`` and send it the buffered events after ``last_seq``."""
        self.attach(connection)
        replayed = 0
        for seq, text in list(self.buffer):
            if last_seq < seq <= self.committed_seq:
                if not connection.push(text):
                    self.detach(connection)
                    break
                replayed += 1
        return replayed

    # ------------------------------------------------------------ agent's view and store

    def view(self) -> SessionView:
        return SessionView(self.id, MappingProxyType(self.metadata), tuple(self.history))

    def delta(self, updated_at: float) -> SessionDelta:
        new_events = _newest(self.buffer, self.seq - self.saved_seq)
        return SessionDelta(
            self.id,
            self.metadata,
            self.seq,
            self.saved_history,
            self.history[self.saved_history :],
            new_events,
            self.open_turn,
            updated_at,
            tuple(self.message_ids),
        )

    @property
    def unsaved(self) -> bool:
        """Whether events, messages or the open turn changed since the last save."""
        return (
            self.seq > self.saved_seq
            or len(self.history) != self.saved_history
            or self.open_turn != self.saved_open_turn
        )

    def mark_saved(self, delta: SessionDelta) -> None:
        self.saved_open_turn = delta.open_turn
        self.saved_seq = max(self.saved_seq, delta.seq)
        self.saved_history = max(self.saved_history, delta.history_start + len(delta.new_messages))


def _newest(buffer: deque[BufferedEvent], count: int) -> list[BufferedEvent]:
    """The last ``count`` buffered events, oldest first."""
    if count <= 0:
        return []
    if count >= len(buffer):
        return list(buffer)
    newest = []
    for item in reversed(buffer):
        newest.append(item)
        if len(newest) == count:
            break
    newest.reverse()
    return newest
