"""Request bodies of the editing endpoints: the API's names → agentvisor.toml's keys.

The API speaks the seed's language (``agent_factory_path``, ``config.auto_restart``,
``conditions`` with ``operator``, ``target_strategy``); the file speaks
CONFIG.md's (``agent``, ``autorestart``, ``match`` with ``op``, ``strategy``).
Both spellings are accepted; a key that is neither is a 400 naming it (with a
suggestion when one is close), never silently dropped. Only the shape is
checked here (object, string, integer, list of strings…); whether the values
make a valid config is the validator's call, on the whole file (422
``CONFIG_INVALID``). Pure: no I/O, so it is unit-tested alone.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from agentvisor.config.model import AgentConfig, RouteConfig
from agentvisor.errors import InvalidRequest

#: What a service name looks like (CONFIG.md: ``[a-z0-9][a-z0-9_-]*``).
SERVICE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
MAX_NAME_CHARS = 100
AGENT_KEYS = frozenset(field.name for field in attrs.fields(AgentConfig))
ROUTE_KEYS = frozenset(field.name for field in attrs.fields(RouteConfig))
CONDITION_KEYS = frozenset({"field", "op", "value", "case_sensitive"})

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
CONDITION_ALIASES: Mapping[str, str] = {"operator": "op"}

Check = Callable[[str, Any], None]


def parse_json_object(raw: bytes | str) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 saying what is wrong with it."""
    if not raw.strip():
        raise InvalidRequest("The request needs a JSON object as its body")
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise InvalidRequest("The request body is not UTF-8") from None
    except json.JSONDecodeError as error:
        raise InvalidRequest(
            f"The request body is not valid JSON: {error.msg} at line {error.lineno} "
            f"column {error.colno}",
            line=error.lineno,
            column=error.colno,
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"The request body must be a JSON object, got {_json_type(body)}",
        )
    return body


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _wrong(field: str, wanted: str, value: Any) -> InvalidRequest:
    return InvalidRequest(
        f"Field '{field}' must be {wanted}, got {_json_type(value)} {json.dumps(value)[:80]}",
        field=field,
    )


def _string(field: str, value: Any) -> None:
    if not isinstance(value, str):
        raise _wrong(field, "a string", value)


