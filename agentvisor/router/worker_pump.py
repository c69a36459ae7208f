"""The worker → client direction of a connection, when its task (not the engine) relays.

It reads the worker, scans frame headers, learns from ``agent.*`` messages,
and writes to the client through the connection's single writer. It also
meets the worker's close frame: one with a failover code (1001, 1011, 1012)
or the stream simply ending is a *loss* (``failover.py`` takes over);
any other close is passed to the client and the close handshake completed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from agentvisor.router.channels import ChannelClosed
from agentvisor.router.frames import MESSAGE, OP_CLOSE, RAW, FrameError, Record, parse_close
from agentvisor.router.outcomes import CLOSE_TIMEOUT, Outcome

if TYPE_CHECKING:
    from agentvisor.router.relay import Connection
    from agentvisor.router.upstream import Upstream


async def pump_worker(
    conn: Connection,
    up: Upstream,
    *,
    until: Callable[[], bool] | None = None,
    deadline: float = math.inf,
) -> Outcome:
    """Relay the worker's frames to the client until something ends the phase."""
    scope = trio.CancelScope(deadline=conn.close_deadline)
    conn.interruptible = scope
    try:
        with scope:
            while True:
                if (
                    conn.switch_reason is not None
                    and until is None
                    and up.scanner.at_message_boundary
                    and conn.client_sent_boundary
                    and up.backlog is None
                    and up.write_rest is None
                    and conn.client_write is None
                    and conn.client_backlog is None
                    and conn.may_switch_now
                ):
                    return Outcome.SWITCH
                if until is not None and until():
                    return Outcome.PHASE_DONE
                if up.failed:
                    return Outcome.LOST
                if up.write_rest is not None:
                    unsent, sent, boundary = up.write_rest
                    up.write_rest = None
                    await conn.writer.relay(memoryview(unsent)[sent:], boundary)
                    continue
                if up.backlog is not None:
                    buf, records = up.backlog
                    up.backlog = None
                else:
                    if until is None and conn.engine_ok():
                        conn.pump_receiving = True
                        try:
                            await conn.park("upstream")
                        finally:
                            conn.pump_receiving = False
                        continue
                    conn.release_parked()
                    data = await _read(conn, up, deadline)
                    if data is None:
                        return Outcome.PHASE_TIMEOUT
                    if not data:
                        return Outcome.LOST
                    try:
                        buf, records = up.scanner.feed(data)
                    except FrameError:
                        return Outcome.LOST
                outcome = await _relay(conn, up, buf, records)
                if outcome is not None:
                    return await _after_close(conn, outcome)
    finally:
        conn.interruptible = None
    return Outcome.INTERRUPTED


async def _read(conn: Connection, up: Upstream, deadline: float) -> bytes | None:
    """The next bytes from the worker; b"" when it is gone, None at ``deadline``."""
    if up.initial:
        data, up.initial = up.initial, b""
        return data
    conn.pump_receiving = True
    try:
        if deadline == math.inf:
            return await up.channel.recv()
        with trio.move_on_at(deadline):
            return await up.channel.recv()
        return None
    except ChannelClosed:
        return b""
    finally:
        conn.pump_receiving = False


async def _relay(
    conn: Connection, up: Upstream, buf: bytes, records: list[Record]
) -> Outcome | None:
    outcome = None
    if len(records) == 1 and records[0][0] == RAW and records[0][2] == len(buf):
        out = buf if records[0][1] == 0 else buf[records[0][1] :]
    else:
        out, outcome = _split(conn, buf, records)
    conn.count_out(up, len(out))
    if out:
        try:
            await conn.writer.relay(out, up.scanner.sent_to_boundary or outcome is not None)
        except ChannelClosed:
            conn.client_gone = True  # reset under the write: the worker is told (1001)
            return Outcome.CLOSED
    return outcome


def _split(conn: Connection, buf: bytes, records: list[Record]) -> tuple[bytes, Outcome | None]:
    pieces: list[bytes] = []
    for record in records:
        kind = record[0]
        if kind == RAW:
            pieces.append(buf[record[1] : record[2]])
        elif kind == MESSAGE:
            conn.observe_upstream(record[2])
        elif record[1] == OP_CLOSE:
            code, reason = parse_close(record[2])
            if conn.core.fails_over(code, client_closing=conn.client_closing):
                return b"".join(pieces), Outcome.LOST
            pieces.append(buf[record[3] : record[4]])
            if not conn.client_closing:
                conn.upstream_closing = True
                conn.close_code, conn.close_reason = code, reason
            return b"".join(pieces), Outcome.CLOSED
        else:  # the worker's pings and pongs go to the client, which answers them
            pieces.append(buf[record[3] : record[4]])
    return b"".join(pieces), None


async def _after_close(conn: Connection, outcome: Outcome) -> Outcome:
    if outcome is not Outcome.CLOSED:
        return outcome
    conn.writer.mark_closed()
    if conn.upstream_closing:
        # The worker began the close: the client's answer goes back to it.
        with trio.move_on_after(CLOSE_TIMEOUT):
            await conn.client_done.wait()
    return Outcome.CLOSED
