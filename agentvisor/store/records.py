"""What goes into the state store and what comes out of it, as frozen records.

Pure: no SQLite here, so the admin API and tests can build and compare these
without a database. Times are wall-clock seconds since the epoch (floats), as
in the events of ``agentvisor.events``; the API renders them as ISO 8601.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs


class Metric(enum.StrEnum):
    """The series of ``GET /stats/timeseries``; the values are the API's ``metric=``."""

    CONNECTIONS = "connections"
    SESSIONS = "sessions"
    CPU = "cpu"  # percent of one core, summed over the instance's process tree
    MEMORY = "memory"  # RSS bytes of the instance's process tree
    MESSAGES = "messages"
    ERRORS = "errors"
    RESTARTS = "restarts"

    @property
    def is_counter(self) -> bool:
        """Counters are recorded as increases per sample and add up; gauges are averaged.

        A bucket of a counter is the sum of its increases; a bucket of a gauge
        is, per instance, the mean of its samples, summed over the instances
        (so ``connections`` of a service is the total over its replicas).
        """
        return self in _COUNTERS


_COUNTERS = frozenset({Metric.MESSAGES, Metric.ERRORS, Metric.RESTARTS})


@attrs.frozen
class ServiceRecord:
    name: str
    id: str  # UUID, stable for the life of the state store
    created_at: float


@attrs.frozen
class EventRecord:
    """One audit-log row: a state transition, an exit, a health change, an operator action."""

    id: int
    at: float
    kind: str  # the event's ``kind``: instance.state, operator.action, config.reload …
    service: str | None  # None for system-wide events (reload, shutdown)
    replica: int | None
    action: str | None  # operator actions: start, stop, restart, reload, scale …
    old: str | None  # state transitions: the state before …
    new: str | None  # … and after (health changes: the new health)
    source: str | None  # who or what caused it: api, cli, reload, health, memory, signal …
    outcome: str | None  # ok | rejected | failed, expected | unexpected for exits
    message: str
    details: dict[str, Any]


@attrs.frozen
class HealthCheckRecord:
    at: float
    service: str
    replica: int
    ok: bool
    status: str
    response_time: float | None
    message: str


@attrs.frozen
class LogRecord:
    """A stored worker log line; ``highlights`` are the (start, end) spans a search matched."""

    id: int
    at: float
    service: str
    replica: int
    stream: str
    seq: int | None
    text: str
    highlights: tuple[tuple[int, int], ...] = ()


@attrs.frozen
class ConnectionRecord:
    """A closed router connection; ``*_in`` is client → agent, ``*_out`` agent → client."""

    id: str
    client_ip: str
    service: str | None  # None when the connection closed before it was routed
    instance: str | None  # the router's instance id, "name:replica"
    session_ids: tuple[str, ...]
    opened_at: float
    closed_at: float
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    close_code: int | None = None
    close_reason: str = ""


@attrs.frozen
class TimeseriesPoint:
    timestamp: float  # start of the bucket
    value: float | None  # None: no sample in the bucket (a gap in the chart, not a zero)


@attrs.frozen
class StoreStatistics:
    """A snapshot for ``/metrics`` and the health endpoint; counts since the store started."""

    queued: int  # write requests waiting for the writer
    queued_bytes: int  # their estimated size, bounded by ``max_queued_bytes``
    peak_queued_bytes: int  # the most ``queued_bytes`` has been
    written: int  # rows written (log lines, events, checks, samples, connections)
    log_lines_written: int  # of which worker lines
    log_sampled_out: int  # worker lines over their service's rate, kept by the log files only
    dropped: int  # rows refused because the queue was full or the store closed
    failed: int  # rows lost to a failed transaction (disk full, I/O error)
    batches: int
    bus_dropped: int  # events the bus dropped because ``consume`` fell behind
    retention_runs: int
    db_bytes: int  # pages in use, at the last retention step
    file_bytes: int  # state.db plus its WAL on disk, at the last retention step
    running: bool
