"""Health of services: current status, a check run now, and the stored history.

``GET /health/services/{id}`` (also ``GET /services/{id}/health``) is the
supervisor's view: each instance's status from its periodic checks.
``POST /health/services/{id}/check`` runs one check of every live instance
now, concurrently, with the service's configured mode and timeout, and
answers with the results; an instance that is not up is reported as skipped
rather than checked. Manual results are stored in the health history when
the store runs, but do not move the instances' health state: the periodic
checks and their thresholds decide that, so one operator probe cannot take
an instance out of the router.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import trio
from quart import Blueprint, Response, request

from agentvisor.admin.errors import page_of, success
from agentvisor.admin.lookup import require_store, resolve_known, resolve_service
from agentvisor.admin.lookup import service_id as service_id_of
from agentvisor.admin.params import INSTANCE, OFFSET, limit
from agentvisor.admin.routes.services import health_summary, service_health
from agentvisor.admin.routes.system import iso_time
from agentvisor.api.answers import dump
from agentvisor.supervise.states import ProcessState

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps
    from agentvisor.store.records import HealthCheckRecord
    from agentvisor.supervise.instance import Instance
    from agentvisor.supervise.registry import InstanceView, ServiceView

HISTORY_LIMIT = limit(50)
HISTORY_PARAMETERS = (HISTORY_LIMIT, OFFSET, INSTANCE)
#: States in which an instance has a process worth checking.
CHECKABLE = (ProcessState.STARTING, ProcessState.RUNNING)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def instance_health(instance: InstanceView) -> dict[str, Any]:
    health = instance.health
    return {
        "instance": instance.replica,
        "state": instance.state,
        "status": health.status,
        "last_check": iso_time(health.last_check_at),
        "response_time_ms": _ms(health.response_time),
        "message": health.message,
        "consecutive_failures": health.consecutive_failures,
    }


def health_of(view: ServiceView, stable_id: str) -> dict[str, Any]:
    checks = view.config.health
    return {
        "service_id": stable_id,
        "name": view.name,
        **dump(health_summary(view)),
        "enabled": checks.enabled,
        "mode": checks.mode.value,
        "interval": checks.interval,
        "instances": [instance_health(i) for i in view.instances],
    }


def check_record_to_dict(record: HealthCheckRecord) -> dict[str, Any]:
    return {
        "at": iso_time(record.at),
        "timestamp": record.at,
        "instance": record.replica,
        "ok": record.ok,
        "status": record.status,
        "response_time_ms": _ms(record.response_time),
        "message": record.message,
    }


async def check_instances(deps: AdminDeps, name: str) -> list[dict[str, Any]]:
    """One check of every instance now (concurrently); each result as the API shows it."""
    results: dict[int, dict[str, Any]] = {}

    async def check(instance: Instance) -> None:
        if instance.state not in CHECKABLE or instance.port is None or instance.pid is None:
            results[instance.replica] = {
                "instance": instance.replica,
                "ok": False,
                "skipped": True,
                "message": f"not checked: the instance is {instance.state.value}",
                "response_time_ms": None,
            }
            return
        result = await instance.check_now()
        results[instance.replica] = {
            "instance": instance.replica,
            "ok": result.ok,
            "skipped": False,
            "message": result.message,
            "response_time_ms": _ms(result.response_time),
        }
        if deps.store is not None:
            deps.store.record_health(
                name,
                instance.replica,
                ok=result.ok,
                status="healthy" if result.ok else "unhealthy",
                response_time=result.response_time,
                message=f"manual check: {result.message}",
            )

    async with trio.open_nursery() as nursery:
        for instance in deps.supervisor.instances(name):
            nursery.start_soon(check, instance)
    return [results[replica] for replica in sorted(results)]


def health_blueprint(deps: AdminDeps) -> Blueprint:
    blueprint = Blueprint("health", __name__)

    async def current(ref: str) -> tuple[Response, int]:
        name = await resolve_service(deps, ref)
        view = deps.supervisor.service(name)
        return success(health_of(view, await service_id_of(deps, name)))

    @blueprint.get("/health/services/<service_id>")
    async def service_health_now(service_id: str) -> tuple[Response, int]:
        return await current(service_id)

    @blueprint.get("/services/<service_id>/health")
    async def service_health_alias(service_id: str) -> tuple[Response, int]:
        return await current(service_id)

    @blueprint.post("/health/services/<service_id>/check")
    async def check_now(service_id: str) -> tuple[Response, int]:
        name = await resolve_service(deps, service_id)
        checked_at = time.time()
        results = await check_instances(deps, name)
        checked = [result for result in results if not result["skipped"]]
        ok = sum(1 for result in checked if result["ok"])
        if not checked:
            status = "unknown"
        elif ok == len(checked):
            status = "healthy"
        elif ok == 0:
            status = "unhealthy"
        else:
            status = "degraded"
        view = deps.supervisor.service(name)
        return success(
            {
                "service_id": await service_id_of(deps, name),
                "name": name,
                "checked_at": iso_time(checked_at),
                "healthy": bool(checked) and ok == len(checked),
                "status": status,
                "service_status": service_health(view),
                "results": results,
            }
        )

    @blueprint.get("/health/services/<service_id>/history")
    async def history(service_id: str) -> tuple[Response, int]:
        args = request.args
        name = await resolve_known(deps, service_id)
        limit = HISTORY_LIMIT.parse(args)
        offset = OFFSET.parse(args)
        replica = INSTANCE.parse(args)
        store = require_store(deps)
        found = await store.health_history(name, offset + limit + 1, replica=replica)
        page = found[offset : offset + limit]
        return success(
            {
                "service_id": await service_id_of(deps, name),
                "name": name,
                "checks": [check_record_to_dict(record) for record in page],
                "page": page_of(limit, offset, has_next=len(found) > offset + limit),
            }
        )

    return blueprint
