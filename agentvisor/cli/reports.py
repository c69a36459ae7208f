"""What the editing and observing commands of agentvisorctl print (pure, like ``render``).

One line for an edit (``registered weather …``), rich tables and panels for
the overview, the monitor and routing rules, one line per event or search
hit. Everything works on the API's JSON data and takes ``now`` when it
shows ages, so it is tested without a server.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from agentvisor.cli.render import humanize_duration, humanize_percent, status_table

#: Events worth a colour in ``events`` output, by outcome.
OUTCOME_STYLES: Mapping[str, str] = {"rejected": "red", "failed": "red", "unexpected": "red"}


def _short_id(service_id: str | None, name: str) -> str:
    """The stable id, shortened, when it is not just the name."""
    if not service_id or service_id == name:
        return ""
    return f" (id {service_id})"


def registered_line(data: Mapping[str, Any]) -> str:
    """``registered weather (id …): starting, ws://127.0.0.1:8101``."""
    name = str(data.get("name", "?"))
    service = data.get("service", {})
    state = service.get("status", "?")
    if not data.get("autostart", True):
        state = "not started (autostart is off)"
    elif state == "stopped":
        state = "starting"  # answered before the supervisor's start task ran
    endpoint = data.get("endpoint")
    where = f", {endpoint}" if endpoint else ""
    return f"registered {name}{_short_id(data.get('service_id'), name)}: {state}{where}"


def unregistered_line(data: Mapping[str, Any]) -> str:
    name = str(data.get("name", "?"))
    if data.get("stopped", True):
        return f"unregistered {name}: stopped and removed from the config"
    waited = humanize_duration(data.get("elapsed_seconds"))
    return f"unregistered {name}: removed from the config, still stopping after {waited}"


def scaled_line(data: Mapping[str, Any]) -> str:
    name = str(data.get("name", "?"))
    replicas = data.get("replicas", {})
    running = data.get("service", {}).get("replicas", {}).get("running", 0)
    line = (
        f"{name}: scaled from {replicas.get('previous', '?')} to "
        f"{replicas.get('desired', '?')} replicas ({running} running now)"
    )
    failed = data.get("reload", {}).get("failed") or []
    return line + "".join(f"; FAILED {failure}" for failure in failed)


def condition_text(condition: Mapping[str, Any]) -> str:
    """A condition as written on the command line: ``header.x-user-tier=vip``."""
    field = str(condition.get("field", "?"))
    op = condition.get("operator") or condition.get("op") or "equals"
    value = condition.get("value")
    symbols = {
        "equals": "=",
        "not_equals": "!=",
        "contains": "~=",
        "starts_with": "^=",
        "ends_with": "$=",
    }
    if op == "exists":
        return field
    if op in symbols:
        return f"{field}{symbols[op]}{value}"
    return f"{field} {op} {value}"


def rule_line(verb: str, rule: Mapping[str, Any]) -> str:
    conditions = " and ".join(condition_text(c) for c in rule.get("conditions", [])) or "always"
    return f"{verb} routing rule {rule.get('name', '?')}: when {conditions} → {_targets(rule)}"


def _targets(rule: Mapping[str, Any]) -> str:
    if rule.get("action") == "reject":
        return "reject"
    parts = [f"agents {','.join(rule['target_agents'])}"] if rule.get("target_agents") else []
    if rule.get("target_tags"):
        parts.append(f"tags {','.join(rule['target_tags'])}")
    strategy = rule.get("target_strategy") or "default strategy"
    return f"{' + '.join(parts) or 'any agent'} by {strategy}"


