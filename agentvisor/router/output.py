"""What goes to the client, in order: relayed bytes and the router's own frames (pure).

The worker → client stream is one queue. The relay puts in what it read
(each piece marked with whether it ends at a frame boundary); the router's
own frames (keepalive pings, management events, its close) wait beside it;
the client's writer takes the next bytes with :meth:`ClientOutput.take`
and writes them in that order. A frame of the router's own is handed out
only when everything handed out before ends at a frame boundary, so the
boundary is known by construction: it is the boundary after the last byte
given to the writer, never a flag the writer is told. The start of the next
frame the scanner holds back was never handed out, so it cannot make a ping
wait (issue 14.1: a slow reader of a continuous stream got no ping).

Own frames go at the first boundary after they are queued, ahead of relayed
bytes queued before them, so a notice is not starved by a busy stream. After
a close frame (the router's own, or the worker's relayed) nothing more is
accepted, and relayed bytes still queued behind the router's close are
dropped.
"""

from __future__ import annotations


class ClientOutput:
    __slots__ = (
        "_own",
        "_own_close",
        "_queue",
        "boundary",
        "closed",
        "queued_own",
        "relayed",
        "taken_own",
    )

    def __init__(self) -> None:
        self._queue: list[tuple[bytes, bool]] = []  # relayed: (bytes, ends at a boundary)
        self._own: list[bytes] = []
        self._own_close = False  # a close of our own is among ``_own``
        self.boundary = True  # what was handed out ends at a frame boundary
        self.closed = False  # a close frame was queued: nothing more is accepted
        self.queued_own = 0  # own frames queued so far (tickets)
        self.taken_own = 0  # own frames handed out so far
        self.relayed = 0  # bytes accepted by ``relay`` so far (the counters; not the fast path)

    @property
    def empty(self) -> bool:
        """Nothing waits to be handed out."""
        return not self._queue and not self._own

    @property
    def has_relayed(self) -> bool:
        """Relayed bytes wait: ``take`` will hand out something."""
        return bool(self._queue)

    @property
    def own_closed(self) -> bool:
        """A close frame of the router's own was queued."""
        return self._own_close

    @property
    def queued_bytes(self) -> int:
        return sum(len(piece) for piece, _ in self._queue) + sum(map(len, self._own))

    def relay(self, data: bytes, boundary: bool, *, closing: bool = False) -> None:
        """Relayed bytes; ``closing``: they end with the worker's close frame.

        While a close of our own waits for a boundary, relayed bytes still come in
        (they may complete the frame it waits behind); the close drops the rest.
        """
        if self.closed and not (self._own_close and self._own):
            return
        if data:
            self._queue.append((data, boundary))
            self.relayed += len(data)
        if closing:
            self.closed = True

    def pass_through(self, boundary: bool) -> bool:
        """The fast path: may relayed bytes go out at once (nothing waits)? Then they do."""
        if self._queue or self._own or self.closed:
            return False
        self.boundary = boundary
        return True

    def give_back(self, rest: bytes) -> None:
        """The end of what was handed out could not be written now: it goes out first."""
        if rest:
            self._queue.insert(0, (rest, self.boundary))
            self.boundary = False

    def own(self, frame: bytes, *, close: bool = False) -> int | None:
        """Queue a frame of the router's own; its ticket, or None after a close."""
        if self.closed:
            return None
        self._own.append(frame)
        self.queued_own += 1
        if close:
            self._own_close = True
            self.closed = True
        return self.queued_own

    def handed_out(self, ticket: int) -> bool:
        return self.taken_own >= ticket

    def take(self) -> bytes:
        """The next bytes to write (b"" when nothing may go now)."""
        if self._own and self.boundary:
            frames = b"".join(self._own) if len(self._own) > 1 else self._own[0]
            self._own.clear()
            self.taken_own = self.queued_own
            if self._own_close:
                self._queue.clear()
            return frames
        if self._queue:
            data, self.boundary = self._queue.pop(0)
            return data
        return b""
