"""System endpoints: ``/health``, ``/api/v1/info``, ``/api/v1/reload``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from quart import Blueprint, Response, request

from agentvisor.admin.errors import success
from agentvisor.admin.lookup import request_source
from agentvisor.admin.params import Flag

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps


def iso_time(at: float | None) -> str | None:
    """Wall-clock seconds as ISO 8601 UTC (``2024-01-01T10:00:00Z``), as in the seed."""
    if at is None:
        return None
    stamp = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
    return stamp.replace("+00:00", "Z")


DRY_RUN = Flag(
    "dry_run",
    "Only validate the file with agentvisor's environment and answer what a reload would "
    "do; change nothing and record nothing",
)
RELOAD_PARAMETERS = (DRY_RUN,)


def system_blueprint(deps: AdminDeps) -> Blueprint:
    blueprint = Blueprint("system", __name__)

    @blueprint.get("/health")
    async def health() -> tuple[dict[str, Any], int]:
        # A probe for load balancers and systemd, outside the /api/v1 envelope.
        uptime = round(time.time() - deps.started_at, 3)
        return {"status": "ok", "version": deps.version, "uptime_seconds": uptime}, 200

    @blueprint.get("/api/v1/info")
    async def info() -> tuple[Response, int]:
        now = time.time()
        return success(
            {
                "name": "agentvisor",
                "version": deps.version,
                "pid": deps.pid,
                "config_path": deps.config_path,
                "started_at": iso_time(deps.started_at),
                "uptime_seconds": round(now - deps.started_at, 3),
                "binds": list(deps.binds),
                "auth": deps.token is not None,
                "services": len(deps.supervisor.services()),
            }
        )

    @blueprint.post("/api/v1/reload")
    async def reload() -> tuple[Response, int]:
        if DRY_RUN.parse(request.args):
            return success((await deps.supervisor.preview_reload()).to_dict())
        result = await deps.supervisor.reload(source=request_source(request.headers))
        return success(result.to_dict())

    return blueprint
