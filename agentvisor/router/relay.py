"""One client connection: frames relayed both ways, the engine hand-off, closes.

Two tasks per connection: the *client pump* reads the client and writes to
the current worker; the connection's own task runs the *worker pump* (and,
between workers, the switch of ``failover.py``). When both pumps have
nothing special to do they park and the connection's sockets join the relay
engine (``engine.py``), which relays without waking them; anything special
hands the connection back, with what the engine read but did not finish
left as a backlog that the pumps process first.

Each pump reads, scans frame headers (``frames.py``) and writes what it read
in one piece, so backpressure is TCP's: a pump that cannot write does not
read, and at most one read (64 KiB) plus one partial frame is held per
direction. A slow client stalls only its own worker connection.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import trio

from agentvisor.router.channels import Channel, ChannelClosed, SocketChannel
from agentvisor.router.client_pump import KEEPALIVE_PAYLOAD, client_pump, wrap_message
from agentvisor.router.closing import finish
from agentvisor.router.connection import (
    Action,
    Close,
    ConnectionCore,
    Notify,
    Ping,
    Policy,
    client_message_limit,
)
from agentvisor.router.engine import engine_error, on_client_readable, on_upstream_readable
from agentvisor.router.failover import relay_loop
from agentvisor.router.frames import (
    CLOSE_GOING_AWAY,
    OP_PING,
    OP_TEXT,
    FrameError,
    FrameScanner,
    Record,
    encode_frame,
    random_mask,
)
from agentvisor.router.notices import error, notification
from agentvisor.router.outcomes import CLEANUP_TIMEOUT, CLOSE_TIMEOUT, Outcome
from agentvisor.router.sessions import SessionTracker
from agentvisor.router.worker_pump import pump_worker
from agentvisor.router.writer import ClientWriter

if TYPE_CHECKING:
    from agentvisor.router.routing import Plan
    from agentvisor.router.server import Router
    from agentvisor.router.upstream import Upstream

#: Client bytes kept while no worker is connected (beyond it the client pump waits).
PENDING_LIMIT: Final = 1024 * 1024
PING_FRAME: Final = encode_frame(OP_PING, KEEPALIVE_PAYLOAD)
CLIENT_NEEDLES: Final = (b"user.message",)


class Connection:
    """A routed client and its current worker; ``run`` relays until either side ends."""

    def __init__(
        self,
        router: Router,
        *,
        connection_id: str,
        client: Channel,
        client_ip: str,
        plan: Plan,
        initial: bytes,
    ) -> None:
        config = router.config.router
        self.router = router
        self.id = connection_id
        self.client = client
        self.client_ip = client_ip
        self.plan = plan
        self.writer = ClientWriter(client, evict=self.leave_engine)
        self.scope = trio.CancelScope()
        policy = Policy.build(
            agent_protocol=plan.agent_protocol,
            router_notices=router.routing.router_notices(plan.agents),
            management_events=config.management_events,
            failover=config.failover,
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
        )
        self.tracker = SessionTracker(id_prefix=f"r{os.urandom(6).hex()}")
        self.core = ConnectionCore(
            policy,
            now=time.monotonic(),
            tracker=self.tracker,
            error_notice=lambda code, message, recoverable: error(
                code, message, recoverable=recoverable
            ),
        )
        self.client_scanner = FrameScanner(
            masked=True,
            max_message_bytes=client_message_limit(
                config.max_message_bytes, agent_protocol=plan.agent_protocol
            ),
            needles=CLIENT_NEEDLES,
            whole_messages=plan.wrap,
        )
        self.client_initial = initial
        self.upstream: Upstream | None = None
        self.up_ready = False
        self.ready_event = trio.Event()
        self.pending: list[bytes] = []  # client bytes kept while no worker is connected
        self.pending_bytes = 0
        self.pending_upto = 0  # the user messages (numbered by the tracker) in ``pending``
        self.pending_limit = max(PENDING_LIMIT, config.max_message_bytes + 65536)
        self.client_sending = False
        self.awaiting_idle_client = False  # a switch waits for the client pump's write to end
        self.client_waiting = False
        self.client_sent_boundary = True
        self.client_done = trio.Event()
        self.changed = trio.Event()  # set (and replaced) on turns ending, switches, the end
        self.switch_reason: str | None = None
        self.switch_force_at = math.inf  # a drain's deadline: then even a turn in flight moves
        self.switches = 0
        self.interruptible: trio.CancelScope | None = None
        self.pump_receiving = False
        self.rerun_pump = False
        self.client_closing = False  # the client's close frame went to the worker
        self.upstream_closing = False  # the worker's close frame went to the client
        self.close_deadline = math.inf
        self.client_gone = False  # the client's socket ended without a close handshake
        self.client_violation = False  # the client broke the protocol: its bytes are not parsed
        self.ended = False
        # the engine hand-off
        self.in_engine = False
        self.engine_lock = threading.Lock()  # the engine's thread vs this connection's tasks
        self.engine_exit = trio.Event()
        self.client_parked = False
        self.upstream_parked = False
        self.client_read_scope: trio.CancelScope | None = None
        self.client_backlog: tuple[bytes, list[Record]] | None = None
        self.client_write: tuple[bytes, int] | None = None
        self.client_error: FrameError | None = None
        self.client_hangup = False  # the engine met the client's end of stream or an error
        self.client_counted = 0
        self.carry_in = 0
        self.carry_out = 0

    # -- views ---------------------------------------------------------------------

    @property
    def close_code(self) -> int | None:
        return self.core.close_code

    @close_code.setter
    def close_code(self, code: int | None) -> None:
        self.core.close_code = code

    @property
    def close_reason(self) -> str:
        return self.core.close_reason

    @close_reason.setter
    def close_reason(self, reason: str) -> None:
        self.core.close_reason = reason

    @property
    def instance_id(self) -> str:
        return self.upstream.endpoint.instance_id if self.upstream is not None else ""

    @property
    def sessions(self) -> dict[str, int | None]:
        return self.tracker.sessions

    @property
    def turns_in_flight(self) -> int:
        return self.tracker.turns_in_flight

    @property
    def client_blocked(self) -> bool:
        """The client pump waits on the worker, so a missing pong proves nothing."""
        return self.client_sending or self.client_waiting

    def buffered_bytes(self) -> int:
        held = self.client_scanner.held_bytes + self.pending_bytes
        if self.upstream is not None:
            held += self.upstream.scanner.held_bytes + len(self.upstream.initial)
        return held

    def notify_changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    # -- running -------------------------------------------------------------------

    async def run(self, upstream: Upstream) -> None:
        self.attach(upstream)
        try:
            with self.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(client_pump, self)
                    await relay_loop(self, upstream)
                    nursery.cancel_scope.cancel()
        finally:
            self.ended = True
            self.leave_engine()
            # Cancelled from outside our own scope: the router is shutting down.
            shutdown = trio.current_effective_deadline() == -math.inf
            with trio.CancelScope(shield=True) as cleanup:
                cleanup.deadline = trio.current_time() + CLEANUP_TIMEOUT
                await self._finish(shutdown=shutdown and self.close_code is None)
            self.notify_changed()

    def attach(self, upstream: Upstream) -> None:
        self.core.attached(time.monotonic())
        self.upstream = upstream
        self.up_ready = True
        self.ready_event.set()

    def detach(self) -> None:
        """No worker for now: client frames are buffered until ``attach``."""
        self.leave_engine()
        if self.up_ready:
            self.up_ready = False
            self.ready_event = trio.Event()

    def interrupt(self, *, only_if_receiving: bool = False) -> None:
        """Stop what the connection's task waits on (a pump read, a park, a switch)."""
        self.leave_engine()
        scope = self.interruptible
        if scope is not None and (self.pump_receiving or not only_if_receiving):
            scope.cancel()

    def request_switch(self, reason: str, *, force_at: float = math.inf) -> None:
        """Move to another instance at the next message boundary with no turn in flight
        (a drain), or at the next message boundary once ``force_at`` has passed."""
        self.switch_reason = reason
        self.switch_force_at = force_at
        self.interrupt(only_if_receiving=True)

    @property
    def may_switch_now(self) -> bool:
        return self.tracker.turns_in_flight == 0 or trio.current_time() >= self.switch_force_at

    def end(self, code: int, reason: str) -> None:
        """Close the connection now with ``code`` (keepalive timeout, forced disconnect)."""
        self.core.end(code, reason)
        self.leave_engine()
        self.scope.cancel()

    async def send_notice(self, frame: bytes) -> bool:
        """A management event, if the route's agents understand them (PROTOCOL.md §2)."""
        if not self.core.policy.notices:
            return False
        return await self.writer.send_frame(frame)

    async def perform(self, actions: list[Action]) -> bool:
        """Do what the core asked (notices and pings written in order); True at a Close."""
        ended = False
        for action in actions:
            if isinstance(action, Notify):
                await self.writer.send_frame(action.frame)
            elif isinstance(action, Ping):
                await self.send_ping()
            elif isinstance(action, Close):
                ended = True
        return ended

    async def send_ping(self) -> None:
        """Keepalive ping to an idle client (the keepalive task bounds it)."""
        await self.writer.send_frame(PING_FRAME)

    async def disconnect(self, reason: str, *, notify: bool, kind: str = "disconnect") -> None:
        """Close with 1001 after an optional notification (administrative, shutdown)."""
        if self.close_code is None:
            self.close_code, self.close_reason = CLOSE_GOING_AWAY, reason
        with trio.move_on_after(CLOSE_TIMEOUT):
            if notify:
                await self.send_notice(notification(kind, reason, severity="warning"))
            await self.writer.close(CLOSE_GOING_AWAY, reason)
        self.end(CLOSE_GOING_AWAY, reason)
        with trio.move_on_after(CLEANUP_TIMEOUT):
            while not self.ended:
                await self.changed.wait()

    # -- the engine hand-off ---------------------------------------------------------

    def engine_ok(self) -> bool:
        """Both directions are plain relaying: the engine may carry them."""
        up = self.upstream
        writer = self.writer
        return (
            up is not None
            and self.up_ready
            and not self.ended
            and self.switch_reason is None
            and not self.client_closing
            and not self.upstream_closing
            and not self.plan.wrap
            and writer.usable
            and not writer.busy
            and not writer.waiting
            and isinstance(self.client, SocketChannel)
            and not self.client_initial
            and not up.initial
            and self.client_backlog is None
            and self.client_write is None
            and self.client_error is None
            and not self.client_hangup
            and up.backlog is None
            and up.write_rest is None
            and not up.failed
            and not self.tracker.resume_pending
        )

    async def park(self, side: str) -> None:
        """Wait while the engine relays; enter it when the other pump is parked too."""
        if side == "client":
            self.client_parked = True
        else:
            self.upstream_parked = True
        try:
            exit_event = self.engine_exit
            if self.client_parked and self.upstream_parked:
                self._enter_engine()
            elif side == "client":
                if self.pump_receiving and self.interruptible is not None:
                    self.rerun_pump = True  # bring the worker pump here
                    self.interruptible.cancel()
            elif self.client_read_scope is not None:
                self.client_read_scope.cancel()  # bring the client pump here
            await exit_event.wait()
        finally:
            if side == "client":
                self.client_parked = False
            else:
                self.upstream_parked = False

    def release_parked(self) -> None:
        """A pump goes on without the engine: a parked partner must not wait for it."""
        if not self.in_engine and (self.client_parked or self.upstream_parked):
            event, self.engine_exit = self.engine_exit, trio.Event()
            event.set()

    def _enter_engine(self) -> None:
        up = self.upstream
        engine = self.router.engine
        if self.in_engine or up is None or not self.engine_ok():
            self.release_parked()
            return
        assert isinstance(self.client, SocketChannel)
        with self.engine_lock:
            self.in_engine = True
            engine.entries += 1
            engine.add(self.client.fd, self._on_client)
            engine.add(up.channel.fd, self._on_upstream)

    def leave_engine(self, reason: str = "task") -> None:
        """Take the connection back from the engine (trio's thread); wake parked pumps."""
        with self.engine_lock:
            if self.in_engine:
                self._evict(reason)
        self._release()

    def engine_handoff(self, reason: str) -> None:
        """The engine gives the connection back (its thread, ``engine_lock`` held)."""
        self._evict(reason)
        self.router.engine.call_soon(self._release)

    def _evict(self, reason: str) -> None:
        self.in_engine = False
        engine = self.router.engine
        engine.handoffs[reason] += 1
        if isinstance(self.client, SocketChannel):
            engine.remove(self.client.fd)
        if self.upstream is not None:
            engine.remove(self.upstream.channel.fd)

    def _release(self) -> None:
        event, self.engine_exit = self.engine_exit, trio.Event()
        event.set()

    def _on_client(self) -> None:
        with self.engine_lock:
            if not self.in_engine:
                return
            try:
                on_client_readable(self)
            except Exception as failure:
                engine_error(self, failure)

    def _on_upstream(self) -> None:
        with self.engine_lock:
            if not self.in_engine:
                return
            try:
                on_upstream_readable(self)
            except Exception as failure:
                engine_error(self, failure)

    # -- counting and observing ---------------------------------------------------------

    def count_in(self, size: int, *, engine: bool = False) -> None:
        """Count relayed client bytes (totals kept per thread: the engine's or the router's)."""
        totals = self.router.engine if engine else self.router
        totals.bytes_in += size
        done = self.client_scanner.messages - self.client_counted
        if not done:
            self.carry_in += size
            return
        self.client_counted += done
        totals.messages_in += done
        now = time.time()
        table = self.router.table
        table.count_in(self.id, size + self.carry_in, now)
        self.carry_in = 0
        for _ in range(done - 1):
            table.count_in(self.id, 0, now)

    def count_out(self, up: Upstream, size: int, *, engine: bool = False) -> None:
        totals = self.router.engine if engine else self.router
        totals.bytes_out += size
        done = up.scanner.messages - up.counted
        if not done:
            self.carry_out += size
            return
        up.counted += done
        totals.messages_out += done
        now = time.time()
        table = self.router.table
        table.count_out(self.id, size + self.carry_out, now)
        self.carry_out = 0
        for _ in range(done - 1):
            table.count_out(self.id, 0, now)

    def observe_upstream(self, payload: bytes) -> None:
        learned = self.tracker.upstream_message(payload)
        table = self.router.table
        if learned.session is not None:
            table.learn_session(self.id, learned.session)
        if learned.closed is not None:
            table.forget_session(learned.closed)
        if learned.turn_ended:
            self.core.turn_ended()
        if learned.turn_ended or learned.closed is not None:
            self.notify_changed()

    # -- the worker → client direction ---------------------------------------------

    async def pump_upstream(
        self,
        up: Upstream,
        *,
        until: Callable[[], bool] | None = None,
        deadline: float = math.inf,
    ) -> Outcome:
        """Relay the worker's frames to the client until something ends the phase."""
        return await pump_worker(self, up, until=until, deadline=deadline)

    # -- the client → worker direction ---------------------------------------------

    async def to_upstream(self, data: bytes, sent: int = 0) -> None:
        """Write client bytes to the worker, or keep them (bounded) while there is none.

        ``sent``: bytes of ``data`` the engine already wrote to the current worker.
        """
        while not self.up_ready:
            if not self.pending or self.pending_bytes + len(data) <= self.pending_limit:
                self.pending.append(data)
                self.pending_bytes += len(data)
                self.pending_upto = self.tracker.recorded
                return
            self.client_waiting = True
            try:
                await self.ready_event.wait()
            finally:
                self.client_waiting = False
        up = self.upstream
        assert up is not None
        self.client_sending = True
        try:
            await up.channel.send(memoryview(data)[sent:] if sent else data)
            self.client_sent_boundary = self.client_scanner.sent_to_message_boundary
            self.tracker.mark_sent(self.tracker.recorded)
        except ChannelClosed:
            # The worker went away under the write: its successor gets these bytes.
            self.detach()
            self.pending.append(data)
            self.pending_bytes += len(data)
            self.pending_upto = self.tracker.recorded
            self.interrupt(only_if_receiving=True)
        finally:
            self.client_sending = False
            if self.awaiting_idle_client:
                self.notify_changed()

    def client_frame(self, payload: bytes) -> bytes:
        """A client text message, as the worker gets it (masked; wrapped if the route asks)."""
        if self.plan.wrap:
            return wrap_message(self, OP_TEXT, payload)
        return encode_frame(OP_TEXT, payload, mask=random_mask())

    # -- the end -----------------------------------------------------------------------

    async def _finish(self, *, shutdown: bool) -> None:
        await finish(self, shutdown=shutdown)
