"""``StoreReader``: queries of a state store file, on read-only connections off the trio thread.

The ``StateStore`` is one (it adds the writer); a reader alone can also open a
``state.db`` that no daemon is writing, e.g. to inspect it after the fact.
Each query runs on a worker thread with a connection from a small pool (at
most ``READERS`` at once); in WAL mode readers see a consistent snapshot and
neither wait for nor block the writer.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import trio

from agentvisor.store import queries
from agentvisor.store.records import (
    ConnectionRecord,
    EventRecord,
    HealthCheckRecord,
    LogRecord,
    Metric,
    ServiceRecord,
    TimeseriesPoint,
)
from agentvisor.store.schema import StoreUnavailable, open_reader

T = TypeVar("T")

READERS = 4


class StoreReader:
    """Async queries of the state store at ``path``; ``clock`` is the "now" of charts."""

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._read_limiter = trio.CapacityLimiter(READERS)
        self._readers: list[sqlite3.Connection] = []
        self._pooling = True

    async def close_readers(self) -> None:
        """Close the pooled connections; later reads use a connection each and close it."""
        self._pooling = False
        readers, self._readers = self._readers, []
        for reader in readers:
            await trio.to_thread.run_sync(reader.close)

    async def _read(self, read: Callable[..., T], *args: Any) -> T:
        async with self._read_limiter:
            conn = self._readers.pop() if self._readers else None
            try:
                if conn is None:
                    conn = await trio.to_thread.run_sync(open_reader, self.path)
                return await trio.to_thread.run_sync(
                    functools.partial(queries.snapshot, conn, read, *args)
                )
            except sqlite3.Error as error:
                raise StoreUnavailable(f"reading the state store failed: {error}") from error
            finally:
                if conn is not None:
                    if self._pooling:
                        self._readers.append(conn)
                    else:
                        conn.close()

    async def services(self) -> list[ServiceRecord]:
        return await self._read(queries.services)

    async def service_ids(self) -> dict[str, str]:
        """Name → stable UUID of every service the store has seen."""
        return await self._read(queries.service_ids)

    async def events(
        self,
        limit: int = 100,
        *,
        since: float | None = None,
        service: str | None = None,
        kinds: Sequence[str] | None = None,
    ) -> list[EventRecord]:
        return await self._read(queries.events, limit, since, service, kinds)

    async def health_history(
        self, service: str, limit: int = 50, *, replica: int | None = None
    ) -> list[HealthCheckRecord]:
        return await self._read(queries.health_history, service, limit, replica)

    async def timeseries(
        self,
        metric: Metric | str,
        period_seconds: float,
        interval_seconds: float,
        *,
        service: str | None = None,
    ) -> list[TimeseriesPoint]:
        now = self.clock()
        return await self._read(
            queries.timeseries, Metric(metric), period_seconds, interval_seconds, service, now
        )

    async def search_logs(
        self, query: str, *, service: str | None = None, limit: int = 50
    ) -> list[LogRecord]:
        return await self._read(queries.search_logs, query, service, limit)

    async def logs(
        self,
        service: str,
        limit: int = 100,
        *,
        since: float | None = None,
        stream: str | None = None,
        replica: int | None = None,
    ) -> list[LogRecord]:
        return await self._read(queries.logs, service, limit, since, stream, replica)

    async def connections(
        self, limit: int = 20, offset: int = 0, *, service: str | None = None
    ) -> tuple[list[ConnectionRecord], int]:
        return await self._read(queries.connections, limit, offset, service)

    async def connection(self, connection_id: str) -> ConnectionRecord | None:
        return await self._read(queries.connection, connection_id)
