"""RFC 6455 frames as the relay sees them: headers parsed, payloads passed through (pure).

The router relays *frames*, not messages: once both handshakes are done it
forwards the bytes it reads from one side to the other unchanged (client
frames stay masked, worker frames stay unmasked), so a relayed message costs
a header parse, not a decode and an encode. :class:`FrameScanner` walks a
byte stream frame by frame and says which byte ranges to forward, which
control frames it met (the relay answers or forwards those itself) and,
cheaply, which complete text messages contain one of a few byte strings
(``needles``) that the relay wants to read (``agent.session_created`` and
the like). It keeps message boundaries, so the relay can inject its own
frames (pings, management events) between two frames and switch to another
worker between two messages.

A frame is forwarded once it is complete, so a stream only ever stops at a
frame boundary; only frames larger than ``hold_limit`` are streamed through
in pieces (``at_boundary`` is then false until the frame's end), which keeps
the bytes held per connection bounded. RSV1 is allowed only on the first
frame of a data message, and only where permessage-deflate was agreed
(``deflate``): such a message passes through unread (``DEFLATE_PASS``,
transparent routes) or is reported whole as a ``DEFLATED`` record for the
connection to inflate (``DEFLATE_INFLATE``, ``compression.py``). RSV2 and
RSV3 are always protocol errors.

The scanner does no I/O and keeps no clock; ``tests/unit/router/test_frames.py``
checks with Hypothesis that any frame sequence cut at any byte boundaries
scans back to the same frames.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any, Final

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA
_KNOWN_OPCODES: Final = frozenset((0x0, 0x1, 0x2, 0x8, 0x9, 0xA))

#: Record kinds returned by :meth:`FrameScanner.feed`.
RAW: Final = 0  # (RAW, start, end): forward buffer[start:end] as it is
CONTROL: Final = 1  # (CONTROL, opcode, payload, start, end): a whole control frame
#: (MESSAGE, opcode, payload, start, end): a complete message a needle matched; start and end
#: delimit it in the buffer when it is one frame (it is also inside a RAW range), else -1.
MESSAGE: Final = 2
#: (DEFLATED, opcode, payload, start, end): a complete compressed message (``DEFLATE_INFLATE``),
#: its payload as sent (the frames' payloads joined, unmasked); never inside a RAW range.
DEFLATED: Final = 3

#: What the scanner does with permessage-deflate (RSV1): not agreed (a protocol error),
#: passed through unread, or compressed messages reported whole to be inflated.
DEFLATE_NONE: Final = 0
DEFLATE_PASS: Final = 1
DEFLATE_INFLATE: Final = 2

#: Frames up to this size are held until complete; larger ones stream through.
HOLD_LIMIT: Final = 64 * 1024

CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_NO_STATUS: Final = 1005
CLOSE_ABNORMAL: Final = 1006
CLOSE_POLICY: Final = 1008
CLOSE_TOO_BIG: Final = 1009
CLOSE_INTERNAL_ERROR: Final = 1011
CLOSE_SERVICE_RESTART: Final = 1012
CLOSE_TRY_AGAIN: Final = 1013

_U16: Final = struct.Struct("!H")
_U64: Final = struct.Struct("!Q")

Record = tuple[Any, ...]


class FrameError(Exception):
    """The peer broke the protocol; ``code`` is the close code to answer with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def random_mask() -> bytes:
    """A masking key for a frame the router sends to a worker (as a client must)."""
    return os.urandom(4)


def unmask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte masking ``key`` (one big-int XOR, not a byte loop)."""
    size = len(payload)
    if not size:
        return b""
    repeated = (key * ((size >> 2) + 1))[:size]
    value = int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")
    return value.to_bytes(size, "little")


def encode_frame(
    opcode: int, payload: bytes, *, mask: bytes | None = None, fin: bool = True
) -> bytes:
    """One frame; ``mask`` (4 bytes) for frames a client sends, None for a server's."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    mask_bit = 0x80 if mask is not None else 0
    if size < 126:
        header = bytes((first, mask_bit | size))
    elif size < 65536:
        header = bytes((first, mask_bit | 126)) + _U16.pack(size)
    else:
        header = bytes((first, mask_bit | 127)) + _U64.pack(size)
    if mask is None:
        return header + payload
    return header + mask + unmask(payload, mask)


def close_payload(code: int, reason: str = "") -> bytes:
    """A close frame's payload; the reason is cut to fit the 125-byte control limit."""
    encoded = reason.encode("utf-8")[:123]
    while encoded:  # never cut inside a UTF-8 sequence
        try:
            encoded.decode("utf-8")
            break
        except UnicodeDecodeError:
            encoded = encoded[:-1]
    return _U16.pack(code) + encoded


def parse_close(payload: bytes) -> tuple[int, str]:
    """``(code, reason)`` of a close frame's payload; 1005 when it carries no code."""
    if len(payload) < 2:
        return CLOSE_NO_STATUS, ""
    return _U16.unpack_from(payload)[0], payload[2:].decode("utf-8", "replace")


