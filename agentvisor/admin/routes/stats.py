"""Figures for dashboards: the overview, per-service stats, and metric time series.

``GET /stats`` and ``GET /stats/overview`` are the same object (the seed
names both). Time series come from the state store: ``period`` is how far
back, ``interval`` the width of a bucket (both ``30s``, ``5m``, ``1h``,
``7d`` or seconds); without ``interval`` the period is cut into about 60
buckets. A bucket with no sample is ``null`` (a gap), not 0.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import trio
from quart import Blueprint, Response, request

from agentvisor.admin.errors import success
from agentvisor.admin.lookup import require_store, resolve_known, resolve_service
from agentvisor.admin.lookup import service_id as service_id_of
from agentvisor.admin.params import SERVICE_FILTER, Choice, Duration
from agentvisor.admin.routes.system import iso_time
from agentvisor.admin.usage import overview, own_resources, service_stats
from agentvisor.api.answers import dump
from agentvisor.api.services import InstanceFigures, ServiceStatsResult
from agentvisor.store.records import Metric

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps

METRICS = tuple(metric.value for metric in Metric)
MAX_PERIOD = 366 * 86400.0
METRIC = Choice("metric", "Which series (default connections)", METRICS)
PERIOD = Duration("period", "How far back: 30m, 1h, 7d (default 1h)", 3600.0, maximum=MAX_PERIOD)
INTERVAL = Duration("interval", "Bucket width: 1m, 5m (default: ~60 buckets)", None)
TIMESERIES_PARAMETERS = (METRIC, PERIOD, INTERVAL, SERVICE_FILTER)
#: Buckets a default interval aims at.
DEFAULT_BUCKETS = 60


def default_interval(period: float) -> float:
    """About ``DEFAULT_BUCKETS`` buckets; whole minutes once a bucket is a minute or more."""
    raw = period / DEFAULT_BUCKETS
    if raw >= 60:
        return math.ceil(raw / 60) * 60.0
    return float(max(1, math.ceil(raw)))


def _duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def stats_blueprint(deps: AdminDeps) -> Blueprint:
    blueprint = Blueprint("stats", __name__)

    async def system_overview() -> tuple[Response, int]:
        own = await trio.to_thread.run_sync(own_resources, deps.process)
        return success(await overview(deps, own))

    @blueprint.get("/stats")
    async def stats() -> tuple[Response, int]:
        return await system_overview()

    @blueprint.get("/stats/overview")
    async def stats_overview() -> tuple[Response, int]:
        return await system_overview()

    @blueprint.get("/stats/timeseries")
    async def timeseries() -> tuple[Response, int]:
        args = request.args
        metric = METRIC.parse(args) or "connections"
        period = PERIOD.parse(args)
        assert period is not None  # it has a default
        interval = INTERVAL.parse(args)
        if interval is None:
            interval = default_interval(period)
        interval = min(interval, period)
        ref = SERVICE_FILTER.parse(args)
        name = await resolve_known(deps, ref) if ref else None
        store = require_store(deps)
        points = await store.timeseries(metric, period, interval, service=name)
        return success(
            {
                "metric": metric,
                "period": args.get("period") or _duration_text(period),
                "interval": args.get("interval") or _duration_text(interval),
                "period_seconds": period,
                "interval_seconds": interval,
                "service_id": None if name is None else await service_id_of(deps, name),
                "data": [
                    {"timestamp": iso_time(point.timestamp), "value": point.value}
                    for point in points
                ],
            }
        )

    @blueprint.get("/services/<service_id>/stats")
    async def one_service(service_id: str) -> tuple[Response, int]:
        name = await resolve_service(deps, service_id)
        view = deps.supervisor.service(name)
        answer = ServiceStatsResult(
            service_id=await service_id_of(deps, name),
            name=name,
            status=view.state,
            stats=await service_stats(deps, view),
            instances=[
                InstanceFigures(
                    instance=i.replica,
                    state=i.state,
                    cpu_percent=i.cpu_percent,
                    memory_mb=None if i.memory_bytes is None else round(i.memory_bytes / 2**20, 1),
                    sessions=i.sessions,
                    restarts=i.restarts,
                    uptime_seconds=None if i.uptime is None else round(i.uptime, 3),
                )
                for i in view.instances
            ],
        )
        return success(dump(answer))

    return blueprint
