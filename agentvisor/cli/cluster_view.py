"""``agentvisorctl status --cluster``: every node of the cluster, its agents and instances."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from agentvisor.cli.render import humanize_duration, styled_state

NODE_STYLES: Mapping[str, str] = {"up": "green", "down": "red", "invalid": "yellow"}


def _agent_rows(node: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(agent, instances "running/desired", sessions) of one node."""
    rows = []
    instances = node.get("instances", [])
    for agent in node.get("agents", []):
        mine = [i for i in instances if i.get("agent") == agent.get("name")]
        sessions = sum(int(i.get("sessions") or 0) for i in mine)
        rows.append(
            (
                str(agent.get("name", "?")),
                f"{agent.get('running', 0)}/{agent.get('desired', 0)}",
                str(sessions),
            )
        )
    return rows


def cluster_view(listing: Mapping[str, Any]) -> RenderableType:
    redis = listing.get("redis", {})
    reachable = bool(redis.get("reachable"))
    heading = Text.assemble(
        ("cluster ", "bold"),
        f"through Redis at {redis.get('target', '?')} ",
        ("reachable" if reachable else "unreachable", "green" if reachable else "red"),
        f", as seen by node {listing.get('node', '?')}",
    )
    table = Table(box=None, header_style="bold")
    for column in ("NODE", "STATE", "HEARTBEAT", "AGENT", "STATE ", "RUNNING", "SESS", "ROUTER"):
        table.add_column(column, no_wrap=True)
    for node in listing.get("nodes", []):
        state = str(node.get("state", "?"))
        name = str(node.get("name", "?")) + (" *" if node.get("self") else "")
        age = node.get("heartbeat_age")
        beat = "-" if age is None else f"{humanize_duration(age)} ago"
        router = ", ".join(node.get("router", [])) or "-"
        agents = {str(a.get("name")): a for a in node.get("agents", [])}
        rows = _agent_rows(node) or [("-", "-", "-")]
        for index, (agent, running, sessions) in enumerate(rows):
            first = index == 0
            agent_state = agents.get(agent, {}).get("state", "-")
            table.add_row(
                name if first else "",
                Text(state, style=NODE_STYLES.get(state, "")) if first else "",
                beat if first else "",
                agent,
                styled_state(str(agent_state)),
                running,
                sessions,
                router if first else "",
            )
    notes: list[RenderableType] = []
    if not reachable and redis.get("last_error"):
        notes.append(Text(f"redis: {redis['last_error']}", style="red"))
    return Group(heading, table, *notes)
