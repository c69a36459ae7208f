"""The words the OpenAPI document is written in: schema and operation builders.

Resource modules (``system``, ``services``, …) describe their paths with
these, so every operation gets the same envelope, the same error responses
and the same security in the same way. OpenAPI 3.0.3 (``nullable``), which
the bundled Swagger UI 4 renders and schemathesis checks responses against.
Pure: plain dicts in, plain dicts out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agentvisor.api.check import Body

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
#: ISO 8601 UTC (``2024-01-01T10:00:00Z``), or null when there is no such moment.
TIME_OR_NULL: Schema = {"type": "string", "format": "date-time", "nullable": True}

#: What each error status means in this API (API.md's codes).
ERROR_MEANINGS: Mapping[int, str] = {
    400: "INVALID_REQUEST: a query parameter or the body is not acceptable",
    401: "UNAUTHORIZED: the bearer token is missing or wrong",
    404: "Not found: SERVICE_NOT_FOUND, RULE_NOT_FOUND, CONNECTION_NOT_FOUND or NOT_FOUND",
    409: (
        "Conflict: SERVICE_ALREADY_EXISTS, RULE_ALREADY_EXISTS, SERVICE_AUTOSCALED, PORT_IN_USE, …"
    ),
    413: "INVALID_REQUEST: the body is larger than the limit (1 MiB)",
    422: "CONFIG_INVALID: the change would make the config invalid; details list every error",
    429: "RATE_LIMITED: too many changes from this client; retry after Retry-After seconds",
    500: "SERVICE_START_FAILED or CONFIG_WRITE_FAILED",
    503: "Unavailable: SHUTTING_DOWN, STORE_UNAVAILABLE, ROUTING_FAILED, …",
}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """``schema`` or null; a ``$ref`` is wrapped, since 3.0 ignores siblings of ``$ref``."""
    if "$ref" in schema:
        return {"allOf": [schema], "nullable": True}
    return {**schema, "nullable": True}


def enum(values: Iterable[str], *, null: bool = False) -> Schema:
    schema: Schema = {"type": "string", "enum": list(values)}
    if null:
        schema["nullable"] = True
        schema["enum"].append(None)
    return schema


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


#: A list of names (tags, agents, nodes).
NAMES: Schema = array(STRING)


def obj(
    properties: Mapping[str, Schema],
    *,
    optional: Iterable[str] = (),
    description: str | None = None,
    extra: Schema | bool | None = None,
) -> Schema:
    """An object whose properties are all required but ``optional``.

    Unlisted properties are allowed (``additionalProperties`` true) unless
    ``extra`` says otherwise: the API may grow fields without breaking clients.
    """
    maybe = set(optional)
    schema: Schema = {"type": "object", "properties": dict(properties)}
    required = [name for name in properties if name not in maybe]
    if required:
        schema["required"] = required
    if description:
        schema["description"] = description
    if extra is not None:
        schema["additionalProperties"] = extra
    return schema


def envelope(data: Schema) -> Schema:
    """``{"success": true, "data": ...}``: every /api/v1 answer but the errors."""
    return obj({"success": {"type": "boolean", "enum": [True]}, "data": data})


def path_parameter(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": STRING,
    }


SERVICE_ID = path_parameter("service_id", "The service's stable id or its name")


def json_content(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def error_response(status: int) -> Schema:
    response: Schema = {
        "description": ERROR_MEANINGS[status],
        "content": json_content(ref("ErrorResponse")),
    }
    if status == 429:
        response["headers"] = {"Retry-After": {"description": "Seconds to wait", "schema": INTEGER}}
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {"description": "Bearer realm", "schema": STRING}
        }
    return response


def operation(
    operation_id: str,
    summary: str,
    *,
    tag: str,
    data: Schema | None = None,
    statuses: Iterable[int] = (200,),
    content: Mapping[str, Schema] | None = None,
    description: str = "",
    parameters: Iterable[Schema] = (),
    body: Body[Any] | None = None,
    errors: Iterable[int] = (),
    mutating: bool = False,
    public: bool = False,
) -> Schema:
    """One operation: enveloped ``data`` (or raw ``content``) plus the errors it may answer.

    Every operation may answer 401 unless ``public``; ``mutating`` ones
    (POST/PUT/PATCH/DELETE) also 400 (malformed body), 413 and 429, the
    guards of ``security.py``. ``errors`` adds the statuses of the operation's
    own failures (404 for a ``{service_id}``, …).
    """
    success_content = dict(content) if content is not None else json_content(envelope(data or {}))
    responses: dict[str, Schema] = {
        str(status): {"description": summary, "content": success_content} for status in statuses
    }
    failures = set(errors)
    if not public:
        failures.add(401)
    if mutating:
        failures.update((400, 413, 429))
    for status in sorted(failures):
        responses[str(status)] = error_response(status)
    result: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "parameters": list(parameters),
        "responses": responses,
    }
    if description:
        result["description"] = description
    if body is not None:  # declared in api.bodies; its schema is a component
        result["requestBody"] = {"required": not body.optional, "content": json_content(body.ref())}
    if public:
        result["security"] = []
    return result


def common_schemas() -> dict[str, Schema]:
    """Components every resource uses: the error envelope."""
    return {
        "Error": obj(
            {
                "code": {"type": "string", "description": "A stable code (docs/api.md lists them)"},
                "message": {"type": "string", "description": "One sentence for people"},
                "details": {"type": "object", "additionalProperties": True},
            }
        ),
        "ErrorResponse": obj(
            {"success": {"type": "boolean", "enum": [False]}, "error": ref("Error")}
        ),
    }
