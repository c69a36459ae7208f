"""Routing rules: ``/api/v1/routing/rules``, the ``[[routes]]`` of agentvisor.toml.

A rule's id is its name (unique in the file). Listing reads the running
config, in the order the router tries the rules (priority, higher first,
then file order, shown as ``order``). Creating, changing and deleting one
edit the file and apply it (``editing.edit_and_apply``); the router
recompiles its rules when the running config changes, so no client is
disconnected. Bodies use the seed's names (``conditions`` with ``operator``,
``target_strategy``) or the file's (``match`` with ``op``, ``strategy``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quart import Blueprint, Response, request

from agentvisor.admin.editing import edit_and_apply
from agentvisor.admin.errors import page_of, success
from agentvisor.admin.lookup import request_source
from agentvisor.admin.params import LIMIT, OFFSET, Flag
from agentvisor.api.answers import RuleDeleted, RuleResult, dump
from agentvisor.api.bodies import RULE, RULE_CHANGES
from agentvisor.errors import RuleNotFound

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps
    from agentvisor.config.model import RouteConfig

ENABLED = Flag("enabled", "Only enabled (or disabled) rules")
LIST_PARAMETERS = (ENABLED, LIMIT, OFFSET)


def rule_to_dict(route: RouteConfig, order: int) -> dict[str, Any]:
    return {
        "rule_id": route.name,
        "name": route.name,
        "priority": route.priority,
        "enabled": route.enabled,
        "action": route.action.value,
        "conditions": [
            {
                "field": condition.field,
                "operator": condition.op.value,
                "value": condition.value,
                "case_sensitive": condition.case_sensitive,
            }
            for condition in route.match
        ],
        "target_agents": list(route.target_agents),
        "target_tags": list(route.target_tags),
        "target_strategy": route.strategy,  # null: the router's default_strategy
        "description": route.description,
        "wrap_messages": route.wrap_messages,
        "order": order,
    }


def rules_in_order(routes: tuple[RouteConfig, ...]) -> list[tuple[int, RouteConfig]]:
    """The rules as the router tries them: priority (higher first), then file order."""
    return sorted(enumerate(routes), key=lambda item: (-item[1].priority, item[0]))


def rules_blueprint(deps: AdminDeps) -> Blueprint:
    blueprint = Blueprint("rules", __name__)

    def find(name: str) -> dict[str, Any]:
        for order, route in enumerate(deps.supervisor.config.routes):
            if route.name == name:
                return rule_to_dict(route, order)
        raise RuleNotFound(name)

    @blueprint.get("/routing/rules")
    async def list_rules() -> tuple[Response, int]:
        args = request.args
        limit = LIMIT.parse(args)
        offset = OFFSET.parse(args)
        enabled = ENABLED.parse_optional(args)
        rules = [
            rule_to_dict(route, order)
            for order, route in rules_in_order(deps.supervisor.config.routes)
            if enabled is None or route.enabled == enabled
        ]
        return success(
            {
                "rules": rules[offset : offset + limit],
                "total": len(rules),
                "page": page_of(limit, offset, has_next=offset + limit < len(rules)),
            }
        )

    @blueprint.post("/routing/rules")
    async def create_rule() -> tuple[Response, int]:
        settings = RULE.parse(await request.get_data())
        name = settings["name"]
        applied = await edit_and_apply(
            deps,
            lambda editor: editor.create_route(settings),
            action="route.create",
            target="",
            source=request_source(request.headers),
            describe=f"created routing rule {name}",
        )
        answer = RuleResult(rule=find(name), reload=applied.result.to_dict())
        return success(dump(answer), 201)

    @blueprint.get("/routing/rules/<rule_id>")
    async def show_rule(rule_id: str) -> tuple[Response, int]:
        return success(find(rule_id))

    @blueprint.put("/routing/rules/<rule_id>")
    async def update_rule(rule_id: str) -> tuple[Response, int]:
        find(rule_id)  # 404 before the body is looked at
        changes = RULE_CHANGES.parse(await request.get_data())
        applied = await edit_and_apply(
            deps,
            lambda editor: editor.update_route(rule_id, changes),
            action="route.update",
            target="",
            source=request_source(request.headers),
            describe=f"changed {', '.join(sorted(changes))} of routing rule {rule_id}",
        )
        rule = find(changes.get("name") or rule_id)
        return success(dump(RuleResult(rule=rule, reload=applied.result.to_dict())))

    @blueprint.delete("/routing/rules/<rule_id>")
    async def delete_rule(rule_id: str) -> tuple[Response, int]:
        find(rule_id)
        applied = await edit_and_apply(
            deps,
            lambda editor: editor.delete_route(rule_id),
            action="route.delete",
            target="",
            source=request_source(request.headers),
            describe=f"deleted routing rule {rule_id}",
        )
        answer = RuleDeleted(rule_id=rule_id, deleted=True, reload=applied.result.to_dict())
        return success(dump(answer))

    return blueprint
