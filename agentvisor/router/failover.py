"""Moving a live client to another worker: failover when its worker dies, and drain.

Failover is what no generic proxy does: the client keeps its socket while
the router reconnects it elsewhere. The steps (PROTOCOL.md §2):

1. stop sending to the old worker (the client pump now buffers, bounded);
2. pick another routable instance of the rule's candidate agents, retrying
   within a grace period (the dead instance may come back, restarted);
3. ``user.resume_session`` every session seen on this connection with the
   last ``seq`` the client got, so the worker replays only what was missed;
4. send again each ``user.message`` whose turn was in flight and that went to
   the lost worker (kept by the tracker, ``sessions.py``; in the client's
   order): the lost worker may never have received it, e.g. a message the
   client sent in the instant the worker died, before the router noticed.
   The worker de-duplicates by ``message_id`` (docs/decisions.md), so a copy of
   a message it had stored is not run again. A message sent without a ``session_id`` whose
   ``agent.session_created`` never came is sent as it was (the new worker
   creates the session); once the session was created, it is sent with it;
5. deliver what the client sent meanwhile (after the messages sent again);
6. ``service_switched`` to the client, ``session_preserved`` true when every
   resume was answered with ``agent.session_resumed``; relay again.

A drain takes the same path, started between two messages instead of by a
loss. A connection that cannot be moved cleanly (the worker died in the
middle of a fragmented or very large message) is closed with 1011; no
instance within the grace period gives ``error`` ``UPSTREAM_LOST`` and 1013.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import trio

from agentvisor.events import ConnectionSwitched
from agentvisor.router.channels import ChannelClosed
from agentvisor.router.frames import (
    CLOSE_GOING_AWAY,
    OP_CLOSE,
    close_payload,
    encode_frame,
    random_mask,
)
from agentvisor.router.notices import (
    REASON_DRAIN,
    REASON_UPSTREAM_LOST,
    drain_notification,
    service_switched,
)
from agentvisor.router.outcomes import CLOSE_TIMEOUT, Outcome
from agentvisor.router.policy import Failover
from agentvisor.router.table import ConnectionStatus
from agentvisor.router.worker_pump import pump_worker
from agentvisor.supervise.states import DrainReason

if TYPE_CHECKING:
    from agentvisor.router.relay import Connection
    from agentvisor.router.sessions import Kept
    from agentvisor.router.upstream import Upstream

#: How long the new worker may take to answer the resumes.
RESUME_TIMEOUT = 5.0


async def relay_loop(conn: Connection, upstream: Upstream) -> None:
    """Relay through ``upstream``, and through each successor after a switch."""
    up = upstream
    core = conn.core
    while True:
        outcome = await pump_worker(conn, up)
        if outcome is Outcome.CLOSED or core.client_gone or conn.client_ended.is_set():
            return
        if outcome is Outcome.INTERRUPTED:
            if core.switch_reason is not None or conn.rerun_pump:
                conn.rerun_pump = False
                continue  # a drain (switch at the next boundary), or the engine takes over
            if core.is_attached:
                return  # a close timed out, or the connection is being ended
            outcome = Outcome.LOST  # a write to the worker failed
        if outcome is Outcome.LOST:
            actions = core.upstream_lost(time.monotonic())
            if not any(isinstance(action, Failover) for action in actions):
                with trio.move_on_after(CLOSE_TIMEOUT):
                    await conn.perform(actions)
                return
        reason = REASON_DRAIN if outcome is Outcome.SWITCH else REASON_UPSTREAM_LOST
        successor = await switch_upstream(conn, up, reason)
        if successor is None:
            return
        up = successor


async def switch_upstream(conn: Connection, old: Upstream, reason: str) -> Upstream | None:
    """Steps 1 to 6 above; None when the connection must end (its close code is set)."""
    router = conn.router
    core = conn.core
    core.switch_begun()
    conn.detach()
    router.table.set_status(conn.id, ConnectionStatus.FAILING_OVER)
    deadline = trio.current_time() + router.failover_grace
    scope = trio.CancelScope()
    conn.interruptible = scope  # the client leaving cancels the switch
    successor: Upstream | None = None
    with scope:
        await _let_go(conn, old, graceful=reason == REASON_DRAIN)
        if not core.movable():
            core.cut_mid_message()
            return None
        exclude = old.endpoint.instance_id
        while successor is None:
            candidate = await router.reconnect(conn, exclude=exclude, deadline=deadline)
            if candidate is None:
                break
            router.table.move(conn.id, candidate.endpoint.service, candidate.endpoint.instance_id)
            conn.connect(candidate)
            in_flight = core.in_flight()
            preserved = await _resume(conn, candidate)
            if (
                preserved is None
                or not await _resend(conn, candidate, in_flight)
                or not await _deliver_pending(conn, candidate)
            ):
                candidate.channel.close()  # died already: try the next one
                exclude = candidate.endpoint.instance_id
                continue
            successor = candidate

            def notice(preserved: bool, new: Upstream = candidate) -> bytes:
                return service_switched(
                    from_service=old.endpoint.service,
                    to_service=new.endpoint.service,
                    from_instance=old.endpoint.instance_id,
                    to_instance=new.endpoint.instance_id,
                    reason=reason,
                    session_preserved=preserved,
                )

            drained = reason == REASON_DRAIN
            await conn.perform(core.switched(resumed_all=preserved, drained=drained, build=notice))
            preserved = core.preserved(preserved, drained=drained)
            # Anything the client sent during the notice goes first, then relaying resumes.
            if not await _deliver_pending(conn, candidate):
                successor = None
                exclude = candidate.endpoint.instance_id
                continue
            conn.attach(candidate)
            router.table.set_status(conn.id, ConnectionStatus.ACTIVE)
            router.switched(conn, old, candidate, reason, preserved)
    conn.interruptible = None
    if successor is None and not scope.cancelled_caught and not core.client_gone:
        with trio.move_on_after(CLOSE_TIMEOUT):
            await conn.perform(core.no_successor())
    conn.notify_changed()
    return successor


async def _let_go(conn: Connection, old: Upstream, *, graceful: bool) -> None:
    """Close the old worker connection once the client pump is not writing to it."""
    conn.awaiting_idle_client = True
    try:
        await _close_old(conn, old, graceful=graceful)
    finally:
        conn.awaiting_idle_client = False


async def _close_old(conn: Connection, old: Upstream, *, graceful: bool) -> None:
    if graceful:
        with trio.move_on_after(CLOSE_TIMEOUT):
            while conn.client_sending:
                await conn.changed.wait()
            frame = encode_frame(
                OP_CLOSE,
                close_payload(CLOSE_GOING_AWAY, "moved to another instance"),
                mask=random_mask(),
            )
            try:
                await old.channel.send(frame)
            except ChannelClosed:
                pass
    old.channel.close()  # wakes a client pump blocked writing to it
    while conn.client_sending:
        await conn.changed.wait()


async def _resume(conn: Connection, up: Upstream) -> bool | None:
    """Resume every session on ``up``; whether all came back, None if ``up`` died."""
    core = conn.core
    try:
        for frame in core.resume_frames(random_mask):
            await up.channel.send(frame)
    except ChannelClosed:
        core.resume_outcome()
        return None
    if not core.resuming:
        return True
    outcome = await pump_worker(
        conn,
        up,
        until=lambda: not core.resuming,
        deadline=trio.current_time() + RESUME_TIMEOUT,
    )
    preserved = core.resume_outcome()
    if outcome in (Outcome.LOST, Outcome.CLOSED, Outcome.INTERRUPTED):
        return None
    return preserved


async def _resend(conn: Connection, up: Upstream, in_flight: list[Kept]) -> bool:
    """Send again the user messages whose turns were in flight; False if ``up`` died."""
    frames = conn.core.resend_frames(in_flight)
    if not frames:
        return True
    try:
        await up.channel.send(b"".join(frames))
    except ChannelClosed:
        return False
    return True


async def _deliver_pending(conn: Connection, up: Upstream) -> bool:
    """Send what the client sent while no worker was connected; False if ``up`` died."""
    core = conn.core
    while (taken := core.take_pending()) is not None:
        chunk, upto = taken
        try:
            await up.channel.send(chunk)
        except ChannelClosed:
            core.pending_written(chunk, upto, ok=False)
            return False
        core.pending_written(chunk, upto, ok=True)
    return True


async def drain_connection(
    conn: Connection, deadline: float, reason: DrainReason = DrainReason.RESTART
) -> None:
    """Tell the client why, wait for its turns in flight (until ``deadline``), then move it.

    With no other instance to go to, the connection stays: when its instance
    stops, it fails over like any other (to the restarted instance, if that
    comes back within the grace period).
    """
    start = conn.instance_id
    countdown = max(0.0, deadline - trio.current_time())
    with trio.move_on_at(deadline):
        await conn.send_notice(drain_notification(start, reason, countdown))
    with trio.move_on_at(deadline):
        while conn.turns_in_flight and not conn.ended:
            await conn.changed.wait()
    if conn.ended or conn.instance_id != start:
        return
    if not conn.router.has_alternative(conn, exclude=start):
        return
    # A turn may still begin before the switch: the pump then waits for its end, until the
    # deadline; asking again at the deadline wakes a pump that waits on the worker.
    conn.request_switch(REASON_DRAIN, force_at=deadline)
    with trio.move_on_at(deadline):
        await _until_moved(conn, start)
    if not conn.ended and conn.instance_id == start and conn.core.is_attached:
        conn.request_switch(REASON_DRAIN, force_at=deadline)
    with trio.move_on_after(conn.router.failover_grace + CLOSE_TIMEOUT):
        await _until_moved(conn, start)


async def _until_moved(conn: Connection, start: str) -> None:
    while not conn.ended and conn.instance_id == start and conn.core.is_attached:
        await conn.changed.wait()
    while not conn.ended and not conn.core.is_attached:
        await conn.changed.wait()


def switched_event(
    conn: Connection, old: Upstream, new: Upstream, reason: str, preserved: bool
) -> ConnectionSwitched:
    return ConnectionSwitched(
        connection_id=conn.id,
        from_instance=old.endpoint.instance_id,
        to_instance=new.endpoint.instance_id,
        reason=reason,
        session_preserved=preserved,
        sessions=len(conn.sessions),
        at=time.time(),
    )
