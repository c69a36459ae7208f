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
from agentvisor.router.frames import OP_CLOSE, close_payload, encode_frame, random_mask
from agentvisor.router.notices import UPSTREAM_LOST, error, notification
from agentvisor.router.writer import await_close_reply

if TYPE_CHECKING:
    from agentvisor.router.relay import Connection


async def finish(conn: Connection, *, shutdown: bool) -> None:
    """Close what is still open, politely where the stream allows it (bounded)."""
    core = conn.core
    writer = conn.writer
    final = core.final_close(shutdown=shutdown) if writer.usable else None
    if final is not None:
        code, reason, lost = final
        if shutdown:
            await conn.send_notice(notification("shutdown", reason, severity="warning"))
        elif lost:
            await conn.send_notice(error(UPSTREAM_LOST, reason, recoverable=True))
        if await writer.close(code, reason) and (core.client_violation or not core.client_gone):
            await await_close_reply(conn.client, parse=not core.client_violation)
    up = conn.upstream
    if up is not None:
        worker_code = core.worker_close_code(shutdown=shutdown)
        if worker_code is not None:
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
