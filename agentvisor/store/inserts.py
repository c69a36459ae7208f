"""Write requests, and how a batch of them becomes rows in one transaction.

Producers (the supervisor, the router, the bus subscriber) build these small
records on the trio thread; the writer hands a batch of them to
:func:`write_batch` on its thread. Grouping a batch by table turns thousands
of log lines into one ``executemany`` in one transaction, so a line costs
little more than SQLite's own work for it (and its full-text indexing).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from agentvisor.store.records import ConnectionRecord, Metric
from agentvisor.supervise.logs import LogChunk, LogLine

#: Rough bytes a queued row costs beyond its text (object headers, floats, the tuple).
ROW_OVERHEAD_BYTES = 200


@attrs.frozen
class EventRow:
    at: float
    kind: str
    service: str | None = None
    replica: int | None = None
    action: str | None = None
    old: str | None = None
    new: str | None = None
    source: str | None = None
    outcome: str | None = None
    message: str = ""
    details: dict[str, Any] = attrs.field(factory=dict)
    #: Intent records (config_journal.py) this entry completes: deleted with its insert.
    intents: tuple[int, ...] = ()


@attrs.frozen
class HealthRow:
    at: float
    service: str
    replica: int
    ok: bool
    status: str
    response_time: float | None
    message: str


@attrs.frozen
class MetricRow:
    at: float
    service: str
    replica: int
    metric: Metric
    value: float


@attrs.frozen
class LogBatch:
    lines: Sequence[LogLine]  # usually one LogChunk: its lines are never made one by one


WriteItem = EventRow | HealthRow | MetricRow | LogBatch | ConnectionRecord


def item_rows(item: WriteItem) -> int:
    return len(item.lines) if isinstance(item, LogBatch) else 1


def item_bytes(item: WriteItem) -> int:
    """What an item is charged against the queue's byte budget (an estimate, not exact)."""
    if isinstance(item, LogBatch):
        lines = item.lines
        if isinstance(lines, LogChunk):
            return lines.text_bytes + ROW_OVERHEAD_BYTES * len(lines)
        return sum(len(line.text) for line in lines) + ROW_OVERHEAD_BYTES * len(lines)
    if isinstance(item, EventRow):
        return ROW_OVERHEAD_BYTES + len(item.message) + 64 * len(item.details)
    if isinstance(item, ConnectionRecord):
        return ROW_OVERHEAD_BYTES * 2 + 48 * len(item.session_ids)
    if isinstance(item, HealthRow):
        return ROW_OVERHEAD_BYTES + len(item.message)
    return ROW_OVERHEAD_BYTES


