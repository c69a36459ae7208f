"""permessage-deflate (RFC 7692) at the router, without I/O (pure).

Two ways a connection gets the extension (docs/decisions.md, "Router"):

- a *transparent* route (a plain ``command =`` backend, which the router
  neither reads nor fails over) passes the client's permessage-deflate offers
  to the backend and the backend's answer back; frames, RSV1 included, cross
  untouched (``Agreement.at_router`` false);
- an *agent-protocol* route (the router reads ``user.message`` and
  ``agent.*`` and moves the client between workers) agrees on the extension
  with the client here (:func:`negotiate`) and keeps the worker leg
  uncompressed: :class:`Deflater` compresses what the workers send,
  :class:`Inflater` inflates what the client sends, bounded. Both contexts
  belong to the client's connection, so they survive a failover.

zlib from the standard library, raw deflate (negative ``wbits``), the
``00 00 ff ff`` tail of a sync flush stripped from every message's end and
added back before inflating (RFC 7692 §7.2). Control frames are never
compressed, and the router's own frames (pings, notices, its close) go out
as uncompressed messages, which the extension allows.
"""

from __future__ import annotations

import re
import struct
import zlib
from typing import Final

from attrs import frozen

from agentvisor.router.frames import CLOSE_TOO_BIG, FrameError

NAME: Final = "permessage-deflate"
#: The sync flush's empty stored block, stripped from every compressed message's end.
TAIL: Final = b"\x00\x00\xff\xff"
#: The LZ77 window the router uses and asks clients to use (as ``websockets`` does): a
#: 4 KiB window keeps a connection's contexts near 60 KiB instead of 400 KiB.
WINDOW_BITS: Final = 12
MEM_LEVEL: Final = 5
LEVEL: Final = 6
#: Close code for a message that does not inflate (RFC 6455: invalid payload data).
CLOSE_INVALID_DATA: Final = 1007

_U16: Final = struct.Struct("!H")
_U64: Final = struct.Struct("!Q")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PARAMETER = re.compile(
    r'\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*(?:=\s*("[^"]*"|[!#$%&\'*+\-.^_`|~0-9A-Za-z]+))?\s*'
)

Offer = tuple[str, tuple[tuple[str, str | None], ...]]


@frozen
class Agreement:
    """permessage-deflate as agreed for a connection.

    ``at_router``: the router compresses and inflates (agent-protocol routes);
    false, the backend agreed to it and frames pass through. ``response``: the
    ``Sec-WebSocket-Extensions`` value the client gets.
    """

    at_router: bool
    response: str
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = WINDOW_BITS
    client_max_window_bits: int = 15


def parse_extensions(header: str | None) -> list[Offer] | None:
    """The extensions of a ``Sec-WebSocket-Extensions`` value, in order; None if malformed."""
    offers: list[Offer] = []
    if not header or not header.strip():
        return offers
    for element in _split(header, ","):
        parts = _split(element, ";")
        name = parts[0].strip()
        if not _TOKEN.fullmatch(name):
            return None
        params: list[tuple[str, str | None]] = []
        for part in parts[1:]:
            match = _PARAMETER.fullmatch(part)
            if match is None:
                return None
            value = match.group(2)
            if value is not None and value.startswith('"'):
                value = value[1:-1]
            params.append((match.group(1).lower(), value))
        offers.append((name.lower(), tuple(params)))
    return offers


def _split(text: str, separator: str) -> list[str]:
    """``text`` cut at ``separator`` outside quoted strings."""
    parts, start, quoted = [], 0, False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part for part in parts if part.strip()] or [""]


def deflate_offers(header: str | None) -> str | None:
    """The client's permessage-deflate offers, to pass to a transparent backend; None if none.

    Other extensions are not passed on: the relay knows no other use of the RSV bits.
    """
    if not header:
        return None
    elements = [
        element.strip()
        for element in _split(header, ",")
        if element.split(";", 1)[0].strip().lower() == NAME
    ]
    return ", ".join(elements) or None


def backend_agreed(answer: str | None, *, offered: bool) -> bool | None:
    """A backend's ``Sec-WebSocket-Extensions`` answer: True for permessage-deflate, False
    for none, None when it is something the router did not offer (the upgrade fails)."""
    if not answer or not answer.strip():
        return False
    extensions = parse_extensions(answer)
    if not offered or extensions is None or [name for name, _ in extensions] != [NAME]:
        return None
    return True


def negotiate(header: str | None) -> Agreement | None:
    """The first acceptable permessage-deflate offer of a client, agreed at the router.

    An offer with an unknown, repeated or malformed parameter is declined
    (RFC 7692 §7.1), and so is ``server_max_window_bits=8``, which zlib cannot
    compress with; None when no offer is acceptable (the client then gets no
    extension, as RFC 6455 lets a server decide).
    """
    for name, params in parse_extensions(header) or []:
        if name == NAME:
            agreement = _accept(params)
            if agreement is not None:
                return agreement
    return None


