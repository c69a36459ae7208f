"""Connections through the router: list, detail, administrative disconnect.

Shapes follow the seed (``connection_id``, ``client_ip``,
``target_service_id``, ``status``, ``connected_at``, ``last_activity``,
``bytes_sent`` / ``bytes_received`` from the client's point of view,
``message_count``), extended with the instance, the sessions, the rule and
each direction's counts. Without a running router the endpoints answer 503
``ROUTING_FAILED``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from quart import Blueprint, Response, request

from agentvisor.admin.errors import page_of, success
from agentvisor.admin.params import LIMIT, OFFSET, Choice, Text
from agentvisor.admin.routes.system import iso_time
from agentvisor.api.bodies import DISCONNECT
from agentvisor.errors import RoutingFailed
from agentvisor.router.table import ConnectionPage, ConnectionRecord, ConnectionStatus

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps
    from agentvisor.admin.metrics import RouterStatistics

STATUSES = tuple(status.value for status in ConnectionStatus)
AGENT = Text("service_id", "Only those routed to this agent")
STATUS = Choice("status", "Only those in this state", STATUSES)
LIST_PARAMETERS = (AGENT, STATUS, LIMIT, OFFSET)


class RouterApi(Protocol):
    """What the admin API calls on the router (``agentvisor.router.server.Router``)."""

    def statistics(self) -> RouterStatistics: ...

    def list_connections(
        self,
        *,
        agent: str | None = None,
        status: ConnectionStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> ConnectionPage: ...

    def connection(self, connection_id: str) -> ConnectionRecord: ...

    def details(self, connection_id: str) -> dict[str, Any]: ...

    async def disconnect(
        self, connection_id: str, *, reason: str = "", notify_client: bool = True
    ) -> ConnectionRecord: ...

    def test_route(
        self,
        *,
        ip: str,
        path: str = "/",
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]: ...


def router_of(deps: AdminDeps) -> RouterApi:
    if deps.router is None:
        raise RoutingFailed("The router is not running")
    return deps.router


def connection_to_dict(record: ConnectionRecord) -> dict[str, Any]:
    return {
        "connection_id": record.id,
        "client_ip": record.client_ip,
        "target_service_id": record.agent,
        "target_instance": record.instance_id,
        "status": record.status.value,
        "session_id": record.session_ids[-1] if record.session_ids else None,
        "session_ids": list(record.session_ids),
        "connected_at": iso_time(record.since),
        "last_activity": iso_time(record.last_activity),
        "rule": record.rule,
        "routing_strategy": record.strategy,
        "bytes_sent": record.bytes_out,  # to the client
        "bytes_received": record.bytes_in,  # from the client
        "messages_in": record.messages_in,
        "messages_out": record.messages_out,
        "message_count": record.messages_in + record.messages_out,
    }


def connections_blueprint(deps: AdminDeps) -> Blueprint:
    blueprint = Blueprint("connections", __name__)

    @blueprint.get("/connections")
    async def list_connections() -> tuple[Response, int]:
        args = request.args
        router = router_of(deps)
        service = AGENT.parse(args)
        status = STATUS.parse(args)
        limit = LIMIT.parse(args)
        offset = OFFSET.parse(args)
        page = router.list_connections(
            agent=service,
            status=ConnectionStatus(status) if status else None,
            limit=limit,
            offset=offset,
        )
        return success(
            {
                "connections": [connection_to_dict(record) for record in page.items],
                "total": page.total,
                "page": page_of(limit, offset, has_next=offset + limit < page.total),
            }
        )

    @blueprint.get("/connections/<connection_id>")
    async def show_connection(connection_id: str) -> tuple[Response, int]:
        router = router_of(deps)
        data = connection_to_dict(router.connection(connection_id))
        data.update(router.details(connection_id))
        return success(data)

    @blueprint.post("/connections/<connection_id>/disconnect")
    async def disconnect(connection_id: str) -> tuple[Response, int]:
        router = router_of(deps)
        body = DISCONNECT.parse(await request.get_data())
        reason, notify = body.reason, body.notify_client
        record = await router.disconnect(connection_id, reason=reason, notify_client=notify)
        data = connection_to_dict(record)
        data.update(disconnected=True, reason=reason, notified=notify)
        return success(data)

    return blueprint
