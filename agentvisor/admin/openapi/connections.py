"""OpenAPI of the router's connections and the routing dry run (``routes/connections.py``,
``routes/routing.py``)."""

from __future__ import annotations

from agentvisor.admin.openapi.vocabulary import (
    BOOLEAN,
    INTEGER,
    STRING,
    TIME_OR_NULL,
    Schema,
    array,
    enum,
    nullable,
    obj,
    operation,
    path_parameter,
    ref,
)
from agentvisor.admin.params import openapi_of
from agentvisor.admin.routes import connections
from agentvisor.api.bodies import DISCONNECT, ROUTING_TEST

CONNECTIONS = "Connections"
ROUTING = "Routing"
STATUSES = ("connecting", "active", "failing_over", "closing")
CONNECTION_ID = path_parameter("connection_id", "The connection's id (see the listing)")
STRINGS: Schema = {"type": "object", "additionalProperties": {"type": "string"}}


def _connection() -> dict[str, Schema]:
    return {
        "connection_id": STRING,
        "client_ip": STRING,
        "target_service_id": {"type": "string", "description": "The agent"},
        "target_instance": {"type": "string", "description": "name:replica"},
        "status": enum(STATUSES),
        "session_id": nullable(STRING),
        "session_ids": array(STRING),
        "connected_at": TIME_OR_NULL,
        "last_activity": TIME_OR_NULL,
        "rule": nullable(STRING),
        "routing_strategy": STRING,
        "bytes_sent": {"type": "integer", "description": "To the client"},
        "bytes_received": {"type": "integer", "description": "From the client"},
        "messages_in": INTEGER,
        "messages_out": INTEGER,
        "message_count": INTEGER,
    }


def schemas() -> dict[str, Schema]:
    candidate = obj(
        {
            "instance_id": STRING,
            "service": STRING,
            "eligible": BOOLEAN,
            "healthy": BOOLEAN,
            "draining": BOOLEAN,
            "connections": INTEGER,
            "sessions": INTEGER,
            "max_sessions": INTEGER,
        }
    )
    return {
        "Connection": obj(_connection()),
        "ConnectionDetail": obj(
            {
                **_connection(),
                "turns_in_flight": INTEGER,
                "switches": INTEGER,
                "last_seq": {"type": "object", "additionalProperties": {"nullable": True}},
                "buffered_bytes": INTEGER,
                "upstream": nullable(STRING),
                "subprotocol": nullable(STRING),
            },
            optional=("turns_in_flight", "switches", "last_seq", "buffered_bytes", "upstream"),
        ),
        "ConnectionList": obj(
            {"connections": array(ref("Connection")), "total": INTEGER, "page": ref("Page")}
        ),
        "Disconnected": obj(
            {**_connection(), "disconnected": BOOLEAN, "reason": STRING, "notified": BOOLEAN}
        ),
        "RoutingTestResult": obj(
            {
                "client": {"type": "object"},
                "action": enum(("route", "reject", "no_route")),
                "rule": nullable(STRING),
                "reason": nullable(STRING),
                "code": nullable(STRING),
                "agents": array(STRING),
                "strategy": nullable(STRING),
                "instance": {
                    "type": "object",
                    "nullable": True,
                    "properties": {
                        "instance_id": STRING,
                        "service": STRING,
                        "endpoint": nullable(STRING),
                        "decided_by": STRING,
                    },
                },
                "candidates": array(candidate),
            }
        ),
    }


def paths() -> dict[str, Schema]:
    return {
        "/api/v1/connections": {
            "get": operation(
                "listConnections",
                "Client connections through the router, oldest first",
                tag=CONNECTIONS,
                data=ref("ConnectionList"),
                parameters=openapi_of(*connections.LIST_PARAMETERS),
                errors=(400, 503),
            )
        },
        "/api/v1/connections/{connection_id}": {
            "get": operation(
                "getConnection",
                "One connection, with its turns in flight and last seqs",
                tag=CONNECTIONS,
                data=ref("ConnectionDetail"),
                parameters=(CONNECTION_ID,),
                errors=(404, 503),
            )
        },
        "/api/v1/connections/{connection_id}/disconnect": {
            "post": operation(
                "disconnectConnection",
                "Close a client's connection with 1001, after a notification unless asked not",
                tag=CONNECTIONS,
                data=ref("Disconnected"),
                parameters=(CONNECTION_ID,),
                body=DISCONNECT,
                mutating=True,
                errors=(404, 503),
            )
        },
        "/api/v1/routing/test": {
            "post": operation(
                "testRouting",
                "Where the router would send a client like this (a dry run: nothing changes)",
                tag=ROUTING,
                data=ref("RoutingTestResult"),
                body=ROUTING_TEST,
                mutating=True,
                errors=(503,),
            )
        },
    }
