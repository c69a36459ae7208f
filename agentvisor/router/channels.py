"""Byte channels for the relay: a bare socket on trio's I/O waits, or any trio Stream.

The relay's hot path is "read what arrived, write it to the other side".
``trio.SocketStream`` yields to the scheduler twice on every call, even when
the data is already there; :class:`SocketChannel` tries the non-blocking
call first and only waits (``wait_readable`` / ``wait_writable``) when the
kernel says it would block, with a scheduler checkpoint every few calls so
that a connection that always has data cannot starve the others. That
roughly halves the router's CPU per relayed message. TLS (``wss://``) goes
through :class:`StreamChannel` over ``trio.SSLStream``.

Both raise ``OSError`` subclasses or ``trio.ClosedResourceError`` /
``trio.BrokenResourceError`` when the connection is gone; ``recv`` returns
``b""`` at end of stream. ``close`` wakes a task blocked on the channel (it
gets ``ClosedResourceError``), which is how a dead worker's channel is
abandoned while another task is still writing to it.
"""

from __future__ import annotations

import os
import socket
from typing import Protocol

import trio

#: Bytes read per call: enough for many small frames at once, small enough to copy cheaply.
RECV_SIZE = 65536
#: Non-blocking calls allowed in a row before a channel yields to the scheduler.
FAIRNESS = 16

ChannelClosed = (OSError, trio.ClosedResourceError, trio.BrokenResourceError)


class Channel(Protocol):
    async def recv(self) -> bytes: ...

    async def send(self, data: bytes | bytearray | memoryview) -> None: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


class SocketChannel:
    """A connected non-blocking stdlib socket, driven by trio's lowlevel I/O waits.

    After a short read the socket was drained, so the next ``recv`` waits for
    readiness first instead of paying a failing ``recv`` (a syscall and an
    exception) that would only say "not yet": in request/response traffic
    that is every other read.
    """

    __slots__ = ("_closed", "_drained", "_streak", "fd", "sock")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self._streak = 0
        self._drained = False
        self._closed = False

    async def recv(self) -> bytes:
        sock = self.sock
        if self._drained:
            self._streak = 0
            await trio.lowlevel.wait_readable(self.fd)
        while True:
            try:
                data = sock.recv(RECV_SIZE)
            except BlockingIOError:
                self._streak = 0
                await trio.lowlevel.wait_readable(self.fd)
                continue
            self._drained = len(data) < RECV_SIZE
            if not self._drained:
                self._streak += 1
                if self._streak >= FAIRNESS:
                    self._streak = 0
                    # Data is in hand: yield without risking a Cancelled that would lose it.
                    await trio.lowlevel.cancel_shielded_checkpoint()
            return data

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        while view:
            await trio.lowlevel.wait_writable(self.fd)
            try:
                sent = self.sock.send(view)
            except BlockingIOError:
                continue
            view = view[sent:]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        trio.lowlevel.notify_closing(self.sock)
        self.sock.close()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    def abort(self) -> None:
        """Close with a reset (SO_LINGER 0): for peers that must not get a clean end."""
        if not self._closed:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            except OSError:
                pass
        self.close()


class StreamChannel:
    """Any trio Stream (``SSLStream`` for ``wss://``); simpler, and slower, than the socket."""

    __slots__ = ("_closed", "stream")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._closed = False

    async def recv(self) -> bytes:
        return bytes(await self.stream.receive_some(RECV_SIZE))

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    def close(self) -> None:
        """Drop the transport now, without a TLS close_notify (that needs ``aclose``)."""
        if self._closed:
            return
        self._closed = True
        transport = self.stream
        while isinstance(transport, trio.SSLStream):
            transport = transport.transport_stream
        if isinstance(transport, trio.SocketStream):
            trio.lowlevel.notify_closing(transport.socket)
            transport.socket.close()

    async def aclose(self) -> None:
        self._closed = True
        with trio.move_on_after(1) as scope:
            scope.shield = True
            await trio.aclose_forcefully(self.stream)


#: Unsent bytes a client socket may queue in the kernel before it stops being writable.
NOTSENT_LOWAT = 128 * 1024


def configure_socket(sock: socket.socket, *, client: bool = False) -> None:
    """No Nagle delay: the relay writes whole frames and wants them out at once.

    ``client``: also bound the unsent bytes the kernel queues (``TCP_NOTSENT_LOWAT``).
    Without it a slow reader's socket takes megabytes (the send buffer grows to
    ``tcp_wmem``) before it pushes back, and the router's own frames queued
    after them (a keepalive ping, a close) reach the reader seconds late; with
    it they wait behind at most this much plus what the network holds.
    """
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lowat = getattr(socket, "TCP_NOTSENT_LOWAT", None)
        if client and lowat is not None:
            sock.setsockopt(socket.IPPROTO_TCP, lowat, NOTSENT_LOWAT)
    except OSError:
        pass


async def connect_tcp(host: str, port: int) -> SocketChannel:
    """Open a TCP connection to a worker; the caller bounds how long it may take."""
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    error: OSError | None = None
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            try:
                sock.connect(address)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, os.strerror(code)) from None
        except OSError as failed:
            sock.close()
            error = failed
            continue
        except BaseException:
            sock.close()
            raise
        configure_socket(sock)
        return SocketChannel(sock)
    raise error if error is not None else OSError(f"no address for {host}:{port}")
