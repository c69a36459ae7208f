"""The request bodies of the admin API, declared once (``Body``): schema, validation, loading.

The settings of a service are those of an ``[agents.NAME]`` table, so their
schema is derived from ``config.model.AgentConfig`` itself (and its
``health`` and ``autoscale`` tables); the other bodies are the attrs models
below. The API speaks the seed's language as well as the file's
(``agent_factory_path`` for ``agent``, ``config.auto_restart``,
``conditions`` with ``operator``, ``target_strategy``): both spellings are
in the schema, and the loaders map them to the file's keys. A key that is
neither is a 400 naming it (with a suggestion when one is close). What a
single value cannot say, whether the whole file stays valid, is the
validator's call (422 ``CONFIG_INVALID``). ``null`` is a value's default
(a merge patch's "reset"). Pure: no I/O.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from typing import Any

import attrs
from attrs import field, frozen
from attrs.validators import ge, le, matches_re, max_len, optional

from agentvisor.api.check import Body
from agentvisor.api.schema import (
    OPENAPI,
    Schema,
    field_schema,
    model_schema,
    nullable,
)
from agentvisor.config.model import (
    STOP_SIGNALS,
    AgentConfig,
    AutoscaleConfig,
    ConditionOp,
    HealthConfig,
    RouteAction,
)
from agentvisor.config.validate import AGENT_NAME
from agentvisor.errors import ConfigInvalid, ConfigIssue

MAX_NAME_CHARS = 100
MAX_REPLICAS = 1000
#: Seed spelling → file key, for services (at the top level or inside ``config``).
AGENT_ALIASES: Mapping[str, str] = {
    "agent_factory_path": "agent",
    "auto_start": "autostart",
    "auto_restart": "autorestart",
    "max_restart_count": "startretries",
    "health_check_enabled": "health.enabled",
}
ROUTE_ALIASES: Mapping[str, str] = {
    "conditions": "match",
    "target_strategy": "strategy",
    "target_service": "target_agents",
    "target_services": "target_agents",
}
#: What a schema of a setting cannot take from the model's validators.
SETTING_DETAILS: Mapping[str, Schema] = {
    "agent": {
        "description": "An agent file, relative to the config's folder (also `agent_factory_path`)"
    },
    "command": {"description": "A program serving WebSocket on {port}: an argv string or list"},
    "port": {"minimum": 1, "maximum": 65535},
    "stopsignal": {"enum": list(STOP_SIGNALS)},
}


def _table_schema(cls: type, title: str) -> Schema:
    """A nested table (``health``, ``autoscale``): its keys, each optional (null: default)."""
    hints = typing.get_type_hints(cls)
    properties = {
        each.name: nullable(field_schema(each, hints[each.name])) for each in attrs.fields(cls)
    }
    schema = {
        "type": "object",
        "title": title,
        "properties": properties,
        "additionalProperties": False,
    }
    return nullable(schema)


def _setting_schema(each: attrs.Attribute[Any], type_: Any) -> Schema:
    if each.name in ("health", "autoscale"):
        cls = HealthConfig if each.name == "health" else AutoscaleConfig
        return _table_schema(cls, f"{each.name} setting")
    schema = {**field_schema(each, type_), **SETTING_DETAILS.get(each.name, {})}
    return nullable(schema)


def settings_properties() -> dict[str, Schema]:
    """Every key of ``[agents.NAME]`` (its schema derived from ``AgentConfig``) and the
    seed's aliases for some of them; each may be null (its default)."""
    hints = typing.get_type_hints(AgentConfig)
    properties = {
        each.name: _setting_schema(each, hints[each.name]) for each in attrs.fields(AgentConfig)
    }
    boolean = nullable({"type": "boolean"})
    aliases: dict[str, Schema] = {
        "agent_factory_path": {**properties["agent"], "description": "The agent file (seed)"},
        "auto_start": {**boolean, "description": "Also `autostart`"},
        "auto_restart": {
            **nullable({"anyOf": [{"type": "boolean"}, properties["autorestart"]]}),
            "description": "true = on-failure, false = never (also `autorestart`)",
        },
        "max_restart_count": {**properties["startretries"], "description": "Also `startretries`"},
        "health_check_enabled": {**boolean, "description": "Also `health.enabled`"},
    }
    return {**properties, **aliases}


