"""A real StateStore on a SQLite file in the test's tmp_path, with a clock the test sets."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import attrs
import trio
import trio.testing

from agentvisor.store.writer import StateStore
from agentvisor.supervise.logs import LogLine

DEADLINE = 15
NOW = 1_749_999_600.0  # a fixed "now" (June 2025), a whole hour: buckets and cut-offs are exact
DAY = 86400.0


@attrs.define
class Clock:
    """Wall time for the store; tests move it by hand."""

    now: float = NOW

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def running_store(
    path: Path, *, clock: Clock | None = None, **kwargs: Any
) -> AsyncIterator[StateStore]:
    """A started store; leaving the block cancels it (which flushes) and waits for the close."""
    kwargs.setdefault("retention_days", 7)
    store = StateStore(str(path), clock=clock or Clock(), **kwargs)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            yield store
            nursery.cancel_scope.cancel()


async def settle(store: StateStore) -> None:
    """Let every task (the bus subscriber included) hand its rows over, then wait for the writes."""
    await trio.testing.wait_all_tasks_blocked()
    await store.flush()


def lines(
    texts: list[str], *, service: str = "web", replica: int = 0, at: float = NOW, first_seq: int = 1
) -> list[LogLine]:
    return [
        LogLine(first_seq + index, at, service, replica, "stdout", text)
        for index, text in enumerate(texts)
    ]


@contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection to look at the file behind the store's back."""
    conn = sqlite3.connect(path)
    try:
        yield conn
    finally:
        conn.close()


def count(path: Path, table: str) -> int:
    with raw(path) as conn:
        # ``table`` is a name from the test itself.
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
