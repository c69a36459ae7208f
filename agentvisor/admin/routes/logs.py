"""Worker output: ``GET /api/v1/logs/services/{id}`` and ``GET /api/v1/logs/search``.

Search runs over the lines the state store keeps (FTS5; every term must
occur; see ``store.queries.search_terms``), newest first.

``since`` is a line sequence number (the ``next_since`` of the previous
answer); ``wait=SECONDS`` long-polls until a newer line arrives or the bound
passes, which is how ``agentvisorctl tail -f`` follows a service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio
from quart import Blueprint, Response, request

from agentvisor.admin.errors import page_of, success
from agentvisor.admin.lookup import require_store, resolve_known, resolve_service
from agentvisor.admin.lookup import service_id as service_id_of
from agentvisor.admin.params import (
    INSTANCE,
    LIMIT,
    MAX_INTEGER,
    OFFSET,
    SERVICE_FILTER,
    Choice,
    Integer,
    Number,
    Text,
    limit,
)
from agentvisor.admin.routes.system import iso_time

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps
    from agentvisor.store.records import LogRecord
    from agentvisor.supervise.logs import LogBook, LogLine

MAX_WAIT = 300.0
STREAMS = ("stdout", "stderr")
STREAM = Choice("stream", "One stream only", STREAMS)
SINCE = Integer("since", "Only lines after this sequence number", 0, 0, MAX_INTEGER)
WAIT = Number("wait", "Seconds to wait for a new line when there is none yet", 0.0, 0.0, MAX_WAIT)
TAIL_PARAMETERS = (LIMIT, STREAM, INSTANCE, SINCE, WAIT)
QUERY = Text("query", "The words to search for", aliases=("q",), required=True)
SEARCH_LIMIT = limit(50)
SEARCH_PARAMETERS = (QUERY, SERVICE_FILTER, SEARCH_LIMIT, OFFSET)


def log_line_to_dict(line: LogLine) -> dict[str, Any]:
    return {
        "seq": line.seq,
        "at": iso_time(line.at),
        "timestamp": line.at,
        "service": line.service,
        "instance": line.replica,
        "stream": line.stream,
        "text": line.text,
    }


async def wait_beyond_or_stop(book: LogBook, seq: int, stopping: trio.Event) -> None:
    """Return when a line beyond ``seq`` exists or the server begins to stop."""
    async with trio.open_nursery() as nursery:

        async def beyond() -> None:
            await book.wait_beyond(seq)
            nursery.cancel_scope.cancel()

        async def stop() -> None:
            await stopping.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(beyond)
        nursery.start_soon(stop)


def logs_blueprint(deps: AdminDeps) -> Blueprint:
    blueprint = Blueprint("logs", __name__)

    @blueprint.get("/logs/services/<service_id>")
    async def service_logs(service_id: str) -> tuple[Response, int]:
        args = request.args
        name = await resolve_service(deps, service_id)
        book = deps.supervisor.logbook(name)
        limit = LIMIT.parse(args)
        stream = STREAM.parse(args)
        replica = INSTANCE.parse(args)
        since = SINCE.parse(args)
        wait = WAIT.parse(args)

        def read() -> list[LogLine]:
            return book.tail(limit, stream=stream, replica=replica, since_seq=since)

        lines = read()
        cursor = max(since, book.last_seq)
        if not lines and wait > 0:
            with trio.move_on_after(wait):
                while not lines and not deps.stopping.is_set():
                    await wait_beyond_or_stop(book, cursor, deps.stopping)
                    lines = read()
                    cursor = max(cursor, book.last_seq)
        if lines:
            # Lines after the last one returned may have been left out by ``limit``.
            cursor = lines[-1].seq
        return success(
            {
                "service_id": await service_id_of(deps, name),
                "name": name,
                "lines": [log_line_to_dict(line) for line in lines],
                "next_since": cursor,
            }
        )

    @blueprint.get("/logs/search")
    async def search_logs() -> tuple[Response, int]:
        args = request.args
        query = QUERY.parse(args)
        assert query is not None  # required
        limit = SEARCH_LIMIT.parse(args)
        offset = OFFSET.parse(args)
        ref = SERVICE_FILTER.parse(args)
        name = await resolve_known(deps, ref) if ref else None
        store = require_store(deps)
        found = await store.search_logs(query, service=name, limit=offset + limit + 1)
        page = found[offset : offset + limit]
        return success(
            {
                "query": query,
                "service_id": None if name is None else await service_id_of(deps, name),
                "lines": [stored_line_to_dict(record) for record in page],
                "page": page_of(limit, offset, has_next=len(found) > offset + limit),
            }
        )

    return blueprint


def stored_line_to_dict(record: LogRecord) -> dict[str, Any]:
    """A line from the store's search, with where the terms matched (for highlighting)."""
    return {
        "id": record.id,
        "seq": record.seq,
        "at": iso_time(record.at),
        "timestamp": record.at,
        "service": record.service,
        "instance": record.replica,
        "stream": record.stream,
        "text": record.text,
        "highlights": [list(span) for span in record.highlights],
    }
