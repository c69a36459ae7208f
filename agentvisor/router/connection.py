"""The protocol of one routed connection, without I/O (pure): events in, actions out.

In the shape of ``websockets``' sans-I/O ``Protocol``: the relay's shells
(the two trio pumps, ``failover.py``, the keepalive loop, the relay engine's
thread) feed it what happened (the client was active, the worker closed with
a code or was lost, a failover found a worker, the keepalive timer fired)
with the time as an argument, and perform what it answers. It decides what a
plain proxy and an agent-protocol proxy differ in, so that the decisions are
made in one place and tested without sockets:

- whether a worker's close is passed to the client or failed over, and
  whether a loss may be failed over again: a worker that closes every
  connection at once (1011 on arrival) is not retried forever, while a
  kill storm whose workers keep serving between kills is (the bound counts
  ``Policy.max_failovers`` losses in a row of workers that served no turn
  and lasted under ``Policy.failover_window`` seconds);
- which notices the client gets (``connection_routed``, ``service_switched``,
  ``error``), and what ``session_preserved`` may claim;
- the keepalive: when a ping is due, when the silence ends the connection;
- the close codes at the end, to the client and to the worker (a client
  that vanished is reported to the worker as 1001, not a clean 1000);
- what a failover sends to the new worker (the resumes, then the
  ``user.message`` frames whose turns were in flight), from the session
  tracker (``sessions.py``) the core owns.

The raw frame fast path stays in the shells: steady traffic never reaches
the core (no Python object per message), only events that change its state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from attrs import frozen

from agentvisor.router.frames import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_TRY_AGAIN,
    OP_TEXT,
    encode_frame,
    text_frame,
)
from agentvisor.router.sessions import Kept, SessionTracker

#: Close codes after which a worker is failed over (as is a stream ending without one).
FAILOVER_CODES: Final = frozenset({1001, 1006, 1011, 1012})
#: The ceiling of an agent worker's frames (``worker/serve.py``): below it, a message
#: over the worker's ``max_message_bytes`` is answered with ``MESSAGE_TOO_LARGE``.
AGENT_FRAME_CEILING: Final = 16 * 1024 * 1024

LOST_REASON: Final = "the connection to the agent was lost"
NO_INSTANCE_REASON: Final = "no instance of the agent is available"
TOO_MANY_REASON: Final = "the agent keeps closing the connection"


@frozen
class Policy:
    """What the route's agents understand, and the bounds that apply (from the config)."""

    agent_protocol: bool  # every agent of the route is an ``agent =`` worker
    notices: bool  # management events are sent to the client
    failover: bool  # a lost worker is replaced
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    #: Failovers in a row of workers that each served the client less than
    #: ``failover_window`` seconds and ended no turn: then the loss is final.
    max_failovers: int = 5
    failover_window: float = 2.0

    @classmethod
    def build(
        cls,
        *,
        agent_protocol: bool,
        router_notices: bool,
        management_events: bool,
        failover: bool,
        ping_interval: float = 20.0,
        ping_timeout: float = 20.0,
    ) -> Policy:
        """Agent workers get notices and failover; command workers only when they opt in."""
        understood = agent_protocol or router_notices
        return cls(
            agent_protocol=agent_protocol,
            notices=management_events and understood,
            failover=failover and understood,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
        )


def client_message_limit(max_message_bytes: int, *, agent_protocol: bool) -> int:
    """The size above which the router closes with 1009 (client → worker).

    An agent worker answers a message over its limit with a recoverable
    ``MESSAGE_TOO_LARGE`` up to its frame ceiling; the router leaves that to it.
    """
    if agent_protocol:
        return max(AGENT_FRAME_CEILING, 4 * max_message_bytes)
    return max_message_bytes


@frozen
class Notify:
    """Send this frame of the router's own to the client (between two frames)."""

    frame: bytes


@frozen
class Ping:
    """Send the keepalive ping to the client."""


@frozen
class Failover:
    """Move the client to another worker."""

    reason: str


@frozen
class Close:
    """End the connection: close the client with ``code`` (after any ``Notify`` before)."""

    code: int
    reason: str


Action = Notify | Ping | Failover | Close

PING: Final = Ping()


