"""OpenAPI of the service endpoints (``routes/services.py``): list, detail, operations."""

from __future__ import annotations

from agentvisor.admin.openapi import service_edits
from agentvisor.admin.openapi.vocabulary import (
    INTEGER,
    NUMBER,
    SERVICE_ID,
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
from agentvisor.admin.params import OPERATION_TIMEOUT, openapi_of
from agentvisor.admin.routes import services

TAG = "Services"
INSTANCE_STATES = ("stopped", "starting", "running", "backoff", "stopping", "exited", "fatal")
#: ``registry.aggregate_state`` adds these for a service as a whole.
SERVICE_STATES = (*INSTANCE_STATES, "degraded", "waiting")
SERVICE_HEALTH = ("healthy", "unhealthy", "degraded", "unknown", "disabled")
OPTIONAL_NUMBER = nullable(NUMBER)
OPTIONAL_INTEGER = nullable(INTEGER)
OPTIONAL_STRING = nullable(STRING)


def schemas() -> dict[str, Schema]:
    return {
        "InstanceHealth": obj(
            {
                "status": enum(("healthy", "unhealthy", "unknown", "disabled")),
                "last_check": TIME_OR_NULL,
                "response_time_ms": OPTIONAL_NUMBER,
                "message": STRING,
                "consecutive_failures": INTEGER,
            }
        ),
        "Instance": obj(
            {
                "replica": INTEGER,
                "state": enum(INSTANCE_STATES),
                "pid": OPTIONAL_INTEGER,
                "host": STRING,
                "port": OPTIONAL_INTEGER,
                "endpoint": OPTIONAL_STRING,
                "started_at": TIME_OR_NULL,
                "uptime_seconds": OPTIONAL_NUMBER,
                "restarts": INTEGER,
                "failures": INTEGER,
                "exit_code": OPTIONAL_INTEGER,
                "exit_reason": {
                    **STRING,
                    "description": "How the last process ended, with its last stderr line: "
                    "exit status 2: SyntaxError: invalid syntax",
                },
                "stderr_tail": {
                    **array(STRING),
                    "description": "The last stderr lines of the current or last process",
                },
                "next_retry_at": TIME_OR_NULL,
                "reason": STRING,
                "cpu_percent": OPTIONAL_NUMBER,
                "memory_bytes": OPTIONAL_INTEGER,
                "memory_mb": OPTIONAL_NUMBER,
                "sessions": OPTIONAL_INTEGER,
                "health": ref("InstanceHealth"),
            },
            description="One process of a service (a replica)",
        ),
        "ServiceStats": obj(
            {
                "uptime_seconds": OPTIONAL_NUMBER,
                "cpu_percent": OPTIONAL_NUMBER,
                "memory_bytes": OPTIONAL_INTEGER,
                "memory_mb": OPTIONAL_NUMBER,
                "restarts": INTEGER,
                "sessions_active": OPTIONAL_NUMBER,
            },
            description="Figures summed over the instances (and the store's, when it runs)",
        ),
        "ServiceItem": obj(
            {
                "service_id": {"type": "string", "description": "Stable id (or the name)"},
                "name": STRING,
                "kind": enum(("agent", "command")),
                "description": STRING,
                "state": enum(SERVICE_STATES),
                "status": enum(SERVICE_STATES),
                "tags": array(STRING),
                "host": STRING,
                "port": OPTIONAL_INTEGER,
                "endpoint": OPTIONAL_STRING,
                "started_at": TIME_OR_NULL,
                "replicas": obj(
                    {
                        "desired": INTEGER,
                        "running": INTEGER,
                        "autoscale": nullable(
                            obj(
                                {"min": INTEGER, "max": INTEGER},
                                description="The autoscaler's bounds; desired is its count. "
                                "Null when the agent has no [agents.NAME.autoscale]",
                            )
                        ),
                    }
                ),
                "health": enum(SERVICE_HEALTH),
                "stats": ref("ServiceStats"),
                "instances": array(ref("Instance")),
            }
        ),
        "ServiceDetail": {
            "allOf": [
                ref("ServiceItem"),
                obj(
                    {
                        "config": {
                            "type": "object",
                            "description": "The [agents.NAME] table; secret-looking values '***'",
                        },
                        "autoscale": {
                            "type": "object",
                            "nullable": True,
                            "description": "The autoscaler's policy settings, desired replicas, "
                            "replicas retiring (draining or stopping after a scale-down), last "
                            "decision (with its signals and reason) and last change; null "
                            "when the agent has no [agents.NAME.autoscale]",
                        },
                    }
                ),
            ]
        },
        "ServiceList": obj(
            {
                "services": array(ref("ServiceItem")),
                "total": INTEGER,
                "page": ref("Page"),
            }
        ),
    }


def _operate(action: str, summary: str, *, force: bool = False) -> Schema:
    parameters = [SERVICE_ID, OPERATION_TIMEOUT.openapi()]
    if force:
        parameters.append(services.FORCE.openapi())
    return {
        "post": operation(
            f"{action}Service",
            summary,
            tag=TAG,
            data=ref("OperationResult"),
            statuses=(200, 202),
            parameters=parameters,
            mutating=True,
            errors=(404, 500, 503),
        )
    }


def paths() -> dict[str, Schema]:
    return {
        "/api/v1/services": {
            "get": operation(
                "listServices",
                "Services with their state, health, stats and instances",
                tag=TAG,
                data=ref("ServiceList"),
                parameters=openapi_of(*services.LIST_PARAMETERS),
                errors=(400,),
            ),
            "post": service_edits.register_operation(),
        },
        "/api/v1/services/{service_id}": {
            "get": operation(
                "getService",
                "One service: config, stats, health, instances",
                tag=TAG,
                data=ref("ServiceDetail"),
                parameters=(SERVICE_ID,),
                errors=(404,),
            ),
            "delete": service_edits.unregister_operation(),
        },
        "/api/v1/services/{service_id}/instances": {
            "get": operation(
                "listInstances",
                "The instances of a service: pid, port, state, restarts, cpu, memory, health",
                tag=TAG,
                data=ref("InstanceList"),
                parameters=(SERVICE_ID,),
                errors=(404,),
            )
        },
        "/api/v1/services/{service_id}/start": _operate("start", "Start every instance"),
        "/api/v1/services/{service_id}/stop": _operate("stop", "Stop every instance"),
        "/api/v1/services/{service_id}/restart": _operate(
            "restart", "Restart, rolling one instance at a time", force=True
        ),
    }
