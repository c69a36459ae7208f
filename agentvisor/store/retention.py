"""Keeping the state store bounded: age, row caps, file size.

Everything here runs on the writer's connection, called by the writer task
between batches, so there is still one writer. Work is done in *steps*: each
step deletes at most ``chunk_rows`` rows per table and says whether more is
left; the writer interleaves steps with batches until none is, so a large
clean-up (``retention_days`` lowered, a cap lowered) never stalls incoming
writes for long.

How the size stays bounded:

1. Age: rows older than ``retention_days`` go (raw metric samples already
   after ``raw_metrics_seconds``; their minute rollups stay the full
   retention).
2. Row caps: each table keeps at most ``max_rows[table]`` rows, the newest.
   The log cap is also applied after every batch that wrote lines (inside
   its transaction), so ``logs`` never holds more than the cap.
3. File size: when the pages in use exceed ``max_db_bytes``, the oldest
   lines go, a generation of the log index at a time (log_index.py), then
   the other history, ten percent of a table per step.
4. The log index is never cleaned line by line: FTS5 delete markers would
   grow it to several times its live size. Its generations are emptied
   whole once their lines are gone (log_index.py).
5. Every step is bounded by ``chunk_rows`` (the writer derives it from the
   size cap), so no transaction outgrows the WAL's share of the cap.
   Deleted pages return to a free list that new rows reuse; with many free
   pages a bounded ``PRAGMA incremental_vacuum`` gives them back to the file
   system, and ``wal_checkpoint(TRUNCATE)`` after each full run keeps the WAL
   file small (``journal_size_limit`` caps it too).

Rows are appended in time order, so a step looks at the ``chunk_rows``
oldest rows by key (a range of the primary key, no index on time needed) and
deletes those that are too old.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

import attrs

from agentvisor.store import log_index
from agentvisor.store.inserts import transaction

#: Default row caps; ``StateStore(max_log_rows=…)`` sets the one for logs.
DEFAULT_MAX_ROWS: Mapping[str, int] = {
    "logs": 1_000_000,
    "events": 1_000_000,
    "health_checks": 2_000_000,
    "metrics": 5_000_000,
    "metrics_minute": 20_000_000,
    "connections": 1_000_000,
}
DEFAULT_MAX_DB_BYTES = 1024 * 1024 * 1024
DEFAULT_RAW_METRICS_SECONDS = 6 * 3600.0
CHUNK_ROWS = 20_000
#: Free pages given back per step at most (4 KiB pages: 16 MiB); the writer passes fewer
#: for a small cap, since moving a page writes it to the WAL.
VACUUM_PAGES = 4096
#: Order in which rows are sacrificed when the file is over ``max_db_bytes``.
SIZE_ORDER = ("logs", "metrics", "health_checks", "connections", "metrics_minute", "events")


@attrs.frozen
class Policy:
    retention_days: float
    max_rows: Mapping[str, int] = DEFAULT_MAX_ROWS
    max_db_bytes: int = DEFAULT_MAX_DB_BYTES
    raw_metrics_seconds: float = DEFAULT_RAW_METRICS_SECONDS
    chunk_rows: int = CHUNK_ROWS


@attrs.frozen
class _Table:
    """A history table: its integer key and the column that says when a row happened."""

    name: str
    key: str
    at: str


# Identifiers below come from this constant list only; every value is a parameter.
_TABLES = {
    table.name: table
    for table in (
        _Table("logs", "id", "at"),
        _Table("events", "id", "at"),
        _Table("health_checks", "id", "at"),
        _Table("metrics", "id", "at"),
        _Table("connections", "key", "closed_at"),
    )
}


def _delete_before(conn: sqlite3.Connection, table: _Table, cutoff: float, chunk: int) -> int:
    """Delete the rows older than ``cutoff`` among the ``chunk`` oldest (a key range scan)."""
    k, name = table.key, table.name
    oldest = conn.execute(f"SELECT {table.at} FROM {name} ORDER BY {k} LIMIT 1").fetchone()
    if oldest is None or oldest[0] >= cutoff:  # the usual case: one index lookup, no scan
        return 0
    sql = f"DELETE FROM {name} WHERE {k} < (SELECT min({k}) FROM {name}) + ? AND {table.at} < ?"
    return conn.execute(sql, (chunk, cutoff)).rowcount


def _delete_oldest(conn: sqlite3.Connection, table: _Table, keep: int | None, chunk: int) -> int:
    """Delete up to ``chunk`` of the oldest rows, leaving at least ``keep`` newest (cap)."""
    k, name = table.key, table.name
    if keep is None:
        sql = f"DELETE FROM {name} WHERE {k} < (SELECT min({k}) FROM {name}) + ?"
        return conn.execute(sql, (chunk,)).rowcount
    sql = (
        f"DELETE FROM {name} WHERE {k} <= (SELECT max({k}) FROM {name}) - ? "
        f"AND {k} < (SELECT min({k}) FROM {name}) + ?"
    )
    return conn.execute(sql, (keep, chunk)).rowcount


def _key_span(conn: sqlite3.Connection, table: _Table) -> int:
    """max(key) - min(key) + 1: the row count when no row in between was deleted, else more."""
    k = table.key
    # Two subqueries, each answered from the key's b-tree (min and max together scan).
    low, high = conn.execute(
        f"SELECT (SELECT min({k}) FROM {table.name}), (SELECT max({k}) FROM {table.name})"
    ).fetchone()
    return 0 if low is None else int(high) - int(low) + 1


def after_batch(conn: sqlite3.Connection, policy: Policy, chunk: int, *, logs: bool) -> bool:
    """Inside a batch's transaction: log cap, log index generations; True to step now.

    That is when more lines are over the cap than one chunk, or the file is
    over ``max_db_bytes`` (three pragmas: cheap enough for every batch).
    When the file is over its size, or the log index has no slot for a new
    generation, up to ``chunk`` of the oldest generation's lines go.
    """
    if not logs:
        return used_bytes(conn) > policy.max_db_bytes
    max_lines = policy.max_rows["logs"]
    deleted = _delete_oldest(conn, _TABLES["logs"], max_lines, chunk)
    used = used_bytes(conn)
    per_generation = log_index.generation_lines(conn, used, policy.max_db_bytes, max_lines)
    if not log_index.rotate_if_full(conn, per_generation) or used > policy.max_db_bytes:
        deleted += log_index.delete_oldest_generation(conn, chunk)
    elif deleted:
        log_index.drop_dead(conn)
    return deleted >= chunk or used_bytes(conn) > policy.max_db_bytes


def _delete_minutes_before(conn: sqlite3.Connection, cutoff: float, chunk: int) -> int:
    return conn.execute(
        "DELETE FROM metrics_minute WHERE (metric, minute, service, replica) IN ("
        "SELECT metric, minute, service, replica FROM metrics_minute WHERE minute < ? "
        "ORDER BY minute LIMIT ?)",
        (int(cutoff), chunk),
    ).rowcount


def _cap_minutes(conn: sqlite3.Connection, max_rows: int, chunk: int) -> int:
    (count,) = conn.execute("SELECT count(*) FROM metrics_minute").fetchone()
    excess = min(int(count) - max_rows, chunk)
    if excess <= 0:
        return 0
    return conn.execute(
        "DELETE FROM metrics_minute WHERE (metric, minute, service, replica) IN ("
        "SELECT metric, minute, service, replica FROM metrics_minute ORDER BY minute LIMIT ?)",
        (excess,),
    ).rowcount


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the pages in use (the file's pages minus the free list)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return (int(pages) - int(free)) * int(size)


@attrs.frozen
class StepResult:
    deleted: int
    more: bool  # a chunk was full or the file is still over its size: step again soon
    db_bytes: int


def step(conn: sqlite3.Connection, policy: Policy, now: float) -> StepResult:
    """One bounded round of age, cap and size deletions, in one transaction."""
    chunk = policy.chunk_rows
    cutoff = now - policy.retention_days * 86400.0
    deleted = 0
    more = False
    with transaction(conn):
        for table in _TABLES.values():
            table_cutoff = max(cutoff, now - policy.raw_metrics_seconds)
            if table.name != "metrics":
                table_cutoff = cutoff
            count = _delete_before(conn, table, table_cutoff, chunk)
            cap = policy.max_rows.get(table.name)
            if cap is not None and count < chunk:
                count += _delete_oldest(conn, table, cap, chunk - count)
            if table.name == "logs" and count:
                log_index.drop_dead(conn)
            deleted += count
            more = more or count >= chunk
        count = _delete_minutes_before(conn, cutoff, chunk)
        cap = policy.max_rows.get("metrics_minute")
        if cap is not None and count < chunk:
            count += _cap_minutes(conn, cap, chunk - count)
        deleted += count
        more = more or count >= chunk
        size = used_bytes(conn)
        if size > policy.max_db_bytes:
            count = _shrink(conn, chunk)
            deleted += count
            more = more or count > 0
            size = used_bytes(conn)
    return StepResult(deleted, more, size)


def _shrink(conn: sqlite3.Connection, chunk: int) -> int:
    """Free some space: the oldest lines first, a generation of the log index at a time
    (up to ``chunk`` lines per step), then a tenth (at least 100 rows, at most ``chunk``)
    of the first non-empty table of SIZE_ORDER. The rows deleted; 0 when none is left.
    """
    for name in SIZE_ORDER:
        if name == "logs":
            deleted = log_index.delete_oldest_generation(conn, chunk)
        elif name == "metrics_minute":
            (count,) = conn.execute("SELECT count(*) FROM metrics_minute").fetchone()
            deleted = _cap_minutes(conn, int(count) - _tenth(int(count), chunk), int(count))
        else:
            table = _TABLES[name]
            deleted = _delete_oldest(conn, table, None, _tenth(_key_span(conn, table), chunk))
        if deleted:
            return deleted
    return 0


def _tenth(rows: int, chunk: int) -> int:
    return min(chunk, max(100, rows // 10))


def compact(conn: sqlite3.Connection, *, checkpoint: bool, max_pages: int = VACUUM_PAGES) -> None:
    """Give free pages back to the file system (bounded) and, if asked, truncate the WAL.

    Outside any transaction: ``incremental_vacuum`` and checkpoints cannot
    run inside one. Vacuums only when a quarter of the file is free, since a
    busy store reuses free pages soon anyway.
    """
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    if free and free * 4 >= pages:
        # executescript steps the pragma to its end; execute() would free one page.
        conn.executescript(f"PRAGMA incremental_vacuum({min(free, max_pages)});")
    if checkpoint:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
