"""OpenAPI of the editing service endpoints (``routes/service_edits.py``).

Register, change config, scale and unregister edit agentvisor.toml and
apply it. ``POST /services`` and ``DELETE /services/{id}`` share their path
items with ``services``, whose ``paths()`` includes :func:`register_operation`
and :func:`unregister_operation`.
"""

from __future__ import annotations

from agentvisor.admin.openapi.vocabulary import (
    BOOLEAN,
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
from agentvisor.admin.params import OPERATION_TIMEOUT

TAG = "Services"
COMMAND: Schema = {
    "oneOf": [STRING, array(STRING)],
    "description": "A program serving WebSocket on {port}: an argv string or list",
}
AGENT_SETTINGS = (
    "Any key of an [agents.NAME] table (CONFIG.md) is accepted too, at the top level or "
    "in `config`; unknown keys are a 400 naming them."
)
TIMEOUT = OPERATION_TIMEOUT.openapi()


def _settings(*, with_name: bool) -> Schema:
    properties: dict[str, Schema] = {
        "agent_factory_path": {"type": "string", "description": "Agent file (also `agent`)"},
        "agent": STRING,
        "command": COMMAND,
        "description": STRING,
        "tags": array(STRING),
        "host": STRING,
        "port": nullable({"type": "integer", "minimum": 1, "maximum": 65535}),
        "replicas": {"type": "integer", "minimum": 0, "maximum": 1000},
        "auto_start": {"type": "boolean", "description": "Also `autostart`"},
        "auto_restart": {
            "oneOf": [BOOLEAN, enum(("always", "on-failure", "never"))],
            "description": "true = on-failure, false = never (also `autorestart`)",
        },
        "max_sessions": {"type": "integer", "minimum": 1},
        "session_timeout": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
        "environment": {"type": "object", "additionalProperties": STRING},
        "config": {
            "type": "object",
            "description": "The seed's nested settings: max_sessions, session_timeout, "
            "auto_restart, health_check_enabled, …",
        },
    }
    if with_name:
        properties = {"name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"}, **properties}
    optional = [key for key in properties if key != "name"]
    return obj(properties, optional=optional, description=AGENT_SETTINGS)


def schemas() -> dict[str, Schema]:
    return {
        "RegisterRequest": _settings(with_name=True),
        "ConfigChanges": _settings(with_name=False),
        "RegisterResult": obj(
            {
                "service_id": STRING,
                "name": STRING,
                "message": STRING,
                "endpoint": nullable(STRING),
                "autostart": BOOLEAN,
                "service": ref("ServiceDetail"),
                "reload": ref("ReloadResult"),
            }
        ),
        "ConfigUpdateResult": obj(
            {
                "service_id": STRING,
                "name": STRING,
                "changed": BOOLEAN,
                "applied": enum(("restarted", "scaled", "updated live", "unchanged")),
                "restarted": BOOLEAN,
                "settled": {
                    "type": "boolean",
                    "description": "False (with 202) while restarts go on after `timeout`",
                },
                "failed": array(STRING),
                "service": ref("ServiceDetail"),
                "reload": ref("ReloadResult"),
            }
        ),
        "ScaleRequest": obj(
            {"replicas": {"type": "integer", "minimum": 0, "maximum": 1000}}, extra=False
        ),
        "ScaleResult": obj(
            {
                "service_id": STRING,
                "name": STRING,
                "replicas": obj({"previous": INTEGER, "desired": INTEGER}),
                "service": ref("ServiceDetail"),
                "reload": ref("ReloadResult"),
            }
        ),
        "UnregisterResult": obj(
            {
                "service_id": STRING,
                "name": STRING,
                "removed": BOOLEAN,
                "stopped": {
                    "type": "boolean",
                    "description": "False (with 202) when still stopping after `timeout`",
                },
                "elapsed_seconds": NUMBER,
                "reload": ref("ReloadResult"),
            }
        ),
    }


def register_operation() -> Schema:
    return operation(
        "registerService",
        "Register a service: written to agentvisor.toml, then applied",
        tag=TAG,
        data=ref("RegisterResult"),
        statuses=(201,),
        description="The seed's body; the agent starts unless `auto_start` is false.",
        body=ref("RegisterRequest"),
        body_required=True,
        mutating=True,
        errors=(409, 422, 500, 503),
    )


def unregister_operation() -> Schema:
    return operation(
        "unregisterService",
        "Drain, stop and remove a service from agentvisor.toml",
        tag=TAG,
        data=ref("UnregisterResult"),
        statuses=(200, 202),
        parameters=(SERVICE_ID, TIMEOUT),
        mutating=True,
        errors=(404, 409, 422, 500, 503),
    )


def paths() -> dict[str, Schema]:
    return {
        "/api/v1/services/{service_id}/config": {
            "put": operation(
                "updateServiceConfig",
                "Change settings (a JSON merge patch); restarts only when needed",
                tag=TAG,
                data=ref("ConfigUpdateResult"),
                description="`null` puts a setting back to its default. " + AGENT_SETTINGS,
                statuses=(200, 202),
                parameters=(SERVICE_ID, TIMEOUT),
                body=ref("ConfigChanges"),
                body_required=True,
                mutating=True,
                errors=(404, 409, 422, 500, 503),
            )
        },
        "/api/v1/services/{service_id}/scale": {
            "post": operation(
                "scaleService",
                "Set the number of replicas, kept in agentvisor.toml",
                tag=TAG,
                data=ref("ScaleResult"),
                parameters=(SERVICE_ID,),
                body=ref("ScaleRequest"),
                body_required=True,
                mutating=True,
                errors=(404, 409, 422, 500, 503),
            )
        },
    }
