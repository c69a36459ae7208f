"""What the relay learns from the messages it relays (pure).

Failover and drain need three facts the worker does not tell the router
directly: which sessions live on this connection (created or resumed here),
the last ``seq`` the client received for each (so a resume replays only what
was missed), and whether a turn is in flight (a ``user.message`` relayed,
its ``final_answer`` / ``cancelled`` / ``error`` not yet). The relay passes
only the messages that contain ``agent.`` or ``user.message`` (a byte search
on the frame payload), so ordinary traffic is never decoded.

It also keeps the payload of each ``user.message`` whose turn is in flight
(``Kept``, bounded: ``max_kept`` per session, ``[router]
max_messages_in_flight``, and ``KEPT_BYTES_LIMIT`` / ``MAX_KEPT_ENTRIES`` per
connection), so that a failover can send again the messages the dead worker
may never have received. A message that would go over a bound is
``Refused`` where the relay can take it out of the stream: the client gets an
error naming the bound, never a silent loss at the next failover. At-least-once: a message the dead
worker had stored comes back from the new worker's resume as an interrupted
turn (``agent.cancelled`` with reason ``worker_lost``); the kept message is
then marked ``interrupted`` and sent again, and its turn counted again.
"""

from __future__ import annotations

import json
from typing import Any, Final

from attrs import define, frozen

from agentvisor.worker.protocol import ErrorCode, UserMessage, parse_frame

TURN_ENDS: Final = frozenset({"agent.final_answer", "agent.cancelled", "agent.error"})
SESSION_STARTS: Final = frozenset({"agent.session_created", "agent.session_resumed"})
#: Sessions remembered per connection (the most recent); older ones are not resumed.
MAX_SESSIONS: Final = 1000
#: User messages in flight kept per session (and per connection for those without one).
MAX_KEPT_PER_SESSION: Final = 4
#: Bytes of user messages in flight kept per connection.
KEPT_BYTES_LIMIT: Final = 1024 * 1024
#: Turns in flight followed per connection (kept or not), beyond which none is kept.
MAX_KEPT_ENTRIES: Final = 64


@frozen
class Learned:
    """What one worker message changed: for the connection table and the drain."""

    session: str | None = None  # created or resumed on this connection
    closed: str | None = None  # ended; affinity forgotten
    turn_ended: bool = False


NOTHING: Final = Learned()


@frozen
class Refused:
    """A ``user.message`` not to relay: keeping it would go over ``limit`` (the client is
    told, with the session and message it named)."""

    session_id: str | None
    message_id: object
    limit: str


@define(eq=False)
class Kept:
    """A ``user.message`` whose turn is in flight; ``payload`` None when over the bounds."""

    number: int  # in the order the client sent them
    session: str | None  # None: sent without a session id, its session not created yet
    message_id: object
    payload: bytes | None
    interrupted: bool = False  # its turn ended with ``worker_lost``: to be sent again


