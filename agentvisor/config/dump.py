"""A :class:`Config` as agentvisor.toml text (tomlkit) that loads back to an equal config.

Every key is written, defaults included. Strings are written with ``$``
doubled, since the loader expands ``${VAR}``: the text means exactly the
values of the model. This renders a model; editing the operator's file
while keeping its comments is the job of a tomlkit document, not of this.
"""

from __future__ import annotations

from typing import Any

import tomlkit
from tomlkit.items import AoT, Array, InlineTable, Table

from agentvisor.config.convert import unstructure_config
from agentvisor.config.model import Config

__all__ = ["dump_config"]


def dump_config(config: Config) -> str:
    """``config`` as TOML; ``parse_config`` of the result equals ``config``."""
    data = unstructure_config(config)
    document = tomlkit.document()
    for section in ("supervisor", "admin", "router"):
        document.add(section, _table(data[section]))
    agents = tomlkit.table(is_super_table=True)
    for name, agent in data["agents"].items():
        agents.add(name, _table(agent))
    if data["agents"]:
        document.add("agents", agents)
    routes = AoT([])
    for route in data["routes"]:
        routes.append(_table(route))
    if data["routes"]:
        document.add("routes", routes)
    if data.get("cluster") is not None:
        document.add("cluster", _table(data["cluster"]))
    return tomlkit.dumps(document)


def _table(values: dict[str, Any]) -> Table:
    table = tomlkit.table()
    nested = []
    for key, value in values.items():
        if isinstance(value, dict) and key != "environment":
            nested.append((key, value))
        else:
            table.add(key, _item(value))
    for key, value in nested:  # sub-tables after the keys of this one
        table.add(key, _table(value))
    return table


def _item(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        array: Array = tomlkit.array()
        array.extend(_item(item) for item in value)
        if any(isinstance(item, dict) for item in value):
            array.multiline(True)  # one condition a line
        return array
    if isinstance(value, dict):
        inline: InlineTable = tomlkit.inline_table()
        for key, item in value.items():
            inline.append(key, _item(item))
        return inline
    return value
