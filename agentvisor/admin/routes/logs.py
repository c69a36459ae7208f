"""Worker output: ``GET /api/v1/logs/services/{id}``.

``since`` is a line sequence number (the ``next_since`` of the previous
answer); ``wait=SECONDS`` long-polls until a newer line arrives or the bound
passes, which is how ``agentvisorctl tail -f`` follows a service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio
from quart import Blueprint, Response, request

from agentvisor.admin.errors import query_choice, query_float, query_int, success
from agentvisor.admin.routes.system import iso_time

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps
    from agentvisor.supervise.logs import LogBook, LogLine

MAX_LIMIT = 1000
MAX_WAIT = 300.0
STREAMS = ("stdout", "stderr")


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
        book = deps.supervisor.logbook(service_id)
        limit = query_int(args, "limit", 100, minimum=1, maximum=MAX_LIMIT)
        stream = query_choice(args, "stream", STREAMS)
        replica = query_int(args, "instance", None, minimum=0)
        since = query_int(args, "since", 0, minimum=0)
        wait = query_float(args, "wait", 0.0, minimum=0.0, maximum=MAX_WAIT)

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
                "service_id": service_id,
                "lines": [log_line_to_dict(line) for line in lines],
                "next_since": cursor,
            }
        )

    return blueprint
