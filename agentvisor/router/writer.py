"""The client side's single writer: relayed bytes and the router's own frames, never interleaved.

Several tasks write to a client: the relay (frames from the worker), the
keepalive (pings), management events (routed, switched, notifications) and
closes. A frame of the router's own may only go out between two frames, and
only when no other write is under way. The relay calls :meth:`relay` with
what it read and whether that ended at a frame boundary; everything else
calls :meth:`send_frame`, which waits for a boundary and takes priority over
the relay there, so a notification is not starved by a busy stream.

After our close frame (``closed``) nothing more is written; after a write
was interrupted half-way (``broken``) the stream is unusable and the only
thing left is to drop the connection.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import trio

from agentvisor.router.channels import Channel, ChannelClosed, SocketChannel
from agentvisor.router.frames import (
    CONTROL,
    OP_CLOSE,
    FrameError,
    FrameScanner,
    close_payload,
    encode_frame,
)


class ClientWriter:
    __slots__ = (
        "_evict",
        "_lot",
        "_waiting",
        "at_boundary",
        "broken",
        "busy",
        "channel",
        "closed",
    )

    def __init__(self, channel: Channel, *, evict: Callable[[str], None] | None = None) -> None:
        self.channel = channel
        self._evict = evict  # takes the connection back from the relay engine first
        self.busy = False
        self.at_boundary = True
        self.broken = False
        self.closed = False
        self._waiting = 0  # router frames waiting for a boundary
        self._lot: trio.lowlevel.ParkingLot | None = None  # created on first contention

    @property
    def waiting(self) -> bool:
        """A frame of the router's own waits for its turn."""
        return self._waiting > 0

    @property
    def usable(self) -> bool:
        return not self.closed and not self.broken

    async def relay(self, data: bytes | memoryview, boundary: bool) -> None:
        """Write relayed bytes; ``boundary``: they end at a frame boundary."""
        if self.busy or (self._waiting and self.at_boundary):
            await self._park_until(
                lambda: not self.busy and not (self._waiting and self.at_boundary)
            )
        if self.closed or self.broken:
            return  # nothing may follow a close; relayed bytes are dropped
        self.busy = True
        try:
            await self.channel.send(data)
        except BaseException:
            self.broken = True
            raise
        finally:
            self.busy = False
            self.wake()
        self.at_boundary = boundary

    async def send_frame(self, frame: bytes) -> bool:
        """Write one whole frame of the router's own; False when the stream is unusable."""
        self._waiting += 1
        if self._evict is not None:
            self._evict("router frame")
        try:
            if self.busy or not self.at_boundary:
                await self._park_until(
                    lambda: (not self.busy and self.at_boundary) or self.closed or self.broken
                )
            if self.closed or self.broken:
                return False
            self.busy = True
            try:
                await self.channel.send(frame)
            except BaseException:
                self.broken = True
                raise
            finally:
                self.busy = False
        finally:
            self._waiting -= 1
            self.wake()
        return True

    async def close(self, code: int, reason: str = "") -> bool:
        """Send our close frame (once); afterwards nothing more is written."""
        if self.closed:
            return False
        sent = await self.send_frame(encode_frame(OP_CLOSE, close_payload(code, reason)))
        self.closed = True
        self.wake()
        return sent

    def mark_closed(self) -> None:
        """A close frame was relayed (the worker's): nothing may follow it."""
        self.closed = True
        self.wake()

    async def _park_until(self, ready: Callable[[], bool]) -> None:
        if self._lot is None:
            self._lot = trio.lowlevel.ParkingLot()
        while not ready():
            if not self.busy:
                self.wake()  # the state may have changed without a wake (the engine writes)
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
