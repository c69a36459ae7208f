"""OpenAPI of the editing service endpoints (``routes/service_edits.py``).

Register, change config, scale and unregister edit agentvisor.toml and
apply it; their request bodies are declared in ``api.bodies``. ``POST
/services`` and ``DELETE /services/{id}`` share their path items with
``services``, whose ``paths()`` includes :func:`register_operation` and
:func:`unregister_operation`.
"""

from __future__ import annotations

from agentvisor.admin.openapi.vocabulary import (
    SERVICE_ID,
    Schema,
    operation,
    ref,
)
from agentvisor.admin.params import OPERATION_TIMEOUT
from agentvisor.api.bodies import CONFIG_CHANGES, REGISTER, SCALE

TAG = "Services"
AGENT_SETTINGS = (
    "Any key of an [agents.NAME] table (docs/configuration.md), at the top level or in "
    "`config`; unknown keys are a 400 naming them."
)
TIMEOUT = OPERATION_TIMEOUT.openapi()


def schemas() -> dict[str, Schema]:
    return {}  # the answers are declared in api.answers, the bodies in api.bodies


def register_operation() -> Schema:
    return operation(
        "registerService",
        "Register a service: written to agentvisor.toml, then applied",
        tag=TAG,
        data=ref("RegisterResult"),
        statuses=(201,),
        description="The seed's body; the agent starts unless `auto_start` is false.",
        body=REGISTER,
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
                body=CONFIG_CHANGES,
                mutating=True,
                errors=(404, 409, 422, 500, 503),
            )
        },
        "/api/v1/services/{service_id}/scale": {
            "post": operation(
                "scaleService",
                "Set the number of replicas, kept in agentvisor.toml",
                description="An agent with [agents.NAME.autoscale] is scaled by its autoscaler: "
                "409 SERVICE_AUTOSCALED; change autoscale.min / autoscale.max instead.",
                tag=TAG,
                data=ref("ScaleResult"),
                parameters=(SERVICE_ID,),
                body=SCALE,
                mutating=True,
                errors=(404, 409, 422, 500, 503),
            )
        },
    }
