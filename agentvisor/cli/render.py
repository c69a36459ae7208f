"""What agentvisorctl prints: rich tables for people, JSON for scripts.

Everything here works on the admin API's JSON data (dicts), never on live
objects, and takes ``now`` (wall clock) as an argument, so it is pure and
tested without a server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

STATE_STYLES: Mapping[str, str] = {
    "running": "green",
    "starting": "yellow",
    "backoff": "yellow",
    "stopping": "yellow",
    "degraded": "yellow",
    "fatal": "bold red",
    "exited": "red",
    "stopped": "dim",
}
HEALTH_STYLES: Mapping[str, str] = {
    "healthy": "green",
    "degraded": "yellow",
    "unhealthy": "red",
    "unknown": "dim",
    "disabled": "dim",
}
#: States whose instances carry a reason and a retry time worth showing.
TROUBLED = ("fatal", "backoff", "exited")
MAX_LISTED = 3
RELOAD_LABELS: Mapping[str, str] = {
    "failed": "FAILED:",
    "needs_restart": "takes effect on the next start of agentvisor:",
}


def humanize_duration(seconds: float | None) -> str:
    """``3s``, ``4m05s``, ``2h03m``, ``3d4h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    total = max(int(seconds), 0)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def humanize_bytes(size: float | None) -> str:
    """``512 B``, ``1.5 KiB``, ``128.0 MiB``, ``2.3 GiB``; ``-`` when unknown."""
    if size is None:
        return "-"
    value = float(size)
    if value < 1024:
        return f"{int(value)} B"
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def humanize_percent(percent: float | None) -> str:
    return "-" if percent is None else f"{percent:.1f}%"


def parse_time(stamp: str | None) -> float | None:
    """The API's ISO 8601 time (``2024-01-01T10:00:00Z``) as wall-clock seconds."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def _listed(values: Iterable[object]) -> str:
    shown = [str(value) for value in values if value is not None]
    if not shown:
        return "-"
    if len(shown) > MAX_LISTED:
        return ",".join(shown[:MAX_LISTED]) + f",+{len(shown) - MAX_LISTED}"
    return ",".join(shown)


def styled_state(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def trouble_note(service: Mapping[str, Any], now: float) -> str:
    """For a service in trouble: when it is retried next and why, e.g. ``retry in 4m05s: …``."""
    for instance in service.get("instances", []):
        if instance.get("state") not in TROUBLED:
            continue
        reason = instance.get("reason") or ""
        retry_at = parse_time(instance.get("next_retry_at"))
        if retry_at is not None:
            when = f"retry in {humanize_duration(retry_at - now)}"
        elif instance.get("state") == "fatal":
            when = "no automatic retry; start it by hand"
        else:
            when = ""
        return ": ".join(part for part in (when, reason) if part)
    return ""


def status_table(services: Sequence[Mapping[str, Any]], now: float) -> Table:
    """One row per service, readable at a glance; names are never cut short."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    longest = max((len(str(service.get("name", ""))) for service in services), default=4)
    table.add_column("NAME", no_wrap=True, min_width=max(longest, 4))
    # Words stay whole on a narrow terminal (80 columns); the pid and port lists give way.
    keep = {"STATE": len("stopping"), "INST": len("INST"), "HEALTH": len("unhealthy")}
    for column in ("STATE", "INST", "PID", "PORT", "UPTIME", "CPU", "MEM", "SESS", "HEALTH"):
        right = column in ("INST", "UPTIME", "CPU", "MEM", "SESS")
        table.add_column(
            column, justify="right" if right else "left", no_wrap=True, min_width=keep.get(column)
        )
    for service in services:
        instances = service.get("instances", [])
        live = [i for i in instances if i.get("pid") is not None]
        replicas = service.get("replicas", {})
        stats = service.get("stats", {})
        health = str(service.get("health", "unknown"))
        table.add_row(
            Text(str(service.get("name", "?")), style="bold"),
            styled_state(str(service.get("status", "unknown"))),
            _instances_cell(replicas),
            _listed(i.get("pid") for i in live),
            _listed(i.get("port") for i in (live or instances)),
            humanize_duration(stats.get("uptime_seconds")),
            humanize_percent(stats.get("cpu_percent")),
            humanize_bytes(stats.get("memory_bytes")),
            _count(stats.get("sessions_active")),
            Text(health, style=HEALTH_STYLES.get(health, "")),
        )
    return table


def _instances_cell(replicas: Mapping[str, Any]) -> str:
    """``running/desired``, and the autoscaler's bounds when it sets desired: ``1/2 (1-3)``."""
    cell = f"{replicas.get('running', 0)}/{replicas.get('desired', 0)}"
    bounds = replicas.get("autoscale")
    return f"{cell} ({bounds.get('min')}-{bounds.get('max')})" if bounds else cell


def _count(value: object) -> str:
    """A count the API may not know (``None``: e.g. sessions of a command worker)."""
    return "-" if value is None else str(value)