def _accept(params: tuple[tuple[str, str | None], ...]) -> Agreement | None:
    seen: dict[str, str | None] = {}
    for key, value in params:
        if key in seen:
            return None
        seen[key] = value
    server_bits = WINDOW_BITS
    client_bits = 15
    answer = [NAME]
    for key, value in seen.items():
        if key in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                return None
            answer.append(key)
        elif key == "server_max_window_bits":
            bits = _window_bits(value)
            if bits is None or bits == 8:
                return None
            server_bits = min(bits, WINDOW_BITS)
        elif key == "client_max_window_bits":
            bits = _window_bits(value) if value is not None else 15
            if bits is None:
                return None
            client_bits = min(bits, WINDOW_BITS)
            answer.append(f"client_max_window_bits={client_bits}")
        else:
            return None
    answer.append(f"server_max_window_bits={server_bits}")
    return Agreement(
        at_router=True,
        response="; ".join(answer),
        server_no_context_takeover="server_no_context_takeover" in seen,
        client_no_context_takeover="client_no_context_takeover" in seen,
        server_max_window_bits=server_bits,
        client_max_window_bits=client_bits,
    )


def _window_bits(value: str | None) -> int | None:
    if value is None or not value.isdigit() or not 8 <= int(value) <= 15:
        return None
    return int(value)


class Deflater:
    """Worker frames (unmasked, as the scanner forwards them) compressed for the client.

    Fed the bytes the relay would have written to the client, in order: whole
    frames and the pieces of a large frame streamed through. Each data frame
    becomes a compressed one: one ``compress`` and one sync flush per frame
    (per message for the usual unfragmented message); the pieces of a streamed
    frame go out as fragments of the same message, flushed at the frame's end.
    Control frames pass unchanged. The context is kept from message to message
    unless the client asked for ``server_no_context_takeover``.
    """

    __slots__ = ("_compressor", "_fin", "_left", "_opcode", "_reset", "_started", "_wbits")

    def __init__(self, agreement: Agreement) -> None:
        self._wbits = -agreement.server_max_window_bits
        self._reset = agreement.server_no_context_takeover
        self._compressor: zlib._Compress | None = None  # made on first use (idle is cheap)
        self._left = 0  # payload bytes still to come of a frame streamed through
        self._fin = False  # of that frame
        self._opcode = 0  # of the message under way
        self._started = False  # a frame of the message under way was sent

    @property
    def at_frame_boundary(self) -> bool:
        return not self._left

    def feed(self, data: bytes) -> bytes:
        """The compressed form of ``data`` (b"" while a streamed piece compresses to nothing)."""
        if not data:
            return b""
        out: list[bytes] = []
        size = len(data)
        pos = 0
        if self._left:
            taken = min(self._left, size)
            self._left -= taken
            pos = taken
            piece = data if taken == size else data[:taken]
            out.append(self._data(piece, frame_ends=not self._left, fin=self._fin))
        while pos < size:
            first = data[pos]
            length = data[pos + 1] & 0x7F
            header = 2
            if length == 126:
                length = _U16.unpack_from(data, pos + 2)[0]
                header = 4
            elif length == 127:
                length = _U64.unpack_from(data, pos + 2)[0]
                header = 10
            start = pos + header
            end = start + length
            opcode = first & 0x0F
            if opcode >= 0x8:  # control frames come whole, and are never compressed
                out.append(data[pos:end])
                pos = end
                continue
            if opcode:
                self._opcode = opcode
            fin = bool(first & 0x80)
            if end > size:  # the start of a frame streamed through
                self._left, self._fin = end - size, fin
                out.append(self._data(data[start:], frame_ends=False, fin=fin))
                break
            out.append(self._data(data[start:end], frame_ends=True, fin=fin))
            pos = end
        return b"".join(out)

    def _data(self, payload: bytes, *, frame_ends: bool, fin: bool) -> bytes:
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                LEVEL, zlib.DEFLATED, self._wbits, MEM_LEVEL
            )
        body = compressor.compress(payload)
        last = frame_ends and fin
        if frame_ends:
            body += compressor.flush(zlib.Z_SYNC_FLUSH)
            if last:
                body = body[:-4]  # a sync flush ends with TAIL
                if self._reset:
                    self._compressor = None
        elif not body:
            return b""  # nothing to send yet: zlib keeps it until more comes
        first = 0x80 if last else 0
        if not self._started:
            first |= 0x40 | self._opcode  # RSV1 on the message's first frame
        self._started = not last
        return _header(first, len(body)) + body


def _header(first: int, size: int) -> bytes:
    if size < 126:
        return bytes((first, size))
    if size < 65536:
        return bytes((first, 126)) + _U16.pack(size)
    return bytes((first, 127)) + _U64.pack(size)


class Inflater:
    """The client's compressed messages inflated, never past ``limit`` bytes.

    A message that would inflate beyond the limit (a deflate bomb, or just a
    large message) raises ``FrameError(1009)``, as a large uncompressed one
    does, after at most ``limit + 1`` bytes were produced; one that does not
    inflate raises ``FrameError(1007)``.
    """

    __slots__ = ("_decompressor", "_reset", "_wbits")

    def __init__(self, agreement: Agreement) -> None:
        # a larger window inflates whatever a smaller one compressed (zlib's 9 for 8 too)
        self._wbits = -max(9, agreement.client_max_window_bits)
        self._reset = agreement.client_no_context_takeover
        self._decompressor: zlib._Decompress | None = None

    def inflate(self, payload: bytes, limit: int) -> bytes:
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(self._wbits)
        try:
            data = decompressor.decompress(payload + TAIL, limit + 1)
        except zlib.error as failure:
            reason = f"a compressed message does not inflate: {failure}"
            raise FrameError(CLOSE_INVALID_DATA, reason) from None
        if len(data) > limit:
            raise FrameError(CLOSE_TOO_BIG, f"message larger than {limit} bytes")
        if self._reset or decompressor.eof:
            self._decompressor = None  # a final block ends the context too
        return data