def _settings_schema(*, register: bool) -> Schema:
    properties = settings_properties()
    nested = {
        "type": "object",
        "properties": dict(properties),
        "additionalProperties": False,
        "title": "service",
        "description": "The seed's nested settings: max_sessions, session_timeout, "
        "auto_restart, health_check_enabled, …",
    }
    schema: Schema = {
        "type": "object",
        "title": "service",
        "properties": {**properties, "config": nullable(nested)},
        "additionalProperties": False,
    }
    if register:
        name = {
            "type": "string",
            "pattern": f"^{AGENT_NAME.pattern}$",
            "maxLength": MAX_NAME_CHARS,
            "description": "The service name: lowercase letters, digits, '-' and '_', starting "
            f"with a letter or digit (at most {MAX_NAME_CHARS} characters)",
        }
        schema["properties"] = {"name": name, **schema["properties"]}
        schema["required"] = ["name"]
        schema["description"] = (
            "An [agents.NAME] table (docs/configuration.md): exactly one of "
            "`agent_factory_path` (or `agent`) and `command`; its keys at the top level or "
            "in `config`"
        )
    else:
        schema["description"] = (
            "A JSON merge patch of the [agents.NAME] table: `null` puts a key back to its "
            "default; `{}` changes nothing"
        )
    return schema


def clash(first: str, second: str, key: str) -> ConfigInvalid:
    """Two spellings of one key in a body: the key twice in its table, which no TOML file
    may have. A 422 like the file's other rules, since the schema of a body cannot say
    "not both" for every pair of spellings at both levels without becoming unusable."""
    message = f"set twice, as '{first}' and as '{second}'; give one"
    return ConfigInvalid([ConfigIssue(key, message)])


def _agent_fields(body: Mapping[str, Any], *, allow_none: bool) -> dict[str, Any]:
    """Top-level and ``config`` keys (schema-checked) → file keys; 422 when two set one."""
    flat: dict[str, tuple[str, Any]] = {}  # file key → (as written, value)
    nested = body.get("config") or {}
    items = [(key, key, value) for key, value in body.items() if key not in ("name", "config")]
    items += [(f"config.{key}", key, value) for key, value in nested.items()]
    for written, key, value in items:
        if value is None and not allow_none:
            continue  # an absent value is the default
        target = AGENT_ALIASES.get(key, key)
        if target in flat:
            raise clash(flat[target][0], written, target)
        flat[target] = (written, value)
    settings: dict[str, Any] = {}
    enabled = flat.pop("health.enabled", None)
    for target, (_written, value) in flat.items():
        if target == "autorestart" and isinstance(value, bool):
            value = "on-failure" if value else "never"
        settings[target] = value
    if enabled is not None and (enabled[1] is not None or allow_none):
        health = settings.get("health", {})
        if health is None:
            raise ConfigInvalid(
                [ConfigIssue("health", f"null resets the whole table, '{enabled[0]}' sets a key")]
            )
        settings["health"] = {**health, "enabled": enabled[1]}
    return settings


def register_settings(body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``POST /services``: the new service's name and its ``[agents.NAME]`` settings.

    Exactly one of ``agent`` and ``command`` is the file's rule (a 422 from its
    validator, as for ``depends_on``): the schema states what one body can."""
    return str(body["name"]), _agent_fields(body, allow_none=False)


def config_changes(body: Mapping[str, Any]) -> dict[str, Any]:
    """``PUT /services/{id}/config``: a JSON merge patch of the service's settings."""
    return _agent_fields(body, allow_none=True)  # {} is a merge patch too: it changes nothing


@frozen
class ScaleRequest:
    """The number of replicas to run."""

    replicas: int = field(validator=[ge(0), le(MAX_REPLICAS)])


@frozen
class DisconnectRequest:
    """How to close a client's connection (an empty body takes the defaults)."""

    reason: str = field(default="administrative disconnect", validator=max_len(120))
    notify_client: bool = True


@frozen
class RoutingTestRequest:
    """A simulated client: where would the router send it?"""

    ip: str = field(
        default="127.0.0.1",
        metadata={
            OPENAPI: {
                "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}],
                "description": "The client's address (default 127.0.0.1)",
            }
        },
    )
    path: str = field(
        default="/",
        validator=matches_re("/", func=re.match),
        metadata={OPENAPI: {"description": "A path starting with '/' (default /)"}},
    )
    headers: dict[str, str] = field(factory=dict)
    query: dict[str, str | list[str]] = field(factory=dict)


@frozen
class ConditionBody:
    """One condition of a rule; ``operator`` (the seed's) or ``op`` (the file's)."""

    field: str = attrs.field(
        metadata={
            OPENAPI: {
                "description": "client_ip, path, user_agent, origin, subprotocol, header.NAME, "
                "query.NAME"
            }
        }
    )
    operator: ConditionOp | None = None
    op: ConditionOp | None = None
    value: Any = attrs.field(
        default=None,
        metadata={
            OPENAPI: {"description": "A string, number, list or boolean, as the operator needs"}
        },
    )
    case_sensitive: bool | None = None


