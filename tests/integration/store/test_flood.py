"""A worker flooding its output: memory and the logs table stay bounded, drops are counted."""

from __future__ import annotations

import gc
from pathlib import Path

import psutil
import trio

from agentvisor.supervise.logs import LogLine
from tests.integration.store.harness import NOW, count, lines, running_store

MiB = 1024 * 1024
FLOOD_LINES = 200_000
CHUNK_LINES = 200  # what one pipe read of a chatty worker delivers


async def test_a_log_flood_is_bounded_in_memory_and_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    process = psutil.Process()
    budget = 4 * MiB
    async with running_store(
        path, max_log_rows=20_000, max_queued_bytes=budget, log_lines_per_second=1e9
    ) as store:
        gc.collect()
        before = process.memory_info().rss
        text = "2025-06-15T10:00:00 INFO worker 7 handled request {} in 3ms: ok " + "x" * 40
        for first in range(0, FLOOD_LINES, CHUNK_LINES):
            batch = [
                LogLine(seq, NOW, "web", 0, "stdout", text.format(seq))
                for seq in range(first + 1, first + CHUNK_LINES + 1)
            ]
            store.record_log_lines(batch)
            await trio.lowlevel.checkpoint()  # as the supervisor does between pipe reads
        grown = process.memory_info().rss - before
        await store.flush()
        stats = store.statistics()
        assert count(path, "logs") <= 20_000
        await store.run_retention()
        newest = await store.logs("web", limit=1)

    assert stats.peak_queued_bytes <= budget
    assert stats.written + stats.dropped == FLOOD_LINES
    assert stats.dropped > 0  # the writer cannot index 200k lines as fast as they come
    assert stats.failed == 0
    assert grown < 100 * MiB  # loose: the queue's 4 MiB, SQLite's cache, allocator slack
    assert count(path, "logs") <= 20_000
    assert newest[0].seq == FLOOD_LINES  # under pressure the oldest queued lines go first
    assert path.stat().st_size < 64 * MiB


async def test_the_newest_lines_win_and_audit_events_still_get_in(tmp_path: Path) -> None:
    async with running_store(
        tmp_path / "state.db", max_queued_bytes=MiB, log_lines_per_second=1e9
    ) as store:
        for batch in range(200):  # no checkpoint: the writer takes nothing meanwhile
            texts = [f"batch {batch} " + "y" * 1000] * 10
            assert store.record_log_lines(lines(texts, first_seq=batch * 10 + 1))
        assert store.record_event("operator.action", service="web", action="restart")
        assert store.record_health(
            "web", 0, ok=False, status="unhealthy", response_time=None, message=""
        )
        dropped = store.statistics().dropped
        await store.flush()
        (event,) = await store.events()
        newest = await store.logs("web", limit=1)
        oldest = await store.logs("web", limit=10_000)

    assert event.action == "restart"
    assert 0 < dropped < 2000
    assert newest[0].seq == 2000  # the oldest lines were evicted, the newest kept
    assert oldest[0].seq == dropped + 1