class ServiceKeys:
    """Name → integer key of ``services``, creating rows on first use; writer thread only."""

    def __init__(self) -> None:
        self._keys: dict[str, int] = {}

    def key(self, conn: sqlite3.Connection, name: str, now: float) -> int:
        found = self._keys.get(name)
        if found is None:
            conn.execute(
                "INSERT INTO services(name, id, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO NOTHING",
                (name, str(uuid.uuid4()), now),
            )
            row = conn.execute("SELECT key FROM services WHERE name = ?", (name,)).fetchone()
            found = self._keys[name] = int(row[0])
        return found

    def service_id(self, conn: sqlite3.Connection, name: str, now: float) -> str:
        """The UUID of ``name``, created in its own transaction when new."""
        with transaction(conn):
            key = self.key(conn, name, now)
        row = conn.execute("SELECT id FROM services WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    def forget(self) -> None:
        """Drop the cache, after a rolled-back transaction may have undone new keys."""
        self._keys.clear()


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


_INSERT_EVENT = (
    "INSERT INTO events(at, kind, service, replica, action, old, new, source, outcome, "
    "message, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_HEALTH = (
    "INSERT INTO health_checks(at, service, replica, ok, status, response_time, message) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_METRIC = "INSERT INTO metrics(at, service, replica, metric, value) VALUES (?, ?, ?, ?, ?)"
_UPSERT_MINUTE = (
    "INSERT INTO metrics_minute(metric, minute, service, replica, total, samples, low, high) "
    "VALUES (?, ?, ?, ?, ?, 1, ?, ?) "
    "ON CONFLICT(metric, minute, service, replica) DO UPDATE SET "
    "total = total + excluded.total, samples = samples + 1, "
    "low = min(low, excluded.low), high = max(high, excluded.high)"
)
_INSERT_LOG = "INSERT INTO logs(at, service, replica, stream, seq, text) VALUES (?, ?, ?, ?, ?, ?)"
_INSERT_CONNECTION = (
    "INSERT INTO connections(id, client_ip, service, instance, session_ids, opened_at, "
    "closed_at, messages_in, messages_out, bytes_in, bytes_out, close_code, close_reason) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def write_batch(
    conn: sqlite3.Connection,
    services: ServiceKeys,
    items: Sequence[WriteItem],
    now: float,
    after: Callable[[sqlite3.Connection], None] | None = None,
) -> None:
    """Write ``items`` in one transaction; ``after`` runs inside it (the log row cap)."""
    events: list[tuple[Any, ...]] = []
    checks: list[tuple[Any, ...]] = []
    samples: list[tuple[Any, ...]] = []
    minutes: list[tuple[Any, ...]] = []
    logs: list[tuple[Any, ...]] = []
    closed: list[tuple[Any, ...]] = []
    completed: list[tuple[int]] = []
    with transaction(conn):

        def key(name: str) -> int:
            return services.key(conn, name, now)

        for item in items:
            if isinstance(item, LogBatch) and isinstance(item.lines, LogChunk):
                chunk = item.lines
                head = (chunk.at, key(chunk.service), chunk.replica, chunk.stream)
                logs.extend(
                    (*head, seq, text)
                    for seq, text in enumerate(chunk.texts, start=chunk.first_seq)
                )
            elif isinstance(item, LogBatch):
                logs.extend(
                    (line.at, key(line.service), line.replica, line.stream, line.seq, line.text)
                    for line in item.lines
                )
            elif isinstance(item, MetricRow):
                service = key(item.service)
                samples.append((item.at, service, item.replica, item.metric.value, item.value))
                minute = int(item.at // 60) * 60
                value = item.value
                minutes.append((item.metric.value, minute, service, item.replica) + (value,) * 3)
            elif isinstance(item, EventRow):
                completed.extend((intent,) for intent in item.intents)
                events.append(
                    (
                        item.at,
                        item.kind,
                        None if item.service is None else key(item.service),
                        item.replica,
                        item.action,
                        item.old,
                        item.new,
                        item.source,
                        item.outcome,
                        item.message,
                        json.dumps(item.details, default=str),
                    )
                )
            elif isinstance(item, HealthRow):
                checks.append(
                    (
                        item.at,
                        key(item.service),
                        item.replica,
                        int(item.ok),
                        item.status,
                        item.response_time,
                        item.message,
                    )
                )
            else:
                closed.append(_connection_row(item, None if item.service is None else key))
        for sql, rows in (
            (_INSERT_LOG, logs),
            (_INSERT_EVENT, events),
            (_INSERT_HEALTH, checks),
            (_INSERT_METRIC, samples),
            (_UPSERT_MINUTE, minutes),
            (_INSERT_CONNECTION, closed),
        ):
            if rows:
                conn.executemany(sql, rows)
        if completed:
            conn.executemany("DELETE FROM config_intents WHERE id = ?", completed)
        if after is not None:
            after(conn)


def _connection_row(record: ConnectionRecord, key: Callable[[str], int] | None) -> tuple[Any, ...]:
    return (
        record.id,
        record.client_ip,
        None if key is None or record.service is None else key(record.service),
        record.instance,
        json.dumps(list(record.session_ids)),
        record.opened_at,
        record.closed_at,
        record.messages_in,
        record.messages_out,
        record.bytes_in,
        record.bytes_out,
        record.close_code,
        record.close_reason,
    )