def text_frame(event: dict[str, Any], *, mask: bytes | None = None) -> bytes:
    """A text frame carrying ``event`` as compact JSON."""
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return encode_frame(OP_TEXT, data, mask=mask)


class FrameScanner:
    """Finds frame boundaries in one direction of a WebSocket stream.

    ``masked``: whether frames must be masked (True for what a client sends).
    ``max_message_bytes``: a message above it raises ``FrameError(1009)``.
    ``needles``: complete text messages (unmasked, up to ``hold_limit``, or
    ``read_limit`` for a server's frames, which are then read while they stream)
    bytes) containing any of them are reported as ``MESSAGE`` records.
    ``whole_messages``: report every data message as ``MESSAGE`` and no data
    frame as ``RAW`` (for relays that rewrite messages, e.g. ``wrap_messages``).
    ``deflate``: ``DEFLATE_NONE``, ``DEFLATE_PASS`` or ``DEFLATE_INFLATE`` (see above).

    Counters: ``messages`` (complete data messages seen) and ``frames``.
    """

    __slots__ = (
        "_held",
        "_message_deflated",
        "_message_opcode",
        "_message_open",
        "_message_size",
        "_parts",
        "_parts_size",
        "_stream_fin",
        "_stream_left",
        "_stream_parts",
        "deflate",
        "frames",
        "hold_limit",
        "masked",
        "max_message_bytes",
        "messages",
        "needles",
        "read_limit",
        "whole_messages",
    )

    def __init__(
        self,
        *,
        masked: bool,
        max_message_bytes: int | None = None,
        needles: tuple[bytes, ...] = (),
        hold_limit: int = HOLD_LIMIT,
        whole_messages: bool = False,
        read_limit: int | None = None,
        deflate: int = DEFLATE_NONE,
    ) -> None:
        self.masked = masked
        self.deflate = deflate
        self.max_message_bytes = max_message_bytes
        self.needles = needles
        self.hold_limit = hold_limit
        self.whole_messages = whole_messages
        #: Unmasked text messages up to this size are read (for ``needles``) even when
        #: their frames stream through; default ``hold_limit``.
        self.read_limit = hold_limit if read_limit is None or masked else read_limit
        self.messages = 0
        self.frames = 0
        self._held = b""
        self._stream_left = 0  # bytes of a streamed (large) frame still to come
        self._stream_fin = False
        self._stream_parts: list[bytes] | None = None  # a streamed frame's payload, read
        self._message_open = False  # a fragmented message has begun and not ended
        self._message_opcode = 0
        self._message_deflated = False  # the message under way has RSV1 set
        self._message_size = 0
        self._parts: list[bytes] | None = None  # payload pieces of a message to report
        self._parts_size = 0

    @property
    def at_boundary(self) -> bool:
        """No frame is partly seen: a frame of our own may be inserted here."""
        return not self._held and not self._stream_left

    @property
    def at_message_boundary(self) -> bool:
        """At a frame boundary and outside any fragmented message: a new peer may take over."""
        return not self._held and not self._stream_left and not self._message_open

    @property
    def sent_to_boundary(self) -> bool:
        """What ``feed`` returned to forward ends at a frame boundary.

        Unlike ``at_boundary`` this ignores the start of the next frame, which
        is held back, not forwarded: in a backed-up stream some nearly always is,
        and a frame of the router's own may still go between the two.
        """
        return not self._stream_left

    @property
    def sent_to_message_boundary(self) -> bool:
        """What was forwarded ends between two messages (held bytes are not forwarded)."""
        return not self._stream_left and not self._message_open

    @property
    def held_bytes(self) -> int:
        """Bytes of an incomplete frame kept back until the rest arrives."""
        return len(self._held)

    def feed(self, data: bytes) -> tuple[bytes, list[Record]]:
        """Scan ``data`` (what was just read); returns the buffer the records index into.

        Raises ``FrameError`` for a protocol violation; what came before it in
        the same call is lost with the connection.
        """
        buf = self._held + data if self._held else data
        self._held = b""
        size = len(buf)
        records: list[Record] = []
        pos = 0
        run = 0  # start of the pending RAW range
        if self._stream_left:
            taken = min(self._stream_left, size)
            self._stream_left -= taken
            pos = taken
            parts = self._stream_parts
            if parts is not None:
                parts.append(buf[:taken] if taken < size else buf)
            if not self._stream_left:  # the frame ends as any other does
                self._stream_parts = None
                payload = b"".join(parts) if parts is not None else None
                self._end_data_frame(self._stream_fin, payload, records)
        masked = self.masked
        while pos < size:
            if size - pos < 2:
                break
            first = buf[pos]
            second = buf[pos + 1]
            length = second & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = _U16.unpack_from(buf, pos + 2)[0]
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = _U64.unpack_from(buf, pos + 2)[0]
                header = 10
                if length >> 63:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "frame length has its top bit set")
            if second & 0x80:
                if not masked:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "masked frame from the server side")
                header += 4
            elif masked:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "unmasked frame from a client")
            opcode = first & 0x0F
            if first & 0x70:
                if first & 0x30 or not self.deflate:
                    raise FrameError(
                        CLOSE_PROTOCOL_ERROR, "reserved bits set (no extension agreed)"
                    )
                if opcode == OP_CONTINUATION or opcode >= 0x8:
                    raise FrameError(
                        CLOSE_PROTOCOL_ERROR, "RSV1 on a control or continuation frame"
                    )
            fin = bool(first & 0x80)
            end = pos + header + length
            if opcode >= 0x8:
                if opcode not in _KNOWN_OPCODES:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
                if not fin or length > 125:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "fragmented or oversized control frame")
                if end > size:
                    break
                payload = buf[pos + header : end]
                if masked:
                    payload = unmask(payload, buf[pos + header - 4 : pos + header])
                if run < pos:
                    records.append((RAW, run, pos))
                records.append((CONTROL, opcode, payload, pos, end))
                self.frames += 1
                pos = run = end
                continue
            if opcode == OP_CONTINUATION:
                if not self._message_open:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "continuation frame outside a message")
                message_size = self._message_size + length
                deflated = self._message_deflated
            elif opcode in (OP_TEXT, OP_BINARY):
                if self._message_open:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
                message_size = length
                deflated = bool(first & 0x40)
            else:
                raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
            limit = self.max_message_bytes
            if limit is not None and message_size > limit:
                raise FrameError(CLOSE_TOO_BIG, f"message larger than {limit} bytes")
            whole = self.whole_messages or (deflated and self.deflate == DEFLATE_INFLATE)
            if end > size and (length <= self.hold_limit or whole):
                break  # hold the partial frame until it is complete
            if opcode != OP_CONTINUATION:
                self._message_opcode = opcode
                self._message_deflated = deflated
            self._message_size = message_size
            if end > size:
                # Stream a large frame through: forward what we have, skip the rest later.
                readable = (
                    bool(self.needles)
                    and not masked
                    and self._message_opcode == OP_TEXT
                    and not deflated
                    and message_size <= self.read_limit
                    and (self._parts is not None or not self._message_open)
                )
                if readable:
                    self._stream_parts = [buf[pos + header : size]]
                    if not self._message_open:
                        self._parts, self._parts_size = [], 0
                else:
                    self._stream_parts = None
                    self._parts = None
                self._message_open = True
                self._stream_left = end - size
                self._stream_fin = fin
                self.frames += 1
                pos = size
                break
            self.frames += 1
            wanted = whole or (
                bool(self.needles) and self._message_opcode == OP_TEXT and not deflated
            )
            if whole:
                if run < pos:
                    records.append((RAW, run, pos))
                run = end
            if wanted:
                payload = buf[pos + header : end]
                if masked:
                    payload = unmask(payload, buf[pos + header - 4 : pos + header])
                self._end_data_frame(fin, payload, records, (pos, end))
            else:
                self._end_data_frame(fin, None, records)
            pos = end
        if run < pos:
            records.append((RAW, run, pos))
        if pos < size:
            self._held = buf[pos:]
        return buf, records

    def _end_data_frame(
        self,
        fin: bool,
        payload: bytes | None,
        records: list[Record],
        span: tuple[int, int] = (-1, -1),
    ) -> None:
        """Account for a complete data frame; report its message when it ends and is wanted.

        ``span``: the frame's range in the buffer, reported with a message that is that
        one frame (so the relay may put another frame in its place); (-1, -1) otherwise.
        """
        if payload is not None:
            if not self._message_open and fin:
                self._report(payload, records, span)
            else:
                if self._parts is None and not self._message_open:
                    self._parts, self._parts_size = [], 0
                if self._parts is not None:
                    self._parts_size += len(payload)
                    if self._parts_size > self.read_limit and not self._whole:
                        self._parts = None  # too large to read cheaply: not reported
                    else:
                        self._parts.append(payload)
                if fin and self._parts is not None:
                    self._report(b"".join(self._parts), records)
        elif not self._message_open:
            self._parts = None
        if fin:
            self._message_open = False
            self._parts = None
            self.messages += 1
        else:
            self._message_open = True

    @property
    def _whole(self) -> bool:
        """The message under way is reported whole, whatever its size."""
        return self.whole_messages or (self._message_deflated and self.deflate == DEFLATE_INFLATE)

    def _report(
        self, payload: bytes, records: list[Record], span: tuple[int, int] = (-1, -1)
    ) -> None:
        if self._message_deflated and self.deflate == DEFLATE_INFLATE:
            records.append((DEFLATED, self._message_opcode, payload, *span))
            return
        needles = self.needles
        if (
            self.whole_messages
            or (len(needles) == 1 and needles[0] in payload)
            or (len(needles) > 1 and any(needle in payload for needle in needles))
        ):
            records.append((MESSAGE, self._message_opcode, payload, *span))
