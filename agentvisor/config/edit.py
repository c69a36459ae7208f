"""Edits of agentvisor.toml text that keep the operator's comments and layout (pure).

Each function takes the file's text and returns the new text; every byte it
does not mean to change stays as it was. tomlkit's document model files the
comment lines above a ``[table]`` header under the *previous* table (a key
added there lands below the next table's comment; deleting a table takes the
next table's comment and leaves its own), so the spans to replace, insert or
remove come from :mod:`agentvisor.config.layout`; tomlkit renders the values.

- Comment lines directly above a header (no blank line between) belong to
  that table, those directly above a key line to that key: they go with it.
- A changed value is replaced in place (key spelling, spacing and trailing
  comment stay). A new key goes after the last key line where its parent is
  written: a ``[header]`` table, dotted keys (``health.mode`` after
  ``health.interval``) or an inline table (``{ …, mode = "http" }``).
- A new agent is ``[agents.NAME]`` after the last agent table (else before
  the first ``[[routes]]``, else at the end), with ``[agents.NAME.health]``
  and ``[agents.NAME.autoscale]`` tables and other tables inline. A new route
  is ``[[routes]]`` after the last one; conditions an array of inline tables.
- Changes are a JSON merge patch (RFC 7396): a mapping updates inside the
  table it names, ``None`` removes a key (back to its default), anything else
  (arrays too) replaces the value.

``$``: strings are written exactly as given, in config syntax: ``${VAR}`` is a
reference the loader expands (never expanded into the file), ``$$`` a literal
``$``. Final values (a model's) go through :func:`as_literal`, which doubles
``$`` as ``dump_config`` does; :func:`agent_settings` and :func:`route_settings` do.
"""

from __future__ import annotations

import enum
import itertools
import re
import tomllib
from collections.abc import Mapping
from typing import Any

import tomlkit

from agentvisor.config.convert import converter
from agentvisor.config.layout import Layout, Path, first_of_comments, scan_layout, under
from agentvisor.config.model import AgentConfig, Condition, RouteConfig
from agentvisor.errors import (
    ConfigInvalid,
    ConfigIssue,
    InvalidRequest,
    RuleAlreadyExists,
    RuleNotFound,
    ServiceAlreadyExists,
    ServiceNotFound,
)

__all__ = [
    "add_agent",
    "add_route",
    "agent_settings",
    "as_literal",
    "remove_agent",
    "remove_route",
    "route_settings",
    "update_agent",
    "update_route",
]

#: Agent keys whose new values are written as ``[agents.NAME.KEY]`` tables.
SUB_TABLES = frozenset({"health", "autoscale"})


# --- the public edits ----------------------------------------------------------------


def add_agent(text: str, name: str, settings: Mapping[str, Any]) -> str:
    """Add ``[agents.NAME]`` with ``settings``; ``ServiceAlreadyExists`` if NAME is there."""
    agents = _data(text).get("agents")
    if isinstance(agents, dict) and name in agents:
        raise ServiceAlreadyExists(f"Service '{name}' already exists", service=name)
    layout = scan_layout(text)
    path: Path = ("agents", name)
    if ("agents",) in layout.values:  # agents = { … } written inline
        return _add(text, layout, path, settings)
    table = _render_table(path, settings)
    agent_blocks = [b for b in layout.blocks if under(b.path, ("agents",))]
    if agent_blocks:
        return _insert_table(text, layout, agent_blocks[-1].body_end, table)
    route_blocks = [b for b in layout.blocks if under(b.path, ("routes",))]
    if route_blocks:
        return _insert_table(text, layout, route_blocks[0].start, table)
    return _insert_table(text, layout, len(text), table)


def update_agent(text: str, name: str, changes: Mapping[str, Any]) -> str:
    """Apply the merge patch ``changes`` to agent NAME; ``ServiceNotFound`` if absent."""
    _agent_exists(text, name)
    return _patch(text, ("agents", name), changes)


def remove_agent(text: str, name: str) -> str:
    """Remove agent NAME's tables and keys with their comments; ``ServiceNotFound`` if absent."""
    _agent_exists(text, name)
    return _delete(text, ("agents", name))


def add_route(text: str, settings: Mapping[str, Any]) -> str:
    """Append a ``[[routes]]`` table; its ``name`` must be new (``InvalidRequest`` otherwise)."""
    name = settings.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("A routing rule needs a name (a non-empty string)")
    if _route_index(text, name) is not None:
        raise RuleAlreadyExists(f"Routing rule '{name}' already exists", rule=name)
    settings = {"name": name, **settings}
    layout = scan_layout(text)
    routes = layout.values.get(("routes",))
    if routes is not None:  # routes = [ … ] written inline
        return _add(text, layout, ("routes", len(routes.items)), settings)
    table = _render_table(("routes",), settings, array=True)
    route_blocks = [b for b in layout.blocks if under(b.path, ("routes",))]
    at = route_blocks[-1].body_end if route_blocks else len(text)
    return _insert_table(text, layout, at, table)


