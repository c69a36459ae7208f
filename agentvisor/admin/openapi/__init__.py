"""The OpenAPI document of the admin API (``GET /openapi.json``), one module per resource.

Each resource module has ``paths()`` (path → path item) and ``schemas()``
(its component schemas of answers), written with ``vocabulary``. Request
bodies are declared once in ``api.bodies`` (attrs models, the schema derived
from them, the same schema validating what the server reads and what the
client sends); an operation names its ``Body`` (``operation(body=SCALE)``)
and every declared body is a component, as are the answers declared in
``api.answers`` (the editing endpoints' so far). To add an endpoint: declare its
query parameters (``admin/params.py``) and its body (``api/bodies.py``, in
``BODIES``), add its operation to the ``paths()`` of its resource, or add a
module and list its two functions in ``RESOURCES``. ``tests/integration/admin/test_openapi.py``
fails while a route of the app is missing here (or a path here has no route),
and the schemathesis run checks that the answers match these schemas.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentvisor.admin.openapi import (
    cluster,
    connections,
    health,
    history,
    logs,
    rules,
    service_edits,
    services,
    stats,
    system,
)
from agentvisor.admin.openapi.vocabulary import Schema, common_schemas
from agentvisor.api.answers import answer_schemas
from agentvisor.api.bodies import BODIES

Describe = Callable[[], dict[str, Schema]]

#: Each resource's ``(paths, schemas)``, in the order their tags appear on /docs.
RESOURCES: tuple[tuple[Describe, Describe], ...] = (
    (system.paths, system.schemas),
    (services.paths, services.schemas),
    (service_edits.paths, service_edits.schemas),
    (stats.paths, stats.schemas),
    (health.paths, health.schemas),
    (logs.paths, logs.schemas),
    (history.paths, history.schemas),
    (rules.paths, rules.schemas),
    (connections.paths, connections.schemas),
    (cluster.paths, cluster.schemas),
)

DESCRIPTION = """\
The HTTP API of agentvisor, a supervisor, router and control plane for AI-agent
WebSocket services. Every `/api/v1` answer is `{"success": true, "data": …}` or
`{"success": false, "error": {"code", "message", "details"}}`.

Authentication: `Authorization: Bearer TOKEN` when `[admin] token` is set, on
every endpoint but `/health` and `/docs`; `GET /metrics` also takes `[admin]
metrics_token`, which opens nothing else; requests on the unix socket are trusted.
Mutating requests (POST, PUT, PATCH, DELETE) are rate-limited per client (429
with `Retry-After`); request bodies are JSON of at most 1 MiB.
"""


def _merge(target: dict[str, Schema], more: dict[str, Schema], what: str) -> None:
    for key, value in more.items():
        if key in target:
            raise ValueError(f"OpenAPI {what} {key!r} is described twice")
        target[key] = value


def build_document(version: str, *, auth: bool) -> dict[str, Any]:
    """The whole document; ``auth`` says whether the bearer token is required."""
    paths: dict[str, Schema] = {}
    components = common_schemas()
    _merge(components, {body.name: body.schema for body in BODIES}, "schema")
    _merge(components, answer_schemas(), "schema")
    for paths_of, schemas_of in RESOURCES:
        _merge(paths, paths_of(), "path")
        _merge(components, schemas_of(), "schema")
    bearer: dict[str, list[str]] = {"bearer": []}
    return {
        "openapi": "3.0.3",
        "info": {"title": "agentvisor admin API", "version": version, "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "[admin] token of agentvisor.toml",
                }
            },
        },
        # Without a token configured the requirement is optional (the empty alternative).
        "security": [bearer] if auth else [{}, bearer],
    }
