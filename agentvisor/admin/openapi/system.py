"""OpenAPI of the system endpoints and of the observability ones.

``/health``, ``/api/v1/info``, ``/api/v1/reload``, ``/metrics``,
``/api/v1/events/stream``, ``/openapi.json``, ``/docs`` and its assets.
"""

from __future__ import annotations

from agentvisor.admin.openapi.vocabulary import (
    BOOLEAN,
    INTEGER,
    NAMES,
    NUMBER,
    STRING,
    TIME_OR_NULL,
    Schema,
    obj,
    operation,
    path_parameter,
    ref,
)
from agentvisor.admin.params import openapi_of, query_parameter
from agentvisor.admin.routes import system

TAG = "System"


def schemas() -> dict[str, Schema]:
    return {
        "Info": obj(
            {
                "name": STRING,
                "version": STRING,
                "pid": INTEGER,
                "config_path": STRING,
                "started_at": TIME_OR_NULL,
                "uptime_seconds": NUMBER,
                "binds": NAMES,
                "auth": {"type": "boolean", "description": "Whether a bearer token is required"},
                "services": INTEGER,
            }
        ),
        "ReloadResult": obj(
            {
                "added": NAMES,
                "removed": NAMES,
                "restarted": NAMES,
                "scaled": NAMES,
                "updated": NAMES,
                "failed": NAMES,
                "needs_restart": NAMES,
                "changed": BOOLEAN,
                "dry_run": {
                    "type": "boolean",
                    "description": "A dry run: what a reload would do now; nothing was done",
                },
                "config_path": {"type": "string", "description": "The file agentvisor read"},
                "environment": obj(
                    {"set": NAMES, "unset": NAMES},
                    description=(
                        "The ${VAR} names the file references, as agentvisor's own "
                        "environment has them (unset: the default was used); empty "
                        "for an edit through the API"
                    ),
                ),
            },
            description="What a reload did (or, as a dry run, would do), service names per "
            "kind of change",
        ),
    }


def paths() -> dict[str, Schema]:
    return {
        "/health": {
            "get": operation(
                "getHealth",
                "agentvisor's own liveness, for load balancers and systemd (no token)",
                tag=TAG,
                public=True,
                content={
                    "application/json": {
                        "schema": obj(
                            {"status": STRING, "version": STRING, "uptime_seconds": NUMBER}
                        )
                    }
                },
            )
        },
        "/api/v1/info": {
            "get": operation(
                "getInfo",
                "Version, config path, uptime, binds, pid",
                tag=TAG,
                data=ref("Info"),
            )
        },
        "/api/v1/reload": {
            "post": operation(
                "reloadConfig",
                "Reload agentvisor.toml; nothing changes when it does not validate",
                tag=TAG,
                description=(
                    "With `dry_run=true`, the file is validated as a reload would validate "
                    "it, with agentvisor's environment for `${VAR}`, and the answer is the "
                    "plan a reload would carry out now (nothing changes, nothing goes to "
                    "the audit log). `agentvisor check --against-daemon` asks this."
                ),
                parameters=openapi_of(*system.RELOAD_PARAMETERS),
                data=ref("ReloadResult"),
                mutating=True,
                errors=(400, 422, 503),
            )
        },
        "/metrics": {
            "get": operation(
                "getMetrics",
                "Prometheus exposition of instances, health, router and event stream",
                tag="Observability",
                description=(
                    "Text format 0.0.4, or OpenMetrics when the Accept header asks for "
                    "application/openmetrics-text. Read live at each scrape."
                ),
                content={"text/plain": {"schema": STRING}},
            )
        },
        "/api/v1/events/stream": {
            "get": operation(
                "streamEvents",
                "Live events as server-sent events (text/event-stream)",
                tag="Observability",
                description=(
                    "One message per event: `event: <kind>` and `data: <json>`. Kinds: "
                    "instance.state, instance.exited, instance.health, instance.health_check, "
                    "operator.action, config.reload, connection.*, log.lines, metrics.sampled "
                    "(only when asked for). A client that reads too slowly loses events and "
                    "gets `event: dropped` with their number. `: keepalive` comments every "
                    "15 s when idle. The stream ends when agentvisor stops."
                ),
                parameters=(
                    query_parameter(
                        "types",
                        STRING,
                        "Comma-separated kinds or groups (instance, connection, log, …)",
                    ),
                    query_parameter("kind", STRING, "Same as types"),
                    query_parameter("service_id", STRING, "Only events about this service"),
                ),
                content={"text/event-stream": {"schema": STRING}},
                errors=(400, 404),
            )
        },
        "/openapi.json": {
            "get": operation(
                "getOpenApi",
                "This document",
                tag="Observability",
                content={"application/json": {"schema": {"type": "object"}}},
            )
        },
        "/docs": {
            "get": operation(
                "getDocs",
                "A browsable page of this document, served offline (no token: it holds no data)",
                tag="Observability",
                public=True,
                content={"text/html": {"schema": STRING}},
            )
        },
        "/docs/assets/{name}": {
            "get": operation(
                "getDocsAsset",
                "Scripts, styles and icons of the /docs page",
                tag="Observability",
                public=True,
                parameters=(path_parameter("name", "The asset's file name"),),
                content={
                    "text/css": {"schema": STRING},
                    "text/javascript": {"schema": STRING},
                    "image/png": {"schema": STRING},
                },
                errors=(404,),
            )
        },
    }
