"""The answers about services, declared once: a service, its instances, their health and
figures. The route handlers build these from the supervisor's views, the document's
schemas are derived from them (``api.schema.components``). Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from attrs import field, frozen

from agentvisor.api.schema import OPENAPI, Schema
from agentvisor.supervise.states import ProcessState

INSTANCE_STATES = tuple(state.value for state in ProcessState)
#: ``registry.aggregate_state`` adds these for a service as a whole.
SERVICE_STATES = (*INSTANCE_STATES, "degraded", "waiting")
SERVICE_HEALTH = ("healthy", "unhealthy", "degraded", "unknown", "disabled")
INSTANCE_HEALTH = ("healthy", "unhealthy", "unknown", "disabled")


def one_of(values: tuple[str, ...], description: str | None = None) -> dict[str, Schema]:
    """Metadata of a string field that takes one of ``values``."""
    schema: Schema = {"enum": list(values)}
    if description:
        schema["description"] = description
    return {OPENAPI: schema}


def described(text: str) -> dict[str, Schema]:
    return {OPENAPI: {"description": text}}


#: ISO 8601 UTC (``2024-01-01T10:00:00Z``); null when there is no such moment.
TIME = {OPENAPI: {"format": "date-time"}}


@frozen
class InstanceHealth:
    """The latest health check of one instance."""

    status: str = field(metadata=one_of(INSTANCE_HEALTH))
    last_check: str | None = field(metadata=TIME)
    response_time_ms: float | None
    message: str
    consecutive_failures: int


@frozen
class Instance:
    """One process of a service (a replica)."""

    replica: int
    state: str = field(metadata=one_of(INSTANCE_STATES))
    pid: int | None
    host: str
    port: int | None
    endpoint: str | None
    started_at: str | None = field(metadata=TIME)
    uptime_seconds: float | None
    restarts: int
    failures: int
    exit_code: int | None
    exit_reason: str = field(
        metadata=described(
            "How the last process ended, with its last stderr line: "
            "exit status 2: SyntaxError: invalid syntax"
        )
    )
    stderr_tail: list[str] = field(
        metadata=described("The last stderr lines of the current or last process")
    )
    next_retry_at: str | None = field(metadata=TIME)
    reason: str
    cpu_percent: float | None
    memory_bytes: int | None
    memory_mb: float | None
    sessions: int | None
    health: InstanceHealth


@frozen
class SeedServiceStats:
    """Sessions and turns are null for command workers (they report none)."""

    total_connections: int
    active_connections: int
    peak_connections: int
    total_sessions: int | None
    active_sessions: int | None
    completed_sessions: int | None
    avg_session_duration: float | None
    avg_turn_duration: float | None
    turns: int | None
    memory_usage_mb: float | None
    cpu_usage_percent: float | None
    error_count: int | None
    error_rate: float | None
    restarts: int
    uptime_seconds: float | None


@frozen
class ServiceStats(SeedServiceStats):
    """The seed's figures, and those summed over the instances (and the store's, when it
    runs)."""

    cpu_percent: float | None
    memory_bytes: int | None
    memory_mb: float | None
    sessions_active: float | None


@frozen
class AutoscaleBounds:
    """The autoscaler's bounds; desired is its count."""

    min: int
    max: int


@frozen
class ServiceReplicas:
    """Desired replicas (the autoscaler's count when autoscaled) and those running."""

    desired: int
    running: int
    autoscale: AutoscaleBounds | None = field(
        metadata=described("Null when the agent has no [agents.NAME.autoscale]")
    )


@frozen
class ServiceItem:
    """A service in a listing: its state, health, figures and instances."""

    service_id: str = field(metadata=described("Stable id (or the name)"))
    name: str
    kind: str = field(metadata=one_of(("agent", "command")))
    description: str
    state: str = field(metadata=one_of(SERVICE_STATES))
    status: str = field(metadata=one_of(SERVICE_STATES, "The seed's name for state"))
    tags: list[str]
    host: str
    port: int | None
    endpoint: str | None
    started_at: str | None = field(metadata=TIME)
    replicas: ServiceReplicas
    health: str = field(metadata=one_of(SERVICE_HEALTH))
    stats: ServiceStats
    instances: list[Instance]


@frozen
class HealthSummary:
    """A service's health: its status, the latest check and its response time."""

    status: str = field(metadata=one_of(SERVICE_HEALTH))
    last_check: str | None = field(metadata=TIME)
    response_time_ms: float | None
    message: str


@frozen
class ServiceDetail(ServiceItem):
    """One service: the listing's item, its health, its settings and its autoscaler."""

    health_check: HealthSummary
    config: dict[str, Any] = field(
        metadata=described("The [agents.NAME] table; secret-looking values '***'")
    )
    autoscale: dict[str, Any] | None = field(
        metadata=described(
            "The autoscaler's policy settings, desired replicas, replicas retiring (draining "
            "or stopping after a scale-down), last decision (with its signals and reason) "
            "and last change; null when the agent has no [agents.NAME.autoscale]"
        )
    )


@frozen
class Page:
    """Where a listing's page is: its size, its offset, whether another follows."""

    limit: int
    offset: int
    has_next: bool


@frozen
class ServiceList:
    """A page of services."""

    services: list[ServiceItem]
    total: int
    page: Page


@frozen
class InstanceFigures:
    """One instance's figures."""

    instance: int
    state: str
    cpu_percent: float | None
    memory_mb: float | None
    sessions: int | None
    restarts: int
    uptime_seconds: float | None


@frozen
class ServiceStatsResult:
    """A service's connections, sessions, errors, cpu and memory."""

    service_id: str
    name: str
    status: str
    stats: SeedServiceStats
    instances: list[InstanceFigures]
