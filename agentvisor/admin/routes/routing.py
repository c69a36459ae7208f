"""``POST /api/v1/routing/test``: where would this client go? A dry run.

The body is a simulated client (``api.bodies.RoutingTestRequest``): ``ip``,
``path``, ``headers`` and ``query`` (objects; a query value may be a list
for a repeated parameter).
The answer names the matching rule, the action, the candidate agents, the
strategy and the instance the strategy would pick now, with every
candidate's load; nothing changes (no round-robin step, no connection).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quart import Blueprint, Response, request

from agentvisor.admin.errors import success
from agentvisor.admin.routes.connections import router_of
from agentvisor.api.bodies import ROUTING_TEST

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps


def routing_blueprint(deps: AdminDeps) -> Blueprint:
    blueprint = Blueprint("routing", __name__)

    @blueprint.post("/routing/test")
    async def test_route() -> tuple[Response, int]:
        router = router_of(deps)
        client = ROUTING_TEST.parse(await request.get_data())
        return success(
            router.test_route(
                ip=client.ip, path=client.path, headers=client.headers, query=client.query
            )
        )

    return blueprint
