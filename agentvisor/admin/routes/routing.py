"""``POST /api/v1/routing/test``: where would this client go? A dry run.

The body is a simulated client: ``ip`` (required), ``path``, ``headers`` and
``query`` (objects; a query value may be a list for a repeated parameter).
The answer names the matching rule, the action, the candidate agents, the
strategy and the instance the strategy would pick now, with every
candidate's load; nothing changes (no round-robin step, no connection).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from quart import Blueprint, Response, request

from agentvisor.admin.bodies import parse_json_object
from agentvisor.admin.errors import success
from agentvisor.admin.routes.connections import router_of
from agentvisor.errors import InvalidRequest

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps


def _string_map(body: dict[str, Any], name: str, *, lists: bool) -> dict[str, Any]:
    value = body.get(name, {})
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{name}' must be an object of strings", field=name)
    for key, item in value.items():
        ok = isinstance(item, str) or (
            lists and isinstance(item, list) and all(isinstance(v, str) for v in item)
        )
        if not ok:
            kind = "a string or a list of strings" if lists else "a string"
            raise InvalidRequest(f"'{name}.{key}' must be {kind}", field=f"{name}.{key}")
    return value


def routing_blueprint(deps: AdminDeps) -> Blueprint:
    blueprint = Blueprint("routing", __name__)

    @blueprint.post("/routing/test")
    async def test_route() -> tuple[Response, int]:
        router = router_of(deps)
        body = parse_json_object(await request.get_data())
        ip = body.get("ip", "127.0.0.1")
        try:
            ipaddress.ip_address(ip)
        except (TypeError, ValueError):
            raise InvalidRequest(f"'ip' must be an IP address, got {ip!r}", field="ip") from None
        path = body.get("path", "/")
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidRequest("'path' must be a path starting with '/'", field="path")
        headers = _string_map(body, "headers", lists=False)
        query = _string_map(body, "query", lists=True)
        return success(router.test_route(ip=ip, path=path, headers=headers, query=query))

    return blueprint
