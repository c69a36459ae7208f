"""Retention: old rows go, caps hold, the file stays under its size, rollups outlive samples."""

from __future__ import annotations

from pathlib import Path

import attrs

from agentvisor.store.records import ConnectionRecord
from tests.integration.store.harness import DAY, NOW, Clock, count, lines, running_store

TABLES = ("events", "health_checks", "metrics", "metrics_minute", "logs", "connections")


def connection(at: float) -> ConnectionRecord:
    return ConnectionRecord("c", "127.0.0.1", "web", "web:0", (), at - 1, at)


async def test_rows_older_than_retention_days_are_deleted(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    clock = Clock(now=NOW - 10 * DAY)
    async with running_store(path, clock=clock, retention_days=7) as store:
        for at in (NOW - 8 * DAY, NOW - 6 * DAY):  # one too old, one within the 7 days
            store.record_event("operator.action", service="web", action="stop", at=at)
            store.record_health(
                "web", 0, ok=True, status="healthy", response_time=0, message="", at=at
            )
            store.record_metric("web", 0, "cpu", 1, at=at)
            store.record_log_lines(lines(["hello"], at=at))
            store.record_connection(connection(at))
        await store.flush()
        assert all(count(path, table) == 2 for table in TABLES)
        clock.now = NOW
        await store.run_retention()
        kept = [event.at for event in await store.events()]
        logs = await store.logs("web")

    assert kept == [NOW - 6 * DAY]
    assert [line.at for line in logs] == [NOW - 6 * DAY]
    for table in ("events", "health_checks", "metrics_minute", "logs", "connections"):
        assert count(path, table) == 1, table
    assert count(path, "metrics") == 0  # raw samples are kept hours, not days


async def test_minute_rollups_keep_the_chart_after_raw_samples_expire(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    clock = Clock()
    async with running_store(path, clock=clock, raw_metrics_seconds=3600) as store:
        for offset in range(0, 60, 5):
            store.record_metric("web", 0, "memory", 100 + offset, at=NOW - 2 * 3600 + offset)
        await store.flush()
        await store.run_retention()
        hourly = await store.timeseries("memory", 3 * 3600, 3600)
        fine = await store.timeseries("memory", 3 * 3600, 30)

    assert count(path, "metrics") == 0
    assert [point.value for point in hourly] == [127.5, None, None]
    assert all(point.value is None for point in fine)


async def test_the_log_cap_holds_after_every_batch_and_keeps_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with running_store(path, max_log_rows=1000) as store:
        for batch in range(20):
            texts = [f"batch {batch} line {index}" for index in range(300)]
            store.record_log_lines(lines(texts, first_seq=batch * 300 + 1))
            await store.flush()
            assert count(path, "logs") <= 1000
        newest = await store.logs("web", limit=1)
        found = await store.search_logs("batch 19 line 299")
        gone = await store.search_logs('"batch 0 line"')

    assert count(path, "logs") == 1000
    assert [line.seq for line in newest] == [6000]
    assert len(found) == 1
    assert gone == []  # the index forgot the deleted lines too


async def test_lowering_a_cap_trims_in_chunks_until_done(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with running_store(path) as store:
        for index in range(5000):
            store.record_event("operator.action", message=str(index))
            if index % 1000 == 999:  # the queue holds 4096 requests
                await store.flush()
    async with running_store(path, max_rows={"events": 100}) as store:
        store.policy = attrs.evolve(store.policy, chunk_rows=700)  # several steps needed
        await store.run_retention()
        newest = await store.events(limit=1)

    assert count(path, "events") == 100
    assert [event.message for event in newest] == ["4999"]


async def test_the_file_is_trimmed_to_max_db_bytes_logs_first(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    budget = 1024 * 1024
    async with running_store(path, max_db_bytes=budget) as store:
        store.record_event("operator.action", action="start")
        for batch in range(20):
            store.record_log_lines(lines([f"{batch} {index} " + "x" * 200 for index in range(500)]))
            await store.flush()
        await store.run_retention()
        stats = store.statistics()
        events = await store.events()

    assert stats.db_bytes <= budget
    assert 0 < count(path, "logs") < 10_000
    assert len(events) == 1  # logs went first
    assert path.stat().st_size <= 2 * budget  # free pages went back to the file system
