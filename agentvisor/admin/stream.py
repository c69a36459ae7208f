"""``GET /api/v1/events/stream``: the event bus as server-sent events, for the console.

Every bus event becomes one message, ``event: <kind>`` and ``data: <json>``
(``events.event_to_dict``): instance state and exits, health changes and
checks, operator actions, reloads, connections, worker log lines
(``log.lines``). ``?types=`` (alias ``?kind=``) takes kinds or their groups,
comma-separated (``instance,log.lines``); without it every kind but the
bulky ``metrics.sampled`` comes. ``?service_id=`` (stable id or name) keeps
the events about one service (a sampling round is cut down to its points).

Each client reads from its own bus subscription of bounded capacity: the bus
never waits for anyone, so a client that reads slower than events come loses
events instead of growing our memory, and is told so by an ``event: dropped``
message carrying how many. An idle stream gets a ``: keepalive`` comment
every ``stream_keepalive_interval`` seconds so proxies keep it open. The
stream ends when the client goes (Quart cancels the request) or when the
server begins to stop (``deps.stopping``), so shutdown never waits on it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, get_args

import attrs
import trio
from quart import Blueprint, Response, request

from agentvisor.admin.lookup import resolve_service
from agentvisor.errors import InvalidRequest
from agentvisor.events import (
    ConfigReloaded,
    ConnectionSwitched,
    Event,
    EventBus,
    MetricsSampled,
    OperatorAction,
    Subscription,
    event_to_dict,
)

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps

#: Every kind the bus carries, from the event records themselves.
KNOWN_KINDS: tuple[str, ...] = tuple(
    sorted(attrs.fields(cls).kind.default for cls in get_args(Event))
)
#: Sent only when asked for by name: a round of every instance's metrics each sample.
BULKY_KINDS = frozenset({"metrics.sampled"})
#: Tells a browser's EventSource how long to wait before reconnecting (milliseconds).
RECONNECT_MILLISECONDS = 3000


@attrs.define
class StreamCounters:
    """The app's live streams and the events they lost, for ``/metrics``."""

    open: int = 0
    dropped: int = 0


def parse_kinds(args: Mapping[str, str]) -> frozenset[str]:
    """The kinds a client asked for: names from ``KNOWN_KINDS`` or groups (``instance``)."""
    raw = args.get("types") or args.get("kind") or ""
    wanted = [token.strip() for token in raw.split(",") if token.strip()]
    if not wanted:
        return frozenset(KNOWN_KINDS) - BULKY_KINDS
    kinds: set[str] = set()
    for token in wanted:
        matched = [kind for kind in KNOWN_KINDS if kind == token or kind.startswith(f"{token}.")]
        if not matched:
            groups = sorted({kind.partition(".")[0] for kind in KNOWN_KINDS})
            raise InvalidRequest(
                f"Unknown event type {token!r}; use kinds ({', '.join(KNOWN_KINDS)}) "
                f"or groups ({', '.join(groups)})",
                parameter="types",
                value=raw,
            )
        kinds.update(matched)
    return frozenset(kinds)


def concerns(event: Event, service: str) -> bool:
    """Whether ``event`` is about ``service``; events about the whole system are not."""
    match event:
        case OperatorAction():
            return event.target == service
        case ConfigReloaded():
            return any(
                service in names
                for names in (event.added, event.removed, event.restarted, event.updated)
            )
        case ConnectionSwitched():
            prefix = f"{service}:"
            return event.from_instance.startswith(prefix) or event.to_instance.startswith(prefix)
        case MetricsSampled():
            return any(point.service == service for point in event.points)
    return getattr(event, "service", None) == service


def narrowed(event: Event, service: str | None) -> Event:
    """A sampling round cut down to one service's points; other events as they are."""
    if service is None or not isinstance(event, MetricsSampled):
        return event
    points = tuple(point for point in event.points if point.service == service)
    return attrs.evolve(event, points=points)


def sse_message(kind: str, data: Any) -> bytes:
    """One server-sent event; ``json.dumps`` escapes newlines, so ``data`` is one line."""
    payload = json.dumps(data, separators=(",", ":"), default=str)
    return f"event: {kind}\ndata: {payload}\n\n".encode()


async def next_event(
    subscription: Subscription, stopping: trio.Event, idle_interval: float
) -> Event | None:
    """The next event, or None after ``idle_interval`` quiet seconds or once ``stopping`` is set.

    Both waits run in a nursery that closes before this returns, so the
    async generator that calls it never yields inside a nursery.
    """
    got: list[Event] = []
    with trio.move_on_after(idle_interval):
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                got.append(await subscription.receive())
                nursery.cancel_scope.cancel()

            async def stop() -> None:
                await stopping.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(receive)
            nursery.start_soon(stop)
    return got[0] if got else None


async def event_stream(
    bus: EventBus,
    predicate: Callable[[Event], bool],
    *,
    service: str | None,
    stopping: trio.Event,
    counters: StreamCounters,
    keepalive_interval: float,
    capacity: int,
) -> AsyncIterator[bytes]:
    """The body of one stream: subscribe, then relay until the client or the server goes."""
    counters.open += 1
    try:
        async with bus.subscribe(predicate, capacity=capacity) as subscription:
            # Subscribed before the first byte: a client that saw it misses nothing after.
            yield f"retry: {RECONNECT_MILLISECONDS}\n: ready\n\n".encode()
            reported = 0
            while not stopping.is_set():
                event = await next_event(subscription, stopping, keepalive_interval)
                if subscription.dropped > reported:
                    lost = subscription.dropped - reported
                    reported = subscription.dropped
                    counters.dropped += lost
                    yield sse_message("dropped", {"dropped": lost, "total": reported})
                if event is None:
                    if not stopping.is_set():
                        yield b": keepalive\n\n"
                    continue
                event = narrowed(event, service)
                yield sse_message(event.kind, event_to_dict(event))
    finally:
        counters.open -= 1


def stream_blueprint(deps: AdminDeps, counters: StreamCounters) -> Blueprint:
    blueprint = Blueprint("stream", __name__)

    @blueprint.get("/events/stream")
    async def events_stream() -> Response:
        kinds = parse_kinds(request.args)
        ref = request.args.get("service_id") or None
        service = None if ref is None else await resolve_service(deps, ref)  # id or name

        def wanted(event: Event) -> bool:
            return event.kind in kinds and (service is None or concerns(event, service))

        body = event_stream(
            deps.supervisor.bus,
            wanted,
            service=service,
            stopping=deps.stopping,  # read now: the server replaces it each time it starts
            counters=counters,
            keepalive_interval=deps.limits.stream_keepalive_interval,
            capacity=deps.limits.stream_buffer_events,
        )
        response = Response(body, status=200, content_type="text/event-stream; charset=utf-8")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
        response.timeout = None  # Quart's RESPONSE_TIMEOUT would cut the stream after 60 s
        return response

    return blueprint
