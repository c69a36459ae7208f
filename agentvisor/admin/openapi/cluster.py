"""OpenAPI of ``/api/v1/cluster/nodes`` (``[cluster]``: the nodes sharing one Redis)."""

from __future__ import annotations

from agentvisor.admin.openapi.vocabulary import (
    BOOLEAN,
    INTEGER,
    NAMES,
    NUMBER,
    STRING,
    TIME_OR_NULL,
    Schema,
    array,
    enum,
    nullable,
    obj,
    operation,
    ref,
)

TAG = "Cluster"


def schemas() -> dict[str, Schema]:
    return {
        "ClusterAgent": obj(
            {
                "name": STRING,
                "kind": enum(("agent", "command")),
                "state": STRING,
                "desired": INTEGER,
                "running": INTEGER,
                "description": STRING,
                "tags": NAMES,
            }
        ),
        "ClusterInstance": obj(
            {
                "id": {"type": "string", "description": "The node's own id, `agent:replica`"},
                "agent": STRING,
                "replica": INTEGER,
                "host": {"type": "string", "description": "Where other nodes' routers connect"},
                "port": INTEGER,
                "ws_path": STRING,
                "state": STRING,
                "health": enum(("healthy", "unhealthy", "unknown")),
                "routable": BOOLEAN,
                "draining": BOOLEAN,
                "weight": NUMBER,
                "max_sessions": INTEGER,
                "sessions": INTEGER,
                "connections": {
                    "type": "integer",
                    "description": "Clients of that node's own router on this instance",
                },
                "tags": NAMES,
                "pid": nullable(INTEGER),
                "cpu_percent": nullable(NUMBER),
                "memory_bytes": nullable(INTEGER),
            }
        ),
        "ClusterNode": obj(
            {
                "name": STRING,
                "state": {
                    **enum(("up", "down", "invalid")),
                    "description": "up: heartbeat within node_timeout; invalid: a record this "
                    "version cannot read",
                },
                "self": {"type": "boolean", "description": "The node that answered"},
                "heartbeat_age": {
                    **nullable(NUMBER),
                    "description": "Seconds since its last heartbeat, on Redis's clock",
                },
                "version": nullable(STRING),
                "pid": nullable(INTEGER),
                "started_at": TIME_OR_NULL,
                "router": NAMES,
                "admin": NAMES,
                "agents": array(ref("ClusterAgent")),
                "instances": array(ref("ClusterInstance")),
            }
        ),
        "Cluster": obj(
            {
                "node": {"type": "string", "description": "The name of the node that answered"},
                "redis": obj(
                    {
                        "target": STRING,
                        "reachable": BOOLEAN,
                        "last_error": nullable(STRING),
                        "read_age": {
                            **nullable(NUMBER),
                            "description": "Seconds since this node last read the registry",
                        },
                    }
                ),
                "node_timeout": NUMBER,
                "nodes": array(ref("ClusterNode")),
            }
        ),
    }


def paths() -> dict[str, Schema]:
    return {
        "/api/v1/cluster/nodes": {
            "get": operation(
                "listClusterNodes",
                "Every node of the cluster with its agents and instances, as this node last "
                "read them from Redis",
                tag=TAG,
                data=ref("Cluster"),
                description=(
                    "Nodes down for 10 minutes are no longer listed. 404 "
                    "`CLUSTER_NOT_CONFIGURED` when this agentvisor has no `[cluster]`."
                ),
                errors=(404,),
            )
        }
    }
