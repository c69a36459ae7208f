"""The client → worker direction of a connection, when its task (not the engine) relays.

It reads the client, scans frame headers (client frames are masked; a
message above ``max_message_bytes`` ends the connection with 1009), answers
nothing itself except to swallow the pongs of the router's keepalive pings,
counts the turns a ``user.message`` starts, rewrites messages into the seeds'
envelope when the route asks (``wrap_messages``), and meets the client's
close frame: passed to the worker, whose answer ends the connection.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import trio

from agentvisor.router.channels import ChannelClosed
from agentvisor.router.frames import (
    CLOSE_NORMAL,
    MESSAGE,
    OP_BINARY,
    OP_CLOSE,
    OP_PONG,
    OP_TEXT,
    RAW,
    FrameError,
    Record,
    encode_frame,
    parse_close,
    random_mask,
    text_frame,
)
from agentvisor.router.notices import timestamp
from agentvisor.router.outcomes import CLOSE_TIMEOUT

if TYPE_CHECKING:
    from agentvisor.router.relay import Connection

KEEPALIVE_PAYLOAD = b"agentvisor-keepalive"


async def client_pump(conn: Connection) -> None:
    try:
        await _read_client(conn)
    finally:
        conn.client_done.set()
        if conn.client_gone:
            conn.interrupt()


async def _read_client(conn: Connection) -> None:
    scanner = conn.client_scanner
    while True:
        if conn.client_error is not None:
            _violation(conn, conn.client_error)
            return
        if conn.client_write is not None:
            unsent, sent = conn.client_write
            conn.client_write = None
            await conn.to_upstream(unsent, sent)
            continue
        if conn.client_backlog is not None:
            buf, records = conn.client_backlog
            conn.client_backlog = None
        else:
            if conn.engine_ok():
                await conn.park("client")
                continue
            conn.release_parked()
            data = await _read_client_bytes(conn)
            if data is None:
                continue  # pulled into the engine
            if not data:
                conn.client_gone = True
                return
            conn.core.client_activity(time.monotonic())
            try:
                buf, records = scanner.feed(data)
            except FrameError as violation:
                _violation(conn, violation)
                return
        close: Record | None = None
        if len(records) == 1 and records[0][0] == RAW and records[0][2] == len(buf):
            out = buf if records[0][1] == 0 else buf[records[0][1] :]
        else:
            out, close = _from_client(conn, buf, records)
        conn.count_in(len(out))
        if out:
            await conn.to_upstream(out)
        if close is not None:
            await _client_close(conn, close)
            return


async def _read_client_bytes(conn: Connection) -> bytes | None:
    """The next client bytes; b"" at its end; None when pulled into the engine."""
    if conn.client_initial:
        data, conn.client_initial = conn.client_initial, b""
        return data
    with trio.CancelScope() as scope:
        conn.client_read_scope = scope
        try:
            return await conn.client.recv()
        except ChannelClosed:
            return b""
        finally:
            conn.client_read_scope = None
    return None


def _violation(conn: Connection, violation: FrameError) -> None:
    if conn.close_code is None:
        conn.close_code, conn.close_reason = violation.code, violation.reason
    conn.client_gone = True  # nothing more is read; _finish closes with the code
    conn.client_violation = True


def _from_client(
    conn: Connection, buf: bytes, records: list[Record]
) -> tuple[bytes, Record | None]:
    pieces: list[bytes] = []
    swaps: list[tuple[int, int, bytes]] = []  # frames sent in another form: (start, end, frame)
    for record in records:
        kind = record[0]
        if kind == RAW:
            if swaps:
                _with_swaps(pieces, buf, record[1], record[2], swaps)
            else:
                pieces.append(buf[record[1] : record[2]])
        elif kind == MESSAGE:
            opcode, payload = record[1], record[2]
            if conn.plan.wrap:
                pieces.append(wrap_message(conn, opcode, payload))
            if opcode == OP_TEXT and b"user.message" in payload:
                plan = conn.plan
                can_rewrite = plan.agent_protocol and not plan.wrap and record[3] >= 0
                sent = conn.tracker.client_message(payload, can_rewrite=can_rewrite)
                if sent is not None and sent is not payload:  # a message_id was assigned
                    swaps.append((record[3], record[4], conn.client_frame(sent)))
        elif record[1] == OP_CLOSE:
            return b"".join(pieces), (*record, buf[record[3] : record[4]])
        elif record[1] == OP_PONG and record[2] == KEEPALIVE_PAYLOAD:
            continue  # the answer to our keepalive ping
        else:
            pieces.append(buf[record[3] : record[4]])
    return b"".join(pieces), None


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


def wrap_message(conn: Connection, opcode: int, payload: bytes) -> bytes:
    """The seeds' envelope around a client message (``wrap_messages = true``)."""
    if opcode == OP_BINARY:
        return encode_frame(OP_BINARY, payload, mask=random_mask())
    text = payload.decode("utf-8", "replace")
    original: Any
    try:
        original = json.loads(text)
    except ValueError:
        original = text
    metadata = {
        "connection_id": conn.id,
        "target_service": conn.upstream.endpoint.service if conn.upstream else None,
        "target_instance": conn.instance_id or None,
        "routing_strategy": conn.plan.strategy,
        "rule": conn.plan.rule,
        "client_ip": conn.client_ip,
        "timestamp": timestamp(),
    }
    envelope = {"proxy_metadata": metadata, "original_message": original}
    return text_frame(envelope, mask=random_mask())


async def _client_close(conn: Connection, close: Record) -> None:
    code, _reason = parse_close(close[2])
    raw: bytes = close[5]
    if conn.writer.closed and not conn.upstream_closing:
        return  # the answer to our own close
    if conn.upstream_closing or (conn.up_ready and not conn.client_closing):
        if not conn.upstream_closing:
            conn.client_closing = True
            conn.close_code = code
            conn.close_deadline = trio.current_time() + CLOSE_TIMEOUT
            if conn.interruptible is not None:
                conn.interruptible.deadline = conn.close_deadline
        conn.leave_engine()
        await conn.to_upstream(raw)
        return
    # No worker to pass the close to (a switch is under way): answer it ourselves.
    conn.close_code = CLOSE_NORMAL if code in (1005, 1006) else code
    conn.client_gone = True
