"""The audit log: ``GET /api/v1/events``, newest first, from the state store.

Rows are state transitions (with their cause), exits, health changes,
reloads and operator actions with their ``source`` (``api``, ``cli``,
``console``, ``signal``, ``reload``, ``health``, ``memory``, ``autoscaler``).
``since`` (ISO 8601 or epoch seconds) keeps rows at or after that time, which
is how ``agentvisorctl events -f`` polls when it cannot stream; ``kind``
(repeatable or comma-separated) keeps some kinds only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quart import Blueprint, Response, request

from agentvisor.admin.errors import page_of, success
from agentvisor.admin.lookup import require_store, resolve_known
from agentvisor.admin.params import LIMIT, OFFSET, SERVICE_FILTER, Text, Time
from agentvisor.admin.routes.system import iso_time

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps
    from agentvisor.store.records import EventRecord

SINCE = Time("since", "Only events at or after this time")
KIND = Text("kind", "Only these kinds (comma-separated; repeatable)")
PARAMETERS = (LIMIT, OFFSET, SINCE, SERVICE_FILTER, KIND)


def event_record_to_dict(record: EventRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "at": iso_time(record.at),
        "timestamp": record.at,
        "kind": record.kind,
        "service": record.service,
        "instance": record.replica,
        "action": record.action,
        "old": record.old,
        "new": record.new,
        "source": record.source,
        "outcome": record.outcome,
        "message": record.message,
        "details": record.details,
    }


def events_blueprint(deps: AdminDeps) -> Blueprint:
    blueprint = Blueprint("events", __name__)

    @blueprint.get("/events")
    async def events() -> tuple[Response, int]:
        args = request.args
        limit = LIMIT.parse(args)
        offset = OFFSET.parse(args)
        since = SINCE.parse(args)
        ref = SERVICE_FILTER.parse(args)
        name = await resolve_known(deps, ref) if ref else None
        kinds = [
            kind.strip() for raw in args.getlist("kind") for kind in raw.split(",") if kind.strip()
        ]
        store = require_store(deps)
        found = await store.events(
            offset + limit + 1, since=since, service=name, kinds=kinds or None
        )
        page = found[offset : offset + limit]
        return success(
            {
                "events": [event_record_to_dict(record) for record in page],
                "page": page_of(limit, offset, has_next=len(found) > offset + limit),
            }
        )

    return blueprint
