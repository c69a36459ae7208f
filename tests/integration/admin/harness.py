"""A real agentvisor core for admin API tests: Supervisor + AdminServer on real sockets."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import httpx
import trio

from agentvisor import __version__
from agentvisor.admin.app import AdminDeps, AdminLimits
from agentvisor.admin.serve import AdminServer
from agentvisor.config.load import load_config
from agentvisor.events import EventBus
from agentvisor.supervise.process import open_launcher
from agentvisor.supervise.supervisor import Supervisor

CHILDREN = Path(__file__).resolve().parents[2] / "children"
TOKEN = "s3cret-token"


def sleeper(name: str, *, replicas: int = 1, tags: tuple[str, ...] = (), extra: str = "") -> str:
    command = json.dumps([sys.executable, str(CHILDREN / "sleeper.py")])
    return (
        f"[agents.{name}]\ncommand = {command}\nreplicas = {replicas}\nstartsecs = 0\n"
        f"tags = {json.dumps(list(tags))}\nhealth.enabled = false\n{extra}\n"
    )


def write_config(
    path: Path, agents: str, *, token: str | None = TOKEN, admin_extra: str = ""
) -> Path:
    """``admin_extra``: more lines of the ``[admin]`` table (``cors_origins = [...]``)."""
    token_line = f'token = "{token}"' if token else ""
    path.write_text(
        f"""
[supervisor]
state_dir = "state"
sample_interval = 0.2
port_range = [40000, 49999]

[admin]
bind = ["127.0.0.1:0", "unix:adm.sock"]
{token_line}
{admin_extra}

{agents}
"""
    )
    return path


@attrs.frozen
class Admin:
    supervisor: Supervisor
    deps: AdminDeps
    url: str  # http://127.0.0.1:PORT
    socket: str  # path of the unix socket
    config_path: Path

    def tcp(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, trust_env=False)

    def unix(self) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(uds=self.socket)
        return httpx.AsyncClient(base_url="http://agentvisor", transport=transport)


@asynccontextmanager
async def running_admin(
    config_path: Path, *, limits: AdminLimits | None = None
) -> AsyncIterator[Admin]:
    """Supervisor and admin API as the daemon composes them; shut down on exit.

    ``limits`` replaces the admin API's defaults (rate limit clock, stream keepalive…).
    """
    config = load_config(config_path)
    async with open_launcher() as launcher, trio.open_nursery() as nursery:
        supervisor = Supervisor(config, bus=EventBus(), launcher=launcher)
        await nursery.start(supervisor.run)
        deps = AdminDeps(
            supervisor=supervisor,
            version=__version__,
            pid=os.getpid(),
            started_at=time.time(),
            config_path=config.source,
            token=config.admin.token,
            metrics_token=config.admin.metrics_token,
        )
        if limits is not None:
            deps.limits = limits
        binds: list[str] = await nursery.start(AdminServer(deps, config.admin, config.base_dir).run)
        url = next(bind for bind in binds if bind.startswith("http://"))
        socket = next(bind for bind in binds if bind.startswith("unix:")).removeprefix("unix:")
        try:
            yield Admin(supervisor, deps, url, socket, config_path)
        finally:
            with trio.move_on_after(10):
                await supervisor.shutdown()
            nursery.cancel_scope.cancel()


async def wait_until(supervisor: Supervisor, predicate: Callable[[], bool]) -> None:
    """Re-check ``predicate`` on every published event (and on sampling); caller bounds it."""
    async with supervisor.bus.subscribe() as events:
        while not predicate():
            with trio.move_on_after(0.2):
                await events.receive()


async def all_running(admin: Admin) -> None:
    supervisor = admin.supervisor
    await wait_until(
        supervisor, lambda: all(view.state == "running" for view in supervisor.services())
    )
