"""OpenAPI of the routing rules (``routes/rules.py``), the ``[[routes]]`` of agentvisor.toml."""

from __future__ import annotations

from agentvisor.admin.openapi.vocabulary import (
    BOOLEAN,
    INTEGER,
    STRING,
    Schema,
    array,
    enum,
    nullable,
    obj,
    operation,
    path_parameter,
    ref,
)
from agentvisor.admin.params import openapi_of
from agentvisor.admin.routes import rules
from agentvisor.api.bodies import RULE, RULE_CHANGES

TAG = "Routing"
OPERATORS = (
    "equals",
    "not_equals",
    "contains",
    "starts_with",
    "ends_with",
    "regex",
    "in",
    "not_in",
    "exists",
    "cidr",
)
RULE_ID = path_parameter("rule_id", "The rule's name")


def _condition() -> Schema:
    return obj(
        {
            "field": STRING,
            "operator": enum(OPERATORS),
            "value": {"description": "A string, number, list or boolean, as the operator needs"},
            "case_sensitive": BOOLEAN,
        }
    )


def schemas() -> dict[str, Schema]:
    return {
        "RoutingRule": obj(
            {
                "rule_id": STRING,
                "name": STRING,
                "priority": INTEGER,
                "enabled": BOOLEAN,
                "action": enum(("route", "reject")),
                "conditions": array(_condition()),
                "target_agents": array(STRING),
                "target_tags": array(STRING),
                "target_strategy": nullable(STRING),
                "description": STRING,
                "wrap_messages": BOOLEAN,
                "order": {"type": "integer", "description": "Position in the file"},
            }
        ),
        "RuleList": obj(
            {"rules": array(ref("RoutingRule")), "total": INTEGER, "page": ref("Page")}
        ),
    }


def paths() -> dict[str, Schema]:
    edit_errors = (422, 500, 503)
    return {
        "/api/v1/routing/rules": {
            "get": operation(
                "listRoutingRules",
                "The rules in the order the router tries them (priority, then file order)",
                tag=TAG,
                data=ref("RuleList"),
                parameters=openapi_of(*rules.LIST_PARAMETERS),
                errors=(400,),
            ),
            "post": operation(
                "createRoutingRule",
                "Add a rule to agentvisor.toml and apply it",
                tag=TAG,
                data=ref("RuleResult"),
                statuses=(201,),
                body=RULE,
                mutating=True,
                errors=(409, *edit_errors),
            ),
        },
        "/api/v1/routing/rules/{rule_id}": {
            "get": operation(
                "getRoutingRule",
                "One rule",
                tag=TAG,
                data=ref("RoutingRule"),
                parameters=(RULE_ID,),
                errors=(404,),
            ),
            "put": operation(
                "updateRoutingRule",
                "Change a rule (a JSON merge patch; `name` renames it)",
                tag=TAG,
                data=ref("RuleResult"),
                parameters=(RULE_ID,),
                body=RULE_CHANGES,
                mutating=True,
                errors=(404, *edit_errors),
            ),
            "delete": operation(
                "deleteRoutingRule",
                "Remove a rule from agentvisor.toml",
                tag=TAG,
                data=ref("RuleDeleted"),
                parameters=(RULE_ID,),
                mutating=True,
                errors=(404, *edit_errors),
            ),
        },
    }