_STRATEGY = {
    "description": "round_robin, least_connections, weighted_random, power_of_two, ip_hash, "
    "random, hash:header.NAME, hash:query.NAME; null: the router's default_strategy"
}


@frozen
class RuleBody:
    """A ``[[routes]]`` entry in the seed's names; the file's (``match`` with ``op``,
    ``strategy``) work too. ``rule_id`` is ignored (echoed by clients that PUT what they GOT)."""

    name: str | None = field(default=None, validator=optional(matches_re(r"\S", func=re.search)))
    priority: int | None = None
    enabled: bool | None = None
    conditions: list[ConditionBody] | None = None
    match: list[ConditionBody] | None = None
    target_agents: list[str] | None = None
    target_tags: list[str] | None = None
    target_service: str | None = None
    target_services: list[str] | None = None
    target_strategy: str | None = field(default=None, metadata={OPENAPI: _STRATEGY})
    strategy: str | None = field(default=None, metadata={OPENAPI: _STRATEGY})
    action: RouteAction | None = None
    description: str | None = None
    wrap_messages: bool | None = None
    rule_id: str | None = None


def _rule_schema(*, create: bool) -> Schema:
    condition = model_schema(ConditionBody, title="condition")
    schema = model_schema(RuleBody, nested=lambda _cls: condition, title="routing rule")
    if create:
        name = {
            **schema["properties"]["name"],
            "description": "The rule's unique name (not blank)",
        }
        name.pop("nullable", None)
        schema["properties"] = {**schema["properties"], "name": name}
        schema["required"] = ["name"]
    return schema


def _route_fields(body: Mapping[str, Any], *, allow_none: bool) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    written_as: dict[str, str] = {}
    for key, value in body.items():
        if key == "rule_id" or (value is None and not allow_none):
            continue  # an echoed id; an absent value
        target = ROUTE_ALIASES.get(key, key)
        if target in written_as:
            raise clash(written_as[target], key, target)
        written_as[target] = key
        if value is None:
            if target != "name":
                settings[target] = None
            continue
        if target == "match":
            value = [_condition(key, index, item) for index, item in enumerate(value)]
        elif key == "target_service":
            value = [value]
        settings[target] = value
    return settings


def _condition(field_name: str, index: int, item: Mapping[str, Any]) -> dict[str, Any]:
    if item.get("op") is not None and item.get("operator") is not None:
        where = f"{field_name}[{index}]"
        raise clash(f"{where}.op", f"{where}.operator", f"{where}.op")
    condition = {"field": item["field"]}
    op = item.get("op") or item.get("operator")
    if op is not None:
        condition["op"] = op
    if item.get("value") is not None:
        condition["value"] = item["value"]
    if item.get("case_sensitive") is not None:
        condition["case_sensitive"] = item["case_sensitive"]
    return condition


def rule_settings(body: Mapping[str, Any]) -> dict[str, Any]:
    """``POST /routing/rules``: a ``[[routes]]`` entry; ``name`` is its id."""
    settings = _route_fields(body, allow_none=False)
    return {"name": settings["name"], **{k: v for k, v in settings.items() if k != "name"}}


def rule_changes(body: Mapping[str, Any]) -> dict[str, Any]:
    """``PUT /routing/rules/{id}``: a JSON merge patch of the rule (``name`` renames it)."""
    return _route_fields(body, allow_none=True)  # {} changes nothing, as a JSON merge patch


REGISTER = Body("RegisterRequest", _settings_schema(register=True), register_settings)
CONFIG_CHANGES = Body(
    "ConfigChanges",
    _settings_schema(register=False),
    config_changes,
    refused={"name": "cannot be changed: unregister the service and register it again"},
)
SCALE = Body(
    "ScaleRequest",
    model_schema(ScaleRequest, title="scale"),
    lambda body: ScaleRequest(**body).replicas,
)
RULE = Body("RuleRequest", _rule_schema(create=True), rule_settings)
RULE_CHANGES = Body("RuleChanges", _rule_schema(create=False), rule_changes)
DISCONNECT = Body(
    "DisconnectRequest",
    model_schema(DisconnectRequest, title="disconnect"),
    lambda body: DisconnectRequest(**body),
    optional=True,
)
ROUTING_TEST = Body(
    "RoutingTestRequest",
    model_schema(RoutingTestRequest, title="routing test"),
    lambda body: RoutingTestRequest(**body),
)
#: Every request body, for ``#/components/schemas``.
BODIES: tuple[Body[Any], ...] = (
    REGISTER,
    CONFIG_CHANGES,
    SCALE,
    RULE,
    RULE_CHANGES,
    DISCONNECT,
    ROUTING_TEST,
)
