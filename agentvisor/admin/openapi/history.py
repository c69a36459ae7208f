"""OpenAPI of what the state store remembers: the audit log and the log search.

(``routes/events.py`` and the search of ``routes/logs.py``; the live event
stream is in ``system``.)
"""

from __future__ import annotations

from agentvisor.admin.openapi.vocabulary import (
    INTEGER,
    NUMBER,
    STRING,
    Schema,
    array,
    enum,
    nullable,
    obj,
    operation,
    ref,
)
from agentvisor.admin.params import openapi_of
from agentvisor.admin.routes import events, logs

MAYBE_STRING = nullable(STRING)
TIME = {"type": "string", "format": "date-time"}


def schemas() -> dict[str, Schema]:
    return {
        "AuditEvent": obj(
            {
                "id": INTEGER,
                "at": TIME,
                "timestamp": NUMBER,
                "kind": {
                    "type": "string",
                    "description": "instance.state, instance.exited, instance.health, "
                    "operator.action, config.reload, connection.switched …",
                },
                "service": MAYBE_STRING,
                "instance": nullable(INTEGER),
                "action": MAYBE_STRING,
                "old": MAYBE_STRING,
                "new": MAYBE_STRING,
                "source": {
                    "type": "string",
                    "nullable": True,
                    "description": "Who or what caused it: api, cli, console, signal, reload, "
                    "health, memory, autoscaler, supervisor, router",
                },
                "outcome": MAYBE_STRING,
                "message": STRING,
                "details": {"type": "object"},
            }
        ),
        "EventList": obj({"events": array(ref("AuditEvent")), "page": ref("Page")}),
        "LogSearchHit": obj(
            {
                "id": INTEGER,
                "seq": nullable(INTEGER),
                "at": TIME,
                "timestamp": NUMBER,
                "service": STRING,
                "instance": INTEGER,
                "stream": enum(("stdout", "stderr")),
                "text": STRING,
                "highlights": {
                    "type": "array",
                    "items": array(INTEGER),
                    "description": "[start, end) character spans where the terms matched",
                },
            }
        ),
        "LogSearchResult": obj(
            {
                "query": STRING,
                "service_id": MAYBE_STRING,
                "lines": array(ref("LogSearchHit")),
                "page": ref("Page"),
            }
        ),
    }


def paths() -> dict[str, Schema]:
    return {
        "/api/v1/events": {
            "get": operation(
                "listEvents",
                "The audit log, newest first: state changes and operator actions",
                tag="Events",
                data=ref("EventList"),
                parameters=openapi_of(*events.PARAMETERS),
                errors=(400, 404, 503),
            )
        },
        "/api/v1/logs/search": {
            "get": operation(
                "searchLogs",
                "Full-text search of stored worker output, newest first",
                tag="Logs",
                data=ref("LogSearchResult"),
                description=(
                    'Every word (or "quoted phrase") of `query` must occur; there are no '
                    "operators. Required."
                ),
                parameters=openapi_of(*logs.SEARCH_PARAMETERS),
                errors=(400, 404, 503),
            )
        },
    }
