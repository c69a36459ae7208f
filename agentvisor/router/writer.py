"""The client side's single writer: it writes what the connection core hands out, in order.

Several tasks write to a client: the relay (frames from the worker), the
keepalive (pings), management events (routed, switched, notifications) and
closes. They do not choose where their bytes go: the relay puts what it read
into the core's client-bound queue, a frame of the router's own is queued
beside it (``output.py``), and whichever task finds the writer idle takes the
next bytes from the core and writes them. The core hands a frame of the
router's own out only at a frame boundary, so no task needs to know where one
is. One write at a time (``busy``), in the order the core handed the bytes out.

After a write was interrupted half-way (``broken``) the stream is unusable
and the only thing left is to drop the connection.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import trio

from agentvisor.router.channels import Channel, ChannelClosed, SocketChannel
from agentvisor.router.connection import ConnectionCore
from agentvisor.router.frames import (
    CONTROL,
    OP_CLOSE,
    FrameError,
    FrameScanner,
    close_payload,
    encode_frame,
)


class ClientWriter:
    __slots__ = ("_evict", "_lot", "broken", "busy", "channel", "core")

    def __init__(
        self, channel: Channel, core: ConnectionCore, *, evict: Callable[[str], None]
    ) -> None:
        self.channel = channel
        self.core = core
        self._evict = evict  # takes the connection back from the relay engine first
        self.busy = False
        self.broken = False
        self._lot: trio.lowlevel.ParkingLot | None = None  # created on first contention

    @property
    def usable(self) -> bool:
        return not self.broken

    async def flush(self) -> None:
        """Write the relayed bytes waiting in the core (and own frames they let through)."""
        core = self.core
        while core.output.has_relayed and not self.broken:
            if self.busy:
                await self._park()
                continue
            await self._write(core.take_output())

    async def send_frame(self, frame: bytes, *, close: bool = False) -> bool:
        """Write one whole frame of the router's own; False when it cannot go (any more)."""
        self._evict("router frame")
        ticket = self.core.send_own(frame, close=close)
        return await self._until_out(ticket)

    async def send_notice(self, frame: bytes) -> bool:
        """A management event, if the route's agents understand them (PROTOCOL.md §2)."""
        self._evict("router frame")
        return await self._until_out(self.core.notice(frame))

    async def close(self, code: int, reason: str = "") -> bool:
        """Send our close frame (once); afterwards nothing more is written."""
        return await self.send_frame(
            encode_frame(OP_CLOSE, close_payload(code, reason)), close=True
        )

    async def _until_out(self, ticket: int | None) -> bool:
        if ticket is None:
            return False
        output = self.core.output
        while not output.handed_out(ticket):
            if self.broken:
                return False
            data = b"" if self.busy else self.core.take_output()
            if data:
                await self._write(data)
            else:  # another write is under way, or the relay has not reached a boundary
                await self._park()
        while self.busy:  # the write that carries it
            await self._park()
        return not self.broken

    async def _write(self, data: bytes) -> None:
        self.busy = True
        try:
            await self.channel.send(data)
        except BaseException:
            self.broken = True
            raise
        finally:
            self.busy = False
            self.wake()

    async def _park(self) -> None:
        if self._lot is None:
            self._lot = trio.lowlevel.ParkingLot()
        await self._lot.park()

    def wake(self) -> None:
        if self._lot:
            self._lot.unpark_all()


async def await_close_reply(channel: Channel, *, parse: bool) -> None:
    """After our close frame: half-close, then read until the peer's close or EOF (≤ 1 s).

    Closing a socket with unread bytes sends a reset, which can destroy our
    close frame before the client reads it; reading first avoids that.
    ``parse`` false: the peer broke the protocol, its bytes are just drained.
    """
    if isinstance(channel, SocketChannel):
        try:
            channel.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return
    scanner = FrameScanner(masked=True) if parse else None
    with trio.move_on_after(1.0):
        while True:
            try:
                data = await channel.recv()
            except ChannelClosed:
                return
            if not data:
                return
            if scanner is None:
                continue
            try:
                _buf, records = scanner.feed(data)
            except FrameError:
                scanner = None
                continue
            if any(r[0] == CONTROL and r[1] == OP_CLOSE for r in records):
                return
