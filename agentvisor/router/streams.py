"""The two byte streams of a connection, scanned (pure): what to forward, what to read.

:class:`ClientStream` (client → worker) and :class:`WorkerStream` (worker →
client, one per worker connection) wrap a :class:`~agentvisor.router.frames.FrameScanner`
and turn what was read into the bytes to forward, the messages the core must
read and the close frame met, if any. They decide nothing about the
connection: the core (``connection.py``) owns them and says what a close
means. The engine's fast path (the core's ``*_fast``) is one scan and one slice;
a chunk with anything else in it is kept as a backlog for a task (``feed(b"")``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from agentvisor.router.compression import Inflater
from agentvisor.router.frames import (
    DEFLATE_INFLATE,
    DEFLATE_NONE,
    DEFLATE_PASS,
    DEFLATED,
    MESSAGE,
    OP_CLOSE,
    OP_PONG,
    OP_TEXT,
    RAW,
    FrameScanner,
    Record,
    parse_close,
)
from agentvisor.router.policy import Policy
from agentvisor.router.sessions import Refused, SessionTracker

CLIENT_NEEDLES: Final = (b"user.message",)
UPSTREAM_NEEDLES: Final = (b"agent.",)
KEEPALIVE_PAYLOAD: Final = b"agentvisor-keepalive"
#: An agent worker's events up to this size are read, even those streamed through in
#: pieces (a final answer over 64 KiB still ends its turn).
AGENT_READ_LIMIT: Final = 1024 * 1024

#: ``encode(opcode, payload)``: a client message as the worker gets it (masked; wrapped
#: when the route asks). Injected: masks are random.
Encode = Callable[[int, bytes], bytes]
#: A close frame met: (code, reason, the frame's bytes as read).
CloseFrame = tuple[int, str, bytes]


def _plain_run(buf: bytes, records: list[Record]) -> bytes | None:
    """The bytes to forward when ``records`` are one raw range to the end; else None."""
    if len(records) == 1 and records[0][0] == RAW and records[0][2] == len(buf):
        return buf if records[0][1] == 0 else buf[records[0][1] :]
    return None


class _Stream:
    """One direction's scanner and the chunk the engine kept back from it."""

    __slots__ = ("_backlog", "scanner")

    def __init__(self, scanner: FrameScanner) -> None:
        self.scanner = scanner
        self._backlog: tuple[bytes, list[Record]] | None = None

    @property
    def has_backlog(self) -> bool:
        return self._backlog is not None

    def keep(self, buf: bytes, records: list[Record]) -> None:
        """A chunk the engine scanned but cannot forward as it is: ``feed(b"")`` takes it."""
        self._backlog = (buf, records)

    def _scan(self, data: bytes) -> tuple[bytes, list[Record]] | None:
        """``data`` scanned, or with b"" the kept chunk; None: nothing to do."""
        if data:
            return self.scanner.feed(data)
        backlog, self._backlog = self._backlog, None
        return backlog


def deflate_mode(policy: Policy) -> int:
    """How a scanner treats RSV1 on a leg where ``policy`` applies (``frames.DEFLATE_*``)."""
    if policy.deflate is None:
        return DEFLATE_NONE
    return DEFLATE_INFLATE if policy.deflate.at_router else DEFLATE_PASS


