"""``StateStore``: the single writer task over the SQLite state store (reads: ``StoreReader``).

Producers never wait for the disk. ``record_*`` put a request in the
:class:`~agentvisor.store.backlog.Backlog` and return at once; it is bounded
in bytes (``max_queued_bytes``): under a log flood the oldest queued lines are
evicted for the newest, anything else is refused when its share is full, and
every row lost is counted (``statistics().dropped``). So a worker flooding
its output costs a bounded amount of memory and never stalls the supervisor,
and audit events, health checks and samples still get in meanwhile.

The writer task takes everything queued (up to ``MAX_BATCH_ROWS`` log lines)
as one batch and writes it in one transaction on its own connection, through
``trio.to_thread.run_sync`` with a ``CapacityLimiter(1)``: one thread at a
time ever touches that connection. Between batches it runs retention steps
(at start, every ``RETENTION_INTERVAL``, and at once when a batch leaves the
log cap or the file size exceeded), so there is one writer. Cancelled, it
writes what is still queued under a shielded scope bounded by
``FLUSH_TIMEOUT``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import trio

from agentvisor.events import EventBus
from agentvisor.store import config_journal, retention
from agentvisor.store.backlog import Backlog, Closed, Control, Taken
from agentvisor.store.event_rows import rows_for_event
from agentvisor.store.inserts import (
    EventRow,
    HealthRow,
    LogBatch,
    MetricRow,
    ServiceKeys,
    WriteItem,
    write_batch,
)
from agentvisor.store.reader import StoreReader
from agentvisor.store.records import (
    ConnectionRecord,
    Metric,
    StoreStatistics,
)
from agentvisor.store.sampling import LogSampler
from agentvisor.store.schema import StoreUnavailable, open_writer
from agentvisor.supervise.logs import LogChunk, LogLine

log = logging.getLogger("agentvisor.store")
T = TypeVar("T")

#: Requests other than log lines that may wait (log lines are bounded by bytes alone).
MAX_QUEUED_ITEMS = 4096
DEFAULT_MAX_QUEUED_BYTES = 16 * 1024 * 1024
MAX_BATCH_ROWS = 20_000
RETENTION_INTERVAL = 600.0
FLUSH_TIMEOUT = 5.0
CLOSE_TIMEOUT = 5.0
BUS_CAPACITY = 4096
#: A failed write is logged at most this often (a full disk fails every batch).
ERROR_LOG_INTERVAL = 60.0
#: ``[supervisor] store_max_mb``'s default: the size state.db (and its WAL) stays under.
DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024
#: Share of the file cap the pages in use may fill; the rest is room for the WAL, for the
#: pages a full-text merge writes before it frees the old ones, and for the free list.
USED_SHARE = 0.5
#: Share of the file cap the WAL may take (at least ``MIN_WAL_BYTES``).
WAL_SHARE = 0.1
MIN_WAL_BYTES = 512 * 1024
#: WAL bytes a transaction may write per row it inserts or deletes, at most: a batch of
#: worker lines writes ~300 bytes a line (row, index, full-text postings), so a quarter of
#: the WAL's share is left for the full-text index's merges and the pages around them.
WAL_BYTES_PER_ROW = 1200
#: ``[supervisor] store_log_lines_per_second``'s default, per service; bursts of ten seconds' worth.
DEFAULT_LOG_LINES_PER_SECOND = 1000.0
LOG_BURST_SECONDS = 10.0


class StateStore(StoreReader):
    """The state store of one agentvisor: ``run`` it in the root nursery, then record and query.

    ``path`` is ``{state_dir}/state.db``. ``retention_days``,
    ``max_file_bytes`` (``store_max_mb``) and ``log_lines_per_second``
    (``store_log_lines_per_second``) come from ``[supervisor]``; the other
    bounds have defaults that suit one host (retention.py says how they keep
    the file bounded). ``max_file_bytes`` bounds state.db plus its WAL: the
    pages in use are kept under ``USED_SHARE`` of it (``max_db_bytes``, when
    not given) and the WAL under ``WAL_SHARE``. ``clock`` gives wall time
    (seconds since the epoch): the default time of records, the "now" of
    retention and charts. Tests pass their own.
    """

    def __init__(
        self,
        path: str,
        *,
        retention_days: float,
        max_log_rows: int = retention.DEFAULT_MAX_ROWS["logs"],
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_db_bytes: int | None = None,
        log_lines_per_second: float = DEFAULT_LOG_LINES_PER_SECOND,
        max_rows: Mapping[str, int] | None = None,
        raw_metrics_seconds: float = retention.DEFAULT_RAW_METRICS_SECONDS,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        max_queued_items: int = MAX_QUEUED_ITEMS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(path, clock=clock)
        db_bytes = int(max_file_bytes * USED_SHARE) if max_db_bytes is None else max_db_bytes
        self.wal_max_bytes = max(MIN_WAL_BYTES, int(max_file_bytes * WAL_SHARE))
        # Every transaction's pages pass through the WAL, so a batch or a retention step
        # must stay well under its share: about 300 bytes a line, written or deleted.
        transaction_rows = max(100, self.wal_max_bytes // WAL_BYTES_PER_ROW)
        self.policy = retention.Policy(
            retention_days=retention_days,
            max_rows={**retention.DEFAULT_MAX_ROWS, **(max_rows or {}), "logs": max_log_rows},
            max_db_bytes=db_bytes,
            raw_metrics_seconds=raw_metrics_seconds,
            chunk_rows=min(retention.CHUNK_ROWS, transaction_rows),
        )
        self._batch_rows = min(MAX_BATCH_ROWS, transaction_rows)
        self._vacuum_pages = max(16, self.wal_max_bytes // (4 * 4096))
        self._sampler = LogSampler(
            log_lines_per_second, max(1.0, log_lines_per_second * LOG_BURST_SECONDS)
        )
        self._backlog = Backlog(max_queued_bytes, max_queued_items)
        self._write_limiter = trio.CapacityLimiter(1)
        self._conn: sqlite3.Connection | None = None
        self._services = ServiceKeys()
        self._subscription_dropped: Callable[[], int] = lambda: 0
        self._last_error_logged = -ERROR_LOG_INTERVAL
        self._next_retention = 0.0
        self._stats = dict.fromkeys(
            (
                "written",
                "log_lines",
                "failed",
                "batches",
                "retention_runs",
                "db_bytes",
                "file_bytes",
            ),
            0,
        )

    # -- the writer task -------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the database, report ready, write until cancelled, then flush and close."""
        self._conn = await self._in_writer(open_writer, self.path, wal_max_bytes=self.wal_max_bytes)
        try:
            self._next_retention = trio.current_time()  # a first step right away
            task_status.started()
            await self._write_forever()
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(FLUSH_TIMEOUT):
                    while len(self._backlog):
                        await self._handle(self._backlog.take(self._batch_rows))
                for control in self._backlog.close():
                    control.done.set()  # nothing more will be written: do not leave them waiting
                with trio.move_on_after(CLOSE_TIMEOUT):
                    await self._close()

    async def _write_forever(self) -> None:
        while True:
            delay = self._next_retention - trio.current_time()
            if delay > 0:
                with trio.move_on_after(delay):
                    await self._backlog.wait()
            else:  # retention is due: write what is queued without waiting, then step
                await trio.lowlevel.checkpoint()
            await self._handle(self._backlog.take(self._batch_rows))
            if trio.current_time() >= self._next_retention:
                more = await self._retention_step()
                delay = 0.0 if more else RETENTION_INTERVAL
                self._next_retention = trio.current_time() + delay

    async def _handle(self, taken: Taken) -> None:
        if taken.items:
            await self._write(taken.items, taken.rows)
        for control in taken.controls:
            if control.retention:
                while await self._retention_step():
                    pass
            control.done.set()

    async def _write(self, items: Sequence[WriteItem], rows: int) -> None:
        conn = self._require_conn()
        has_logs = any(isinstance(item, LogBatch) for item in items)
        chunk = max(self.policy.chunk_rows, rows)
        step_now: list[bool] = []

        def after(conn: sqlite3.Connection) -> None:
            step_now.append(retention.after_batch(conn, self.policy, chunk, logs=has_logs))

        try:
            await self._in_writer(write_batch, conn, self._services, items, self.clock(), after)
        except sqlite3.Error as error:
            self._services.forget()
            self._stats["failed"] += rows
            self._log_error("writing %d rows to the state store failed: %s", rows, error)
            return
        self._stats["written"] += rows
        self._stats["log_lines"] += sum(
            len(item.lines) for item in items if isinstance(item, LogBatch)
        )
        self._stats["batches"] += 1
        if any(step_now):  # far over the log cap, or the file over its size
            self._next_retention = trio.current_time()

    async def _retention_step(self) -> bool:
        conn = self._require_conn()
        try:
            result = await self._in_writer(retention.step, conn, self.policy, self.clock())
            await self._in_writer(
                retention.compact, conn, checkpoint=not result.more, max_pages=self._vacuum_pages
            )
        except sqlite3.Error as error:
            self._log_error("state store retention failed: %s", error)
            return False
        self._stats["db_bytes"] = result.db_bytes
        self._stats["file_bytes"] = await trio.to_thread.run_sync(_file_bytes, self.path)
        if not result.more:
            self._stats["retention_runs"] += 1
        return result.more

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        await self.close_readers()
        if conn is not None:
            await self._in_writer(conn.close)

    def _require_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("the state store is not running")
        return self._conn

    async def _in_writer(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await trio.to_thread.run_sync(
            functools.partial(fn, *args, **kwargs), limiter=self._write_limiter
        )

    def _log_error(self, message: str, *args: object) -> None:
        now = trio.current_time()
        if now - self._last_error_logged >= ERROR_LOG_INTERVAL:
            self._last_error_logged = now
            log.error(message, *args)

    # -- producers: never block ------------------------------------------------

    def _offer(self, item: WriteItem) -> bool:
        return self._backlog.put(item)

    def record_log_lines(self, lines: Sequence[LogLine]) -> bool:
        """Queue a batch of worker lines (one ``LogBook.append``); False if none were kept.

        Under a flood only the newest lines within the service's rate go in
        (sampling.py); the others are counted in ``statistics().log_sampled_out``.
        """
        if not lines:
            return False
        if not isinstance(lines, LogChunk):
            lines = tuple(lines)
        kept = self._sampler.admit(lines[0].service, len(lines), trio.current_time())
        if kept < len(lines):
            if not kept:
                return False
            lines = lines.suffix(kept) if isinstance(lines, LogChunk) else lines[-kept:]
        return self._offer(LogBatch(lines))

    def record_event(
        self,
        kind: str,
        *,
        service: str | None = None,
        replica: int | None = None,
        action: str | None = None,
        old: str | None = None,
        new: str | None = None,
        source: str | None = None,
        outcome: str | None = None,
        message: str = "",
        details: Mapping[str, Any] | None = None,
        at: float | None = None,
    ) -> bool:
        """Queue an audit event that did not come through the bus."""
        at = self.clock() if at is None else at
        return self._offer(
            EventRow(
                at,
                kind,
                service,
                replica,
                action,
                old,
                new,
                source,
                outcome,
                message,
                details=dict(details or {}),
            )
        )

    def record_health(
        self,
        service: str,
        replica: int,
        *,
        ok: bool,
        status: str,
        response_time: float | None,
        message: str,
        at: float | None = None,
    ) -> bool:
        at = self.clock() if at is None else at
        return self._offer(HealthRow(at, service, replica, ok, status, response_time, message))

    def record_metric(
        self,
        service: str,
        replica: int,
        metric: Metric | str,
        value: float,
        *,
        at: float | None = None,
    ) -> bool:
        """Queue one sample; ``metric`` must be one of :class:`Metric` (ValueError otherwise)."""
        at = self.clock() if at is None else at
        return self._offer(MetricRow(at, service, replica, Metric(metric), float(value)))

    def record_connection(self, record: ConnectionRecord) -> bool:
        return self._offer(record)

    async def consume(
        self, bus: EventBus, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Record the bus's events (audit, health checks, metric samples) until cancelled."""
        async with bus.subscribe(capacity=BUS_CAPACITY) as subscription:
            self._subscription_dropped = lambda: subscription.dropped
            task_status.started()
            async for event in subscription:
                for item in rows_for_event(event):
                    self._offer(item)

    # -- control ---------------------------------------------------------------

    async def flush(self) -> None:
        """Return once everything queued before this call is written (or dropped on failure)."""
        await self._control(Control(retention=False))

    async def run_retention(self) -> None:
        """Apply retention now, to completion; the writer also does this by itself."""
        await self._control(Control(retention=True))

    async def _control(self, control: Control) -> None:
        try:
            self._backlog.put_control(control)
        except Closed:
            raise StoreUnavailable("the state store is not running") from None
        await control.done.wait()

    async def begin_config_write(
        self,
        path: str,
        old: bytes | None,
        new: bytes,
        *,
        action: str,
        target: str,
        source: str,
        message: str,
    ) -> int:
        """Record, committed before returning, that ``path`` becomes ``new`` with this audit
        entry to follow; the entry's ``intents`` complete it (config_journal.py)."""
        conn = self._require_conn()
        entry = EventRow(
            self.clock(),
            "operator.action",
            target or None,
            None,
            action,
            None,
            None,
            source,
            "ok",
            message,
        )
        return await self._in_writer(config_journal.insert_intent, conn, path, old, new, entry)

    async def recover_config_writes(self) -> int:
        """At start-up: audit entries of config writes a kill cut off (intents.py)."""
        conn = self._require_conn()
        return await self._in_writer(config_journal.recover, conn, self._services, self.clock())

    async def service_id(self, name: str) -> str:
        """The stable UUID of service ``name``, created on first use."""
        conn = self._require_conn()
        return await self._in_writer(self._services.service_id, conn, name, self.clock())

    def statistics(self) -> StoreStatistics:
        stats = self._stats
        return StoreStatistics(
            queued=len(self._backlog),
            queued_bytes=self._backlog.bytes,
            peak_queued_bytes=self._backlog.peak_bytes,
            written=stats["written"],
            log_lines_written=stats["log_lines"],
            log_sampled_out=self._sampler.sampled_out,
            dropped=self._backlog.dropped,
            failed=stats["failed"],
            batches=stats["batches"],
            bus_dropped=self._subscription_dropped(),
            retention_runs=stats["retention_runs"],
            db_bytes=stats["db_bytes"],
            file_bytes=stats["file_bytes"],
            running=self._conn is not None,
        )


def _file_bytes(path: str) -> int:
    """The size of the database file and its WAL: what the operator sees on disk."""
    total = 0
    for name in (path, path + "-wal"):
        with contextlib.suppress(FileNotFoundError):
            total += os.path.getsize(name)
    return total
