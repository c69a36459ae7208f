"""The protocol of one routed connection, without I/O (pure): events in, actions out.

In the shape of ``websockets``' sans-I/O ``Protocol``: the relay's shells
(the two trio pumps, ``failover.py``, the keepalive loop, the relay engine's
thread) feed it what happened, with the time as an argument, and carry out
what it answers. It owns the state every decision needs, in parts that
only it changes: the two scanned byte streams (``streams.py``, with what
the engine read but left to a task), the client bytes kept while no worker
is connected (``pending.py``), the client-bound queue where the router's
own frames wait for a frame boundary known by construction (``output.py``),
the keepalive (``keepalive.py``) and the session tracker (``sessions.py``).
It decides:

- what the client's close means (passed to the worker, or answered here),
  and the worker's (passed to the client, or a loss), protocol violations,
  and the close codes at the end (a vanished client is 1001 to the worker);
- whether a loss is failed over: a worker that closes every connection at
  once is not retried forever, while a kill storm whose workers keep
  serving between kills is (``Policy.max_failovers`` losses in a row of
  workers that served no turn, answered no resume and lasted under
  ``Policy.failover_window``);
- when a drain may move the client (both directions between messages, no
  turn in flight or past the drain's deadline), whether a stream can be
  continued elsewhere, what the new worker is sent (the resumes, the
  ``user.message`` frames whose turns were in flight, then what the client
  sent meanwhile) and what ``session_preserved`` may claim;
- which notices the client gets, only where they are understood.

Events: ``client_fast`` / ``client_data``, ``upstream_fast`` /
``upstream_data`` (bytes read), ``upstream_eof``, ``client_lost``,
``upstream_connected`` / ``attached`` / ``detached`` (a failover's steps),
``drain``, ``tick`` (the timer), ``end``. Actions: the bytes for the worker
(returned), the bytes for the client (``take_output``), and ``Notify`` /
``Ping`` / ``Failover`` / ``Close`` (``policy.py``). Connecting, and every
wait, are the shell's. The engine's fast path (``*_fast``) is one scan and
one slice per read: no Python object per message beyond the bytes forwarded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum

from agentvisor.router.compression import Deflater
from agentvisor.router.frames import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_TRY_AGAIN,
    DEFLATE_NONE,
    OP_TEXT,
    RAW,
    FrameError,
    encode_frame,
    text_frame,
)
from agentvisor.router.keepalive import Due, Keepalive
from agentvisor.router.output import ClientOutput
from agentvisor.router.pending import PendingBytes
from agentvisor.router.policy import (
    FAILOVER_CODES,
    LOST_REASON,
    NO_INSTANCE_REASON,
    PING,
    TOO_MANY_REASON,
    Action,
    Close,
    Failover,
    Notify,
    Policy,
)
from agentvisor.router.sessions import Kept, Learned, SessionTracker
from agentvisor.router.streams import ClientStream, Encode, WorkerStream, deflate_mode
from agentvisor.worker.protocol import ErrorCode, error_fields


class UpstreamState(Enum):
    """How the current worker's stream stands."""

    OPEN = "open"
    LOST = "lost"  # EOF, reset, protocol error, or a close with a failover code
    CLOSED = "closed"  # a close frame passed to the client (or the answer to the client's)


