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
    expected: bool  # asked for (stop, restart, scale-down, reload, shutdown) or an exit code
    uptime: float
    at: float
    reason: str = ""  # the stop's reason, or how it died ("exit status 2: SyntaxError")
    stderr_tail: tuple[str, ...] = ()  # the process's last stderr lines
    kind: str = "instance.exited"


@attrs.frozen
class MessagePoisoned:
    """A user message was in flight at its second worker death: it is not run again.

    Judged by the supervisor from the dead worker's turns in flight; the replica
    resuming the session answers the client ``agent.error`` ``MESSAGE_POISONED``.
    """

    service: str
    replica: int  # the instance whose worker died the second time
    pid: int
    session_id: str
    message_id: str
    deaths: int
    at: float
    kind: str = "message.poisoned"


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
    #: Structured facts behind the message (an autoscaler decision's signals), stored as
    #: the audit row's ``details``.
    details: dict[str, Any] = attrs.field(factory=dict, eq=False)
    #: Intent records of the config write this action made (store/intents.py): the
    #: store deletes them with the entry, so a kill in between cannot lose it.
    intents: tuple[int, ...] = attrs.field(default=(), metadata={"internal": True})


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


@attrs.frozen
class HealthCheckCompleted:
    """Every health check's result (``HealthChanged`` only marks transitions).

    The state store keeps these as the health history; named apart from
    ``supervise.machine.HealthChecked``, the machine's input.
    """

    service: str
    replica: int
    ok: bool
    status: str  # the instance's health after this check: healthy | unhealthy | unknown
    message: str
    response_time: float
    at: float
    kind: str = "instance.health_check"


@attrs.frozen
class MetricPoint:
    """One value of one metric of one instance; see ``MetricsSampled``."""

    service: str
    replica: int
    metric: str  # connections | sessions | cpu | memory | messages | errors | restarts
    value: float  # gauges: the current value; counters: the increase since the last sample


@attrs.frozen
class MetricsSampled:
    """One sampling round of every instance, published as one event to spare the bus."""

    points: tuple[MetricPoint, ...]
    at: float
    kind: str = "metrics.sampled"


@attrs.frozen
class ConnectionOpened:
    """A client was routed to an instance and its relay started."""

    connection_id: str
    client_ip: str
    service: str
    instance_id: str
    rule: str | None
    strategy: str
    at: float
    kind: str = "connection.opened"


@attrs.frozen
class ConnectionClosed:
    connection_id: str
    client_ip: str
    service: str
    instance_id: str
    code: int | None  # close code sent to the client; None when the socket just ended
    reason: str
    duration: float  # seconds
    messages_in: int  # client → agent
    messages_out: int  # agent → client
    bytes_in: int
    bytes_out: int
    at: float
    kind: str = "connection.closed"


@attrs.frozen
class ConnectionSwitched:
    """A live connection moved to another instance (failover or drain)."""

    connection_id: str
    from_instance: str
    to_instance: str
    reason: str  # upstream_lost | instance_draining
    session_preserved: bool
    sessions: int
    at: float
    kind: str = "connection.switched"


@attrs.frozen
class ConnectionRefused:
    """A client was turned away: limits, a reject rule, no route, no instance, origin."""

    client_ip: str
    code: int  # WebSocket close code, or the HTTP status of a refused handshake
    reason: str
    rule: str | None
    at: float
    kind: str = "connection.refused"


@attrs.frozen
class LogLines:
    """A batch of one instance's output lines, numbered as its service's ``LogBook`` did.

    One event per chunk read from the pipe (``LogBook.append``'s batch), not
    per line, so a worker flooding its stdout costs one publish per read; a
    subscriber that falls behind loses whole batches. For live followers (the
    console's event stream): the state store takes lines from
    ``StateStore.record_log_lines`` instead, where nothing is dropped silently.
    """

    service: str
    replica: int
    stream: str  # stdout | stderr
    first_seq: int  # LogBook sequence number of ``texts[0]``; the next ones follow by 1
    texts: tuple[str, ...]
    at: float
    kind: str = "log.lines"


Event = (
    InstanceStateChanged
    | InstanceExited
    | MessagePoisoned
    | HealthChanged
    | OperatorAction
    | ConfigReloaded
    | HealthCheckCompleted
    | MetricsSampled
    | ConnectionOpened
    | ConnectionClosed
    | ConnectionSwitched
    | ConnectionRefused
    | LogLines
)


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
    """The event as the live stream sends it (fields marked internal left out)."""
    return attrs.asdict(event, filter=lambda field, _value: not field.metadata.get("internal"))
