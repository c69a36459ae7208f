"""Service endpoints: list, detail, instances, start / stop / restart.

``{service_id}`` is the stable id or the name (``lookup.resolve_service``).
Shapes follow the seed (``service_id``, ``status``, ``endpoint``, ``stats``,
``health``, ``page``), extended with the supervisor's instances. Editing
endpoints (register, config, scale, delete) are in ``service_edits``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import attrs
import trio
from quart import Blueprint, Response, request

from agentvisor.admin.errors import success
from agentvisor.admin.lookup import request_source, resolve_service, service_ids
from agentvisor.admin.params import LIMIT, OFFSET, OPERATION_TIMEOUT, Choice, Flag, Text
from agentvisor.admin.routes.system import iso_time
from agentvisor.admin.usage import live_stats, service_stats
from agentvisor.api.answers import Action, InstanceList, OperationResult, dump
from agentvisor.api.services import (
    SERVICE_STATES,
    AutoscaleBounds,
    HealthSummary,
    Instance,
    InstanceHealth,
    Page,
    SeedServiceStats,
    ServiceDetail,
    ServiceItem,
    ServiceList,
    ServiceReplicas,
    ServiceStats,
)
from agentvisor.supervise.registry import InstanceView, ServiceView

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps
    from agentvisor.config.model import AgentConfig

SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
MASK = "***"
TAG = Text("tag", "Only services with this tag")
STATUS = Choice("status", "Only services in this state", SERVICE_STATES)
LIST_PARAMETERS = (TAG, STATUS, LIMIT, OFFSET)
FORCE = Flag("force", "Skip draining: restart every instance at once")


def looks_secret(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in SECRET_WORDS)


def masked_environment(environment: dict[str, str]) -> dict[str, str]:
    return {name: MASK if looks_secret(name) else value for name, value in environment.items()}


def config_to_dict(config: AgentConfig) -> dict[str, Any]:
    data = attrs.asdict(config)
    data["environment"] = masked_environment(config.environment)
    return data


def _mb(memory_bytes: int | None) -> float | None:
    return None if memory_bytes is None else round(memory_bytes / 2**20, 1)


def _endpoint(host: str, port: int | None) -> str | None:
    return None if port is None else f"ws://{host}:{port}"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def instance_answer(instance: InstanceView) -> Instance:
    health = instance.health
    return Instance(
        replica=instance.replica,
        state=instance.state,
        pid=instance.pid,
        host=instance.host,
        port=instance.port,
        endpoint=_endpoint(instance.host, instance.port),
        started_at=iso_time(instance.started_at),
        uptime_seconds=None if instance.uptime is None else round(instance.uptime, 3),
        restarts=instance.restarts,
        failures=instance.failures,
        exit_code=instance.exit_code,
        exit_reason=instance.exit_reason,
        stderr_tail=list(instance.stderr_tail),
        next_retry_at=iso_time(instance.next_retry_at),
        reason=instance.reason,
        cpu_percent=instance.cpu_percent,
        memory_bytes=instance.memory_bytes,
        memory_mb=_mb(instance.memory_bytes),
        sessions=instance.sessions,
        health=InstanceHealth(
            status=health.status,
            last_check=iso_time(health.last_check_at),
            response_time_ms=_ms(health.response_time),
            message=health.message,
            consecutive_failures=health.consecutive_failures,
        ),
    )


def service_health(view: ServiceView) -> str:
    """``healthy`` / ``unhealthy`` / ``degraded`` / ``unknown``, or ``disabled``."""
    if not view.config.health.enabled:
        return "disabled"
    statuses = [i.health.status for i in view.instances if i.state == "running"]
    if not statuses or "unknown" in statuses:
        return "unknown"
    if all(status == "healthy" for status in statuses):
        return "healthy"
    if all(status == "unhealthy" for status in statuses):
        return "unhealthy"
    return "degraded"


def _sum_or_none(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def health_summary(view: ServiceView) -> HealthSummary:
    """The seed's ``health`` object: status, the latest check and its response time."""
    checked = [i.health for i in view.instances if i.health.last_check_at is not None]
    last = max(checked, key=lambda health: health.last_check_at or 0.0, default=None)
    return HealthSummary(
        status=service_health(view),
        last_check=iso_time(last.last_check_at) if last else None,
        response_time_ms=_ms(last.response_time) if last else None,
        message=last.message if last else "",
    )


def service_answer(view: ServiceView, *, service_id: str, stats: SeedServiceStats) -> ServiceItem:
    """The list item: the seed's summary plus the instances (for ``status`` tables).

    ``service_id`` is the stable id (the name when there is no store);
    ``stats`` are the seed's connection, session and error figures.
    """
    return ServiceItem(**_item_fields(view, service_id, stats))


