"""The writes waiting for the writer: bounded in bytes, never blocking a producer.

Not a trio memory channel, because a full channel can only refuse the *new*
item, and for logs the newest lines matter most (a worker's flood usually
ends with the reason it crashed). So log batches wait in their own deque and,
when they would exceed their share of the byte budget, the *oldest* batches
are evicted to make room. Everything else (audit events, health checks,
metric samples, connections: small and far fewer) waits in a second deque
with the rest of the budget, and is refused when that is full, which only
happens when the writer is stuck.

Two deques do not reorder anything that matters: the writer takes all of
both at once (up to a batch's rows of logs), and a control request (a flush
barrier) is answered only after everything taken with it is written.
"""

from __future__ import annotations

import collections

import attrs
import trio

from agentvisor.store.inserts import LogBatch, WriteItem, item_bytes, item_rows

#: Share of the byte budget log lines may use; the rest is kept for everything else.
LOG_SHARE = 0.75


@attrs.define
class Control:
    """A request that is never dropped: a flush barrier or a full retention run."""

    retention: bool
    done: trio.Event = attrs.field(factory=trio.Event)


@attrs.define
class Taken:
    items: list[WriteItem]
    controls: list[Control]
    rows: int


class Closed(Exception):
    """The backlog no longer takes requests: the writer has stopped."""


class Backlog:
    def __init__(self, max_bytes: int, max_items: int) -> None:
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._logs: collections.deque[tuple[LogBatch, int]] = collections.deque()
        self._other: collections.deque[tuple[WriteItem, int]] = collections.deque()
        self._controls: list[Control] = []
        self.log_bytes = 0
        self.other_bytes = 0
        self.peak_bytes = 0
        self.dropped = 0  # rows
        self.closed = False
        self._arrived = trio.Event()

    def __len__(self) -> int:
        return len(self._logs) + len(self._other) + len(self._controls)

    @property
    def bytes(self) -> int:
        return self.log_bytes + self.other_bytes

    def put(self, item: WriteItem) -> bool:
        """Queue ``item``; False when it was dropped (counted in ``dropped``)."""
        cost = item_bytes(item)
        if self.closed:
            self.dropped += item_rows(item)
            return False
        if isinstance(item, LogBatch):
            accepted = self._put_log(item, cost)
        elif self.other_bytes + cost > self.max_bytes * (1 - LOG_SHARE) or (
            len(self._other) >= self.max_items
        ):
            self.dropped += 1
            accepted = False
        else:
            self._other.append((item, cost))
            self.other_bytes += cost
            accepted = True
        if accepted:
            self.peak_bytes = max(self.peak_bytes, self.bytes)
            self._arrived.set()
        return accepted

    def _put_log(self, batch: LogBatch, cost: int) -> bool:
        limit = self.max_bytes * LOG_SHARE
        if cost > limit:
            self.dropped += len(batch.lines)
            return False
        while self._logs and self.log_bytes + cost > limit:
            evicted, evicted_cost = self._logs.popleft()
            self.log_bytes -= evicted_cost
            self.dropped += len(evicted.lines)
        self._logs.append((batch, cost))
        self.log_bytes += cost
        return True

    def put_control(self, control: Control) -> None:
        if self.closed:
            raise Closed
        self._controls.append(control)
        self._arrived.set()

    async def wait(self) -> None:
        """Return once something is queued (at once if something already is)."""
        if len(self):
            await trio.lowlevel.checkpoint()
        while not len(self):
            await self._arrived.wait()
            self._arrived = trio.Event()

    def take(self, max_log_rows: int) -> Taken:
        """Everything queued except log batches beyond ``max_log_rows`` (at least one batch)."""
        items: list[WriteItem] = []
        rows = 0
        while self._other:
            item, cost = self._other.popleft()
            self.other_bytes -= cost
            items.append(item)
            rows += 1
        log_rows = 0
        while self._logs and (
            not log_rows or log_rows + len(self._logs[0][0].lines) <= max_log_rows
        ):
            batch, cost = self._logs.popleft()
            self.log_bytes -= cost
            items.append(batch)
            log_rows += len(batch.lines)
        controls: list[Control] = []
        if not self._logs:  # a barrier waits for every line queued before it
            controls, self._controls = self._controls, []
        return Taken(items, controls, rows + log_rows)

    def close(self) -> list[Control]:
        """Refuse further requests, count what is left as dropped; return the waiting controls."""
        self.closed = True
        self.dropped += sum(len(batch.lines) for batch, _ in self._logs) + len(self._other)
        self._logs.clear()
        self._other.clear()
        self.log_bytes = self.other_bytes = 0
        controls, self._controls = self._controls, []
        return controls
