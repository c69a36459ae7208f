"""permessage-deflate at the router (``compression.py``): round trips against ``websockets``.

``websockets``' own ``PerMessageDeflate`` is the independent other end: it inflates
what the ``Deflater`` made of a worker's frames (cut anywhere, fragmented, large
frames streamed through in pieces, pings between them), and compresses the client
messages the ``Inflater`` must give back, whatever the parameters agreed. A deflate
bomb is refused after at most the limit was inflated.
"""

from __future__ import annotations

import itertools
import struct
import tracemalloc
import zlib

import pytest
from hypothesis import given, settings
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

from agentvisor.router.compression import (
    Agreement,
    Deflater,
    Inflater,
    backend_agreed,
    deflate_offers,
    negotiate,
)
from agentvisor.router.frames import (
    CONTROL,
    DEFLATE_INFLATE,
    DEFLATE_PASS,
    MESSAGE,
    OP_CONTINUATION,
    OP_PING,
    RAW,
    FrameError,
    FrameScanner,
    encode_frame,
    unmask,
)
from agentvisor.router.policy import Policy
from agentvisor.router.sessions import SessionTracker
from agentvisor.router.streams import ClientStream
from tests.strategies import DeflateRun, deflate_runs

MASK = b"\x11\x22\x33\x44"
PING = b"are you there"


def frames_of(data: bytes) -> list[tuple[bool, bool, int, bytes]]:
    """(fin, rsv1, opcode, payload) of each frame: a parser of the test's own."""
    frames, pos = [], 0
    while pos < len(data):
        first, second = data[pos], data[pos + 1]
        length, pos = second & 0x7F, pos + 2
        if length == 126:
            (length,), pos = struct.unpack_from("!H", data, pos), pos + 2
        elif length == 127:
            (length,), pos = struct.unpack_from("!Q", data, pos), pos + 8
        key = b""
        if second & 0x80:
            key, pos = data[pos : pos + 4], pos + 4
        payload = data[pos : pos + length]
        frames.append((bool(first & 0x80), bool(first & 0x40), first & 0x0F, unmask(payload, key)))
        pos += length
    assert pos == len(data), "the stream ends inside a frame"
    return frames


def fragments(payload: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(payload)) for cut in cuts})
    edges = [0, *[p for p in points if 0 < p < len(payload)], len(payload)]
    return [payload[a:b] for a, b in itertools.pairwise(edges)] or [b""]


def chunks(data: bytes, reads: list[int]) -> list[bytes]:
    out, pos, index = [], 0, 0
    while pos < len(data):
        size = reads[index % len(reads)]
        out.append(data[pos : pos + size])
        pos, index = pos + size, index + 1
    return out


def stream(run: DeflateRun, frame: object) -> bytes:
    """The run's messages as frames built by ``frame(fin, opcode, piece)``, pings between."""
    assert callable(frame)
    out, count = [], 0
    for opcode, payload, cuts in run.messages:
        pieces = fragments(payload, cuts)
        for index, piece in enumerate(pieces):
            out.append(frame(index == len(pieces) - 1, opcode if index == 0 else 0, piece))
            if count in run.pings:
                out.append(frame(True, OP_PING, PING))
            count += 1
    return b"".join(out)


def messages_of(frames: list[tuple[bool, bool, int, bytes]]) -> list[tuple[int, bytes]]:
    out, opcode, parts = [], 0, []
    for fin, _rsv1, op, payload in frames:
        if op >= 0x8:
            continue
        opcode = op or opcode
        parts.append(payload)
        if fin:
            out.append((opcode, b"".join(parts)))
            parts = []
    return out


@settings(max_examples=200, deadline=None)
@given(deflate_runs())
def test_worker_frames_cut_anywhere_inflate_back_in_websockets(run: DeflateRun) -> None:
    worker = stream(run, lambda fin, op, piece: encode_frame(op, piece, fin=fin))
    scanner = FrameScanner(masked=False, hold_limit=64)  # larger frames stream in pieces
    agreement = Agreement(
        True,
        "permessage-deflate",
        server_no_context_takeover=run.no_context_takeover,
        server_max_window_bits=run.window_bits,
    )
    deflater = Deflater(agreement)
    sent = []
    for chunk in chunks(worker, run.reads):
        buf, records = scanner.feed(chunk)
        out = b"".join(buf[r[1] : r[2]] if r[0] == RAW else buf[r[3] : r[4]] for r in records)
        sent.append(deflater.feed(out))
    client = frames_of(b"".join(sent))
    decoder = PerMessageDeflate(run.no_context_takeover, False, run.window_bits, 15)
    decoded, first = [], True
    for fin, rsv1, opcode, payload in client:
        if opcode >= 0x8:
            assert (rsv1, payload) == (False, PING)  # control frames are never compressed
            continue
        assert rsv1 == first  # RSV1 on a message's first frame only
        assert (opcode != OP_CONTINUATION) == first
        frame = decoder.decode(Frame(Opcode(opcode), payload, fin, rsv1))
        decoded.append((fin, False, frame.opcode.value, bytes(frame.data)))
        first = fin
    assert messages_of(decoded) == [(op, payload) for op, payload, _ in run.messages]
    assert deflater.at_frame_boundary


def client_frame(fin: bool, rsv1: bool, opcode: int, payload: bytes) -> bytes:
    """A masked client frame (``encode_frame`` sets no RSV bit)."""
    raw = encode_frame(opcode, payload, mask=MASK, fin=fin)
    return bytes((raw[0] | (0x40 if rsv1 else 0),)) + raw[1:]


