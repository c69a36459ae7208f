"""Management events, the router's own messages to clients (PROTOCOL.md §2).

``{"event": NAME, "data": {...}, "timestamp": RFC 3339}``, sent as text
frames between relayed frames, and only when ``[router] management_events``
is on (the caller checks). Error codes and notification types are the
strings clients match on, so they are constants here.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from agentvisor.router.frames import text_frame
from agentvisor.supervise.states import DrainReason

# error codes (PROTOCOL.md §2)
ROUTING_FAILED = "ROUTING_FAILED"
NO_HEALTHY_SERVICE = "NO_HEALTHY_SERVICE"
SERVICE_NOT_FOUND = "SERVICE_NOT_FOUND"
RATE_LIMITED = "RATE_LIMITED"
UNAUTHORIZED = "UNAUTHORIZED"
UPSTREAM_LOST = "UPSTREAM_LOST"

# reasons of service_switched
REASON_UPSTREAM_LOST = "upstream_lost"
REASON_DRAIN = "instance_draining"


def timestamp(at: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def notice(event: str, data: dict[str, Any]) -> bytes:
    """One management event as a server-side (unmasked) text frame."""
    return text_frame({"event": event, "data": data, "timestamp": timestamp()})


def connection_routed(
    *,
    service: str,
    instance: str,
    endpoint: str,
    strategy: str,
    rule: str | None,
    connection_id: str,
) -> bytes:
    return notice(
        "connection_routed",
        {
            "target_service": service,
            "target_instance": instance,
            "service_endpoint": endpoint,
            "routing_strategy": strategy,
            "rule": rule,
            "connection_id": connection_id,
        },
    )


def service_switched(
    *,
    from_service: str,
    to_service: str,
    from_instance: str,
    to_instance: str,
    reason: str,
    session_preserved: bool,
) -> bytes:
    return notice(
        "service_switched",
        {
            "from_service": from_service,
            "to_service": to_service,
            "from_instance": from_instance,
            "to_instance": to_instance,
            "reason": reason,
            "session_preserved": session_preserved,
        },
    )


def notification(
    kind: str,
    message: str,
    *,
    severity: str = "info",
    countdown_seconds: float | None = None,
    reason: str | None = None,
) -> bytes:
    """``management_notification``: ``kind`` is e.g. ``drain``, ``shutdown``, ``disconnect``;
    ``reason`` (a drain's) is added to the data when given."""
    countdown = None if countdown_seconds is None else round(countdown_seconds, 3)
    data: dict[str, Any] = {
        "type": kind,
        "message": message,
        "severity": severity,
        "countdown_seconds": countdown,
    }
    if reason is not None:
        data["reason"] = reason
    return notice("management_notification", data)


_DRAIN_MESSAGES = {
    DrainReason.RESTART: "instance {instance} is restarting",
    DrainReason.RELOAD: "instance {instance} restarts with the reloaded configuration",
    DrainReason.SCALE_DOWN: "instance {instance} is retired by a scale-down",
    DrainReason.REMOVAL: "agent {agent} is being removed from the configuration",
}


def drain_notification(instance_id: str, reason: DrainReason, countdown_seconds: float) -> bytes:
    """The ``drain`` notice: why the instance goes (``reason``, and said in the message)."""
    agent = instance_id.rpartition(":")[0] or instance_id
    what = _DRAIN_MESSAGES[reason].format(instance=instance_id, agent=agent)
    return notification(
        "drain",
        f"{what}; this connection moves to another instance when one can take it",
        countdown_seconds=countdown_seconds,
        reason=reason.value,
    )


def error(code: str, message: str, *, recoverable: bool) -> bytes:
    return notice("error", {"code": code, "message": message, "recoverable": recoverable})
