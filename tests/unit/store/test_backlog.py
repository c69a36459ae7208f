"""The writer's backlog: bounded by bytes, the newest log lines kept, barriers in order."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from agentvisor.store.backlog import LOG_SHARE, Backlog, Closed, Control
from agentvisor.store.inserts import ROW_OVERHEAD_BYTES, EventRow, LogBatch
from agentvisor.supervise.logs import LogLine


def batch(first: int, count: int = 10, width: int = 100) -> LogBatch:
    return LogBatch(
        tuple(
            LogLine(seq, 0.0, "web", 0, "stdout", "x" * width)
            for seq in range(first, first + count)
        )
    )


BATCH_BYTES = 10 * (100 + ROW_OVERHEAD_BYTES)


def test_full_of_logs_it_evicts_the_oldest_batches() -> None:
    backlog = Backlog(max_bytes=int(BATCH_BYTES * 4 / LOG_SHARE), max_items=100)
    for index in range(10):
        assert backlog.put(batch(index * 10 + 1))
    taken = backlog.take(max_log_rows=10_000)
    assert [item.lines[0].seq for item in taken.items] == [61, 71, 81, 91]  # type: ignore[union-attr]
    assert backlog.dropped == 60
    assert backlog.peak_bytes <= backlog.max_bytes
    assert backlog.bytes == 0


def test_a_batch_larger_than_the_log_share_is_refused() -> None:
    backlog = Backlog(max_bytes=BATCH_BYTES, max_items=100)
    assert not backlog.put(batch(1))
    assert backlog.dropped == 10
    assert len(backlog) == 0


def test_other_rows_have_their_own_share_and_an_item_bound() -> None:
    backlog = Backlog(max_bytes=10_000_000, max_items=3)
    for _ in range(3):
        assert backlog.put(EventRow(0.0, "operator.action"))
    assert not backlog.put(EventRow(0.0, "operator.action"))
    assert backlog.put(batch(1))  # logs are bounded by bytes only
    assert backlog.dropped == 1


def test_take_limits_log_rows_but_takes_at_least_one_batch() -> None:
    backlog = Backlog(max_bytes=10_000_000, max_items=100)
    for index in range(5):
        backlog.put(batch(index * 10 + 1))
    assert backlog.take(max_log_rows=25).rows == 20
    assert backlog.take(max_log_rows=5).rows == 10
    assert backlog.take(max_log_rows=1000).rows == 20


def test_a_barrier_waits_for_every_line_queued_before_it() -> None:
    backlog = Backlog(max_bytes=10_000_000, max_items=100)
    backlog.put(batch(1))
    backlog.put(batch(11))
    control = Control(retention=False)
    backlog.put_control(control)
    assert backlog.take(max_log_rows=10).controls == []
    assert backlog.take(max_log_rows=10).controls == [control]


def test_closed_it_drops_rows_and_refuses_controls() -> None:
    backlog = Backlog(max_bytes=10_000_000, max_items=100)
    waiting = Control(retention=True)
    backlog.put_control(waiting)
    assert backlog.close() == [waiting]
    assert not backlog.put(batch(1))
    assert backlog.dropped == 10
    with pytest.raises(Closed):
        backlog.put_control(Control(retention=False))


async def test_wait_returns_when_something_arrives() -> None:
    backlog = Backlog(max_bytes=10_000_000, max_items=100)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(backlog.wait)
        await trio.testing.wait_all_tasks_blocked()
        backlog.put(EventRow(0.0, "operator.action"))
    await backlog.wait()  # something is queued: returns at once
