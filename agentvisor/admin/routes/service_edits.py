"""Endpoints that change which services run: register, reconfigure, scale, remove.

Each is an edit of agentvisor.toml applied through the reload path
(``editing.edit_and_apply``), so a restart of agentvisor runs exactly what
was registered. Bodies are checked and mapped from the API's names to the
file's by their declarations in ``api.bodies``; a config that would not
validate is a 422 ``CONFIG_INVALID`` listing every problem, and the file is
left as it was.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import trio
from quart import Blueprint, Response, request

from agentvisor.admin.editing import edit_and_apply
from agentvisor.admin.errors import success
from agentvisor.admin.lookup import request_source, resolve_service
from agentvisor.admin.lookup import service_id as service_id_of
from agentvisor.admin.params import OPERATION_TIMEOUT
from agentvisor.admin.routes.services import (
    describe_service,
)
from agentvisor.api.answers import (
    Applied,
    ConfigUpdateResult,
    RegisterResult,
    Replicas,
    ScaleResult,
    UnregisterResult,
    dump,
)
from agentvisor.api.bodies import CONFIG_CHANGES, REGISTER, SCALE
from agentvisor.api.check import parse_json_object
from agentvisor.errors import InvalidRequest, ServiceAutoscaled
from agentvisor.supervise.instance import InstanceGone
from agentvisor.supervise.states import ProcessState

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps
    from agentvisor.supervise.instance import Instance
    from agentvisor.supervise.reloading import ReloadResult

AT_REST = (ProcessState.STOPPED, ProcessState.EXITED, ProcessState.FATAL)


def check_agent_file(deps: AdminDeps, field: str, path: str) -> None:
    """An agent file must exist when it is registered (relative to the config's directory).

    A path with a ``${VAR}`` reference is resolved only when loaded, so it is
    left to the worker to report.
    """
    if "$" in path:
        return
    base = os.path.dirname(os.path.abspath(deps.config_path or "."))
    full = os.path.join(base, os.path.expanduser(path))
    if not os.path.isfile(full):
        where = "" if os.path.isabs(path) else f" (looked for {full})"
        raise InvalidRequest(
            f"Field '{field}': agent file {path!r} not found{where}; "
            "give a path relative to the config file's directory, or an absolute one",
            field=field,
            path=full,
        )


def _what_happened(name: str, result: ReloadResult) -> Applied:
    plan = result.plan
    if name in plan.restart:
        return "restarted"
    if name in plan.scaled:
        return "scaled"
    if name in plan.live:
        return "updated live"
    return "unchanged"


async def _wait_at_rest(instances: list[Instance], timeout: float) -> bool:  # noqa: ASYNC109
    """Whether every instance stopped (or its task ended) within ``timeout``."""
    with trio.move_on_after(timeout):
        for instance in instances:
            while not instance.closed and instance.state not in AT_REST:
                try:
                    await instance.wait_until(lambda machine: machine.state in AT_REST)
                except InstanceGone:  # removed and its task ended: at rest too
                    break
        return True
    return False


def service_edits_blueprint(deps: AdminDeps) -> Blueprint:
    blueprint = Blueprint("service_edits", __name__)

    @blueprint.post("/services")
    async def register() -> tuple[Response, int]:
        body = REGISTER.check(parse_json_object(await request.get_data()))
        name, settings = REGISTER.load(body)
        if "agent" in settings:
            field = "agent_factory_path" if "agent_factory_path" in body else "agent"
            check_agent_file(deps, field, settings["agent"])
        source = request_source(request.headers)
        applied = await edit_and_apply(
            deps,
            lambda editor: editor.register_agent(name, settings),
            action="register",
            target=name,
            source=source,
            describe=f"registered {name}",
        )
        detail = await describe_service(deps, name)
        endpoint = detail.instances[0].endpoint if detail.instances else None
        answer = RegisterResult(
            service_id=detail.service_id,
            name=name,
            message="Service registered successfully",
            endpoint=endpoint,
            autostart=deps.supervisor.service(name).config.autostart,
            service=detail,
            reload=applied.result.to_dict(),
        )
        return success(dump(answer), 201)

    @blueprint.put("/services/<service_id>/config")
    async def update_config(service_id: str) -> tuple[Response, int]:
        name = await resolve_service(deps, service_id)
        changes = CONFIG_CHANGES.parse(await request.get_data())
        if isinstance(changes.get("agent"), str):
            check_agent_file(deps, "agent", changes["agent"])
        timeout = OPERATION_TIMEOUT.parse(request.args)
        applied = await edit_and_apply(
            deps,
            lambda editor: editor.update_agent(name, changes),
            action="update",
            target=name,
            source=request_source(request.headers),
            describe=f"changed {', '.join(sorted(changes))} of {name}",
            timeout=timeout,
        )
        result = applied.result
        happened = _what_happened(name, result)
        answer = ConfigUpdateResult(
            service_id=await service_id_of(deps, name),
            name=name,
            changed=happened != "unchanged",
            applied=happened,
            restarted=happened == "restarted",
            settled=applied.settled,
            failed=list(result.failed),
            service=await describe_service(deps, name),
            reload=result.to_dict(),
        )
        return success(dump(answer), 200 if applied.settled else 202)

    @blueprint.post("/services/<service_id>/scale")
    async def scale(service_id: str) -> tuple[Response, int]:
        name = await resolve_service(deps, service_id)
        replicas = SCALE.parse(await request.get_data())
        agent = deps.supervisor.service(name).config
        if agent.autoscale is not None:
            raise ServiceAutoscaled(
                f"Service '{name}' is autoscaled ({agent.autoscale.min} to "
                f"{agent.autoscale.max} replicas, {deps.supervisor.service(name).desired_replicas}"
                " now); change autoscale.min / autoscale.max with PUT /services/{id}/config "
                "instead",
                service=name,
                min=agent.autoscale.min,
                max=agent.autoscale.max,
            )
        previous = agent.replicas
        applied = await edit_and_apply(
            deps,
            lambda editor: editor.update_agent(name, {"replicas": replicas}),
            action="scale",
            target=name,
            source=request_source(request.headers),
            describe=f"scaled {name} from {previous} to {replicas} replicas",
        )
        answer = ScaleResult(
            service_id=await service_id_of(deps, name),
            name=name,
            replicas=Replicas(previous=previous, desired=replicas),
            service=await describe_service(deps, name),
            reload=applied.result.to_dict(),
        )
        return success(dump(answer))

    @blueprint.delete("/services/<service_id>")
    async def unregister(service_id: str) -> tuple[Response, int]:
        name = await resolve_service(deps, service_id)
        timeout = OPERATION_TIMEOUT.parse(request.args)
        stable_id = await service_id_of(deps, name)
        instances = deps.supervisor.instances(name)
        started = time.monotonic()
        applied = await edit_and_apply(
            deps,
            lambda editor: editor.delete_agent(name),
            action="unregister",
            target=name,
            source=request_source(request.headers),
            describe=f"unregistered {name}",
        )
        # The supervisor drains and stops the removed instances in its own nursery.
        stopped = await _wait_at_rest(instances, timeout)
        answer = UnregisterResult(
            service_id=stable_id,
            name=name,
            removed=True,
            stopped=stopped,
            elapsed_seconds=round(time.monotonic() - started, 3),
            reload=applied.result.to_dict(),
        )
        return success(dump(answer), 200 if stopped else 202)

    return blueprint