class ConnectionCore:
    """The state of one connection and every decision on it; see the module's docstring.

    ``error_notice(code, message, recoverable)`` builds an ``error`` frame (the
    shell passes ``notices.error``, which stamps the time).
    """

    def __init__(
        self,
        policy: Policy,
        *,
        now: float,
        tracker: SessionTracker | None = None,
        error_notice: Callable[[str, str, bool], bytes],
        encode: Encode | None = None,
        timestamp: Callable[[], str] | None = None,
    ) -> None:
        self.policy = policy
        self._timestamp = timestamp
        self.tracker = tracker if tracker is not None else SessionTracker()
        self._error_notice = error_notice
        self._encode = encode or _plain
        self.inbound = ClientStream(policy, self.tracker, encode or _plain)
        self.outbound = self._worker_stream()
        # The client's compression context is the connection's: it survives a failover.
        self.deflater = Deflater(policy.deflate) if policy.deflate and policy.compresses else None
        self.output = ClientOutput()
        self.keepalive = Keepalive(
            interval=policy.ping_interval, timeout=policy.ping_timeout, now=now
        )
        # the worker
        self.upstream = UpstreamState.OPEN
        self.is_attached = False  # a worker relays (else client bytes are kept)
        self.attached_at = now
        self.futile = 0  # losses in a row of workers that served nothing (the bound)
        self.switches = 0
        self.resumed = 0  # sessions the last failover asked the new worker to resume
        self.switch_reason: str | None = None  # a drain asked to move the client
        self.switch_force_at = math.inf  # then even a turn in flight moves
        self._upstream_messages = 0  # of the workers before the current one
        # the client
        self.client_sent_boundary = True  # what was written to a worker ends between messages
        self.client_closing = False  # the client's close frame goes to the worker
        self.upstream_closing = False  # the worker's close frame went to the client
        self.client_gone = False  # the client's stream ended (or is no longer read)
        self.client_violation = False  # it broke the protocol: its bytes are not parsed
        self.client_done = False  # nothing more is read from the client
        self.pending = PendingBytes(policy.pending_limit)  # kept while no worker is connected
        # the end
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed = False  # a Close was decided: nothing more is decided

    # -- views ------------------------------------------------------------------------

    @property
    def upstream_messages(self) -> int:
        """Complete messages relayed from workers (all of them, for the counters)."""
        return self._upstream_messages + self.outbound.scanner.messages

    @property
    def held_bytes(self) -> int:
        return (
            self.inbound.scanner.held_bytes
            + self.pending.size
            + self.outbound.scanner.held_bytes
            + self.output.queued_bytes
        )

    @property
    def plain(self) -> bool:
        """Both directions are plain relaying: the engine's fast path may carry them."""
        return (
            self.is_attached
            and self.upstream is UpstreamState.OPEN
            and self.switch_reason is None
            and not self.client_closing
            and not self.upstream_closing
            and not self.client_done
            and not self.policy.wrap
            and self.output.empty
            and not self.output.closed
            and not self.inbound.has_backlog
            and not self.outbound.has_backlog
            and not self.tracker.resume_pending
        )

    # -- events: the client -----------------------------------------------------------

    def client_activity(self, now: float) -> None:
        """The client sent something (any frame proves it alive)."""
        self.keepalive.activity(now)

    def client_fast(self, data: bytes, now: float) -> bytes | None:
        """Client bytes in the engine's thread: what to write to the worker, or None
        when a task must carry on (``client_data(b"")`` then takes the backlog)."""
        keepalive = self.keepalive
        keepalive.last_activity, keepalive.ping_sent_at = now, None
        inbound = self.inbound
        try:
            buf, records = inbound.scanner.feed(data)
        except FrameError as violation:
            self._violation(violation)
            return None
        if not records:
            return b""  # the start of a frame, held until the rest comes
        if len(records) == 1 and records[0][0] == RAW and records[0][2] == len(buf):
            return buf if records[0][1] == 0 else buf[records[0][1] :]
        inbound.keep(buf, records)  # a control frame, or a message to read
        return None

    def client_data(self, data: bytes, now: float) -> bytes:
        """Client bytes in a task (b"": the engine's backlog): what to write to the worker.

        Afterwards ``client_done`` says whether reading ends (its close frame,
        a violation); a client close with no worker to pass it to is answered here.
        """
        if data:
            self.keepalive.activity(now)
        try:
            out, close = self.inbound.feed(data)
        except FrameError as violation:
            self._violation(violation)
            return b""
        if close is not None:
            out += self._client_close(close[0], close[2])
        return out

    def refusals(self) -> list[Action]:
        """The ``agent.error`` answers to ``user.message`` frames ``client_data`` took out of
        the stream (over ``[router] max_messages_in_flight`` or the connection's bounds)."""
        refused, self.inbound.refused = self.inbound.refused, []
        actions: list[Action] = []
        for item in refused:
            message_id = item.message_id if isinstance(item.message_id, str | int) else None
            fields = error_fields(
                ErrorCode.TOO_MANY_IN_FLIGHT,
                f"not sent to the agent: at most {item.limit} (the router keeps them to send"
                " again after a failover; [router] max_messages_in_flight); send it again"
                " after an answer",
                session_id=item.session_id,
                message_id=message_id,
            )
            if self._timestamp is not None:
                fields["timestamp"] = self._timestamp()
            actions.append(Notify(text_frame(fields)))
        return actions

    def client_written(self) -> None:
        """What ``client_data`` returned was written to the current worker."""
        self.client_sent_boundary = self.inbound.scanner.sent_to_message_boundary
        tracker = self.tracker
        if tracker.sent_upto < tracker.recorded:
            tracker.mark_sent(tracker.recorded)

    def client_lost(self) -> None:
        """The client's socket ended without a close handshake (EOF, reset)."""
        self.client_gone = True
        self.client_done = True

    def hold(self, data: bytes, *, force: bool = False) -> bool:
        """Keep client bytes while no worker is connected; False when full (wait)."""
        return self.pending.hold(data, self.tracker.recorded, force=force)

    def take_pending(self) -> tuple[bytes, int] | None:
        """The kept client bytes for a new worker, and the user messages they hold."""
        return self.pending.take()

    def pending_written(self, chunk: bytes, upto: int, *, ok: bool) -> None:
        """The new worker took ``chunk`` (or died: it is kept again, first)."""
        if ok:
            self.tracker.mark_sent(upto)
        else:
            self.pending.put_back(chunk)

    def _violation(self, violation: FrameError) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = violation.code, violation.reason
        self.client_violation = True
        self.client_lost()  # nothing more is read; the end closes with the code

    def _client_close(self, code: int, raw: bytes) -> bytes:
        """The client's close frame: passed to the worker, or answered by the router."""
        self.client_done = True
        if self.output.own_closed and not self.upstream_closing:
            return b""  # the answer to our own close
        if self.upstream_closing or (self.is_attached and not self.client_closing):
            if not self.upstream_closing:
                self.client_closing = True
                self.close_code = code
            return raw
        # No worker to pass the close to (a switch is under way): answer it ourselves.
        self.close_code = CLOSE_NORMAL if code in (1005, 1006) else code
        self.client_gone = True
        return b""

    # -- events: the worker -----------------------------------------------------------

    def upstream_fast(self, data: bytes) -> bytes | None:
        """Worker bytes in the engine's thread: what to write to the client, or None
        when a task must carry on (``upstream_data(b"")`` then takes the backlog)."""
        outbound = self.outbound
        scanner = outbound.scanner
        try:
            buf, records = scanner.feed(data)
        except FrameError:
            self.upstream = UpstreamState.LOST
            return None
        if not records:
            return b""
        if len(records) == 1 and records[0][0] == RAW and records[0][2] == len(buf):
            out = buf if records[0][1] == 0 else buf[records[0][1] :]
            if self.output.pass_through(scanner.sent_to_boundary):
                # nothing waits in the client-bound queue: out at once
                return out if self.deflater is None else self.deflater.feed(out)
        outbound.keep(buf, records)
        return None

    def upstream_data(self, data: bytes) -> list[Learned]:
        """Worker bytes in a task (b"": the engine's backlog); what goes to the client is
        queued (``take_output``), ``upstream`` says whether the stream goes on."""
        try:
            out, messages, close = self.outbound.feed(data)
        except FrameError:
            self.upstream = UpstreamState.LOST
            return []
        learned = [self._observe(payload) for payload in messages]
        if self.deflater is not None:
            out = self.deflater.feed(out)  # (a close frame, ``raw``, is never compressed)
        if close is None:
            self.output.relay(out, self.outbound.scanner.sent_to_boundary)
            return learned
        code, reason, raw = close
        if self.fails_over(code, client_closing=self.client_closing):
            self.output.relay(out, True)
            self.upstream = UpstreamState.LOST
            return learned
        if not self.client_closing:
            self.upstream_closing = True
            self.close_code, self.close_reason = code, reason
        self.output.relay(out + raw, True, closing=True)
        self.upstream = UpstreamState.CLOSED
        return learned

    def _observe(self, payload: bytes) -> Learned:
        learned = self.tracker.upstream_message(payload)
        if learned.turn_ended:
            self.futile = 0  # the worker serves: the losses in a row start again
        return learned

    def upstream_eof(self) -> None:
        """The worker's stream ended or failed (EOF, reset, a write that failed)."""
        if self.upstream is UpstreamState.OPEN:
            self.upstream = UpstreamState.LOST

    def fails_over(self, code: int, *, client_closing: bool) -> bool:
        """Whether the worker's close frame with ``code`` is a loss (else it is passed on).

        A command worker's deliberate close (1000, 1001...) reaches the client
        unless it opted in to notices; an agent worker's 1001 (SIGTERM, rolling
        restart) is failed over.
        """
        return not client_closing and self.policy.failover and code in FAILOVER_CODES

    def upstream_lost(self, now: float) -> list[Action]:
        """The worker went away: fail over, or end the connection (the bound, no failover)."""
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

    def turn_ended(self) -> None:
        """The worker finished a turn: it serves, so the losses in a row start again."""
        self.futile = 0

    # -- the client-bound stream ------------------------------------------------------

    def take_output(self) -> bytes:
        """The next bytes for the client, in order (b"" when nothing may go now)."""
        return self.output.take()

    def give_back_output(self, rest: bytes) -> None:
        """The end of what ``upstream_fast`` / ``take_output`` handed out was not written."""
        self.output.give_back(rest)

    def send_own(self, frame: bytes, *, close: bool = False) -> int | None:
        """A frame of the router's own for the client: its ticket, None after a close."""
        return self.output.own(frame, close=close)

    def notice(self, frame: bytes) -> int | None:
        """A management event, where the route's agents understand them (PROTOCOL.md §2)."""
        return self.output.own(frame) if self.policy.notices else None

    def routed(self, notice: bytes) -> list[Action]:
        """The connection was routed: ``connection_routed`` where notices are understood."""
        return [Notify(notice)] if self.policy.notices else []

    # -- keepalive --------------------------------------------------------------------

    def tick(self, now: float, *, blocked: bool = False) -> list[Action]:
        """The keepalive timer; ``blocked``: the client waits on the worker (no proof)."""
        if self.closed:
            return []
        due = self.keepalive.tick(now, blocked=blocked)
        if due is Due.PING:
            return [PING]
        if due is Due.TIMEOUT:
            return self._close(CLOSE_INTERNAL_ERROR, "keepalive ping timeout")
        return []

    def next_tick(self) -> float:
        """When ``tick`` may next have something to do."""
        return math.inf if self.closed else self.keepalive.next_tick()

    # -- failover and drain -----------------------------------------------------------

    def drain(self, reason: str, *, force_at: float = math.inf) -> None:
        """Move to another worker at the next message boundary with no turn in flight,
        or at the next message boundary once ``force_at`` has passed."""
        self.switch_reason = reason
        self.switch_force_at = force_at

    def switch_due(self, now: float, *, idle: bool) -> bool:
        """A drain may move the client now; ``idle``: no write is under way."""
        return (
            self.switch_reason is not None
            and idle
            and self.outbound.scanner.at_message_boundary
            and self.client_sent_boundary
            and not self.outbound.has_backlog
            and not self.inbound.has_backlog
            and self.output.empty
            and (self.tracker.turns_in_flight == 0 or now >= self.switch_force_at)
        )

    def switch_begun(self) -> None:
        """A switch (failover or drain) is under way: the drain's request is met."""
        self.switch_reason = None
        self.switch_force_at = math.inf

    def detached(self) -> None:
        """No worker for now: client bytes are kept until ``attached``."""
        self.is_attached = False

    def movable(self) -> bool:
        """The old worker's streams end between messages both ways: a new one may continue."""
        return self.client_sent_boundary and self.outbound.scanner.sent_to_message_boundary

    def upstream_connected(self) -> None:
        """A new worker connection (first routing, or a failover's candidate)."""
        self._upstream_messages += self.outbound.scanner.messages
        self.outbound = self._worker_stream()
        self.upstream = UpstreamState.OPEN

    def _worker_stream(self) -> WorkerStream:
        """A worker leg's scanner: RSV1 passes only where the backend agreed to it."""
        policy = self.policy
        deflate = DEFLATE_NONE if policy.compresses else deflate_mode(policy)
        return WorkerStream(agent_protocol=policy.agent_protocol, deflate=deflate)

    def attached(self, now: float) -> None:
        """A worker took the client (first routing or a failover): relaying resumes."""
        self.attached_at = now
        self.is_attached = True

    def cut_mid_message(self) -> list[Action]:
        """The worker was lost inside a message: the stream cannot be continued elsewhere."""
        return self._close(CLOSE_INTERNAL_ERROR, "the agent was lost in the middle of a message")

    def no_successor(self) -> list[Action]:
        """No instance took the client within the grace period."""
        return self._lost_error(CLOSE_TRY_AGAIN, NO_INSTANCE_REASON)

    def in_flight(self) -> list[Kept]:
        """At a failover, before the resumes: the kept messages the lost worker may have lost."""
        return self.tracker.to_resend()

    @property
    def resuming(self) -> bool:
        """A resume sent to the new worker is not answered yet."""
        return bool(self.tracker.resume_pending)

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

    def resume_outcome(self) -> bool:
        """After the resumes were answered (or timed out): whether every one came back."""
        tracker = self.tracker
        preserved = not tracker.resume_pending and not tracker.resume_failed
        tracker.resume_pending.clear()
        return preserved

    def resend_frames(self, in_flight: list[Kept]) -> list[bytes]:
        """The ``user.message`` frames to send again (``to_resend`` before the resumes)."""
        frames = []
        for kept in in_flight:
            payload = self.tracker.resend(kept)
            if payload is not None:
                frames.append(self._encode(OP_TEXT, payload))
        return frames

    def switched(
        self, *, resumed_all: bool, drained: bool, build: Callable[[bool], bytes]
    ) -> list[Action]:
        """A new worker took the client; ``build(preserved)`` makes ``service_switched``.

        ``session_preserved`` only when every session was resumed, and after a loss of a
        command worker (opted in) only if it had sessions: a reset loses written bytes.
        Resumes all answered also restart the failover bound (``futile``).
        """
        self.switches += 1
        preserved = self.preserved(resumed_all, drained=drained)
        if resumed_all and self.resumed:
            # The new worker answered every resume: it serves these sessions, so the
            # losses in a row start again, as after a turn's end (a kill storm from
            # outside kills workers that serve; a crash loop answers nothing).
            self.futile = 0
        return [Notify(build(preserved))] if self.policy.notices else []

    def preserved(self, resumed_all: bool, *, drained: bool) -> bool:
        return resumed_all and (drained or self.policy.agent_protocol or self.resumed > 0)

    # -- the end ----------------------------------------------------------------------

    def end(self, code: int, reason: str) -> list[Action]:
        """Close now (keepalive timeout, forced disconnect); the first code given wins."""
        return self._close(code, reason)

    def final_close(self, *, shutdown: bool) -> tuple[int, str, bool] | None:
        """The close frame the client gets at the end, and whether ``error`` precedes it:
        None when the client is gone or our close went already."""
        if self.output.closed or (self.client_gone and self.close_code is None):
            return None
        code, reason, lost = self.close_code, self.close_reason, False
        if shutdown:
            code, reason = CLOSE_GOING_AWAY, "agentvisor is shutting down"
        elif code is None:
            code, reason, lost = CLOSE_INTERNAL_ERROR, LOST_REASON, True
        if code in (1005, 1006, 1015):
            code = CLOSE_NORMAL
        self.close_code, self.close_reason = code, reason
        return code, reason, lost

    def worker_close_code(self, *, shutdown: bool) -> int | None:
        """The code sent to the worker at the end; None when a close handshake ran."""
        if self.client_closing or self.upstream_closing:
            return None
        if shutdown or self.client_gone:
            return CLOSE_GOING_AWAY
        return CLOSE_NORMAL

    def _lost_error(self, code: int, reason: str) -> list[Action]:
        if self.closed:
            return []
        actions: list[Action] = []
        if self.policy.notices:
            actions.append(Notify(self._error_notice("UPSTREAM_LOST", reason, True)))
        return actions + self._close(code, reason)

    def _close(self, code: int, reason: str) -> list[Action]:
        if self.closed:
            return []
        self.closed = True
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        return [Close(self.close_code, self.close_reason)]


def _plain(opcode: int, payload: bytes) -> bytes:
    return encode_frame(opcode, payload, mask=b"\0\0\0\0")
