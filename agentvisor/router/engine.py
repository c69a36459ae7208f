"""The relay engine: the steady state of every connection, in one thread with its own epoll.

Waking a trio task costs about 8 µs of CPU here (an ``epoll_ctl`` per wait,
the reschedule, the coroutine switch, and trio's own ``epoll_wait``), twice
per relayed round trip, which put even a minimal task-per-direction relay
near three times nginx's CPU per message, and added its latency to every
hop. So a connection whose two pumps have nothing special to do is handed to
the engine: its two sockets join a private level-triggered epoll, the pumps
park, and one thread blocked in that epoll relays every ready socket in a
plain loop: read, scan the frame headers, write, count. No task switch, no
trio round per message.

Everything else stays with the connection's trio tasks. A chunk with a
control frame, a message the relay must read (``agent.``, ``user.message``),
a write that would block, a protocol error or the end of a stream makes the
engine hand the connection back: it unregisters the sockets, leaves what it
read but did not finish as a backlog on the connection, and asks trio (
``run_sync_soon``) to wake the parked pumps, which carry on as if they had
read it themselves. The trio side takes a connection back the same way,
under the connection's ``engine_lock``, before it does anything with it
(a router frame to write, a close, a switch).
"""

from __future__ import annotations

import logging
import select
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from agentvisor.router.channels import RECV_SIZE, SocketChannel
from agentvisor.router.frames import RAW, FrameError

if TYPE_CHECKING:
    from agentvisor.router.relay import Connection

log = logging.getLogger("agentvisor.router")

MAX_EVENTS = 512


class RelayEngine:
    """A private epoll and the thread that serves it (``run``, in the router's nursery)."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._handlers: dict[int, Callable[[], None]] = {}
        self._wake_read, self._wake_write = socket.socketpair()
        self._epoll.register(self._wake_read.fileno(), select.EPOLLIN)
        self._token: trio.lowlevel.TrioToken | None = None
        self.entries = 0
        self.handoffs: Counter[str] = Counter()  # why connections were handed back
        # Totals of what the engine relayed (the router adds its tasks' own).
        self.bytes_in = 0
        self.bytes_out = 0
        self.messages_in = 0
        self.messages_out = 0

    def __len__(self) -> int:
        return len(self._handlers)

    def add(self, fd: int, handler: Callable[[], None]) -> None:
        self._handlers[fd] = handler
        self._epoll.register(fd, select.EPOLLIN)

    def remove(self, fd: int) -> None:
        if self._handlers.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass  # closed already: the kernel dropped it from the set

    def call_soon(self, function: Callable[[], None]) -> None:
        """Run ``function`` in trio's thread (from the engine's)."""
        if self._token is None:
            return
        try:
            self._token.run_sync_soon(function)
        except trio.RunFinishedError:
            pass

    async def run(self) -> None:
        """Serve the epoll in a thread until cancelled."""
        self._token = trio.lowlevel.current_trio_token()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._stop_when_cancelled)
                await trio.to_thread.run_sync(self._loop)
        finally:
            self._epoll.close()
            self._wake_read.close()
            self._wake_write.close()

    async def _stop_when_cancelled(self) -> None:
        try:
            await trio.sleep_forever()
        finally:
            self._wake_write.send(b"x")

    def _loop(self) -> None:
        poll = self._epoll.poll
        handlers = self._handlers
        wake = self._wake_read.fileno()
        while True:
            for fd, _mask in poll(-1, MAX_EVENTS):
                if fd == wake:
                    return
                handler = handlers.get(fd)
                if handler is not None:
                    handler()


def on_client_readable(conn: Connection) -> None:
    """Client → worker, in the engine's thread, under ``conn.engine_lock``."""
    channel = conn.client
    up = conn.upstream
    assert isinstance(channel, SocketChannel)
    assert up is not None
    try:
        data = channel.sock.recv(RECV_SIZE)
    except BlockingIOError:
        return
    except OSError:
        conn.client_hangup = True  # the pump reads again, in a task, and meets the error
        conn.engine_handoff("client read error")
        return
    if not data:
        conn.client_hangup = True  # and the end of the stream
        conn.engine_handoff("client eof")
        return
    conn.core.client_activity(time.monotonic())
    scanner = conn.client_scanner
    try:
        buf, records = scanner.feed(data)
    except FrameError as violation:
        conn.client_error = violation
        conn.engine_handoff("client violation")
        return
    if not records:
        return  # the start of a frame, held until the rest comes
    if len(records) > 1 or records[0][0] != RAW or records[0][2] != len(buf):
        conn.client_backlog = (buf, records)  # a control frame, or a message to read
        conn.engine_handoff("client frames to read")
        return
    out = buf if records[0][1] == 0 else buf[records[0][1] :]
    conn.count_in(len(out), engine=True)
    try:
        sent = up.channel.sock.send(out)
    except BlockingIOError:
        sent = 0
    except OSError:
        sent = -1
    if sent != len(out):
        conn.client_write = (out, max(sent, 0))
        conn.engine_handoff("client write blocked")
        return
    conn.client_sent_boundary = scanner.sent_to_message_boundary


def on_upstream_readable(conn: Connection) -> None:
    """Worker → client, in the engine's thread, under ``conn.engine_lock``."""
    up = conn.upstream
    client = conn.client
    assert up is not None
    assert isinstance(client, SocketChannel)
    try:
        data = up.channel.sock.recv(RECV_SIZE)
    except BlockingIOError:
        return
    except OSError:
        up.failed = True
        conn.engine_handoff("upstream read error")
        return
    if not data:
        up.failed = True
        conn.engine_handoff("upstream eof")
        return
    scanner = up.scanner
    try:
        buf, records = scanner.feed(data)
    except FrameError:
        up.failed = True
        conn.engine_handoff("upstream violation")
        return
    if not records:
        return
    if len(records) > 1 or records[0][0] != RAW or records[0][2] != len(buf):
        up.backlog = (buf, records)
        conn.engine_handoff("upstream frames to read")
        return
    out = buf if records[0][1] == 0 else buf[records[0][1] :]
    conn.count_out(up, len(out), engine=True)
    boundary = scanner.sent_to_boundary
    try:
        sent = client.sock.send(out)
    except BlockingIOError:
        sent = 0
    except OSError:
        sent = -1
    if sent != len(out):
        conn.writer.at_boundary = False
        up.write_rest = (out, max(sent, 0), boundary)
        conn.engine_handoff("client write blocked")
        return
    conn.writer.at_boundary = boundary


def engine_error(conn: Connection, error: BaseException) -> None:
    log.error("router relay of connection %s failed", conn.id, exc_info=error)
    conn.engine_handoff("engine error")