def status_view(services: Sequence[Mapping[str, Any]], now: float) -> RenderableType:
    """``agentvisorctl status``: the table, then one line per service in trouble.

    The notes (next retry and reason of a fatal or backing-off service) go
    below the table rather than in a column, so they stay whole on any width.
    """
    notes = [
        Text.assemble((f"{service.get('name', '?')}: ", "bold"), (note, "red"))
        for service in services
        if (note := trouble_note(service, now))
    ]
    if not notes:
        return status_table(services, now)
    return Group(status_table(services, now), Text(), *notes)


def _instances_table(instances: Sequence[Mapping[str, Any]], now: float) -> Table:
    table = Table(title="instances", title_justify="left", box=None, header_style="bold")
    columns = ("#", "STATE", "PID", "PORT", "UPTIME", "RESTARTS", "CPU", "MEM", "SESS", "HEALTH")
    for column in columns:
        table.add_column(column, no_wrap=True)
    table.add_column("REASON", overflow="fold")
    for instance in instances:
        health = instance.get("health", {}).get("status", "unknown")
        note = trouble_note({"instances": [instance]}, now) or instance.get("reason", "")
        table.add_row(
            str(instance.get("replica", "?")),
            styled_state(str(instance.get("state", "?"))),
            str(instance.get("pid") or "-"),
            str(instance.get("port") or "-"),
            humanize_duration(instance.get("uptime_seconds")),
            str(instance.get("restarts", 0)),
            humanize_percent(instance.get("cpu_percent")),
            humanize_bytes(instance.get("memory_bytes")),
            _count(instance.get("sessions")),
            Text(health, style=HEALTH_STYLES.get(health, "")),
            note,
        )
    return table


def _config_value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "-" if value is None else str(value)


def _config_table(config: Mapping[str, Any]) -> Table:
    table = Table(title="config", title_justify="left", box=None, show_header=False)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in config.items():
        if isinstance(value, dict) and key != "environment":
            for sub_key, sub_value in value.items():
                table.add_row(f"{key}.{sub_key}", _config_value(sub_value))
        else:
            table.add_row(key, _config_value(value))
    return table


def _last_exits(instances: list[Mapping[str, Any]]) -> list[RenderableType]:
    """How each replica's last process ended and its last stderr lines (the cause of a fatal)."""
    parts: list[RenderableType] = []
    for instance in instances:
        reason, tail = instance.get("exit_reason") or "", instance.get("stderr_tail") or []
        if not reason:
            continue
        parts.append(Text())
        parts.append(Text(f"replica {instance.get('replica')} last exit: {reason}", style="bold"))
        parts.extend(Text(f"  {line}") for line in tail)
    return parts


def _autoscale_summary(policy: Mapping[str, Any], running: int, now: float) -> str:
    """``1..3 replicas, desired 2, running 1; last change 12s ago: …; now: …``: the bounds,
    the counts, the last change and what the latest decision saw."""
    text = (
        f"{policy.get('min')}..{policy.get('max')} replicas, desired {policy.get('desired')}, "
        f"running {running}"
    )
    retiring = policy.get("retiring")
    if retiring:
        text += ", retiring " + ", ".join(str(replica) for replica in retiring)
    change, latest = policy.get("last_change"), policy.get("last_decision")
    if change:
        ago = humanize_duration(now - change["at"]) if change.get("at") is not None else "-"
        text += f"; last change {ago} ago: {change.get('message') or change.get('reason', '')}"
    if latest:
        text += f"; now: {latest.get('action', '?')}, {latest.get('reason', '')}"
    return text


def service_detail(service: Mapping[str, Any], now: float) -> RenderableType:
    """``agentvisorctl show NAME``: summary, instances, config."""
    header = Text()
    header.append(str(service.get("name", "?")), style="bold")
    header.append("  ")
    header.append_text(styled_state(str(service.get("status", "unknown"))))
    replicas = service.get("replicas", {})
    stats = service.get("stats", {})
    summary = Table(box=None, show_header=False, pad_edge=False)
    summary.add_column("key", style="bold", no_wrap=True)
    summary.add_column("value", overflow="fold")
    rows = [
        ("description", service.get("description") or "-"),
        ("kind", service.get("kind", "-")),
        ("tags", ", ".join(service.get("tags", [])) or "-"),
        ("endpoint", service.get("endpoint") or "-"),
        ("instances", f"{replicas.get('running', 0)}/{replicas.get('desired', 0)} running"),
        ("uptime", humanize_duration(stats.get("uptime_seconds"))),
        ("restarts", str(stats.get("restarts", 0))),
        ("cpu", humanize_percent(stats.get("cpu_percent"))),
        ("memory", humanize_bytes(stats.get("memory_bytes"))),
        ("health", str(service.get("health", "unknown"))),
    ]
    autoscale = service.get("autoscale")
    if autoscale:
        running = int(replicas.get("running", 0))
        rows.append(("autoscale", _autoscale_summary(autoscale, running, now)))
    note = trouble_note(service, now)
    if note:
        rows.append(("note", note))
    for key, value in rows:
        summary.add_row(key, str(value))
    parts: list[RenderableType] = [header, summary, Text()]
    parts.append(_instances_table(service.get("instances", []), now))
    parts.extend(_last_exits(service.get("instances", [])))
    if service.get("config"):
        parts.extend([Text(), _config_table(service["config"])])
    return Group(*parts)


