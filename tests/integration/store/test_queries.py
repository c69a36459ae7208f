"""Health history, chart buckets, closed connections and log tails, as the API reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentvisor.errors import InvalidRequest
from agentvisor.store.records import ConnectionRecord, Metric
from tests.integration.store.harness import NOW, lines, running_store


async def test_health_history_is_newest_first_limited_and_per_replica(tmp_path: Path) -> None:
    async with running_store(tmp_path / "state.db") as store:
        for index in range(10):
            store.record_health(
                "web",
                index % 2,
                ok=index != 7,
                status="healthy",
                response_time=index / 100,
                message=f"check {index}",
                at=NOW + index,
            )
        store.record_health("api", 0, ok=True, status="healthy", response_time=0, message="x")
        await store.flush()
        latest = await store.health_history("web", limit=3)
        replica_one = await store.health_history("web", limit=100, replica=1)
        unknown = await store.health_history("nope")

    assert [check.message for check in latest] == ["check 9", "check 8", "check 7"]
    assert [check.ok for check in latest] == [True, True, False]
    assert latest[0].response_time == 0.09
    assert [check.at for check in replica_one] == [NOW + 9, NOW + 7, NOW + 5, NOW + 3, NOW + 1]
    assert unknown == []


async def test_gauge_buckets_average_each_instance_then_add_the_instances(tmp_path: Path) -> None:
    async with running_store(tmp_path / "state.db") as store:
        # NOW is a whole hour: the buckets end with the one that starts at NOW.
        base = NOW - 600
        for offset, replica0, replica1 in ((0, 2, 10), (30, 4, 10), (300, 6, 20), (330, 8, 20)):
            store.record_metric("web", 0, Metric.CONNECTIONS, replica0, at=base + offset)
            store.record_metric("web", 1, "connections", replica1, at=base + offset)
        store.record_metric("api", 0, "connections", 100, at=base)
        await store.flush()
        by_minutes = await store.timeseries("connections", 900, 300, service="web")
        by_seconds = await store.timeseries("connections", 900, 150, service="web")
        everything = await store.timeseries("connections", 900, 300)

    assert [point.timestamp for point in by_minutes] == [NOW - 600, NOW - 300, NOW]
    assert [point.value for point in by_minutes] == [3 + 10, 7 + 20, None]
    assert [point.value for point in by_seconds] == [None, 13, None, 27, None, None]
    assert [point.value for point in everything] == [113, 27, None]


async def test_counter_buckets_add_the_increases(tmp_path: Path) -> None:
    async with running_store(tmp_path / "state.db") as store:
        for offset in range(0, 120, 10):
            store.record_metric("web", offset % 3, "messages", 5, at=NOW - 120 + offset)
        await store.flush()
        per_minute = await store.timeseries("messages", 180, 60)
        raw = await store.timeseries("messages", 180, 30)

    assert [point.value for point in per_minute] == [30, 30, None]
    assert [point.value for point in raw] == [None, 15, 15, 15, 15, None]


@pytest.mark.parametrize(("period", "interval"), [(60, 0), (0, 60), (-1, 5), (10**9, 1)])
async def test_impossible_chart_requests_are_invalid(
    tmp_path: Path, period: float, interval: float
) -> None:
    async with running_store(tmp_path / "state.db") as store:
        with pytest.raises(InvalidRequest):
            await store.timeseries("cpu", period, interval)


async def test_unknown_metric_is_a_value_error(tmp_path: Path) -> None:
    async with running_store(tmp_path / "state.db") as store:
        with pytest.raises(ValueError, match="nonsense"):
            store.record_metric("web", 0, "nonsense", 1)


def closed(index: int, service: str | None) -> ConnectionRecord:
    return ConnectionRecord(
        id=f"conn-{index}",
        client_ip="192.0.2.7",
        service=service,
        instance=f"{service}:0" if service else None,
        session_ids=(f"s-{index}", "shared"),
        opened_at=NOW + index,
        closed_at=NOW + index + 30,
        messages_in=index,
        messages_out=2 * index,
        bytes_in=100,
        bytes_out=200,
        close_code=1000,
        close_reason="bye",
    )


async def test_closed_connections_page_newest_first_with_a_total(tmp_path: Path) -> None:
    records = [closed(index, "web" if index % 2 else "api") for index in range(7)]
    records.append(closed(7, None))
    async with running_store(tmp_path / "state.db") as store:
        for record in records:
            store.record_connection(record)
        await store.flush()
        page, total = await store.connections(limit=2, offset=1)
        web, web_total = await store.connections(service="web")
        one = await store.connection("conn-3")
        missing = await store.connection("conn-99")

    assert total == 8
    assert page == [records[6], records[5]]
    assert [record.id for record in web] == ["conn-5", "conn-3", "conn-1"]
    assert web_total == 3
    assert one == records[3]
    assert missing is None


async def test_log_tail_is_the_newest_lines_oldest_first(tmp_path: Path) -> None:
    async with running_store(tmp_path / "state.db") as store:
        store.record_log_lines(lines([f"line {index}" for index in range(10)], at=NOW))
        store.record_log_lines(lines(["other"], service="api"))
        store.record_log_lines(lines(["late"], replica=1, at=NOW + 5, first_seq=11))
        await store.flush()
        tail = await store.logs("web", limit=3)
        replica_one = await store.logs("web", replica=1)
        since = await store.logs("web", since=NOW + 1)
        stderr = await store.logs("web", stream="stderr")

    assert [line.text for line in tail] == ["line 8", "line 9", "late"]
    assert [line.seq for line in tail] == [9, 10, 11]
    assert [line.text for line in replica_one] == [line.text for line in since] == ["late"]
    assert stderr == []


async def test_a_negative_limit_is_no_rows_not_every_row(tmp_path: Path) -> None:
    async with running_store(tmp_path / "state.db") as store:
        store.record_event("operator.action")
        store.record_connection(closed(1, "web"))
        await store.flush()
        assert await store.events(limit=-1) == []
        assert await store.connections(limit=-1, offset=-5) == ([], 1)
        assert len(await store.events(limit=10**9)) == 1
