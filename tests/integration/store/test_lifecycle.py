"""Start, stop, failure: what is queued survives cancellation; a failed batch is not fatal."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from agentvisor.events import ConnectionClosed, ConnectionSwitched, EventBus
from agentvisor.store.reader import StoreReader
from agentvisor.store.records import ConnectionRecord
from agentvisor.store.schema import StoreUnavailable
from agentvisor.store.writer import StateStore
from tests.integration.store.harness import DEADLINE, NOW, count, lines, raw, running_store, settle


async def test_cancellation_writes_everything_still_queued(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(str(path), retention_days=7)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            for index in range(500):
                store.record_event("operator.action", message=str(index))
            store.record_log_lines(lines([f"line {index}" for index in range(3000)]))
            nursery.cancel_scope.cancel()  # before the writer had a turn
    assert store.statistics().written == 3500
    reader = StoreReader(str(path))
    assert len(await reader.events(limit=1000)) == 500
    assert [line.text for line in await reader.logs("web", limit=1)] == ["line 2999"]


async def test_a_stopped_store_drops_and_counts_and_refuses_to_flush(tmp_path: Path) -> None:
    async with running_store(tmp_path / "state.db") as store:
        pass
    assert not store.statistics().running
    assert not store.record_event("operator.action")
    assert not store.record_log_lines(lines(["late"]))
    assert store.statistics().dropped == 2
    with pytest.raises(StoreUnavailable):
        await store.flush()
    with pytest.raises(StoreUnavailable):
        await store.service_id("web")
    assert await store.events() == []  # reading the file still works


async def test_a_failed_batch_is_counted_and_the_writer_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with running_store(path) as store:
        with raw(path) as conn:  # sabotage one table behind the store's back
            conn.execute("ALTER TABLE health_checks RENAME TO health_checks_away")
        store.record_health("web", 0, ok=True, status="healthy", response_time=0, message="")
        store.record_event("operator.action", action="lost with the batch")
        await store.flush()
        failed = store.statistics().failed
        with raw(path) as conn:
            conn.execute("ALTER TABLE health_checks_away RENAME TO health_checks")
        store.record_event("operator.action", action="written")
        await store.flush()
        found = await store.events()
    assert failed == 2
    assert [event.action for event in found] == ["written"]
    assert count(path, "health_checks") == 0


async def test_closed_connections_and_failovers_from_the_router(tmp_path: Path) -> None:
    bus = EventBus()
    async with running_store(tmp_path / "state.db") as store, trio.open_nursery() as nursery:
        await nursery.start(store.consume, bus)
        bus.publish(
            ConnectionClosed(
                "c1", "192.0.2.1", "web", "web:1", 1000, "bye", 30.0, 4, 5, 60, 70, NOW
            )
        )
        bus.publish(ConnectionSwitched("c1", "web:0", "web:1", "upstream_lost", True, 1, NOW))
        await settle(store)
        page, total = await store.connections()
        (switch,) = await store.events()
        nursery.cancel_scope.cancel()
    (closed,) = page
    assert total == 1
    assert (closed.id, closed.service, closed.instance) == ("c1", "web", "web:1")
    assert (closed.opened_at, closed.closed_at, closed.close_code) == (NOW - 30, NOW, 1000)
    assert (closed.messages_in, closed.messages_out, closed.bytes_in, closed.bytes_out) == (
        4,
        5,
        60,
        70,
    )
    assert (switch.kind, switch.service, switch.old, switch.new) == (
        "connection.switched",
        "web",
        "web:0",
        "web:1",
    )
    assert switch.outcome == "preserved"


async def test_reads_during_writes_see_whole_batches_and_agree_with_themselves(
    tmp_path: Path,
) -> None:
    group, rounds = 25, 40  # a group is recorded without a checkpoint: one transaction

    def closed(name: str) -> ConnectionRecord:
        return ConnectionRecord(name, "192.0.2.1", "web", "web:0", (), NOW, NOW)

    async with running_store(tmp_path / "state.db") as store:

        async def write() -> None:
            for round_ in range(rounds):
                for index in range(group):
                    store.record_connection(closed(f"{round_}.{index}"))
                await trio.sleep(0)

        async def read(seen: list[int]) -> None:
            while not seen or seen[-1] < group * rounds:
                page, total = await store.connections(limit=10_000)
                assert len(page) == total  # page and count come from one snapshot
                assert total % group == 0  # never half a batch
                seen.append(total)

        views: list[list[int]] = [[], [], []]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            for seen in views:
                nursery.start_soon(read, seen)
    for seen in views:
        assert seen == sorted(seen)  # each reader's snapshots only move forward
