"""The reads of the state store: plain functions over a read-only connection.

Each runs on a worker thread (``StateStore`` dispatches them) inside
:func:`snapshot`, one read transaction, so a query made of several statements
sees one state of the database while the writer goes on appending (WAL).
Filters are assembled from constant SQL fragments; every value is a bound
parameter.

Searching logs: :func:`search_terms` turns whatever a user typed into terms
that can never be an FTS5 syntax error: words split on white space,
``"quoted phrases"`` kept together (an unclosed quote runs to the end), each
term quoted for FTS5, all terms required (AND). There are no operators: ``OR``,
``NOT``, ``*``, ``-`` and ``:`` are searched for as text. Terms of three
characters or more use the trigram index; shorter ones (which trigrams cannot
index) are ``LIKE`` filters, and a query of only short terms scans only the
newest ``SHORT_QUERY_SCAN_ROWS`` lines, so its cost stays bounded.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs

from agentvisor.errors import InvalidRequest
from agentvisor.store import log_index
from agentvisor.store.records import (
    ConnectionRecord,
    EventRecord,
    HealthCheckRecord,
    LogRecord,
    Metric,
    ServiceRecord,
    TimeseriesPoint,
)

T = TypeVar("T")

MAX_QUERY_CHARS = 1000
MAX_TERMS = 16
#: Trigram tokens: a term needs three characters to use the full-text index.
MIN_INDEXED_TERM_CHARS = 3
SHORT_QUERY_SCAN_ROWS = 200_000
MAX_BUCKETS = 10_000
#: Rows one query returns at most, whatever ``limit`` asks (the API allows 1000).
MAX_LIMIT = 10_000

_TERM = re.compile(r'"([^"]*)"?|(\S+)')


def bounded(limit: int) -> int:
    """``limit`` within 0 … MAX_LIMIT: SQLite reads a negative LIMIT as "no limit"."""
    return max(0, min(limit, MAX_LIMIT))


def snapshot(conn: sqlite3.Connection, read: Callable[..., T], *args: Any) -> T:
    """Run ``read(conn, *args)`` in one read transaction."""
    conn.execute("BEGIN")
    try:
        return read(conn, *args)
    finally:
        conn.execute("COMMIT")


def _service_key_filter(column: str) -> str:
    # ``column`` is one of our own column names, never input.
    return f"{column} = (SELECT key FROM services WHERE name = ?)"


# -- services ----------------------------------------------------------------


def services(conn: sqlite3.Connection) -> list[ServiceRecord]:
    rows = conn.execute("SELECT name, id, created_at FROM services ORDER BY name").fetchall()
    return [ServiceRecord(name, service_id, created_at) for name, service_id, created_at in rows]


def service_ids(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT name, id FROM services").fetchall())


# -- events ------------------------------------------------------------------


def events(
    conn: sqlite3.Connection,
    limit: int,
    since: float | None,
    service: str | None,
    kinds: Sequence[str] | None,
) -> list[EventRecord]:
    """The newest ``limit`` audit events (newest first) matching every filter given."""
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append("e.at >= ?")
        params.append(since)
    if service is not None:
        where.append(_service_key_filter("e.service"))
        params.append(service)
    if kinds is not None:
        if not kinds:
            return []
        where.append(f"e.kind IN ({', '.join('?' * len(kinds))})")
        params.extend(kinds)
    sql = (
        "SELECT e.id, e.at, e.kind, s.name, e.replica, e.action, e.old, e.new, e.source, "
        "e.outcome, e.message, e.details FROM events e LEFT JOIN services s ON s.key = e.service"
        + _where(where)
        + " ORDER BY e.id DESC LIMIT ?"
    )
    rows = conn.execute(sql, (*params, bounded(limit))).fetchall()
    return [
        EventRecord(
            id=row[0],
            at=row[1],
            kind=row[2],
            service=row[3],
            replica=row[4],
            action=row[5],
            old=row[6],
            new=row[7],
            source=row[8],
            outcome=row[9],
            message=row[10],
            details=_json_object(row[11]),
        )
        for row in rows
    ]


def _where(clauses: Sequence[str]) -> str:
    return " WHERE " + " AND ".join(clauses) if clauses else ""


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


# -- health ------------------------------------------------------------------


def health_history(
    conn: sqlite3.Connection, service: str, limit: int, replica: int | None
) -> list[HealthCheckRecord]:
    """The newest ``limit`` health checks of ``service`` (one replica or all), newest first."""
    where = [_service_key_filter("h.service")]
    params: list[Any] = [service]
    if replica is not None:
        where.append("h.replica = ?")
        params.append(replica)
    sql = (
        "SELECT h.at, s.name, h.replica, h.ok, h.status, h.response_time, h.message "
        "FROM health_checks h JOIN services s ON s.key = h.service"
        + _where(where)
        + " ORDER BY h.id DESC LIMIT ?"
    )
    return [
        HealthCheckRecord(at, name, rep, bool(ok), status, response_time, message)
        for at, name, rep, ok, status, response_time, message in conn.execute(
            sql, (*params, bounded(limit))
        ).fetchall()
    ]


# -- metrics -----------------------------------------------------------------


def timeseries(
    conn: sqlite3.Connection,
    metric: Metric,
    period_seconds: float,
    interval_seconds: float,
    service: str | None,
    now: float,
) -> list[TimeseriesPoint]:
    """Every bucket of the last ``period_seconds``, oldest first, aligned to the interval.

    Buckets start at multiples of ``interval_seconds`` since the epoch (stable
    across refreshes); the last one holds ``now`` and is partial. Whole-minute
    intervals read ``metrics_minute`` (the whole retention); finer ones read
    the raw samples, so they only reach back ``raw_metrics_seconds``. See
    :attr:`Metric.is_counter` for how a bucket's value is made.
    """
    if not (interval_seconds > 0 and period_seconds > 0):
        raise InvalidRequest("period and interval must be positive", metric=metric.value)
    count = math.ceil(period_seconds / interval_seconds)
    if count > MAX_BUCKETS:
        raise InvalidRequest(
            f"period / interval gives {count} buckets, more than {MAX_BUCKETS}; "
            "use a longer interval",
            period=period_seconds,
            interval=interval_seconds,
        )
    last = math.floor(now / interval_seconds) * interval_seconds
    start = last - (count - 1) * interval_seconds
    end = last + interval_seconds
    per_instance = "SUM" if metric.is_counter else "AVG"
    by_minute = interval_seconds >= 60 and interval_seconds % 60 == 0
    if by_minute:
        value = "SUM(total)" if metric.is_counter else "SUM(total) / SUM(samples)"
        table, at = "metrics_minute", "minute"
    else:
        value, table, at = f"{per_instance}(value)", "metrics", "at"
    where = ["metric = ?", f"{at} >= ?", f"{at} < ?"]
    params: list[Any] = [metric.value, start, end]
    if service is not None:
        where.append(_service_key_filter("service"))
        params.append(service)
    # Per instance first (mean of a gauge, sum of a counter), then summed over instances.
    sql = (
        "SELECT bucket, SUM(v) FROM ("
        f"SELECT CAST(({at} - ?) / ? AS INTEGER) AS bucket, {value} AS v FROM {table}"
        + _where(where)
        + " GROUP BY bucket, service, replica) GROUP BY bucket"
    )
    found = dict(conn.execute(sql, (start, interval_seconds, *params)).fetchall())
    return [
        TimeseriesPoint(start + index * interval_seconds, found.get(index))
        for index in range(count)
    ]


# -- logs --------------------------------------------------------------------


def search_terms(query: str) -> list[str]:
    """The terms of a user's search: words and ``"quoted phrases"``, deduplicated, bounded."""
    text = query[:MAX_QUERY_CHARS].encode("utf-8", "replace").decode("utf-8").replace("\0", " ")
    terms: list[str] = []
    for match in _TERM.finditer(text):
        term = (match.group(1) if match.group(1) is not None else match.group(2)).strip()
        if term and term not in terms:
            terms.append(term)
            if len(terms) == MAX_TERMS:
                break
    return terms


