"""OpenAPI of the health endpoints (``routes/health.py``): status, a check now, history."""

from __future__ import annotations

from agentvisor.admin.openapi.vocabulary import (
    BOOLEAN,
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
from agentvisor.admin.params import openapi_of
from agentvisor.admin.routes import health

TAG = "Health"
SERVICE_HEALTH = ("healthy", "unhealthy", "degraded", "unknown", "disabled")
MILLISECONDS = nullable(NUMBER)


def schemas() -> dict[str, Schema]:
    return {
        "InstanceHealthStatus": obj(
            {
                "instance": INTEGER,
                "state": STRING,
                "status": enum(("healthy", "unhealthy", "unknown", "disabled")),
                "last_check": TIME_OR_NULL,
                "response_time_ms": MILLISECONDS,
                "message": STRING,
                "consecutive_failures": INTEGER,
            }
        ),
        "ServiceHealth": obj(
            {
                "service_id": STRING,
                "name": STRING,
                "status": enum(SERVICE_HEALTH),
                "last_check": TIME_OR_NULL,
                "response_time_ms": MILLISECONDS,
                "message": STRING,
                "enabled": BOOLEAN,
                "mode": enum(("websocket", "http")),
                "interval": NUMBER,
                "instances": array(ref("InstanceHealthStatus")),
            },
            description="The seed's health object, from the periodic checks",
        ),
        "HealthCheckResult": obj(
            {
                "service_id": STRING,
                "name": STRING,
                "checked_at": TIME_OR_NULL,
                "healthy": {"type": "boolean", "description": "Every checked instance passed"},
                "status": enum(("healthy", "unhealthy", "degraded", "unknown")),
                "service_status": enum(SERVICE_HEALTH),
                "results": array(
                    obj(
                        {
                            "instance": INTEGER,
                            "ok": BOOLEAN,
                            "skipped": {
                                "type": "boolean",
                                "description": "Not checked: the instance is not up",
                            },
                            "message": STRING,
                            "response_time_ms": MILLISECONDS,
                        }
                    )
                ),
            }
        ),
        "HealthHistory": obj(
            {
                "service_id": STRING,
                "name": STRING,
                "checks": array(
                    obj(
                        {
                            "at": {"type": "string", "format": "date-time"},
                            "timestamp": NUMBER,
                            "instance": INTEGER,
                            "ok": BOOLEAN,
                            "status": STRING,
                            "response_time_ms": MILLISECONDS,
                            "message": STRING,
                        }
                    )
                ),
                "page": ref("Page"),
            }
        ),
    }


def _current(operation_id: str) -> Schema:
    return {
        "get": operation(
            operation_id,
            "A service's health: status, last check, response time, per instance",
            tag=TAG,
            data=ref("ServiceHealth"),
            parameters=(SERVICE_ID,),
            errors=(404,),
        )
    }


def paths() -> dict[str, Schema]:
    return {
        "/api/v1/health/services/{service_id}": _current("getServiceHealth"),
        "/api/v1/services/{service_id}/health": _current("getServiceHealthAlias"),
        "/api/v1/health/services/{service_id}/check": {
            "post": operation(
                "checkServiceHealth",
                "Run one health check of every instance now",
                tag=TAG,
                data=ref("HealthCheckResult"),
                description=(
                    "The results are stored in the history; they do not change the "
                    "instances' health state (the periodic checks and thresholds do)."
                ),
                parameters=(SERVICE_ID,),
                mutating=True,
                errors=(404,),
            )
        },
        "/api/v1/health/services/{service_id}/history": {
            "get": operation(
                "getServiceHealthHistory",
                "Stored health checks of a service, newest first",
                tag=TAG,
                data=ref("HealthHistory"),
                parameters=(SERVICE_ID, *openapi_of(*health.HISTORY_PARAMETERS)),
                errors=(400, 404, 503),
            )
        },
    }
