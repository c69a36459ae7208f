"""Events published on a real EventBus land in the audit log, health history and metrics."""

from __future__ import annotations

from pathlib import Path

import trio

from agentvisor.events import (
    ConfigReloaded,
    EventBus,
    HealthChanged,
    HealthCheckCompleted,
    InstanceExited,
    InstanceStateChanged,
    MetricPoint,
    MetricsSampled,
    OperatorAction,
)
from agentvisor.store.writer import StateStore
from tests.integration.store.harness import NOW, running_store, settle


async def consuming(store: StateStore, bus: EventBus, nursery: trio.Nursery) -> None:
    await nursery.start(store.consume, bus)


async def test_every_audit_event_published_on_the_bus_is_queryable(tmp_path: Path) -> None:
    bus = EventBus()
    async with running_store(tmp_path / "state.db") as store, trio.open_nursery() as nursery:
        await consuming(store, bus, nursery)
        bus.publish(InstanceStateChanged("web", 1, "starting", "running", "up 1s", 42, NOW))
        bus.publish(InstanceExited("web", 1, 42, 3, False, 12.5, NOW + 1))
        bus.publish(HealthChanged("web", 1, "unhealthy", "HTTP 503", 0.2, NOW + 2))
        bus.publish(OperatorAction("restart", "web", "cli", "ok", "restart requested", NOW + 3))
        bus.publish(ConfigReloaded(True, ("new",), (), ("web",), (), (), NOW + 4))
        await settle(store)
        found = await store.events()
        nursery.cancel_scope.cancel()

    assert [event.kind for event in found] == [
        "config.reload",
        "operator.action",
        "instance.health",
        "instance.exited",
        "instance.state",
    ]
    reload, action, health, exited, state = found
    assert (reload.service, reload.source, reload.outcome) == (None, "reload", "ok")
    assert reload.details["added"] == ["new"]
    assert reload.details["restarted"] == ["web"]
    assert "added new" in reload.message
    assert (action.service, action.action, action.source, action.outcome) == (
        "web",
        "restart",
        "cli",
        "ok",
    )
    assert (health.new, health.source, health.message) == ("unhealthy", "health", "HTTP 503")
    assert exited.outcome == "unexpected"
    assert exited.details == {
        "pid": 42,
        "returncode": 3,
        "uptime": 12.5,
        "reason": "",
        "stderr_tail": [],
    }
    assert (state.old, state.new, state.replica, state.message) == (
        "starting",
        "running",
        1,
        "up 1s",
    )
    assert state.details == {"pid": 42}
    assert state.at == NOW


async def test_health_checks_and_metric_samples_from_the_bus(tmp_path: Path) -> None:
    bus = EventBus()
    async with running_store(tmp_path / "state.db") as store, trio.open_nursery() as nursery:
        await consuming(store, bus, nursery)
        bus.publish(HealthCheckCompleted("web", 0, False, "unknown", "refused", 0.01, NOW - 5))
        bus.publish(HealthCheckCompleted("web", 0, True, "healthy", "ok", 0.02, NOW - 1))
        points = (MetricPoint("web", 0, "connections", 3), MetricPoint("web", 1, "connections", 4))
        bus.publish(MetricsSampled(points, NOW - 1))
        bus.publish(MetricsSampled((MetricPoint("web", 0, "nonsense", 1),), NOW - 1))
        await settle(store)
        history = await store.health_history("web")
        series = await store.timeseries("connections", 120, 60)
        nursery.cancel_scope.cancel()

    assert [(check.ok, check.message) for check in history] == [(True, "ok"), (False, "refused")]
    assert [point.value for point in series] == [7.0, None]
    assert await store.events() == []  # checks and samples are not audit events


async def test_audit_filters_since_service_and_kinds(tmp_path: Path) -> None:
    async with running_store(tmp_path / "state.db") as store:
        store.record_event("operator.action", service="web", action="stop", at=NOW - 100)
        store.record_event("operator.action", service="api", action="stop", at=NOW - 50)
        store.record_event("instance.state", service="web", new="running", at=NOW - 10)
        store.record_event("config.reload", action="reload", at=NOW - 5)
        await store.flush()
        recent = await store.events(since=NOW - 60)
        web = await store.events(service="web")
        actions = await store.events(kinds=["operator.action"], limit=1)
        nothing = await store.events(kinds=[])
        unknown = await store.events(service="nope")

    assert [event.at for event in recent] == [NOW - 5, NOW - 10, NOW - 50]
    assert [event.kind for event in web] == ["instance.state", "operator.action"]
    assert [(event.service, event.at) for event in actions] == [("api", NOW - 50)]
    assert nothing == unknown == []


async def test_bus_events_dropped_by_a_slow_subscriber_are_counted(tmp_path: Path) -> None:
    bus = EventBus()
    async with running_store(tmp_path / "state.db") as store, trio.open_nursery() as nursery:
        await consuming(store, bus, nursery)
        for index in range(10_000):  # no checkpoint: the subscriber cannot keep up
            bus.publish(OperatorAction("start", "web", "api", "ok", str(index), NOW))
        await settle(store)
        stats = store.statistics()
        nursery.cancel_scope.cancel()

    assert stats.bus_dropped > 0
    assert stats.written + stats.bus_dropped + stats.dropped == 10_000
