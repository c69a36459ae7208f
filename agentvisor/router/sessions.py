"""What the relay learns from the messages it relays (pure).

Failover and drain need three facts the worker does not tell the router
directly: which sessions live on this connection (created or resumed here),
the last ``seq`` the client received for each (so a resume replays only what
was missed), and whether a turn is in flight (a ``user.message`` relayed,
its ``final_answer`` / ``cancelled`` / ``error`` not yet). The relay passes
only the messages that contain ``agent.`` or ``user.message`` (a byte search
on the frame payload), so ordinary traffic is never decoded.
"""

from __future__ import annotations

import json
from typing import Any, Final

from attrs import frozen

TURN_ENDS: Final = frozenset({"agent.final_answer", "agent.cancelled", "agent.error"})
SESSION_STARTS: Final = frozenset({"agent.session_created", "agent.session_resumed"})
#: Sessions remembered per connection (the most recent); older ones are not resumed.
MAX_SESSIONS: Final = 1000


@frozen
class Learned:
    """What one worker message changed: for the connection table and the drain."""

    session: str | None = None  # created or resumed on this connection
    closed: str | None = None  # ended; affinity forgotten
    turn_ended: bool = False


NOTHING: Final = Learned()


def _decode(payload: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(payload)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


class SessionTracker:
    def __init__(self) -> None:
        self.sessions: dict[str, int | None] = {}  # session id → last seq relayed
        self.turns: dict[str, int] = {}  # session id → user messages without an end yet
        self.anonymous_turns = 0  # user messages without a session id (one is created)
        self.resume_pending: set[str] = set()
        self.resume_failed: set[str] = set()

    @property
    def turns_in_flight(self) -> int:
        return sum(self.turns.values()) + self.anonymous_turns

    def client_message(self, payload: bytes) -> bool:
        """A client text message containing ``user.message``; True when a turn began."""
        event = _decode(payload)
        if event is None or event.get("event") != "user.message":
            return False
        session_id = event.get("session_id")
        if isinstance(session_id, str) and session_id:
            self.turns[session_id] = self.turns.get(session_id, 0) + 1
        else:
            self.anonymous_turns += 1
        return True

    def begin_resume(self) -> dict[str, int | None]:
        """The sessions to resume on a new worker, with their last seq."""
        self.resume_failed.clear()
        self.resume_pending = set(self.sessions)
        return dict(self.sessions)

    def upstream_message(self, payload: bytes) -> Learned:
        """A worker text message containing ``agent.``."""
        event = _decode(payload)
        if event is None:
            return NOTHING
        name = event.get("event")
        session_id = event.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            session_id = None
        seq = event.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            seq = None
        if session_id is not None and seq is not None and session_id in self.sessions:
            self.sessions[session_id] = seq
        if name in SESSION_STARTS and session_id is not None:
            if session_id not in self.sessions:
                self.sessions[session_id] = seq
                while len(self.sessions) > MAX_SESSIONS:
                    del self.sessions[next(iter(self.sessions))]
            self.resume_pending.discard(session_id)
            return Learned(session=session_id)
        if name == "agent.session_closed" and session_id is not None:
            self.sessions.pop(session_id, None)
            ended = self.turns.pop(session_id, 0) > 0
            return Learned(closed=session_id, turn_ended=ended)
        if name in TURN_ENDS:
            if name == "agent.error" and session_id in self.resume_pending:
                self.resume_pending.discard(session_id)  # the resume failed; no turn ended
                self.resume_failed.add(session_id)
                return NOTHING
            return Learned(turn_ended=self._end_turn(session_id))
        return NOTHING

    def _end_turn(self, session_id: str | None) -> bool:
        count = self.turns.get(session_id, 0) if session_id is not None else 0
        if session_id is not None and count > 1:
            self.turns[session_id] = count - 1
        elif session_id is not None and count == 1:
            del self.turns[session_id]
        elif self.anonymous_turns:
            self.anonymous_turns -= 1
        else:
            return False
        return True
