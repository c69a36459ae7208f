"""Opening the store: schema version, pragmas, stable service ids across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentvisor.store.reader import StoreReader
from agentvisor.store.schema import SCHEMA_VERSION, StoreUnavailable
from agentvisor.store.writer import StateStore
from tests.integration.store.harness import NOW, Clock, raw, running_store


async def test_started_means_the_schema_is_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state" / "state.db"  # the directory is created too
    async with running_store(path):
        with raw(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"services", "events", "health_checks", "metrics", "metrics_minute"} <= tables
    assert {"logs", "logs_fts_0", "log_index", "connections"} <= tables


async def test_a_service_keeps_its_id_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with running_store(path) as store:
        first = await store.service_id("web")
        assert await store.service_id("web") == first
    async with running_store(path, clock=Clock(now=2e9)) as store:
        assert await store.service_id("web") == first
        other = await store.service_id("api")
        ids = await store.service_ids()
        services = await store.services()
    assert other != first
    assert ids == {"web": first, "api": other}
    assert [(service.name, service.created_at) for service in services] == [
        ("api", 2e9),
        ("web", NOW),
    ]


async def test_recording_for_a_service_creates_its_id(tmp_path: Path) -> None:
    async with running_store(tmp_path / "state.db") as store:
        store.record_health("web", 0, ok=True, status="healthy", response_time=0.1, message="ok")
        await store.flush()
        ids = await store.service_ids()
        assert ids["web"] == await store.service_id("web")


async def test_a_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with raw(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = StateStore(str(path), retention_days=7)
    with pytest.raises(StoreUnavailable, match="newer than this agentvisor"):
        await store.run()


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"not a database, just text" * 100)
    store = StateStore(str(path), retention_days=7)
    with pytest.raises(StoreUnavailable, match="cannot open the state store"):
        await store.run()


async def test_a_reader_alone_reads_a_store_no_daemon_writes(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with running_store(path) as store:
        store.record_event("operator.action", service="web", action="start")
        uuid = await store.service_id("web")
    reader = StoreReader(str(path))
    assert await reader.service_ids() == {"web": uuid}
    assert [event.action for event in await reader.events()] == ["start"]
    await reader.close_readers()
    with pytest.raises(StoreUnavailable):
        await StoreReader(str(tmp_path / "missing.db")).events()


async def test_writes_need_a_running_store(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path / "state.db"), retention_days=7)
    with pytest.raises(StoreUnavailable):
        await store.service_id("web")
