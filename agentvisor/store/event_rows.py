"""What each event of the bus becomes in the state store.

The store's ``consume`` task turns every event it receives into zero or more
write requests: audit rows for transitions, exits, health changes, operator
actions, reloads and failovers; health-check rows; metric samples; closed
connections. Pure: no SQLite, no trio.
"""

from __future__ import annotations

import math

from agentvisor.events import (
    ConfigReloaded,
    ConnectionClosed,
    ConnectionOpened,
    ConnectionRefused,
    ConnectionSwitched,
    Event,
    HealthChanged,
    HealthCheckCompleted,
    InstanceExited,
    InstanceStateChanged,
    LogLines,
    MessagePoisoned,
    MetricsSampled,
    OperatorAction,
)
from agentvisor.store.inserts import EventRow, HealthRow, MetricRow, WriteItem
from agentvisor.store.records import ConnectionRecord, Metric


def rows_for_event(event: Event) -> list[WriteItem]:
    """The rows a bus event becomes: audit events, health checks, samples, closed connections.

    Exhaustive on purpose: a new kind of event fails type checking here until
    someone decides whether the store keeps it.
    """
    match event:
        case InstanceStateChanged():
            return [
                EventRow(
                    at=event.at,
                    kind=event.kind,
                    service=event.service,
                    replica=event.replica,
                    old=event.old,
                    new=event.new,
                    source="supervisor",
                    message=event.reason,
                    details={"pid": event.pid},
                )
            ]
        case InstanceExited():
            how = "expected" if event.expected else "unexpected"
            return [
                EventRow(
                    at=event.at,
                    kind=event.kind,
                    service=event.service,
                    replica=event.replica,
                    source="process",
                    outcome=how,
                    message=f"pid {event.pid} exited with {event.returncode} ({how}) "
                    f"after {event.uptime:.1f}s" + (f": {event.reason}" if event.reason else ""),
                    details={
                        "pid": event.pid,
                        "returncode": event.returncode,
                        "uptime": event.uptime,
                        "reason": event.reason,
                        "stderr_tail": list(event.stderr_tail),
                    },
                )
            ]
        case MessagePoisoned():
            return [
                EventRow(
                    at=event.at,
                    kind=event.kind,
                    service=event.service,
                    replica=event.replica,
                    source="worker",
                    outcome="poisoned",
                    message=f"message {event.message_id!r} of session {event.session_id} was in "
                    f"flight at {event.deaths} worker deaths (the last pid {event.pid}); "
                    "it is not run again",
                    details={
                        "session_id": event.session_id,
                        "message_id": event.message_id,
                        "deaths": event.deaths,
                        "pid": event.pid,
                    },
                )
            ]
        case HealthChanged():
            return [
                EventRow(
                    at=event.at,
                    kind=event.kind,
                    service=event.service,
                    replica=event.replica,
                    new=event.status,
                    source="health",
                    message=event.message,
                    details={"response_time": event.response_time},
                )
            ]
        case OperatorAction():
            return [
                EventRow(
                    at=event.at,
                    kind=event.kind,
                    service=event.target or None,
                    action=event.action,
                    source=event.source,
                    outcome=event.outcome,
                    message=event.message,
                    details=dict(event.details),
                    intents=event.intents,
                )
            ]
        case ConfigReloaded():
            return [
                EventRow(
                    at=event.at,
                    kind=event.kind,
                    action="reload",
                    source="reload",
                    outcome="ok" if event.ok else "rejected",
                    message=_describe_reload(event),
                    details={
                        "added": list(event.added),
                        "removed": list(event.removed),
                        "restarted": list(event.restarted),
                        "updated": list(event.updated),
                        "errors": list(event.errors),
                    },
                )
            ]
        case HealthCheckCompleted():
            return [
                HealthRow(
                    event.at,
                    event.service,
                    event.replica,
                    event.ok,
                    event.status,
                    event.response_time,
                    event.message,
                )
            ]
        case MetricsSampled():
            return [
                MetricRow(event.at, point.service, point.replica, Metric(point.metric), point.value)
                for point in event.points
                if point.metric in _METRIC_NAMES and math.isfinite(point.value)
            ]
        case ConnectionClosed():
            return [
                ConnectionRecord(
                    id=event.connection_id,
                    client_ip=event.client_ip,
                    service=event.service or None,
                    instance=event.instance_id or None,
                    session_ids=(),
                    opened_at=event.at - event.duration,
                    closed_at=event.at,
                    messages_in=event.messages_in,
                    messages_out=event.messages_out,
                    bytes_in=event.bytes_in,
                    bytes_out=event.bytes_out,
                    close_code=event.code,
                    close_reason=event.reason,
                )
            ]
        case ConnectionSwitched():
            return [
                EventRow(
                    at=event.at,
                    kind=event.kind,
                    service=event.to_instance.rpartition(":")[0] or None,
                    old=event.from_instance,
                    new=event.to_instance,
                    source="router",
                    outcome="preserved" if event.session_preserved else "lost",
                    message=f"connection {event.connection_id} moved from {event.from_instance} "
                    f"to {event.to_instance}: {event.reason}",
                    details={"connection_id": event.connection_id, "sessions": event.sessions},
                )
            ]
        case LogLines():
            # Worker lines come through ``StateStore.record_log_lines``: the bus may drop them.
            return []
        case ConnectionOpened() | ConnectionRefused():
            # Live connections are the router's; refusals can come by the thousand in
            # a connection flood and are counted by the metrics instead.
            return []


_METRIC_NAMES = frozenset(metric.value for metric in Metric)


def _describe_reload(event: ConfigReloaded) -> str:
    if not event.ok:
        return f"reload rejected: {len(event.errors)} error(s)"
    parts = [
        f"{label} {', '.join(names)}"
        for label, names in (
            ("added", event.added),
            ("removed", event.removed),
            ("restarted", event.restarted),
            ("updated", event.updated),
        )
        if names
    ]
    return "reloaded: " + ("; ".join(parts) if parts else "no changes")