class ClientStream(_Stream):
    """Client → worker: keepalive pongs swallowed, ``user.message`` counted and given an id,
    compressed messages inflated (bounded) when the router holds the extension."""

    __slots__ = ("_encode", "_inflater", "_policy", "_tracker", "refused")

    def __init__(self, policy: Policy, tracker: SessionTracker, encode: Encode) -> None:
        self._policy = policy
        self._tracker = tracker
        self._encode = encode
        self.refused: list[Refused] = []  # taken out of the stream; the core answers them
        deflate = policy.deflate
        self._inflater = Inflater(deflate) if deflate is not None and deflate.at_router else None
        super().__init__(
            FrameScanner(
                masked=True,
                max_message_bytes=policy.client_limit,
                needles=CLIENT_NEEDLES,
                whole_messages=policy.wrap,
                deflate=deflate_mode(policy),
            )
        )

    def feed(self, data: bytes) -> tuple[bytes, CloseFrame | None]:
        """Bytes to forward (up to a close frame) and the close; b"": the backlog."""
        scanned = self._scan(data)
        if scanned is None:
            return b"", None
        buf, records = scanned
        out = _plain_run(buf, records)
        if out is not None:
            return out, None
        pieces: list[bytes] = []
        swaps: list[tuple[int, int, bytes]] = []  # frames sent in another form
        policy = self._policy
        for record in records:
            kind = record[0]
            if kind == RAW:
                if swaps:
                    _with_swaps(pieces, buf, record[1], record[2], swaps)
                else:
                    pieces.append(buf[record[1] : record[2]])
            elif kind in (MESSAGE, DEFLATED):
                opcode, payload = record[1], record[2]
                inflated = kind == DEFLATED  # re-encoded uncompressed, not in a RAW range
                if inflated:
                    assert self._inflater is not None
                    payload = self._inflater.inflate(payload, policy.client_limit)
                if policy.wrap:
                    pieces.append(self._encode(opcode, payload))
                sent: bytes | Refused | None = payload
                if opcode == OP_TEXT and b"user.message" in payload:
                    can_rewrite = (
                        policy.agent_protocol and not policy.wrap and (inflated or record[3] >= 0)
                    )
                    sent = self._tracker.client_message(payload, can_rewrite=can_rewrite)
                    if isinstance(sent, Refused):  # not relayed: the client is answered
                        self.refused.append(sent)
                        if not inflated:
                            swaps.append((record[3], record[4], b""))
                        continue
                    if sent is not None and sent is not payload and not inflated:
                        swaps.append((record[3], record[4], self._encode(OP_TEXT, sent)))
                if inflated and not policy.wrap:
                    relayed = sent if isinstance(sent, bytes) else payload
                    pieces.append(self._encode(opcode, relayed))
            elif record[1] == OP_CLOSE:
                code, reason = parse_close(record[2])
                return b"".join(pieces), (code, reason, buf[record[3] : record[4]])
            elif record[1] == OP_PONG and record[2] == KEEPALIVE_PAYLOAD:
                continue  # the answer to our keepalive ping
            else:
                pieces.append(buf[record[3] : record[4]])
        return b"".join(pieces), None


class WorkerStream(_Stream):
    """Worker → client for one worker connection: ``agent.*`` messages picked out."""

    __slots__ = ()

    def __init__(self, *, agent_protocol: bool = True, deflate: int = DEFLATE_NONE) -> None:
        read_limit = AGENT_READ_LIMIT if agent_protocol else None
        super().__init__(
            FrameScanner(
                masked=False, needles=UPSTREAM_NEEDLES, read_limit=read_limit, deflate=deflate
            )
        )

    def feed(self, data: bytes) -> tuple[bytes, list[bytes], CloseFrame | None]:
        """Bytes to forward (up to a close frame), the messages to read, and the close."""
        scanned = self._scan(data)
        if scanned is None:
            return b"", [], None
        buf, records = scanned
        out = _plain_run(buf, records)
        if out is not None:
            return out, [], None
        messages: list[bytes] = []
        pieces: list[bytes] = []
        for record in records:
            kind = record[0]
            if kind == RAW:
                pieces.append(buf[record[1] : record[2]])
            elif kind == MESSAGE:
                messages.append(record[2])
            elif record[1] == OP_CLOSE:
                code, reason = parse_close(record[2])
                return b"".join(pieces), messages, (code, reason, buf[record[3] : record[4]])
            else:  # the worker's pings and pongs go to the client, which answers them
                pieces.append(buf[record[3] : record[4]])
        return b"".join(pieces), messages, None


def _with_swaps(
    pieces: list[bytes], buf: bytes, start: int, end: int, swaps: list[tuple[int, int, bytes]]
) -> None:
    """``buf[start:end]`` with the frames in ``swaps`` (inside that range) replaced."""
    pos = start
    while swaps and swaps[0][0] < end:
        frame_start, frame_end, frame = swaps.pop(0)
        pieces.append(buf[pos:frame_start])
        pieces.append(frame)
        pos = frame_end
    pieces.append(buf[pos:end])
