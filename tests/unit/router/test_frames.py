"""The frame scanner: any frame sequence, cut anywhere, scans back to the same frames."""

from __future__ import annotations

import itertools
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentvisor.router.frames import (
    CONTROL,
    MESSAGE,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RAW,
    FrameError,
    FrameScanner,
    close_payload,
    encode_frame,
    parse_close,
    unmask,
)

Frame = tuple[int, bytes, bool]  # opcode, payload, fin


@st.composite
def messages(draw: st.DrawFn) -> list[Frame]:
    """A data message (maybe fragmented) with control frames between its fragments."""
    opcode = draw(st.sampled_from([OP_TEXT, OP_BINARY]))
    parts = draw(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
    frames: list[Frame] = []
    for index, part in enumerate(parts):
        frames.append((opcode if index == 0 else OP_CONTINUATION, part, index == len(parts) - 1))
        if draw(st.booleans()):
            control = draw(st.sampled_from([OP_PING, OP_PONG]))
            frames.append((control, draw(st.binary(max_size=125)), True))
    return frames


streams = st.lists(messages(), min_size=1, max_size=6).map(lambda ms: [f for m in ms for f in m])


def encode_all(frames: list[Frame], *, masked: bool) -> bytes:
    return b"".join(
        encode_frame(op, payload, fin=fin, mask=os.urandom(4) if masked else None)
        for op, payload, fin in frames
    )


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def rescan(data: bytes, chunks: list[bytes], scanner: FrameScanner) -> tuple[bytes, list[Any]]:
    """Feed the chunks; what the relay would forward, and every control/message record."""
    forwarded = b""
    seen: list[Any] = []
    for chunk in chunks:
        buf, records = scanner.feed(chunk)
        for record in records:
            if record[0] == RAW:
                forwarded += buf[record[1] : record[2]]
            elif record[0] == CONTROL:
                forwarded += buf[record[3] : record[4]]
                seen.append((record[1], record[2]))
            else:
                seen.append(("message", record[1], record[2]))
    return forwarded, seen


@settings(max_examples=200, deadline=None)
@given(frames=streams, cuts=st.lists(st.integers(min_value=0), max_size=12), masked=st.booleans())
def test_any_split_forwards_the_same_bytes_and_finds_the_same_frames(
    frames: list[Frame], cuts: list[int], masked: bool
) -> None:
    data = encode_all(frames, masked=masked)
    scanner = FrameScanner(masked=masked, needles=(b"",), hold_limit=100)

    forwarded, seen = rescan(data, split(data, cuts), scanner)

    assert forwarded == data
    assert scanner.at_message_boundary
    controls = [(op, payload) for op, payload, _fin in frames if op >= 8]
    assert [s for s in seen if s[0] != "message"] == controls
    messages_found = [s[2] for s in seen if s[0] == "message"]
    texts = _text_messages(frames)
    assert messages_found == [t for t in texts if len(t) <= 100]  # larger ones are not read
    assert scanner.messages == sum(1 for _op, _p, fin in frames if fin and _op < 8)


@settings(max_examples=200, deadline=None)
@given(frames=streams, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_a_servers_text_messages_are_read_up_to_the_read_limit_even_when_streamed(
    frames: list[Frame], cuts: list[int]
) -> None:
    data = encode_all(frames, masked=False)
    scanner = FrameScanner(masked=False, needles=(b"",), hold_limit=100, read_limit=400)

    forwarded, seen = rescan(data, split(data, cuts), scanner)

    assert forwarded == data
    messages_found = [s[2] for s in seen if s[0] == "message"]
    assert messages_found == [t for t in _text_messages(frames) if len(t) <= 400]


def _text_messages(frames: list[Frame]) -> list[bytes]:
    found: list[bytes] = []
    current: list[bytes] | None = None
    for op, payload, fin in frames:
        if op >= 8:
            continue
        if op != OP_CONTINUATION:
            current = [] if op == OP_TEXT else None
        if current is not None:
            current.append(payload)
            if fin:
                found.append(b"".join(current))
        if fin:
            current = None
    return found


@settings(max_examples=100, deadline=None)
@given(frames=streams, cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_whole_messages_mode_reports_every_message_unmasked(
    frames: list[Frame], cuts: list[int]
) -> None:
    data = encode_all(frames, masked=True)
    scanner = FrameScanner(masked=True, whole_messages=True, max_message_bytes=10_000)

    _forwarded, seen = rescan(data, split(data, cuts), scanner)

    expected = []
    current: list[bytes] = []
    for op, payload, fin in frames:
        if op >= 8:
            continue
        current.append(payload)
        if fin:
            expected.append(b"".join(current))
            current = []
    assert [s[2] for s in seen if s[0] == "message"] == expected


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_either_scan_or_raise_frame_error(data: bytes) -> None:
    scanner = FrameScanner(masked=True, max_message_bytes=1000)
    try:
        scanner.feed(data)
    except FrameError as error:
        code: int | None = error.code
    else:
        code = None
    assert code in (None, 1002, 1009)


def test_a_large_frame_streams_through_in_pieces() -> None:
    payload = os.urandom(200_000)
    data = encode_frame(OP_BINARY, payload)
    scanner = FrameScanner(masked=False)

    forwarded, _seen = rescan(data, split(data, [1000, 70_000, 150_000]), scanner)

    assert forwarded == data
    assert scanner.at_boundary
    assert scanner.held_bytes == 0


def test_a_partial_frame_is_held_only_below_the_hold_limit() -> None:
    small = FrameScanner(masked=False, hold_limit=1000)
    _buf, records = small.feed(encode_frame(OP_TEXT, b"x" * 900)[:500])
    large = FrameScanner(masked=False, hold_limit=1000)
    _buf, streamed = large.feed(encode_frame(OP_BINARY, b"y" * 100_000)[:5000])

    assert (records, small.held_bytes, small.at_boundary) == ([], 500, False)
    assert (streamed, large.held_bytes, large.at_boundary) == ([(RAW, 0, 5000)], 0, False)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (encode_frame(OP_TEXT, b"hi"), 1002),  # a client frame must be masked
        (bytes([0x81 | 0x40, 0x82]) + b"mask" + b"hi", 1002),  # RSV1 without an extension
        (bytes([0x83, 0x80]) + b"mask", 1002),  # reserved opcode
        (bytes([0x09, 0x80]) + b"mask", 1002),  # fragmented ping
        (bytes([0x80, 0x80]) + b"mask", 1002),  # continuation outside a message
        (encode_frame(OP_TEXT, b"x" * 200, mask=b"abcd"), 1009),  # over max_message_bytes
        (encode_frame(OP_PING, b"x" * 126, mask=b"abcd"), 1002),  # control frame > 125
    ],
)
def test_protocol_violations_name_their_close_code(data: bytes, code: int) -> None:
    scanner = FrameScanner(masked=True, max_message_bytes=100)
    with pytest.raises(FrameError) as raised:
        scanner.feed(data)
    assert raised.value.code == code


def test_a_message_over_the_limit_is_refused_at_its_header() -> None:
    scanner = FrameScanner(masked=True, max_message_bytes=1000)
    header_only = encode_frame(OP_BINARY, b"z" * 5000, mask=b"abcd")[:8]
    with pytest.raises(FrameError) as raised:
        scanner.feed(header_only)
    assert raised.value.code == 1009


def test_fragments_add_up_to_the_message_limit() -> None:
    scanner = FrameScanner(masked=True, max_message_bytes=100)
    scanner.feed(encode_frame(OP_TEXT, b"a" * 60, mask=b"abcd", fin=False))
    with pytest.raises(FrameError):
        scanner.feed(encode_frame(OP_CONTINUATION, b"a" * 60, mask=b"abcd"))


def test_an_unmasked_server_frame_is_read_with_a_needle() -> None:
    scanner = FrameScanner(masked=False, needles=(b"agent.",))
    _buf, records = scanner.feed(
        encode_frame(OP_TEXT, b'{"event":"agent.final_answer"}') + encode_frame(OP_TEXT, b"{}")
    )
    assert [r for r in records if r[0] == MESSAGE] == [
        (MESSAGE, OP_TEXT, b'{"event":"agent.final_answer"}', 0, 32)
    ]


@given(st.binary(max_size=500), st.binary(min_size=4, max_size=4))
def test_unmask_is_its_own_inverse(payload: bytes, key: bytes) -> None:
    assert unmask(unmask(payload, key), key) == payload
    expected = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    assert unmask(payload, key) == expected


@given(st.integers(min_value=1000, max_value=4999), st.text(max_size=200))
def test_close_payloads_round_trip_within_125_bytes(code: int, reason: str) -> None:
    payload = close_payload(code, reason)
    parsed_code, parsed_reason = parse_close(payload)
    assert len(payload) <= 125
    assert parsed_code == code
    assert reason.startswith(parsed_reason)


def test_a_close_frame_without_a_code_is_1005() -> None:
    assert parse_close(b"") == (1005, "")
    frame = encode_frame(OP_CLOSE, b"")
    assert frame == b"\x88\x00"
