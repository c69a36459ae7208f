"""The worker → client direction of a connection, when its task (not the engine) relays.

It reads the worker, feeds the connection core (which scans the frames,
learns from ``agent.*`` messages and decides what a close frame means) and
writes what the core queued for the client through the connection's single
writer. A close with a failover code (1001, 1011, 1012) or the stream
simply ending is a *loss* (``failover.py`` takes over); any other close is
passed to the client and the close handshake completed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from agentvisor.router.channels import ChannelClosed
from agentvisor.router.connection import ConnectionCore, UpstreamState
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
    core = conn.core
    scope = trio.CancelScope(deadline=conn.close_deadline)
    conn.interruptible = scope
    try:
        with scope:
            while True:
                if until is None and core.switch_due(
                    trio.current_time(), idle=conn.client_write is None
                ):
                    return Outcome.SWITCH
                if until is not None and until() and core.output.boundary:
                    return Outcome.PHASE_DONE  # (not inside a frame: a notice may follow)
                if core.upstream is UpstreamState.LOST:
                    return Outcome.LOST
                before = core.output.relayed
                if not core.output.has_relayed:
                    if until is None and conn.engine_ok():
                        conn.pump_receiving = True
                        try:
                            await conn.park("upstream")
                        finally:
                            conn.pump_receiving = False
                        continue
                    if core.outbound.has_backlog:
                        learned = core.upstream_data(b"")
                    else:
                        conn.release_parked()
                        data = await _read(conn, up, deadline)
                        if data is None:
                            return Outcome.PHASE_TIMEOUT
                        if not data:
                            core.upstream_eof()
                            return Outcome.LOST
                        learned = core.upstream_data(data)
                    if learned:
                        conn.observe_upstream(learned)
                try:
                    await conn.writer.flush()
                except ChannelClosed:
                    core.client_lost()  # reset under the write: the worker is told (1001)
                    return Outcome.CLOSED
                conn.count_out(core.output.relayed - before)
                state = _state(core)
                if state is UpstreamState.LOST:
                    return Outcome.LOST
                if state is UpstreamState.CLOSED:
                    return await _after_close(conn)
    finally:
        conn.interruptible = None
    return Outcome.INTERRUPTED


def _state(core: ConnectionCore) -> UpstreamState:
    """The worker's stream after a read (a function: the read changed it)."""
    return core.upstream


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


async def _after_close(conn: Connection) -> Outcome:
    if conn.core.upstream_closing:
        # The worker began the close: the client's answer goes back to it.
        with trio.move_on_after(CLOSE_TIMEOUT):
            await conn.client_ended.wait()
    return Outcome.CLOSED