def operation_line(data: Mapping[str, Any]) -> str:
    """One line for a start/stop/restart answer, e.g. ``weather: running (2/2)``."""
    service = data.get("service", {})
    replicas = service.get("replicas", {})
    line = (
        f"{data.get('name') or service.get('name', '?')}: {service.get('status', '?')} "
        f"({replicas.get('running', 0)}/{replicas.get('desired', 0)})"
    )
    if not data.get("settled", True):
        line += f"; still settling after {humanize_duration(data.get('elapsed_seconds'))}"
    return line


def reload_lines(data: Mapping[str, Any]) -> list[str]:
    """``agentvisor reload`` / ``agentvisorctl reload``: what the reload changed."""
    changes = [
        f"{RELOAD_LABELS.get(key, key)} {', '.join(names)}"
        for key, names in data.items()
        if isinstance(names, list) and names
    ]
    if data.get("dry_run"):
        if not changes:
            return ["dry run: a reload would change nothing"]
        return ["dry run, a reload would do (nothing was done): " + "; ".join(changes)]
    if not changes:
        return ["reloaded: no changes"]
    return ["reloaded: " + "; ".join(changes)]


def environment_line(use: Mapping[str, Any], whose: str) -> str | None:
    """Which ``${VAR}`` a config file read from ``whose`` environment; None when it has none."""
    found = [
        f"{label} {', '.join(str(name) for name in names)}"
        for label, names in (("set:", use.get("set")), ("unset:", use.get("unset")))
        if isinstance(names, list) and names
    ]
    if not found:
        return None
    return f"${{VAR}} read from {whose} environment; " + "; ".join(found)


def log_line(line: Mapping[str, Any], *, show_instance: bool) -> str:
    text = str(line.get("text", ""))
    if show_instance:
        return f"[{line.get('instance', '?')}] {text}"
    return text


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


# -- router traffic (``connections``, ``disconnect``, ``route test``) ---------------------------


def connections_table(connections: Sequence[Mapping[str, Any]], now: float) -> Table:
    """One row per client connection; ids in full (``disconnect`` takes them)."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "CLIENT", "SERVICE", "INSTANCE", "SESSIONS", "AGE", "IDLE"):
        table.add_column(column, no_wrap=column in ("ID", "INSTANCE"))
    table.add_column("IN", justify="right")
    table.add_column("OUT", justify="right")
    for item in connections:
        since = parse_time(item.get("connected_at"))
        active = parse_time(item.get("last_activity"))
        status = str(item.get("status", ""))
        instance = str(item.get("target_instance") or "-")
        if status and status != "active":
            instance = f"{instance} ({status})"
        table.add_row(
            str(item.get("connection_id")),
            str(item.get("client_ip")),
            str(item.get("target_service_id")),
            instance,
            str(len(item.get("session_ids") or [])),
            humanize_duration(None if since is None else now - since),
            humanize_duration(None if active is None else now - active),
            f"{item.get('messages_in', 0)} / {humanize_bytes(item.get('bytes_received'))}",
            f"{item.get('messages_out', 0)} / {humanize_bytes(item.get('bytes_sent'))}",
        )
    return table


def disconnected_line(data: Mapping[str, Any]) -> str:
    told = "" if data.get("notified") else " (client not notified)"
    return f"disconnected {data.get('connection_id')}: {data.get('reason')}{told}"


def route_test_lines(data: Mapping[str, Any]) -> list[str]:
    """The dry run's verdict, then each candidate instance with its load."""
    action = data.get("action")
    rule = data.get("rule") or "(no rule: router defaults)"
    lines = [f"rule:      {rule}", f"action:    {action}"]
    if action != "route":
        lines.append(f"reason:    {data.get('reason')}")
        return lines
    lines.append(f"agents:    {', '.join(data.get('agents') or []) or '-'}")
    lines.append(f"strategy:  {data.get('strategy')}")
    instance = data.get("instance")
    if instance:
        decided = instance.get("decided_by")
        lines.append(f"instance:  {instance.get('instance_id')} (decided by {decided})")
        lines.append(f"endpoint:  {instance.get('endpoint')}")
    else:
        lines.append(f"instance:  none ({data.get('reason')})")
    for candidate in data.get("candidates") or []:
        mark = "*" if instance and candidate["instance_id"] == instance.get("instance_id") else " "
        state = "eligible" if candidate.get("eligible") else "not eligible"
        if candidate.get("draining"):
            state += ", draining"
        lines.append(
            f"  {mark} {candidate['instance_id']}: {state}, {candidate.get('connections', 0)} "
            f"connections, {candidate.get('sessions', 0)}/{candidate.get('max_sessions')} sessions"
        )
    return lines
