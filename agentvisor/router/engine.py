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
read but did not finish as a backlog in the connection's core, and asks trio (
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
        conn.engine_hangup("client read error")  # the pump reads again and meets the error
        return
    if not data:
        conn.engine_hangup("client eof")
        return
    core = conn.core
    out = core.client_fast(data, time.monotonic())
    if out is None:
        conn.engine_handoff("client frames to read")  # a control frame, a message to read
        return
    if not out:
        return  # the start of a frame, held until the rest comes
    conn.count_in(len(out), engine=True)
    try:
        sent = up.channel.sock.send(out)
    except BlockingIOError:
        sent = 0
    except OSError:
        sent = -1
    if sent != len(out):
        conn.engine_unsent(out, max(sent, 0))
        return
    core.client_written()


def on_upstream_readable(conn: Connection) -> None:
    """Worker → client, in the engine's thread, under ``conn.engine_lock``."""
    up = conn.upstream
    client = conn.client
    assert up is not None
    assert isinstance(client, SocketChannel)
    core = conn.core
    try:
        data = up.channel.sock.recv(RECV_SIZE)
    except BlockingIOError:
        return
    except OSError:
        core.upstream_eof()
        conn.engine_handoff("upstream read error")
        return
    if not data:
        core.upstream_eof()
        conn.engine_handoff("upstream eof")
        return
    out = core.upstream_fast(data)
    if out is None:
        conn.engine_handoff("upstream frames to read")
        return
    if not out:
        return
    conn.count_out(len(out), engine=True)
    try:
        sent = client.sock.send(out)
    except BlockingIOError:
        sent = 0
    except OSError:
        sent = -1
    if sent != len(out):
        core.give_back_output(out[max(sent, 0) :])
        conn.engine_handoff("client write blocked")


def engine_error(conn: Connection, error: BaseException) -> None:
    log.error("router relay of connection %s failed", conn.id, exc_info=error)
    conn.engine_handoff("engine error")