def update_route(text: str, name: str, changes: Mapping[str, Any]) -> str:
    """Apply the merge patch ``changes`` to the route named NAME; ``RuleNotFound`` if absent."""
    return _patch(text, ("routes", _existing_route(text, name)), changes)


def remove_route(text: str, name: str) -> str:
    """Remove the route named NAME with its comments; ``RuleNotFound`` if absent."""
    return _delete(text, ("routes", _existing_route(text, name)))


def as_literal(value: Any) -> Any:
    """A final value (a model's, or one meant literally) in config syntax: ``$`` doubled."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list | tuple):
        return [as_literal(item) for item in value]
    if isinstance(value, Mapping):
        return {key: as_literal(item) for key, item in value.items()}
    return value


def agent_settings(agent: AgentConfig) -> dict[str, Any]:
    """``agent``'s keys that differ from the defaults, as literal settings for :func:`add_agent`."""
    values = _non_default(converter.unstructure(agent), converter.unstructure(AgentConfig()))
    return {key: as_literal(value) for key, value in values.items()}


def route_settings(route: RouteConfig) -> dict[str, Any]:
    """``route``'s keys that differ from the defaults, as literal settings for :func:`add_route`."""
    values: dict[str, Any] = converter.unstructure(route)
    defaults = converter.unstructure(Condition(field=""))
    values["match"] = [
        {k: v for k, v in condition.items() if k in ("field", "op") or v != defaults.get(k)}
        for condition in values.get("match", [])
    ]
    result = _non_default(values, converter.unstructure(RouteConfig(name=route.name)))
    return {key: as_literal(value) for key, value in {"name": route.name, **result}.items()}


