"""One client connection: the trio shell around its core, and the engine hand-off.

The decisions and the state they need are the connection core's
(``connection.py``, pure); this module does the I/O. Two tasks per
connection: the *client pump* (``client_pump.py``) reads the client and
writes to the current worker; the connection's own task runs the *worker
pump* (``worker_pump.py``) and, between workers, the switch of
``failover.py``. When the core says both directions are plain relaying the
pumps park and the connection's sockets join the relay engine
(``engine.py``), which relays without waking them; anything special hands
the connection back, with what the engine read but did not finish left in
the core as a backlog that the pumps process first.

Each pump reads, feeds the core and writes what it answers in one piece, so
backpressure is TCP's: a pump that cannot write does not read, and at most
one read (64 KiB) plus one partial frame is held per direction. A slow
client stalls only its own worker connection.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import TYPE_CHECKING, Final

import trio

from agentvisor.router.channels import Channel, ChannelClosed, SocketChannel
from agentvisor.router.client_pump import client_pump, wrap_message
from agentvisor.router.closing import finish
from agentvisor.router.connection import ConnectionCore
from agentvisor.router.engine import engine_error, on_client_readable, on_upstream_readable
from agentvisor.router.failover import relay_loop
from agentvisor.router.frames import CLOSE_GOING_AWAY, OP_PING, encode_frame, random_mask
from agentvisor.router.notices import error, notification, timestamp
from agentvisor.router.outcomes import CLEANUP_TIMEOUT, CLOSE_TIMEOUT
from agentvisor.router.policy import Action, Close, Notify, Ping, Policy
from agentvisor.router.sessions import Learned, SessionTracker
from agentvisor.router.streams import KEEPALIVE_PAYLOAD
from agentvisor.router.writer import ClientWriter

if TYPE_CHECKING:
    from agentvisor.router.routing import Plan
    from agentvisor.router.server import Router
    from agentvisor.router.upstream import Upstream

PING_FRAME: Final = encode_frame(OP_PING, KEEPALIVE_PAYLOAD)


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
        policy: Policy,
    ) -> None:
        self.router = router
        self.id = connection_id
        self.client = client
        self.client_ip = client_ip
        self.plan = plan
        self.scope = trio.CancelScope()
        self.tracker = SessionTracker(
            id_prefix=f"r{os.urandom(6).hex()}",
            max_kept=router.config.router.max_messages_in_flight,
        )
        self.core = ConnectionCore(
            policy,
            now=time.monotonic(),
            tracker=self.tracker,
            error_notice=lambda code, message, recoverable: error(
                code, message, recoverable=recoverable
            ),
            encode=self._encode,
            timestamp=timestamp,
        )
        self.writer = ClientWriter(client, self.core, evict=self.leave_engine)
        self.client_initial = initial
        self.upstream: Upstream | None = None
        self.ready_event = trio.Event()  # set while a worker is attached
        self.client_sending = False  # the client pump writes to a worker
        self.awaiting_idle_client = False  # a switch waits for the client pump's write to end
        self.client_waiting = False  # the client pump waits for a worker (its buffer is full)
        self.client_ended = trio.Event()  # the client pump returned
        self.changed = trio.Event()  # set (and replaced) on turns ending, switches, the end
        self.interruptible: trio.CancelScope | None = None
        self.pump_receiving = False
        self.rerun_pump = False
        self.close_deadline = math.inf  # the client's close went to the worker: its answer by then
        self.ended = False
        # the engine hand-off
        self.in_engine = False
        self.engine_lock = threading.Lock()  # the engine's thread vs this connection's tasks
        self.engine_exit = trio.Event()
        self.client_parked = False
        self.upstream_parked = False
        self.client_read_scope: trio.CancelScope | None = None
        self.client_write: tuple[bytes, int] | None = None  # the engine's unfinished write
        self.client_hangup = False  # the engine met the client's end of stream or an error
        self.client_counted = 0
        self.upstream_counted = 0
        self.carry_in = 0
        self.carry_out = 0

    # -- views ---------------------------------------------------------------------

    @property
    def close_code(self) -> int | None:
        return self.core.close_code

    @property
    def close_reason(self) -> str:
        return self.core.close_reason

    @property
    def up_ready(self) -> bool:
        """A worker is attached (else the core keeps the client's bytes)."""
        return self.core.is_attached

    @property
    def switches(self) -> int:
        return self.core.switches

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
        held = self.core.held_bytes
        if self.upstream is not None:
            held += len(self.upstream.initial)
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
                await finish(self, shutdown=shutdown and self.close_code is None)
            self.notify_changed()

    def connect(self, upstream: Upstream) -> None:
        """A new worker connection (a failover's candidate); not relaying through it yet."""
        self.upstream = upstream
        self.core.upstream_connected()

    def attach(self, upstream: Upstream) -> None:
        if self.upstream is not upstream:
            self.connect(upstream)
        self.core.attached(time.monotonic())
        self.ready_event.set()

    def detach(self) -> None:
        """No worker for now: client frames are kept by the core until ``attach``."""
        self.leave_engine()
        if self.core.is_attached:
            self.core.detached()
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
        self.core.drain(reason, force_at=force_at)
        self.interrupt(only_if_receiving=True)

    def end(self, code: int, reason: str) -> None:
        """Close the connection now with ``code`` (keepalive timeout, forced disconnect)."""
        self.core.end(code, reason)
        self.leave_engine()
        self.scope.cancel()

    async def send_notice(self, frame: bytes) -> bool:
        """A management event, if the route's agents understand them (PROTOCOL.md §2)."""
        return await self.writer.send_notice(frame)

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
        self.core.end(CLOSE_GOING_AWAY, reason)
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
        """The core says both directions are plain relaying, and no I/O is half done."""
        up = self.upstream
        return (
            up is not None
            and self.core.plain
            and not self.ended
            and not self.writer.busy
            and self.writer.usable
            and isinstance(self.client, SocketChannel)
            and not self.client_initial
            and not up.initial
            and self.client_write is None
            and not self.client_hangup
        )

    def engine_hangup(self, reason: str) -> None:
        """The engine met the client's end of stream or a read error: a task reads again."""
        self.client_hangup = True
        self.engine_handoff(reason)

    def engine_unsent(self, data: bytes, sent: int) -> None:
        """The engine could write only ``sent`` bytes of ``data`` to the worker."""
        self.client_write = (data, sent)
        self.engine_handoff("client write blocked")

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
        done = self.core.inbound.scanner.messages - self.client_counted
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

    def count_out(self, size: int, *, engine: bool = False) -> None:
        totals = self.router.engine if engine else self.router
        totals.bytes_out += size
        done = self.core.upstream_messages - self.upstream_counted
        if not done:
            self.carry_out += size
            return
        self.upstream_counted += done
        totals.messages_out += done
        now = time.time()
        table = self.router.table
        table.count_out(self.id, size + self.carry_out, now)
        self.carry_out = 0
        for _ in range(done - 1):
            table.count_out(self.id, 0, now)

    def observe_upstream(self, learned: list[Learned]) -> None:
        """What the core learned from worker messages: for the table and the drain."""
        table = self.router.table
        changed = False
        for fact in learned:
            if fact.session is not None:
                table.learn_session(self.id, fact.session)
            if fact.closed is not None:
                table.forget_session(fact.closed)
            changed = changed or fact.turn_ended or fact.closed is not None
        if changed:
            self.notify_changed()

    # -- the client → worker direction ---------------------------------------------

    async def to_upstream(self, data: bytes, sent: int = 0) -> None:
        """Write client bytes to the worker, or have the core keep them while there is none.

        ``sent``: bytes of ``data`` the engine already wrote to the current worker.
        """
        core = self.core
        while not core.is_attached:
            if core.hold(data):
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
            core.client_written()
        except ChannelClosed:
            # The worker went away under the write: its successor gets these bytes.
            self.detach()
            core.hold(data, force=True)
            self.interrupt(only_if_receiving=True)
        finally:
            self.client_sending = False
            if self.awaiting_idle_client:
                self.notify_changed()

    def _encode(self, opcode: int, payload: bytes) -> bytes:
        """A client message as the worker gets it (masked; wrapped if the route asks)."""
        if self.plan.wrap:
            return wrap_message(self, opcode, payload)
        return encode_frame(opcode, payload, mask=random_mask())