def _item_fields(view: ServiceView, service_id: str, stats: SeedServiceStats) -> dict[str, Any]:
    running = [i for i in view.instances if i.state == "running"]
    first = running[0] if running else None
    starts = [i.started_at for i in running if i.started_at is not None]
    memory = _sum_or_none([i.memory_bytes for i in view.instances])
    cpu = _sum_or_none([i.cpu_percent for i in view.instances])
    figures = ServiceStats(
        **attrs.asdict(stats),
        cpu_percent=None if cpu is None else round(cpu, 1),
        memory_bytes=None if memory is None else int(memory),
        memory_mb=_mb(None if memory is None else int(memory)),
        sessions_active=_sum_or_none([i.sessions for i in view.instances]),
    )
    return {
        "service_id": service_id,
        "name": view.name,
        "kind": view.kind,
        "description": view.description,
        "state": view.state,
        "status": view.state,  # the seed's name for it
        "tags": list(view.tags),
        "host": view.config.host,
        "port": view.config.port if first is None else first.port,
        "endpoint": None if first is None else _endpoint(first.host, first.port),
        "started_at": iso_time(min(starts)) if starts else None,
        "replicas": _replicas(view),
        "health": service_health(view),
        "stats": figures,
        "instances": [instance_answer(i) for i in view.instances],
    }


def _replicas(view: ServiceView) -> ServiceReplicas:
    """Desired (the autoscaler's count when autoscaled) and running, with the bounds."""
    bounds = view.config.autoscale
    return ServiceReplicas(
        desired=view.desired_replicas,
        running=view.running,
        autoscale=None if bounds is None else AutoscaleBounds(min=bounds.min, max=bounds.max),
    )


async def describe_service(deps: AdminDeps, name: str) -> ServiceDetail:
    """The detail of a configured service, with its id and stats (store included)."""
    view = deps.supervisor.service(name)
    ids = await service_ids(deps, [name])
    return ServiceDetail(
        **_item_fields(view, ids[name], await service_stats(deps, view)),
        health_check=health_summary(view),
        config=config_to_dict(view.config),
        autoscale=deps.supervisor.autoscaler.status(name),
    )


def services_blueprint(deps: AdminDeps) -> Blueprint:
    blueprint = Blueprint("services", __name__)

    @blueprint.get("/services")
    async def list_services() -> tuple[Response, int]:
        args = request.args
        tag = TAG.parse(args)
        status = STATUS.parse(args)
        limit = LIMIT.parse(args)
        offset = OFFSET.parse(args)
        views = [
            view
            for view in deps.supervisor.services()
            if (tag is None or tag in view.tags) and status in (None, view.state)
        ]
        page = views[offset : offset + limit]
        ids = await service_ids(deps, [view.name for view in page])
        answer = ServiceList(
            services=[
                service_answer(view, service_id=ids[view.name], stats=live_stats(deps, view))
                for view in page
            ],
            total=len(views),
            page=Page(limit=limit, offset=offset, has_next=offset + limit < len(views)),
        )
        return success(dump(answer))

    @blueprint.get("/services/<service_id>")
    async def show_service(service_id: str) -> tuple[Response, int]:
        return success(dump(await describe_service(deps, await resolve_service(deps, service_id))))

    @blueprint.get("/services/<service_id>/instances")
    async def list_instances(service_id: str) -> tuple[Response, int]:
        name = await resolve_service(deps, service_id)
        view = deps.supervisor.service(name)
        answer = InstanceList(
            service_id=(await service_ids(deps, [name]))[name],
            name=name,
            instances=[instance_answer(i) for i in view.instances],
            total=len(view.instances),
        )
        return success(dump(answer))

    async def operate(service_id: str, action: Action) -> tuple[Response, int]:
        supervisor = deps.supervisor
        name = await resolve_service(deps, service_id)  # 404 before anything is touched
        source = request_source(request.headers)
        timeout = OPERATION_TIMEOUT.parse(request.args)
        force = FORCE.parse(request.args)
        started = time.monotonic()
        with trio.move_on_after(timeout) as waited:
            if action == "start":
                await supervisor.start(name, source=source)
            elif action == "stop":
                await supervisor.stop(name, source=source)
            else:
                await supervisor.restart(name, source=source, force=force)
        settled = not waited.cancelled_caught
        stable_id = (await service_ids(deps, [name]))[name]
        view = supervisor.service(name)
        answer = OperationResult(
            action=action,
            service_id=stable_id,
            name=name,
            settled=settled,
            elapsed_seconds=round(time.monotonic() - started, 3),
            service=service_answer(view, service_id=stable_id, stats=live_stats(deps, view)),
        )
        # 202: accepted, still in progress in the supervisor after ``timeout``.
        return success(dump(answer), 200 if settled else 202)

    @blueprint.post("/services/<service_id>/start")
    async def start_service(service_id: str) -> tuple[Response, int]:
        return await operate(service_id, "start")

    @blueprint.post("/services/<service_id>/stop")
    async def stop_service(service_id: str) -> tuple[Response, int]:
        return await operate(service_id, "stop")

    @blueprint.post("/services/<service_id>/restart")
    async def restart_service(service_id: str) -> tuple[Response, int]:
        return await operate(service_id, "restart")

    return blueprint