def _integer(field: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(field, "an integer", value)


def _number(field: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(field, "a number", value)


def _boolean(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise _wrong(field, "true or false", value)


def _strings(field: str, value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _wrong(field, "an array of strings", value)


def _object(field: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise _wrong(field, "an object", value)


def _command(field: str, value: Any) -> None:
    if not isinstance(value, str):
        _strings(field, value)


def _port(field: str, value: Any) -> None:
    _integer(field, value)
    if not 1 <= value <= 65535:
        raise InvalidRequest(f"Field '{field}' must be a port from 1 to 65535, got {value}")


def _autorestart(field: str, value: Any) -> None:
    if not isinstance(value, bool | str):
        raise _wrong(field, 'true, false or one of "always", "on-failure", "never"', value)


def _environment(field: str, value: Any) -> None:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _wrong(field, "an object of strings", value)


#: Shape checks of the agent keys people set most; the validator checks the rest.
AGENT_CHECKS: Mapping[str, Check] = {
    "agent": _string,
    "command": _command,
    "description": _string,
    "tags": _strings,
    "host": _string,
    "port": _port,
    "replicas": _integer,
    "weight": _number,
    "routable": _boolean,
    "autostart": _boolean,
    "autorestart": _autorestart,
    "max_sessions": _integer,
    "session_timeout": _number,
    "environment": _environment,
    "depends_on": _strings,
    "health": _object,
    "autoscale": _object,
}
ROUTE_CHECKS: Mapping[str, Check] = {
    "name": _string,
    "priority": _integer,
    "enabled": _boolean,
    "action": _string,
    "target_agents": _strings,
    "target_tags": _strings,
    "strategy": _string,
    "description": _string,
    "wrap_messages": _boolean,
}


def _unknown(kind: str, keys: list[str], known: Iterable[str]) -> InvalidRequest:
    shown = ", ".join(f"'{key}'" for key in keys)
    hints = []
    for key in keys:
        close = difflib.get_close_matches(key, sorted(known), n=1)
        if close:
            hints.append(f"'{key}' → '{close[0]}'?")
    hint = f" (did you mean {'; '.join(hints)})" if hints else ""
    return InvalidRequest(
        f"Unknown {kind} field{'s' if len(keys) > 1 else ''} {shown}{hint}",
        fields=keys,
    )


def _check_name(name: Any, field: str = "name") -> str:
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"Field '{field}' is required: the service name", field=field)
    if len(name) > MAX_NAME_CHARS or not SERVICE_NAME.fullmatch(name):
        raise InvalidRequest(
            f"Field '{field}' must be lowercase letters, digits, '-' and '_', starting with a "
            f"letter or digit (at most {MAX_NAME_CHARS} characters), got {json.dumps(name)}",
            field=field,
        )
    return name


def _agent_fields(body: Mapping[str, Any], *, allow_none: bool) -> dict[str, Any]:
    """Flatten top-level and ``config`` keys into file keys; 400 on unknown or clashing ones."""
    flat: dict[str, tuple[str, Any]] = {}  # file key → (as written, value)
    unknown: list[str] = []
    nested = body.get("config")
    if nested is not None and not isinstance(nested, dict):
        raise _wrong("config", "an object", nested)
    items = [(key, key, value) for key, value in body.items() if key not in ("name", "config")]
    items += [(f"config.{key}", key, value) for key, value in (nested or {}).items()]
    for written, key, value in items:
        target = AGENT_ALIASES.get(key, key)
        if target.split(".")[0] not in AGENT_KEYS:
            unknown.append(written)
            continue
        if target in flat:
            raise InvalidRequest(
                f"Fields '{flat[target][0]}' and '{written}' both set '{target}'; give one",
                fields=[flat[target][0], written],
            )
        flat[target] = (written, value)
    if unknown:
        raise _unknown("service", unknown, [*AGENT_KEYS, *AGENT_ALIASES, "name", "config"])
    settings: dict[str, Any] = {}
    for target, (written, value) in flat.items():
        if value is None and not allow_none:
            continue  # an absent value is the default
        if target == "health.enabled":
            if value is not None:
                _boolean(written, value)
            health = settings.setdefault("health", {})
            if not isinstance(health, dict):
                raise _wrong("health", "an object", health)
            health["enabled"] = value
            continue
        check = AGENT_CHECKS.get(target)
        if check is not None and value is not None:
            check(written, value)
        if target == "autorestart" and isinstance(value, bool):
            value = "on-failure" if value else "never"
        if target == "health" and value is not None and isinstance(settings.get("health"), dict):
            value = {**value, **settings["health"]}
        settings[target] = value
    return settings


def register_settings(body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``POST /services``: the new service's name and its ``[agents.NAME]`` settings."""
    name = _check_name(body.get("name"))
    settings = _agent_fields(body, allow_none=False)
    if ("agent" in settings) == ("command" in settings):
        raise InvalidRequest(
            "Give exactly one of 'agent_factory_path' (an agent file; also 'agent') or "
            "'command' (a program that serves WebSocket on {port})",
            fields=["agent_factory_path", "command"],
        )
    return name, settings


def config_changes(body: Mapping[str, Any]) -> dict[str, Any]:
    """``PUT /services/{id}/config``: a JSON merge patch of the service's settings."""
    if "name" in body:
        raise InvalidRequest(
            "Field 'name' cannot be changed: unregister the service and register it again",
            field="name",
        )
    return _agent_fields(body, allow_none=True)  # {} is a merge patch too: it changes nothing


def scale_replicas(body: Mapping[str, Any], maximum: int = 1000) -> int:
    """``POST /services/{id}/scale``: ``{"replicas": n}``."""
    unknown = [key for key in body if key != "replicas"]
    if unknown:
        raise _unknown("scale", unknown, ["replicas"])
    if "replicas" not in body:
        raise InvalidRequest("Field 'replicas' is required", field="replicas")
    replicas = body["replicas"]
    _integer("replicas", replicas)
    if not 0 <= replicas <= maximum:
        raise InvalidRequest(
            f"Field 'replicas' must be from 0 to {maximum}, got {replicas}", field="replicas"
        )
    return int(replicas)


def _conditions(field: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _wrong(field, "an array of conditions", value)
    conditions = []
    for index, item in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(item, dict):
            raise _wrong(where, "an object with field, operator and value", item)
        condition: dict[str, Any] = {}
        unknown = []
        for key, inner in item.items():
            target = CONDITION_ALIASES.get(key, key)
            if target not in CONDITION_KEYS:
                unknown.append(f"{where}.{key}")
            elif target in condition:
                raise InvalidRequest(f"Fields '{where}.op' and '{where}.operator' clash")
            else:
                condition[target] = inner
        if unknown:
            raise _unknown("condition", unknown, [*CONDITION_KEYS, *CONDITION_ALIASES])
        if "field" not in condition:
            raise InvalidRequest(f"Field '{where}.field' is required", field=f"{where}.field")
        _string(f"{where}.field", condition["field"])
        if "op" in condition:
            _string(f"{where}.operator", condition["op"])
        if "case_sensitive" in condition:
            _boolean(f"{where}.case_sensitive", condition["case_sensitive"])
        if condition.get("value", "") is None:
            del condition["value"]
        conditions.append(condition)
    return conditions


def _route_fields(body: Mapping[str, Any], *, allow_none: bool) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    written_as: dict[str, str] = {}
    unknown = []
    for key, value in body.items():
        if key == "rule_id":
            continue  # echoed back by clients that PUT what they GOT
        target = ROUTE_ALIASES.get(key, key)
        if target not in ROUTE_KEYS:
            unknown.append(key)
            continue
        if target in written_as:
            raise InvalidRequest(
                f"Fields '{written_as[target]}' and '{key}' both set '{target}'; give one",
                fields=[written_as[target], key],
            )
        written_as[target] = key
        if value is None:
            if allow_none and target != "name":
                settings[target] = None
            continue
        if target == "match":
            value = _conditions(key, value)
        elif key == "target_service":
            _string(key, value)
            value = [value]
        else:
            check = ROUTE_CHECKS.get(target)
            if check is not None:
                check(key, value)
        settings[target] = value
    if unknown:
        raise _unknown("routing rule", unknown, [*ROUTE_KEYS, *ROUTE_ALIASES])
    return settings


def rule_settings(body: Mapping[str, Any]) -> dict[str, Any]:
    """``POST /routing/rules``: a ``[[routes]]`` entry; ``name`` is its id."""
    settings = _route_fields(body, allow_none=False)
    name = settings.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("Field 'name' is required: the rule's unique name", field="name")
    return {"name": name, **{k: v for k, v in settings.items() if k != "name"}}


def rule_changes(body: Mapping[str, Any]) -> dict[str, Any]:
    """``PUT /routing/rules/{id}``: a JSON merge patch of the rule (``name`` renames it)."""
    changes = _route_fields(body, allow_none=True)
    if "name" in changes and not str(changes["name"]).strip():
        raise InvalidRequest("Field 'name' must not be empty", field="name")
    return changes  # {} changes nothing, as a JSON merge patch
