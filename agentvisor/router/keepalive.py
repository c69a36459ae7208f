"""The keepalive of one client connection (pure): when a ping is due, when silence ends it.

Any frame from the client proves it alive (``activity``). After
``ping_interval`` seconds without one the router pings; after ``ping_timeout``
more without an answer the connection ends, unless the client is *blocked*:
its pump waits on the worker (a write to it, or a full failover buffer), so
the client's silence proves nothing.
"""

from __future__ import annotations

import math
from enum import Enum


class Due(Enum):
    NOTHING = "nothing"
    PING = "ping"
    TIMEOUT = "timeout"


class Keepalive:
    __slots__ = ("interval", "last_activity", "ping_sent_at", "timeout")

    def __init__(self, *, interval: float, timeout: float, now: float) -> None:
        self.interval = interval
        self.timeout = timeout
        self.last_activity = now
        self.ping_sent_at: float | None = None

    def activity(self, now: float) -> None:
        self.last_activity = now
        self.ping_sent_at = None

    def tick(self, now: float, *, blocked: bool) -> Due:
        if self.ping_sent_at is None:
            if now - self.last_activity >= self.interval:
                self.ping_sent_at = now
                return Due.PING
            return Due.NOTHING
        if now - self.ping_sent_at >= self.timeout and not blocked:
            return Due.TIMEOUT
        return Due.NOTHING

    def next_tick(self) -> float:
        if self.ping_sent_at is None:
            return self.last_activity + self.interval
        return self.ping_sent_at + self.timeout if self.timeout < math.inf else math.inf
