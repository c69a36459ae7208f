"""What the services are doing: the seed's ``stats`` objects and the system overview.

Figures come from three places, each optional beyond the first:

- the supervisor's live instances: state, cpu and memory (psutil samples),
  restarts, health-check response times, and the agent workers' own
  ``GET /stats`` (sessions, turns, errors) that the supervisor polls;
- the router (``AdminDeps.router``): live connections per service and in all;
  without it those are 0;
- the state store: connections already closed (for totals) and the day's
  peak of the ``connections`` series; without it totals are the live ones.

Counts of sessions and turns are since each worker process started (a
restarted worker starts again from 0); the store's time series keep the
longer view.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs
import psutil

from agentvisor.api.services import SeedServiceStats
from agentvisor.store.records import Metric
from agentvisor.store.schema import StoreUnavailable

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps
    from agentvisor.router.table import ConnectionPage
    from agentvisor.supervise.registry import ServiceView

log = logging.getLogger("agentvisor.admin")

MiB = 1024 * 1024
DAY = 86400.0
#: Aggregate states counted as ``error`` in the overview.
ERROR_STATES = ("fatal", "backoff", "exited")


@runtime_checkable
class ConnectionSource(Protocol):
    """What the stats need of the router: its live connections (``Router`` has it)."""

    def list_connections(
        self, *, agent: str | None = None, limit: int = 100, offset: int = 0
    ) -> ConnectionPage: ...


def active_connections(deps: AdminDeps, name: str | None = None) -> int:
    """Live router connections of service ``name`` (or of all); 0 without a router."""
    router: object = deps.router
    if not isinstance(router, ConnectionSource):
        return 0
    return router.list_connections(agent=name, limit=0).total


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _sum(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def worker_totals(worker_stats: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Sessions and turns summed over agent workers' ``GET /stats`` documents."""
    if not worker_stats:
        return {}
    active = total = completed = turns = errors = finished = 0
    turn_seconds = 0.0
    for stats in worker_stats:
        sessions = stats.get("sessions", {})
        active += int(sessions.get("active", 0))
        total += int(sessions.get("total", 0))
        completed += int(sessions.get("completed", 0))
        run = stats.get("turns", {})
        turns += int(run.get("total", 0))
        errors += int(run.get("errors", 0))
        done = int(run.get("total", 0)) - int(run.get("running", 0))
        finished += done
        turn_seconds += float(run.get("avg_duration", 0.0)) * done
    return {
        "active_sessions": active,
        "total_sessions": total,
        "completed_sessions": completed,
        "turns": turns,
        "errors": errors,
        "avg_turn_duration": round(turn_seconds / finished, 3) if finished else None,
    }


def _worker_stats(deps: AdminDeps, name: str) -> list[dict[str, Any]]:
    return [
        instance.worker_stats
        for instance in deps.supervisor.instances(name)
        if instance.worker_stats is not None
    ]


def live_stats(deps: AdminDeps, view: ServiceView) -> SeedServiceStats:
    """The seed's per-service stats from live state only (the list uses these)."""
    running = [i for i in view.instances if i.state == "running"]
    uptimes = [i.uptime for i in running if i.uptime is not None]
    memory = _sum(i.memory_bytes for i in view.instances)
    cpu = _sum(i.cpu_percent for i in view.instances)
    workers = worker_totals(_worker_stats(deps, view.name))
    turns = workers.get("turns", 0)
    errors = workers.get("errors", 0)
    active = active_connections(deps, view.name)
    return SeedServiceStats(
        total_connections=active,
        active_connections=active,
        peak_connections=active,
        total_sessions=workers.get("total_sessions"),
        active_sessions=workers.get("active_sessions"),
        completed_sessions=workers.get("completed_sessions"),
        # Workers report turn durations; a session's length is not tracked.
        avg_session_duration=None,
        avg_turn_duration=workers.get("avg_turn_duration"),
        turns=workers.get("turns"),
        memory_usage_mb=None if memory is None else round(memory / MiB, 1),
        cpu_usage_percent=_round(cpu),
        error_count=errors if workers else None,
        error_rate=round(errors / turns, 4) if turns else (0.0 if workers else None),
        restarts=sum(i.restarts for i in view.instances),
        uptime_seconds=_round(min(uptimes), 3) if uptimes else None,
    )


async def _closed_connections(deps: AdminDeps, name: str | None) -> int:
    if deps.store is None:
        return 0
    try:
        _page, total = await deps.store.connections(0, 0, service=name)
    except (StoreUnavailable, sqlite3.Error) as error:
        log.warning("closed connections unavailable: %s", error)
        return 0
    return total