def _decode(payload: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(payload)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


class SessionTracker:
    def __init__(self, id_prefix: str = "r", max_kept: int = MAX_KEPT_PER_SESSION) -> None:
        self.id_prefix = id_prefix  # of the message ids the router assigns (unique per connection)
        self.max_kept = max_kept  # user messages in flight kept per session
        self.assigned = 0
        self.sessions: dict[str, int | None] = {}  # session id → last seq relayed
        self.turns: dict[str, int] = {}  # session id → user messages without an end yet
        self.anonymous_turns = 0  # user messages without a session id (one is created)
        self.resume_pending: set[str] = set()
        self.resume_failed: set[str] = set()
        self.kept: list[Kept] = []  # in the client's order
        self.kept_bytes = 0
        self.recorded = 0  # user messages numbered so far
        self.sent_upto = 0  # those up to this number were written to some worker

    @property
    def turns_in_flight(self) -> int:
        return sum(self.turns.values()) + self.anonymous_turns

    def client_message(
        self, payload: bytes, *, can_rewrite: bool = False
    ) -> bytes | Refused | None:
        """A client text message containing ``user.message``: counts the turn it begins.

        It is parsed and validated by the worker's own parser (``parse_frame``), so a
        frame the worker answers with ``INVALID_MESSAGE`` (NaN, a wrong type...) is no
        turn here either. A message without a ``message_id`` gets one when
        ``can_rewrite`` (the relay then sends the payload returned in its place), so the
        worker can tell a copy sent again after a failover from a new message. When
        ``can_rewrite`` (the relay can also take the frame out), a message that cannot
        be kept is ``Refused`` instead of relayed unkept.
        """
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            return None
        request = parse_frame(text, max_message_bytes=len(payload) + 1)
        if not isinstance(request, UserMessage):
            return None
        session_id = request.session_id or None
        if can_rewrite:
            limit = self._over_bound(session_id, len(payload) + 40)  # room for a message_id
            if limit is not None:
                return Refused(session_id, request.message_id, limit)
        rewritten: bytes | None = None
        if request.message_id is None and can_rewrite:
            event = json.loads(text)
            self.assigned += 1
            event["message_id"] = f"{self.id_prefix}-{self.assigned}"
            rewritten = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
            payload = rewritten
            message_id: object = event["message_id"]
        else:
            message_id = request.message_id
        self._count_turn(session_id)
        self.recorded += 1
        if len(self.kept) < MAX_KEPT_ENTRIES:
            fits = self._over_bound(session_id, len(payload)) is None
            kept = payload if fits else None
            self.kept_bytes += len(payload) if fits else 0
            self.kept.append(Kept(self.recorded, session_id, message_id, kept))
        return rewritten if rewritten is not None else payload

    def _over_bound(self, session_id: str | None, size: int) -> str | None:
        """Which bound keeping one more message of ``size`` bytes would pass, if any."""
        same = sum(1 for k in self.kept if k.session == session_id and k.payload is not None)
        if same >= self.max_kept:
            return f"{self.max_kept} messages of a session awaiting their answer"
        if self.kept_bytes + size > KEPT_BYTES_LIMIT:
            return f"{KEPT_BYTES_LIMIT // 1024} KiB of messages awaiting their answer"
        if len(self.kept) >= MAX_KEPT_ENTRIES:
            return f"{MAX_KEPT_ENTRIES} messages awaiting their answer on one connection"
        return None

    def _count_turn(self, session_id: str | None) -> None:
        if session_id is not None:
            self.turns[session_id] = self.turns.get(session_id, 0) + 1
        else:
            self.anonymous_turns += 1

    def mark_sent(self, upto: int) -> None:
        """The user messages numbered up to ``upto`` were written to a worker."""
        self.sent_upto = max(self.sent_upto, upto)

    def to_resend(self) -> list[Kept]:
        """At a failover, before the resume: the kept messages a lost worker may have lost.

        Those not yet written to any worker are still in the connection's buffer.
        """
        return [k for k in self.kept if k.number <= self.sent_upto and k.payload is not None]

    def resend(self, kept: Kept) -> bytes | None:
        """After the resume: the payload to send again, None if its turn ended meanwhile.

        A turn interrupted by the loss (``worker_lost``) is counted and kept again.
        """
        if kept not in self.kept:
            return None
        if kept.interrupted:
            kept.interrupted = False
            self._count_turn(kept.session)
        return kept.payload

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
                if name == "agent.session_created":
                    self._adopt(session_id)
                while len(self.sessions) > MAX_SESSIONS:
                    del self.sessions[next(iter(self.sessions))]
            self.resume_pending.discard(session_id)
            return Learned(session=session_id)
        if name == "agent.session_closed" and session_id is not None:
            self.sessions.pop(session_id, None)
            ended = self.turns.pop(session_id, 0) > 0
            for kept in [k for k in self.kept if k.session == session_id]:
                self.kept.remove(kept)
                self.kept_bytes -= len(kept.payload or b"")
            return Learned(closed=session_id, turn_ended=ended)
        if name == "agent.error" and event.get("code") == ErrorCode.NO_TURN_RUNNING:
            return NOTHING  # the answer to a user.cancel with nothing to cancel: no turn ended
        if name in TURN_ENDS:
            # A resume that failed names no message; a turn's error (WORKER_LOST, ...) does.
            if (
                name == "agent.error"
                and session_id is not None
                and session_id in self.resume_pending
                and event.get("message_id") is None
            ):
                self.resume_pending.discard(session_id)  # the resume failed; no turn ended
                self.resume_failed.add(session_id)
                return NOTHING
            ended = self._end_turn(session_id)
            if ended:
                interrupted = name == "agent.cancelled" and event.get("reason") == "worker_lost"
                self._forget_kept(session_id, event.get("message_id"), interrupted=interrupted)
            return Learned(turn_ended=ended)
        return NOTHING

    def _adopt(self, session_id: str) -> None:
        """A session was created for the oldest message sent without one: it names it now."""
        for kept in self.kept:
            if kept.session is None:
                kept.session = session_id
                if kept.payload is not None:
                    event = _decode(kept.payload)
                    if event is not None:
                        event["session_id"] = session_id
                        payload = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
                        self.kept_bytes += len(payload.encode()) - len(kept.payload)
                        kept.payload = payload.encode()
                return

    def _forget_kept(
        self, session_id: str | None, message_id: object, *, interrupted: bool
    ) -> None:
        """The kept message whose turn ended: the one with ``message_id``, else the oldest."""
        mine = [k for k in self.kept if k.session in (session_id, None) and not k.interrupted]
        match = next(
            (k for k in mine if message_id is not None and k.message_id == message_id), None
        )
        if match is None:
            own = [k for k in mine if k.session == session_id]
            match = own[0] if own else (mine[0] if mine else None)
        if match is None:
            return
        if interrupted and match.payload is not None:
            match.interrupted = True  # no longer a turn in flight, but to be sent again
            return
        self.kept.remove(match)
        self.kept_bytes -= len(match.payload or b"")

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
