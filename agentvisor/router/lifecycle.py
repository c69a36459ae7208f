"""The router's operations beyond serving: drain, disconnect, shutdown, queries, failover picks.

These are the methods the supervisor (drain), the admin API (connections,
disconnect, routing test) and the daemon (shutdown, statistics) call, and
the ones connections call back (reconnect, switched, closed). They run in
the caller's task and act on connections, which live in the router's own
nursery.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio
from attrs import frozen

from agentvisor.errors import ConnectionNotFound
from agentvisor.events import ConnectionClosed, EventBus
from agentvisor.router.engine import RelayEngine
from agentvisor.router.failover import drain_connection, switched_event
from agentvisor.router.notices import REASON_DRAIN
from agentvisor.router.routing import Routing
from agentvisor.router.rules import ClientInfo, Route
from agentvisor.router.table import (
    ConnectionPage,
    ConnectionRecord,
    ConnectionStatus,
    ConnectionTable,
)
from agentvisor.router.upstream import Upstream, UpstreamFailed, open_upstream
from agentvisor.supervise.states import DrainReason

if TYPE_CHECKING:
    from agentvisor.router.relay import Connection

#: Wait between attempts on an instance that just failed to connect.
RETRY_DELAY = 0.5
#: How often a failover re-reads the endpoints when no event woke it.
POLL_INTERVAL = 0.2


@frozen
class RouterStatistics:
    """A snapshot for the API, metrics and tests (trio's ``statistics()`` convention)."""

    binds: tuple[str, ...]
    connections: int  # relaying now
    sockets: int  # accepted sockets not yet closed, including those in the handshake
    accepted: int  # connections routed since start
    refused: Mapping[str, int]  # by close code (or HTTP status / "overload")
    failovers: int  # successful switches after a worker was lost
    failover_failures: int
    drain_moves: int
    bytes_in: int  # client → workers, relayed
    bytes_out: int
    messages_in: int
    messages_out: int
    buffered_bytes: int  # held by the relay now: partial frames and failover buffers
    known_sessions: int
    draining: tuple[str, ...]


class RouterLifecycle:
    """Mixed into ``Router``; the attributes are the router's."""

    bus: EventBus
    table: ConnectionTable
    routing: Routing
    connections: dict[str, Connection]
    draining: Counter[str]
    binds: list[str]
    sockets: int
    accepted: int
    refused: Counter[str]
    failover_grace: float
    failovers: int
    failover_failures: int
    drain_moves: int
    bytes_in: int
    bytes_out: int
    messages_in: int
    messages_out: int
    engine: RelayEngine
    _accepting: trio.CancelScope | None

    # -- drain, disconnect, shutdown -------------------------------------------------

    async def drain(
        self,
        instance_id: str,
        *,
        timeout: float,  # noqa: ASYNC109
        reason: DrainReason = DrainReason.RESTART,
    ) -> None:
        """Send no new clients to ``instance_id``; move its clients once their turns end.

        Clients are told why (``management_notification`` type ``drain``, with
        ``reason``, also said in its message), their
        turns in flight may finish until ``timeout``, then each is moved like a
        failover. Returns when every connection has moved (or could not: no
        other instance; it will fail over when the instance stops). The caller
        keeps the instance marked draining until it is stopped. ``timeout`` is
        the agent's ``drain_timeout``: it bounds the wait for turns, not the moves.
        """
        self.draining[instance_id] += 1
        try:
            deadline = trio.current_time() + timeout
            affected = [c for c in self.connections.values() if c.instance_id == instance_id]
            async with trio.open_nursery() as nursery:
                for connection in affected:
                    nursery.start_soon(drain_connection, connection, deadline, reason)
        finally:
            self.draining[instance_id] -= 1
            if self.draining[instance_id] <= 0:
                del self.draining[instance_id]

    async def disconnect(
        self, connection_id: str, *, reason: str = "", notify_client: bool = True
    ) -> ConnectionRecord:
        """Close a client with 1001 (after a notification if asked); its last record."""
        connection = self.connections.get(connection_id)
        record = self.table.get(connection_id)
        if connection is None or record is None:
            raise ConnectionNotFound(connection_id)
        await connection.disconnect(reason or "administrative disconnect", notify=notify_client)
        return self.table.get(connection_id) or record

    async def shutdown(self) -> None:
        """Stop accepting; notify every client and close it with 1001. The caller bounds it."""
        if self._accepting is not None:
            self._accepting.cancel()
        reason = "agentvisor is shutting down"
        async with trio.open_nursery() as nursery:
            for connection in list(self.connections.values()):
                nursery.start_soon(_shut, connection, reason)

    # -- queries --------------------------------------------------------------------------

    def connection(self, connection_id: str) -> ConnectionRecord:
        record = self.table.get(connection_id)
        if record is None:
            raise ConnectionNotFound(connection_id)
        return record

    def list_connections(
        self,
        *,
        agent: str | None = None,
        status: ConnectionStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> ConnectionPage:
        return self.table.snapshot(agent=agent, status=status, limit=limit, offset=offset)

    def details(self, connection_id: str) -> dict[str, Any]:
        """What the table does not hold: turns in flight, switches, last seqs, buffers."""
        connection = self.connections.get(connection_id)
        if connection is None:
            return {}
        up = connection.upstream
        return {
            "turns_in_flight": connection.turns_in_flight,
            "switches": connection.switches,
            "last_seq": dict(connection.sessions),
            "buffered_bytes": connection.buffered_bytes(),
            "upstream": up.url if up is not None else None,
            "subprotocol": up.subprotocol if up is not None else None,
        }

    def test_route(
        self,
        *,
        ip: str,
        path: str = "/",
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Dry run of the routing decision for a simulated client; changes nothing."""
        client = ClientInfo(ip, path, dict(headers or {}), dict(query or {}))
        return self.routing.dry_run(client, self.draining)

    def load(self) -> dict[str, tuple[int, int]]:
        """Sessions and turns in flight per instance, from the live connections (for the
        autoscaler). A connection counts as one session until it names more."""
        load: dict[str, tuple[int, int]] = {}
        for connection in self.connections.values():
            instance_id = connection.instance_id
            if not instance_id:
                continue
            sessions, turns = load.get(instance_id, (0, 0))
            load[instance_id] = (
                sessions + max(1, len(connection.sessions)),
                turns + connection.turns_in_flight,
            )
        return load

    def statistics(self) -> RouterStatistics:
        return RouterStatistics(
            binds=tuple(self.binds),
            connections=len(self.connections),
            sockets=self.sockets,
            accepted=self.accepted,
            refused=dict(self.refused),
            failovers=self.failovers,
            failover_failures=self.failover_failures,
            drain_moves=self.drain_moves,
            bytes_in=self.bytes_in + self.engine.bytes_in,
            bytes_out=self.bytes_out + self.engine.bytes_out,
            messages_in=self.messages_in + self.engine.messages_in,
            messages_out=self.messages_out + self.engine.messages_out,
            buffered_bytes=sum(c.buffered_bytes() for c in self.connections.values()),
            known_sessions=self.table.known_sessions(),
            draining=tuple(sorted(self.draining)),
        )

    # -- called by connections ---------------------------------------------------------------

    def has_alternative(self, connection: Connection, *, exclude: str) -> bool:
        """Another instance could take ``connection`` now (a drain moves it only then)."""
        candidates = self.routing.candidates(connection.plan.agents, self.draining)
        return any(c.accepts_sessions and c.instance_id != exclude for c in candidates)

    async def reconnect(
        self, connection: Connection, *, exclude: str, deadline: float
    ) -> Upstream | None:
        """Another instance for ``connection`` by its rule's strategy, before ``deadline``.

        ``exclude`` (the instance just lost) is tried again only after
        ``RETRY_DELAY``, so a restarted instance can take the client back when
        it is the only one. The endpoints are re-read on every bus event and at
        least every ``POLL_INTERVAL``.
        """
        plan = connection.plan
        route = Route(plan.rule, plan.agents, plan.strategy)
        tried: dict[str, float] = {exclude: trio.current_time()}
        async with self.bus.subscribe(capacity=16) as events:
            while trio.current_time() < deadline:
                now = trio.current_time()
                pool = [
                    c
                    for c in self.routing.candidates(plan.agents, self.draining)
                    if now - tried.get(c.instance_id, -math.inf) >= RETRY_DELAY
                ]
                selection = self.routing.select(route, plan.client, pool)
                endpoint = (
                    self.routing.endpoint(selection.candidate.instance_id) if selection else None
                )
                if endpoint is not None:
                    with trio.move_on_at(deadline):
                        try:
                            return await open_upstream(
                                endpoint,
                                plan.request,
                                client_ip=connection.client_ip,
                                connection_id=connection.id,
                                route=plan.route_label,
                            )
                        except UpstreamFailed:
                            tried[endpoint.instance_id] = trio.current_time()
                            continue
                with trio.move_on_at(min(deadline, now + POLL_INTERVAL)):
                    await events.receive()
        self.failover_failures += 1
        return None

    def switched(
        self, connection: Connection, old: Upstream, new: Upstream, reason: str, preserved: bool
    ) -> None:
        if reason == REASON_DRAIN:
            self.drain_moves += 1
        else:
            self.failovers += 1
        self.bus.publish(switched_event(connection, old, new, reason, preserved))

    def closed(self, connection: Connection, record: ConnectionRecord | None) -> None:
        if record is None:
            return
        self.bus.publish(
            ConnectionClosed(
                connection_id=record.id,
                client_ip=record.client_ip,
                service=record.agent,
                instance_id=record.instance_id,
                code=connection.close_code,
                reason=connection.close_reason,
                duration=max(0.0, time.time() - record.since),
                messages_in=record.messages_in,
                messages_out=record.messages_out,
                bytes_in=record.bytes_in,
                bytes_out=record.bytes_out,
                at=time.time(),
            )
        )


async def _shut(connection: Connection, reason: str) -> None:
    await connection.disconnect(reason, notify=True, kind="shutdown")