class ConnectionCore:
    """The state of one connection that its decisions need; see the module's docstring.

    ``error_notice(code, message, recoverable)`` builds an ``error`` frame (the
    shell passes ``notices.error``, which stamps the time).
    """

    __slots__ = (
        "attached_at",
        "close_code",
        "close_reason",
        "closed",
        "error_notice",
        "futile",
        "last_activity",
        "ping_sent_at",
        "policy",
        "resumed",
        "switches",
        "tracker",
    )

    def __init__(
        self,
        policy: Policy,
        *,
        now: float,
        tracker: SessionTracker | None = None,
        error_notice: Callable[[str, str, bool], bytes],
    ) -> None:
        self.policy = policy
        self.tracker = tracker if tracker is not None else SessionTracker()
        self.error_notice = error_notice
        self.last_activity = now
        self.ping_sent_at: float | None = None
        self.attached_at = now
        self.futile = 0  # losses in a row of workers that served nothing (the bound)
        self.switches = 0
        self.resumed = 0  # sessions the last failover asked the new worker to resume
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed = False  # a Close was decided: nothing more is sent to the client

    # -- events: the client --------------------------------------------------------

    def client_activity(self, now: float) -> None:
        """The client sent something (any frame proves it alive). Cheap: the engine calls it."""
        self.last_activity = now
        self.ping_sent_at = None

    def tick(self, now: float, *, blocked: bool = False) -> list[Action]:
        """The keepalive timer; ``blocked``: the client waits on the worker (no proof)."""
        if self.closed:
            return []
        policy = self.policy
        if self.ping_sent_at is None:
            if now - self.last_activity >= policy.ping_interval:
                self.ping_sent_at = now
                return [PING]
            return []
        if now - self.ping_sent_at >= policy.ping_timeout and not blocked:
            return self._close(CLOSE_INTERNAL_ERROR, "keepalive ping timeout")
        return []

    def next_tick(self) -> float:
        """When ``tick`` may next have something to do."""
        if self.closed:
            return math.inf
        if self.ping_sent_at is None:
            return self.last_activity + self.policy.ping_interval
        return self.ping_sent_at + self.policy.ping_timeout

    def routed(self, notice: bytes) -> list[Action]:
        """The connection was routed: ``connection_routed`` where notices are understood."""
        return [Notify(notice)] if self.policy.notices else []

    # -- events: the worker ----------------------------------------------------------

    def fails_over(self, code: int, *, client_closing: bool) -> bool:
        """Whether the worker's close frame with ``code`` is a loss (else it is passed on).

        A command worker's deliberate close (1000, 1001...) reaches the client
        unless it opted in to notices; an agent worker's 1001 (SIGTERM, rolling
        restart) is failed over.
        """
        return not client_closing and self.policy.failover and code in FAILOVER_CODES

    def upstream_lost(self, now: float) -> list[Action]:
        """The worker went away (EOF, reset, protocol error, or a failover close code)."""
        if self.closed:
            return []
        policy = self.policy
        if not policy.failover:
            return self._lost_error(CLOSE_INTERNAL_ERROR, LOST_REASON)
        if now - self.attached_at >= policy.failover_window:
            self.futile = 0  # the lost worker served a while: a new fault, not the same one
        if self.futile >= policy.max_failovers:
            return self._lost_error(CLOSE_INTERNAL_ERROR, TOO_MANY_REASON)
        self.futile += 1
        return [Failover("upstream_lost")]

    def attached(self, now: float) -> None:
        """A worker took the client (first routing or a failover)."""
        self.attached_at = now

    def turn_ended(self) -> None:
        """The worker finished a turn: it serves, so the losses in a row start again."""
        self.futile = 0

    def no_successor(self) -> list[Action]:
        """No instance took the client within the grace period."""
        return self._lost_error(CLOSE_TRY_AGAIN, NO_INSTANCE_REASON)

    def cut_mid_message(self) -> list[Action]:
        """The worker was lost inside a message: the stream cannot be continued elsewhere."""
        return self._close(CLOSE_INTERNAL_ERROR, "the agent was lost in the middle of a message")

    def switched(
        self, *, resumed_all: bool, drained: bool, build: Callable[[bool], bytes]
    ) -> list[Action]:
        """A new worker took the client; ``build(preserved)`` makes ``service_switched``.

        ``session_preserved`` is claimed only when every session was resumed.
        After a loss (not a drain, which moves between messages with no turn in
        flight) a command worker (opted in) must also have had sessions the
        router saw (``agent.session_*``) and resumed: bytes written to a worker
        that then reset are gone, and other state of a plain WebSocket service
        cannot be carried over.
        """
        self.switches += 1
        preserved = self.preserved(resumed_all, drained=drained)
        return [Notify(build(preserved))] if self.policy.notices else []

    def preserved(self, resumed_all: bool, *, drained: bool) -> bool:
        return resumed_all and (drained or self.policy.agent_protocol or self.resumed > 0)

    # -- failover's frames --------------------------------------------------------------

    def resume_frames(self, mask: Callable[[], bytes]) -> list[bytes]:
        """``user.resume_session`` for every session seen here, with its last ``seq``."""
        frames = []
        sessions = self.tracker.begin_resume()
        self.resumed = len(sessions)
        for session_id, last_seq in sessions.items():
            request: dict[str, object] = {"event": "user.resume_session", "session_id": session_id}
            if last_seq is not None:
                request["last_seq"] = last_seq
            frames.append(text_frame(request, mask=mask()))
        return frames

    def resend_frames(self, in_flight: list[Kept], wrap: Callable[[bytes], bytes]) -> list[bytes]:
        """The ``user.message`` frames to send again (``to_resend`` before the resumes)."""
        frames = []
        for kept in in_flight:
            payload = self.tracker.resend(kept)
            if payload is not None:
                frames.append(wrap(payload))
        return frames

    # -- the end --------------------------------------------------------------------

    def end(self, code: int, reason: str) -> list[Action]:
        """Close now (keepalive timeout, forced disconnect); the first code given wins."""
        return self._close(code, reason)

    def worker_close_code(self, *, shutdown: bool, client_gone: bool) -> int:
        """The code sent to the worker when the router ends the connection itself."""
        if shutdown or client_gone:
            return CLOSE_GOING_AWAY
        return CLOSE_NORMAL

    def _lost_error(self, code: int, reason: str) -> list[Action]:
        if self.closed:
            return []
        actions: list[Action] = []
        if self.policy.notices:
            actions.append(Notify(self.error_notice("UPSTREAM_LOST", reason, True)))
        return actions + self._close(code, reason)

    def _close(self, code: int, reason: str) -> list[Action]:
        if self.closed:
            return []
        self.closed = True
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        return [Close(self.close_code, self.close_reason)]


def masked_text(payload: bytes, mask: bytes) -> bytes:
    """A client text frame for the worker (masked, as a client's must be)."""
    return encode_frame(OP_TEXT, payload, mask=mask)
