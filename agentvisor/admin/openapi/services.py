"""OpenAPI of the service endpoints (``routes/services.py``): list, detail, operations."""

from __future__ import annotations

from agentvisor.admin.openapi import service_edits
from agentvisor.admin.openapi.vocabulary import (
    SERVICE_ID,
    Schema,
    operation,
    ref,
)
from agentvisor.admin.params import OPERATION_TIMEOUT, openapi_of
from agentvisor.admin.routes import services

TAG = "Services"


def schemas() -> dict[str, Schema]:
    return {}  # the answers are models: api.services, api.answers


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