def fts_phrase(term: str) -> str:
    """``term`` as an FTS5 string: double quotes doubled, the whole quoted."""
    return '"' + term.replace('"', '""') + '"'


def like_pattern(term: str) -> str:
    """``%term%`` with LIKE's wildcards escaped (``ESCAPE '\\'``)."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def highlight_spans(text: str, terms: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Where the terms occur in ``text``, case-insensitively, as merged (start, end) spans."""
    spans = sorted(
        (found.start(), found.end())
        for term in terms
        for found in re.finditer(re.escape(term), text, re.IGNORECASE)
    )
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


_LOG_COLUMNS = "SELECT l.id, l.at, s.name, l.replica, l.stream, l.seq, l.text "


def _log(row: Sequence[Any]) -> LogRecord:
    return LogRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


def search_logs(
    conn: sqlite3.Connection, query: str, service: str | None, limit: int
) -> list[LogRecord]:
    """The newest ``limit`` lines containing every term of ``query``, newest first.

    Indexed terms search the log index's generations newest first (their id
    ranges do not overlap), each in rowid order, until ``limit`` lines are found.
    """
    terms = search_terms(query)
    if not terms or limit <= 0:
        return []
    indexed = [term for term in terms if len(term) >= MIN_INDEXED_TERM_CHARS]
    where: list[str] = []
    params: list[Any] = []
    if service is not None:
        where.append(_service_key_filter("l.service"))
        params.append(service)
    for term in terms:
        if len(term) < MIN_INDEXED_TERM_CHARS:
            where.append("l.text LIKE ? ESCAPE '\\'")
            params.append(like_pattern(term))
    wanted = bounded(limit)
    rows: list[Sequence[Any]] = []
    if indexed:
        match = " ".join(fts_phrase(term) for term in indexed)
        for gen in log_index.generations(conn):
            source = (
                f"FROM {gen.table} f JOIN logs l ON l.id = f.rowid "
                "JOIN services s ON s.key = l.service"
            )
            clauses = [f"{gen.table} MATCH ?", *where]
            sql = _LOG_COLUMNS + source + _where(clauses) + " ORDER BY f.rowid DESC LIMIT ?"
            rows.extend(conn.execute(sql, (match, *params, wanted - len(rows))))
            if len(rows) >= wanted:
                break
    else:
        source = "FROM logs l JOIN services s ON s.key = l.service"
        clauses = ["l.id > (SELECT coalesce(max(id), 0) FROM logs) - ?", *where]
        sql = _LOG_COLUMNS + source + _where(clauses) + " ORDER BY l.id DESC LIMIT ?"
        rows.extend(conn.execute(sql, (SHORT_QUERY_SCAN_ROWS, *params, wanted)))
    return [attrs.evolve(_log(row), highlights=highlight_spans(row[6], terms)) for row in rows]


