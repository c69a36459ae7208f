"""The client → worker direction of a connection, when its task (not the engine) relays.

It reads the client and feeds the connection core, which scans the frame
headers (client frames are masked; a message above the limit ends the
connection with 1009), swallows the pongs of the router's keepalive pings,
counts the turns a ``user.message`` starts (giving it a ``message_id``),
rewrites messages into the seeds' envelope when the route asks
(``wrap_messages``) and decides what the client's close frame means; the
pump writes what the core answers to the worker.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any

import trio

from agentvisor.router.channels import ChannelClosed
from agentvisor.router.frames import OP_BINARY, encode_frame, random_mask, text_frame
from agentvisor.router.notices import timestamp
from agentvisor.router.outcomes import CLOSE_TIMEOUT

if TYPE_CHECKING:
    from agentvisor.router.relay import Connection


async def client_pump(conn: Connection) -> None:
    try:
        await _read_client(conn)
    finally:
        conn.client_ended.set()
        if conn.core.client_gone:
            conn.interrupt()


async def _read_client(conn: Connection) -> None:
    core = conn.core
    while not core.client_done:
        if conn.client_write is not None:
            unsent, sent = conn.client_write
            conn.client_write = None
            await conn.to_upstream(unsent, sent)
            continue
        if core.inbound.has_backlog:
            out = core.client_data(b"", time.monotonic())
        else:
            if conn.engine_ok():
                await conn.park("client")
                continue
            conn.release_parked()
            data = await _read_client_bytes(conn)
            if data is None:
                continue  # pulled into the engine
            if not data:
                core.client_lost()
                return
            out = core.client_data(data, time.monotonic())
        refusals = core.refusals()
        if refusals:  # the client learns at once; the worker never sees these messages
            await conn.perform(refusals)
        conn.count_in(len(out))
        if core.client_closing and conn.close_deadline == math.inf:
            # The client's close goes to the worker: its answer is awaited, bounded.
            conn.close_deadline = trio.current_time() + CLOSE_TIMEOUT
            if conn.interruptible is not None:
                conn.interruptible.deadline = conn.close_deadline
            conn.leave_engine()
        if out:
            await conn.to_upstream(out)


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
