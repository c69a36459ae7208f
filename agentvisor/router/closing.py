"""The end of a connection: close what is still open, politely where the stream allows.

Runs shielded from cancellation under a short bound (the caller's). The client
gets a close frame with the code that ended the connection (or 1001 on
shutdown, with a ``management_notification``; or 1011 and ``UPSTREAM_LOST``
when the worker was lost and could not be replaced), and the router reads
until the client's answer so that its close frame is not destroyed by a
reset; the worker gets a close frame unless a close handshake already ran.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from agentvisor.router.channels import ChannelClosed
from agentvisor.router.frames import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    OP_CLOSE,
    close_payload,
    encode_frame,
    random_mask,
)
from agentvisor.router.notices import UPSTREAM_LOST, error, notification
from agentvisor.router.writer import await_close_reply

if TYPE_CHECKING:
    from agentvisor.router.relay import Connection


async def finish(conn: Connection, *, shutdown: bool) -> None:
    """Close what is still open, politely where the stream allows it (bounded)."""
    writer = conn.writer
    if not writer.closed and writer.usable and not (conn.client_gone and conn.close_code is None):
        code = conn.close_code
        reason = conn.close_reason
        if shutdown:
            code, reason = CLOSE_GOING_AWAY, "agentvisor is shutting down"
            await conn.send_notice(notification("shutdown", reason, severity="warning"))
        elif code is None:
            code, reason = CLOSE_INTERNAL_ERROR, "the connection to the agent was lost"
            await conn.send_notice(error(UPSTREAM_LOST, reason, recoverable=True))
        if code in (1005, 1006, 1015):
            code = CLOSE_NORMAL
        conn.close_code, conn.close_reason = code, reason
        if await writer.close(code, reason) and (conn.client_violation or not conn.client_gone):
            await await_close_reply(conn.client, parse=not conn.client_violation)
    up = conn.upstream
    if up is not None:
        if not conn.client_closing and not conn.upstream_closing:
            worker_code = conn.core.worker_close_code(
                shutdown=shutdown, client_gone=conn.client_gone
            )
            frame = encode_frame(
                OP_CLOSE, close_payload(worker_code, "client gone"), mask=random_mask()
            )
            with trio.move_on_after(0.5):
                try:
                    await up.channel.send(frame)
                except ChannelClosed:
                    pass
        up.channel.close()
    conn.client.close()
    conn.router.connection_finished(conn)