async def _peak_today(deps: AdminDeps, name: str | None) -> float:
    if deps.store is None:
        return 0.0
    try:
        points = await deps.store.timeseries(Metric.CONNECTIONS, DAY, 300.0, service=name)
    except (StoreUnavailable, sqlite3.Error) as error:
        log.warning("connection history unavailable: %s", error)
        return 0.0
    return max((p.value for p in points if p.value is not None), default=0.0)


async def service_stats(deps: AdminDeps, view: ServiceView) -> SeedServiceStats:
    """The seed's per-service stats, with totals and the day's peak from the store."""
    stats = live_stats(deps, view)
    active = stats.active_connections
    return attrs.evolve(
        stats,
        total_connections=active + await _closed_connections(deps, view.name),
        peak_connections=max(active, round(await _peak_today(deps, view.name))),
    )


def _service_counts(views: Sequence[ServiceView]) -> dict[str, Any]:
    by_state: dict[str, int] = {}
    for view in views:
        by_state[view.state] = by_state.get(view.state, 0) + 1
    return {
        "total": len(views),
        "running": by_state.get("running", 0),
        "stopped": by_state.get("stopped", 0),
        "error": sum(by_state.get(state, 0) for state in ERROR_STATES),
        "by_state": by_state,
    }


def own_resources(process: psutil.Process) -> dict[str, Any]:
    """agentvisor's own cpu (since the previous call) and memory; blocking (psutil)."""
    try:
        with process.oneshot():
            return {
                "pid": process.pid,
                "cpu_percent": round(process.cpu_percent(interval=None), 1),
                "memory_mb": round(process.memory_info().rss / MiB, 1),
            }
    except psutil.Error:
        return {"pid": process.pid, "cpu_percent": None, "memory_mb": None}


async def _throughput(deps: AdminDeps) -> float | None:
    """Messages per minute over the last five minutes, from the store's series."""
    if deps.store is None:
        return None
    try:
        points = await deps.store.timeseries(Metric.MESSAGES, 300.0, 60.0)
    except (StoreUnavailable, sqlite3.Error):
        return None
    return round(sum(p.value or 0.0 for p in points) / 5.0, 1)


async def overview(deps: AdminDeps, agentvisor: Mapping[str, Any]) -> dict[str, Any]:
    """``GET /stats/overview``: the seed's object, plus instances and agentvisor itself.

    ``agentvisor`` is :func:`own_resources`, read by the caller off the trio thread.
    """
    views = deps.supervisor.services()
    instances = [i for view in views for i in view.instances]
    workers = worker_totals([stats for view in views for stats in _worker_stats(deps, view.name)])
    router = deps.router.statistics() if deps.router is not None else None
    active = router.connections if router is not None else 0
    response_times = [
        i.health.response_time
        for i in instances
        if i.state == "running" and i.health.response_time is not None
    ]
    turns = workers.get("turns", 0)
    worker_memory = _sum(i.memory_bytes for i in instances) or 0
    worker_cpu = _sum(i.cpu_percent for i in instances) or 0.0
    own_memory = agentvisor.get("memory_mb") or 0.0
    own_cpu = agentvisor.get("cpu_percent") or 0.0
    return {
        "services": _service_counts(views),
        "instances": {
            "total": len(instances),
            "running": sum(1 for i in instances if i.state == "running"),
        },
        "connections": {
            "total": (router.accepted if router is not None else 0),
            "active": active,
            "peak_today": max(active, round(await _peak_today(deps, None))),
        },
        "sessions": {
            "active": workers.get("active_sessions", 0),
            "total": workers.get("total_sessions", 0),
            "completed": workers.get("completed_sessions", 0),
        },
        "performance": {
            "avg_response_time_ms": (
                round(1000 * sum(response_times) / len(response_times), 1)
                if response_times
                else None
            ),
            "avg_turn_duration_ms": (
                None
                if workers.get("avg_turn_duration") is None
                else round(1000 * workers["avg_turn_duration"], 1)
            ),
            "throughput_per_minute": await _throughput(deps),
            "error_rate": round(workers.get("errors", 0) / turns, 4) if turns else 0.0,
        },
        "resources": {
            "total_memory_mb": round(worker_memory / MiB + own_memory, 1),
            "total_cpu_percent": round(worker_cpu + own_cpu, 1),
            "workers": {
                "memory_mb": round(worker_memory / MiB, 1),
                "cpu_percent": round(worker_cpu, 1),
            },
            "agentvisor": dict(agentvisor),
        },
        "uptime_seconds": round(time.time() - deps.started_at, 3),
    }