def _non_default(values: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        default = defaults.get(key)
        if key in SUB_TABLES and isinstance(value, dict) and isinstance(default, dict):
            if inner := _non_default(value, default):
                out[key] = inner
        elif key not in defaults or value != default:
            out[key] = value
    return out


def _data(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigInvalid([ConfigIssue("", f"invalid TOML: {exc}")]) from None


def _agent_exists(text: str, name: str) -> None:
    agents = _data(text).get("agents")
    if not isinstance(agents, dict) or name not in agents:
        raise ServiceNotFound(name)


def _route_index(text: str, name: str) -> int | None:
    routes = _data(text).get("routes")
    if isinstance(routes, list):
        for index, route in enumerate(routes):
            if isinstance(route, dict) and route.get("name") == name:
                return index
    return None


def _existing_route(text: str, name: str) -> int:
    index = _route_index(text, name)
    if index is None:
        raise RuleNotFound(name)
    return index


# --- set, add, delete at a key path --------------------------------------------------


def _patch(text: str, path: Path, changes: Mapping[str, Any]) -> str:
    for key, value in changes.items():
        if not isinstance(key, str):
            raise InvalidRequest(f"Keys must be strings, got {key!r}")
        target = (*path, key)
        if value is None:
            text = _delete(text, target)
        elif isinstance(value, Mapping) and isinstance(_lookup(_data(text), target), dict):
            text = _patch(text, target, value)
        else:
            text = _set(text, target, value)
    return text


def _lookup(data: Any, path: Path) -> Any:
    for segment in path:
        if isinstance(segment, int):
            data = data[segment] if isinstance(data, list) and segment < len(data) else None
        else:
            data = data.get(segment) if isinstance(data, dict) else None
    return data


def _set(text: str, path: Path, value: Any) -> str:
    layout = scan_layout(text)
    found = layout.values.get(path)
    if found is not None:
        return _splice(text, [(found.start, found.end, _render(value))])
    if _written_below(layout, path):  # a table of headers or dotted keys becomes a value
        text = _delete(text, path)
        layout = scan_layout(text)
    return _add(text, layout, path, value)


def _add(text: str, layout: Layout, path: Path, value: Any) -> str:
    """Write ``path = value`` where ``path`` is not written yet, beside its siblings."""
    parent, key = path[:-1], path[-1]
    container = layout.values.get(parent)
    if container is not None:  # an inline table or an array
        item = _render(value) if container.kind == "array" else f"{_key(key)} = {_render(value)}"
        if not container.items:
            wrapped = f"[{item}]" if container.kind == "array" else f"{{ {item} }}"
            return _splice(text, [(container.start, container.end, wrapped)])
        last = layout.values[container.items[-1]].end
        return _splice(text, [(last, last, f", {item}")])
    tables = [b for b in layout.blocks if b.path == parent]
    if tables:
        if isinstance(value, Mapping) and _is_sub_table(path):
            below = [b for b in layout.blocks if under(b.path, parent)]
            return _insert_table(text, layout, below[-1].body_end, _render_table(path, value))
        return _insert_line(text, tables[0].body_end, f"{_key(key)} = {_render(value)}")
    dotted = [
        line
        for line in layout.lines
        if line.kind == "keyval" and under(line.path, parent) and len(line.table) < len(parent)
    ]
    if dotted:
        prefix = parent[len(dotted[-1].table) :]
        return _insert_line(text, dotted[-1].end, f"{_key(*prefix, key)} = {_render(value)}")
    deeper = [b for b in layout.blocks if under(b.path, parent) and b.path != parent]
    if deeper and not any(isinstance(segment, int) for segment in parent):
        return _insert_table(text, layout, deeper[0].start, _render_table(parent, {key: value}))
    if not parent:
        raise InvalidRequest(f"Cannot add the top-level key {key!r}")
    return _add(text, layout, parent, {key: value})


def _written_below(layout: Layout, path: Path) -> bool:
    return any(under(b.path, path) for b in layout.blocks) or any(
        line.kind == "keyval" and under(line.path, path) for line in layout.lines
    )


def _delete(text: str, path: Path) -> str:
    """Remove every table, key line and inline item at or below ``path``, with its comments."""
    layout = scan_layout(text)
    # a table goes up to its last key line and the blank lines after it; a comment
    # after those (say, a banner above the next section) stays
    blocks = [b for b in layout.blocks if under(b.path, path)]
    cuts = [(b.start, layout.past_blank_lines(b.body_end)) for b in blocks]
    for index, line in enumerate(layout.lines):
        if line.kind == "keyval" and under(line.path, path):
            cuts.append((layout.lines[first_of_comments(layout.lines, index)].start, line.end))
    edits: list[tuple[int, int, str]] = []
    for container in layout.values.values():
        gone = [under(item, path) for item in container.items]
        if all(gone) and gone:
            empty = "[]" if container.kind == "array" else "{}"
            edits.append((container.start, container.end, empty))
            continue
        for first, last in _runs(gone):
            items = [layout.values[item] for item in container.items]
            if last + 1 < len(items):
                cuts.append((items[first].item_start, items[last + 1].item_start))
            else:
                cuts.append((items[first - 1].end, items[last].end))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(cuts):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    if merged and merged[-1][1] == len(text):  # nothing left after: drop the blank lines too
        start = merged[-1][0]
        while (blank := layout.blank_line_ending_at(start)) is not None:
            start = blank.start
        merged[-1] = (start, len(text))
    kept: list[tuple[int, int, str]] = []  # the outermost edits (they nest or are apart)
    for edit in sorted([*edits, *((s, e, "") for s, e in merged)], key=lambda e: (e[0], -e[1])):
        if not kept or edit[0] >= kept[-1][1]:
            kept.append(edit)
    return _splice(text, kept)


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """(first, last) index of each run of ``True``."""
    groups = itertools.groupby(range(len(flags)), key=flags.__getitem__)
    return [(run[0], run[-1]) for flag, group in groups if flag and (run := list(group))]


# --- inserting text ------------------------------------------------------------------


def _splice(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply non-overlapping (start, end, replacement) edits, in the file's line endings."""
    newline = "\r\n" if "\r\n" in text[: text.find("\n") + 1] else "\n"
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement.replace("\n", newline) + text[end:]
    return text


def _insert_line(text: str, at: int, line: str) -> str:
    lead = "\n" if at == len(text) and text and not text.endswith("\n") else ""
    return _splice(text, [(at, at, f"{lead}{line}\n")])


def _insert_table(text: str, layout: Layout, at: int, table: str) -> str:
    """Insert a table's text at line boundary ``at`` with a blank line either side."""
    lead = "\n" if at == len(text) and text and not text.endswith("\n") else ""
    if text[:at].strip() and layout.blank_line_ending_at(at) is None:
        lead += "\n"
    following = next((line for line in layout.lines if line.start == at), None)
    trail = "\n" if following is not None and following.kind != "blank" else ""
    return _splice(text, [(at, at, f"{lead}{table}{trail}")])


# --- rendering -----------------------------------------------------------------------

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key(*segments: str | int) -> str:
    return ".".join(
        s if isinstance(s, str) and _BARE.fullmatch(s) else tomlkit.item(str(s)).as_string()
        for s in segments
    )


def _render(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool | int | float | str):
        return tomlkit.item(value).as_string()
    if isinstance(value, Mapping):
        items = [f"{_key(k)} = {_render(v)}" for k, v in value.items() if v is not None]
        return f"{{ {', '.join(items)} }}" if items else "{}"
    if isinstance(value, list | tuple):
        parts = [_render(item) for item in value]
        if len(parts) > 1 and any(isinstance(item, Mapping) for item in value):
            return "[\n" + "".join(f"    {part},\n" for part in parts) + "]"
        return f"[{', '.join(parts)}]"
    raise InvalidRequest(f"Cannot write {type(value).__name__} value {value!r} to the config")


def _is_sub_table(path: Path) -> bool:
    return len(path) == 3 and path[0] == "agents" and path[2] in SUB_TABLES


def _render_table(path: Path, values: Mapping[Any, Any], *, array: bool = False) -> str:
    header = f"[[{_key(*path)}]]" if array else f"[{_key(*path)}]"
    lines, tables = [header], []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, Mapping) and _is_sub_table((*path, key)):
            tables.append(_render_table((*path, key), value))
        else:
            lines.append(f"{_key(key)} = {_render(value)}")
    return "\n".join([*lines, ""]) + "".join(f"\n{table}" for table in tables)
