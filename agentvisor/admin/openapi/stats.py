"""OpenAPI of the figures (``routes/stats.py``): overview, per-service stats, time series."""

from __future__ import annotations

from agentvisor.admin.openapi.vocabulary import (
    INTEGER,
    NUMBER,
    SERVICE_ID,
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
from agentvisor.admin.routes import stats

TAG = "Stats"
METRICS = ("connections", "sessions", "cpu", "memory", "messages", "errors", "restarts")
MAYBE_NUMBER = nullable(NUMBER)
MAYBE_INTEGER = nullable(INTEGER)


def schemas() -> dict[str, Schema]:
    return {
        "Overview": obj(
            {
                "services": obj(
                    {
                        "total": INTEGER,
                        "running": INTEGER,
                        "stopped": INTEGER,
                        "error": {"type": "integer", "description": "fatal, backoff or exited"},
                        "by_state": {"type": "object", "additionalProperties": INTEGER},
                    }
                ),
                "instances": obj({"total": INTEGER, "running": INTEGER}),
                "connections": obj(
                    {
                        "total": {"type": "integer", "description": "Routed since start"},
                        "active": INTEGER,
                        "peak_today": INTEGER,
                    }
                ),
                "sessions": obj(
                    {
                        "active": INTEGER,
                        "total": {"type": "integer", "description": "Since the workers started"},
                        "completed": INTEGER,
                    }
                ),
                "performance": obj(
                    {
                        "avg_response_time_ms": MAYBE_NUMBER,
                        "avg_turn_duration_ms": MAYBE_NUMBER,
                        "throughput_per_minute": MAYBE_NUMBER,
                        "error_rate": NUMBER,
                    }
                ),
                "resources": obj(
                    {
                        "total_memory_mb": NUMBER,
                        "total_cpu_percent": NUMBER,
                        "workers": obj({"memory_mb": NUMBER, "cpu_percent": NUMBER}),
                        "agentvisor": obj(
                            {"pid": INTEGER, "cpu_percent": MAYBE_NUMBER, "memory_mb": MAYBE_NUMBER}
                        ),
                    }
                ),
                "uptime_seconds": NUMBER,
            },
            description="The seed's overview object, plus instances and agentvisor itself",
        ),
        "Timeseries": obj(
            {
                "metric": enum(METRICS),
                "period": STRING,
                "interval": STRING,
                "period_seconds": NUMBER,
                "interval_seconds": NUMBER,
                "service_id": nullable(STRING),
                "data": array(
                    obj(
                        {
                            "timestamp": {"type": "string", "format": "date-time"},
                            "value": {
                                "type": "number",
                                "nullable": True,
                                "description": "null: no sample in the bucket (a gap)",
                            },
                        }
                    )
                ),
            }
        ),
    }


def _overview(operation_id: str) -> Schema:
    return {
        "get": operation(
            operation_id,
            "System overview: services, connections, sessions, performance, resources",
            tag=TAG,
            data=ref("Overview"),
        )
    }


def paths() -> dict[str, Schema]:
    return {
        "/api/v1/stats": _overview("getStats"),
        "/api/v1/stats/overview": _overview("getStatsOverview"),
        "/api/v1/stats/timeseries": {
            "get": operation(
                "getTimeseries",
                "A metric over time, in buckets, from the state store",
                tag=TAG,
                data=ref("Timeseries"),
                parameters=openapi_of(*stats.TIMESERIES_PARAMETERS),
                errors=(400, 404, 503),
            )
        },
        "/api/v1/services/{service_id}/stats": {
            "get": operation(
                "getServiceStats",
                "A service's connections, sessions, errors, cpu and memory",
                tag="Services",
                data=ref("ServiceStatsResult"),
                parameters=(SERVICE_ID,),
                errors=(404,),
            )
        },
    }
