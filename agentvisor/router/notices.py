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
    kind: str, message: str, *, severity: str = "info", countdown_seconds: float | None = None
) -> bytes:
    """``management_notification``: ``kind`` is e.g. ``drain``, ``shutdown``, ``disconnect``."""
    countdown = None if countdown_seconds is None else round(countdown_seconds, 3)
    return notice(
        "management_notification",
        {"type": kind, "message": message, "severity": severity, "countdown_seconds": countdown},
    )


def error(code: str, message: str, *, recoverable: bool) -> bytes:
    return notice("error", {"code": code, "message": message, "recoverable": recoverable})