def rules_table(rules: Sequence[Mapping[str, Any]]) -> Table:
    """``route list``: the rules in the order the router tries them."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("NAME", "PRIO", "ON", "WHEN", "THEN"):
        table.add_column(column, no_wrap=column in ("NAME", "PRIO", "ON"))
    for rule in rules:
        conditions = " and ".join(condition_text(c) for c in rule.get("conditions", []))
        table.add_row(
            Text(str(rule.get("name", "?")), style="bold"),
            str(rule.get("priority", 0)),
            Text("yes", style="green") if rule.get("enabled", True) else Text("no", style="dim"),
            conditions or "always",
            _targets(rule),
        )
    return table


def _figure(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}{unit}"
    return f"{value}{unit}"


def overview_view(data: Mapping[str, Any]) -> RenderableType:
    """``agentvisorctl stats``: the overview as a few key/value sections."""
    services = data.get("services", {})
    connections = data.get("connections", {})
    sessions = data.get("sessions", {})
    performance = data.get("performance", {})
    resources = data.get("resources", {})
    own = resources.get("agentvisor", {})
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("section", style="bold", no_wrap=True)
    table.add_column("figures", overflow="fold")
    states = services.get("by_state", {})
    by_state = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
    rows = [
        ("services", f"{services.get('total', 0)} ({by_state or 'none'})"),
        (
            "instances",
            f"{data.get('instances', {}).get('running', 0)}/"
            f"{data.get('instances', {}).get('total', 0)} running",
        ),
        (
            "connections",
            f"{connections.get('active', 0)} active, {connections.get('total', 0)} since start, "
            f"peak today {connections.get('peak_today', 0)}",
        ),
        (
            "sessions",
            f"{sessions.get('active', 0)} active, {sessions.get('total', 0)} total, "
            f"{sessions.get('completed', 0)} completed",
        ),
        (
            "performance",
            f"health checks {_figure(performance.get('avg_response_time_ms'), ' ms')}, "
            f"turns {_figure(performance.get('avg_turn_duration_ms'), ' ms')}, "
            f"{_figure(performance.get('throughput_per_minute'))} msg/min, "
            f"error rate {_figure(performance.get('error_rate'))}",
        ),
        (
            "resources",
            f"cpu {humanize_percent(resources.get('total_cpu_percent'))}, "
            f"memory {_figure(resources.get('total_memory_mb'), ' MiB')} "
            f"(agentvisor pid {own.get('pid', '?')}: "
            f"{humanize_percent(own.get('cpu_percent'))}, "
            f"{_figure(own.get('memory_mb'), ' MiB')})",
        ),
        ("uptime", humanize_duration(data.get("uptime_seconds"))),
    ]
    for section, figures in rows:
        table.add_row(section, figures)
    return table


def monitor_view(
    overview: Mapping[str, Any], services: Sequence[Mapping[str, Any]], now: float
) -> RenderableType:
    """``agentvisorctl monitor``: the overview above the status table."""
    stamp = Text(f"agentvisor monitor, refreshed {_clock(now)} (Ctrl-C to quit)", style="dim")
    table = status_table(services, now) if services else Text("no services configured")
    return Group(stamp, overview_view(overview), Text(), table)


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def health_check_lines(data: Mapping[str, Any]) -> list[str]:
    """``agentvisorctl health NAME``: the verdict, then one line per instance."""
    name = data.get("name", "?")
    lines = [f"{name}: {data.get('status', 'unknown')}"]
    for result in data.get("results", []):
        verdict = "ok" if result.get("ok") else "FAILED"
        if result.get("skipped"):
            verdict = "skipped"
        took = result.get("response_time_ms")
        timing = f" in {took:g} ms" if isinstance(took, int | float) else ""
        lines.append(
            f"  [{result.get('instance', '?')}] {verdict}{timing}: {result.get('message', '')}"
        )
    return lines


def search_hit(line: Mapping[str, Any]) -> Text:
    """A stored log line with its service, instance and time; matches highlighted."""
    text = str(line.get("text", ""))
    hit = Text.assemble(
        (f"{line.get('at', '?')} ", "dim"),
        (f"{line.get('service', '?')}:{line.get('instance', '?')} ", "bold"),
    )
    if line.get("stream") == "stderr":
        hit.append("stderr ", style="yellow")
    body = Text(text)
    for start, end in line.get("highlights", []):
        body.stylize("reverse", start, end)
    hit.append_text(body)
    return hit


def event_line(event: Mapping[str, Any]) -> str:
    """One audit event: ``2024-01-01T10:00:00Z weather:0 instance.state running (api): …``."""
    where = event.get("service") or "agentvisor"
    if event.get("instance") is not None:
        where = f"{where}:{event['instance']}"
    what = event.get("action") or event.get("new") or event.get("kind", "?")
    if event.get("old") and event.get("new") and not event.get("action"):
        what = f"{event['old']} → {event['new']}"
    source = f" ({event['source']})" if event.get("source") else ""
    outcome = event.get("outcome")
    flag = f" [{outcome}]" if outcome and outcome not in ("ok", "expected") else ""
    message = event.get("message") or ""
    line = f"{event.get('at', '?')} {where} {what}{source}{flag}"
    return f"{line}: {message}" if message else line


#: The live events that the audit log keeps, for ``events -f`` on the stream.
AUDITED_KINDS = (
    "instance.state",
    "instance.exited",
    "instance.health",
    "operator.action",
    "config.reload",
    "connection.switched",
    "message.poisoned",
)


def audit_view(kind: str, event: Mapping[str, Any]) -> dict[str, Any]:
    """A live event of the stream in the audit log's shape, so both print alike."""
    at = event.get("at")
    stamp = (
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)) if isinstance(at, int | float) else at
    )
    view: dict[str, Any] = {
        "id": None,
        "at": stamp,
        "timestamp": at,
        "kind": kind,
        "service": event.get("service") or event.get("target") or None,
        "instance": event.get("replica"),
        "action": event.get("action"),
        "old": event.get("old"),
        "new": event.get("new") or event.get("status"),
        "source": event.get("source"),
        "outcome": event.get("outcome"),
        "message": event.get("message") or event.get("reason") or "",
    }
    if kind == "instance.exited":
        view["new"] = f"exited {event.get('returncode')}"
        view["outcome"] = "expected" if event.get("expected") else "unexpected"
    elif kind == "config.reload":
        view["action"] = "reload"
        view["outcome"] = "ok" if event.get("ok") else "rejected"
        changes = [
            f"{key} {', '.join(event[key])}"
            for key in ("added", "removed", "restarted", "updated")
            if event.get(key)
        ]
        view["message"] = "; ".join(changes + list(event.get("errors") or [])) or "no changes"
    elif kind == "message.poisoned":
        view["source"], view["outcome"] = "worker", "poisoned"
        view["message"] = (
            f"message {event.get('message_id')!r} of session {event.get('session_id')} "
            f"was in flight at {event.get('deaths')} worker deaths; it is not run again"
        )
    elif kind == "connection.switched":
        view["old"], view["new"] = event.get("from_instance"), event.get("to_instance")
        view["message"] = str(event.get("reason", ""))
    return view
