"""Frozen event records and the in-process bus that carries them.

The supervisor (and later the router) publish; the state store, the metrics,
the console's live stream and tests subscribe. Publishing never blocks: a
subscriber that falls behind loses events (counted in ``dropped``) rather than
stalling the supervisor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio


@attrs.frozen
class InstanceStateChanged:
    service: str
    replica: int
    old: str
    new: str
    reason: str
    pid: int | None
    at: float  # wall clock, seconds since the epoch
    kind: str = "instance.state"


@attrs.frozen
class InstanceExited:
    service: str
    replica: int
    pid: int
    returncode: int
    expected: bool
    uptime: float
    at: float
    kind: str = "instance.exited"


@attrs.frozen
class HealthChanged:
    service: str
    replica: int
    status: str  # healthy | unhealthy | unknown
    message: str
    response_time: float | None
    at: float
    kind: str = "instance.health"


@attrs.frozen
class OperatorAction:
    action: str  # start | stop | restart | reload | scale …
    target: str  # service name, or "" for the whole system
    source: str  # api | cli | signal | reload | health | memory | autoscaler
    outcome: str  # ok | rejected | failed
    message: str
    at: float
    kind: str = "operator.action"


@attrs.frozen
class ConfigReloaded:
    ok: bool
    added: tuple[str, ...]
    removed: tuple[str, ...]
    restarted: tuple[str, ...]
    updated: tuple[str, ...]
    errors: tuple[str, ...]
    at: float
    kind: str = "config.reload"


Event = InstanceStateChanged | InstanceExited | HealthChanged | OperatorAction | ConfigReloaded


class Subscription:
    """What a subscriber reads from; iterate it, or ``await receive()``."""

    def __init__(self, bus: EventBus, predicate: Callable[[Event], bool], capacity: int) -> None:
        self._bus = bus
        self._predicate = predicate
        self._send, self._receive = trio.open_memory_channel[Event](capacity)
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        if not self._predicate(event):
            return
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.dropped += 1

    async def receive(self) -> Event:
        return await self._receive.receive()

    async def wait_for(self, predicate: Callable[[Event], bool]) -> Event:
        """Receive until an event matches ``predicate``; the caller sets the deadline."""
        while True:
            event = await self._receive.receive()
            if predicate(event):
                return event

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._receive.__aiter__()


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self.published = 0

    def publish(self, event: Event) -> None:
        self.published += 1
        for subscription in self._subscriptions:
            subscription._offer(event)

    @asynccontextmanager
    async def subscribe(
        self, predicate: Callable[[Event], bool] = lambda _event: True, capacity: int = 1024
    ) -> AsyncIterator[Subscription]:
        subscription = Subscription(self, predicate, capacity)
        self._subscriptions.append(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.remove(subscription)


def event_to_dict(event: Event) -> dict[str, Any]:
    return attrs.asdict(event)
