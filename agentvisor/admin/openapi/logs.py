"""OpenAPI of the worker output endpoints (``routes/logs.py``)."""

from __future__ import annotations

from agentvisor.admin.openapi.vocabulary import (
    INTEGER,
    NUMBER,
    SERVICE_ID,
    STRING,
    Schema,
    array,
    enum,
    obj,
    operation,
    ref,
)
from agentvisor.admin.params import openapi_of
from agentvisor.admin.routes import logs

TAG = "Logs"


def schemas() -> dict[str, Schema]:
    return {
        "LogLine": obj(
            {
                "seq": {"type": "integer", "description": "Per service, increasing by 1"},
                "at": {"type": "string", "format": "date-time"},
                "timestamp": NUMBER,
                "service": STRING,
                "instance": INTEGER,
                "stream": enum(("stdout", "stderr")),
                "text": STRING,
            }
        ),
        "ServiceLogs": obj(
            {
                "service_id": STRING,
                "lines": array(ref("LogLine")),
                "next_since": {
                    "type": "integer",
                    "description": "Pass as `since` to get the lines after these",
                },
            }
        ),
    }


def paths() -> dict[str, Schema]:
    return {
        "/api/v1/logs/services/{service_id}": {
            "get": operation(
                "getServiceLogs",
                "The recent output of a service's workers; `wait` follows it (tail -f)",
                tag=TAG,
                data=ref("ServiceLogs"),
                parameters=(SERVICE_ID, *openapi_of(*logs.TAIL_PARAMETERS)),
                errors=(400, 404),
            )
        },
    }