def logs(
    conn: sqlite3.Connection,
    service: str,
    limit: int,
    since: float | None,
    stream: str | None,
    replica: int | None,
) -> list[LogRecord]:
    """The last ``limit`` stored lines of ``service`` matching the filters, oldest first."""
    where = [_service_key_filter("l.service")]
    params: list[Any] = [service]
    for clause, value in (
        ("l.at >= ?", since),
        ("l.stream = ?", stream),
        ("l.replica = ?", replica),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = (
        _LOG_COLUMNS
        + "FROM logs l JOIN services s ON s.key = l.service"
        + _where(where)
        + " ORDER BY l.id DESC LIMIT ?"
    )
    found = [_log(row) for row in conn.execute(sql, (*params, bounded(limit)))]
    found.reverse()
    return found


# -- connections -------------------------------------------------------------

_CONNECTION_COLUMNS = (
    "SELECT c.id, c.client_ip, s.name, c.instance, c.session_ids, c.opened_at, c.closed_at, "
    "c.messages_in, c.messages_out, c.bytes_in, c.bytes_out, c.close_code, c.close_reason "
    "FROM connections c LEFT JOIN services s ON s.key = c.service"
)


def _connection(row: Sequence[Any]) -> ConnectionRecord:
    sessions = json.loads(row[4])
    return ConnectionRecord(
        row[0], row[1], row[2], row[3], tuple(str(item) for item in sessions), *row[5:]
    )


def connections(
    conn: sqlite3.Connection, limit: int, offset: int, service: str | None
) -> tuple[list[ConnectionRecord], int]:
    """A page of closed connections, newest first, and how many match in all."""
    where: list[str] = []
    params: list[Any] = []
    if service is not None:
        where.append(_service_key_filter("c.service"))
        params.append(service)
    rows = conn.execute(
        _CONNECTION_COLUMNS + _where(where) + " ORDER BY c.key DESC LIMIT ? OFFSET ?",
        (*params, bounded(limit), max(0, offset)),
    ).fetchall()
    (total,) = conn.execute("SELECT count(*) FROM connections c" + _where(where), params).fetchone()
    return [_connection(row) for row in rows], int(total)


def connection(conn: sqlite3.Connection, connection_id: str) -> ConnectionRecord | None:
    row = conn.execute(
        _CONNECTION_COLUMNS + " WHERE c.id = ? ORDER BY c.key DESC LIMIT 1", (connection_id,)
    ).fetchone()
    return None if row is None else _connection(row)