@settings(max_examples=200, deadline=None)
@given(deflate_runs())
def test_client_messages_compressed_by_websockets_reach_the_worker_inflated(
    run: DeflateRun,
) -> None:
    encoder = PerMessageDeflate(False, run.no_context_takeover, 15, run.window_bits)

    def frame(fin: bool, opcode: int, piece: bytes) -> bytes:
        if opcode >= 0x8:
            return client_frame(fin, False, opcode, piece)
        encoded = encoder.encode(Frame(Opcode(opcode), piece, fin))
        return client_frame(fin, encoded.rsv1, opcode, bytes(encoded.data))

    agreement = Agreement(
        True,
        "permessage-deflate",
        client_no_context_takeover=run.no_context_takeover,
        client_max_window_bits=run.window_bits,
    )
    policy = Policy(agent_protocol=False, notices=False, failover=False, deflate=agreement)
    inbound = ClientStream(
        policy, SessionTracker(), lambda op, payload: encode_frame(op, payload, mask=MASK)
    )
    sent = stream(run, frame)
    to_worker = b"".join(inbound.feed(chunk)[0] for chunk in chunks(sent, run.reads))
    worker = frames_of(to_worker)
    assert not any(rsv1 for _fin, rsv1, _op, _payload in worker)  # the worker leg is plain
    pings = [f for f in frames_of(sent) if f[2] == OP_PING]
    assert [f for f in worker if f[2] == OP_PING] == pings
    assert messages_of(worker) == [(op, payload) for op, payload, _ in run.messages]


def test_a_deflate_bomb_is_refused_having_inflated_at_most_the_limit() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"\0" * (64 * 1024 * 1024)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    inflater = Inflater(Agreement(True, "permessage-deflate"))
    tracemalloc.start()
    try:
        with pytest.raises(FrameError) as refused:
            inflater.inflate(bomb[:-4], 1024 * 1024)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.code == 1009
    assert refused.value.reason == "message larger than 1048576 bytes"
    assert peak < 4 * 1024 * 1024  # 64 MiB were never inflated


def test_a_message_of_exactly_the_limit_inflates() -> None:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = compressor.compress(b"x" * 1000) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert Inflater(Agreement(True, "")).inflate(data[:-4], 1000) == b"x" * 1000
    with pytest.raises(FrameError) as broken:
        Inflater(Agreement(True, "")).inflate(b"\xff\xff\xff", 1000)
    assert broken.value.code == 1007


@pytest.mark.parametrize(
    ("offer", "response"),
    [
        # Chromium's offer
        (
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=12; server_max_window_bits=12",
        ),
        (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=12",
        ),
        (
            'permessage-deflate; server_max_window_bits="10"; client_max_window_bits=9',
            "permessage-deflate; client_max_window_bits=9; server_max_window_bits=10",
        ),
        # zlib cannot compress with 8, a repeated or unknown parameter: the next offer
        (
            "permessage-deflate; server_max_window_bits=8, permessage-deflate",
            "permessage-deflate; server_max_window_bits=12",
        ),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
        ("permessage-deflate; mystery=1", None),
        ("permessage-deflate; client_max_window_bits=16", None),
        ("x-webkit-deflate-frame", None),
        ("permessage-deflate; =", None),
        ("", None),
        (None, None),
    ],
)
def test_an_offer_is_agreed_as_offered_or_declined(offer: str | None, response: str | None) -> None:
    agreement = negotiate(offer)
    assert (agreement.response if agreement else None) == response


def test_settings_the_agreement_keeps() -> None:
    agreement = negotiate(
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; "
        "client_max_window_bits=14"
    )
    assert agreement == Agreement(
        at_router=True,
        response=agreement.response if agreement else "",
        server_no_context_takeover=True,
        server_max_window_bits=10,
        client_max_window_bits=12,
    )


def test_a_transparent_backend_gets_only_the_deflate_offers() -> None:
    offer = "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits, foo"
    assert deflate_offers(offer) == "permessage-deflate; client_max_window_bits"
    assert deflate_offers("foo") is None
    assert backend_agreed("permessage-deflate; server_no_context_takeover", offered=True)
    assert backend_agreed(None, offered=False) is False
    assert backend_agreed("permessage-deflate", offered=False) is None
    assert backend_agreed("foo", offered=True) is None


def test_rsv1_is_checked_where_it_is_allowed() -> None:
    compressed = client_frame(True, True, 0x1, b"abc")
    with pytest.raises(FrameError, match="no extension agreed"):
        FrameScanner(masked=True).feed(compressed)
    rsv2 = bytes((compressed[0] | 0x20,)) + compressed[1:]
    with pytest.raises(FrameError, match="no extension agreed"):
        FrameScanner(masked=True, deflate=DEFLATE_PASS).feed(rsv2)
    continuation = client_frame(False, False, 0x1, b"a") + client_frame(True, True, 0x0, b"b")
    with pytest.raises(FrameError, match="continuation"):
        FrameScanner(masked=True, deflate=DEFLATE_PASS).feed(continuation)
    ping = client_frame(True, True, OP_PING, b"")
    with pytest.raises(FrameError, match="control"):
        FrameScanner(masked=True, deflate=DEFLATE_INFLATE).feed(ping)


def test_passed_through_a_compressed_message_is_not_read() -> None:
    scanner = FrameScanner(masked=False, needles=(b"agent.",), deflate=DEFLATE_PASS)
    frame = bytes((0xC1, 6)) + b"agent."  # RSV1: compressed, so these bytes mean nothing
    buf, records = scanner.feed(frame)
    assert records == [(RAW, 0, len(buf))]
    plain = encode_frame(0x1, b"agent.x")
    _buf, records = scanner.feed(plain)
    assert [r[0] for r in records] == [MESSAGE, RAW]
    assert CONTROL not in [r[0] for r in records]
