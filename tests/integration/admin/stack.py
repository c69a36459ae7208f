"""The admin API over a real Supervisor and a real StateStore, for the editing and history tests.

``harness.running_admin`` composes the supervisor and the API; this adds the
state store (recording the bus, as the daemon does) so that stable ids, the
audit log and the health history are there. Everything is real: processes,
Hypercorn on 127.0.0.1 port 0 and a unix socket, SQLite in ``tmp_path``.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio
import trio.testing

from agentvisor import __version__
from agentvisor.admin.app import AdminDeps, AdminLimits
from agentvisor.admin.serve import AdminServer
from agentvisor.config.load import load_config
from agentvisor.events import EventBus
from agentvisor.store.writer import StateStore
from agentvisor.supervise.process import open_launcher
from agentvisor.supervise.supervisor import Supervisor
from tests.integration.admin.harness import Admin

DEADLINE = 30


@attrs.frozen
class Stack:
    admin: Admin
    store: StateStore | None

    @property
    def supervisor(self) -> Supervisor:
        return self.admin.supervisor

    def client(self, source: str | None = None) -> httpx.AsyncClient:
        """Over the unix socket (trusted: no token), optionally claiming a source."""
        transport = httpx.AsyncHTTPTransport(uds=self.admin.socket)
        headers = {"X-Agentvisor-Source": source} if source else {}
        return httpx.AsyncClient(
            base_url="http://agentvisor", transport=transport, headers=headers, timeout=30
        )

    async def settle(self) -> None:
        """Every event published so far is written to the store."""
        assert self.store is not None
        await trio.testing.wait_all_tasks_blocked()
        await self.store.flush()


@asynccontextmanager
async def running_stack(
    config_path: Path, *, store: bool = True, limits: AdminLimits | None = None
) -> AsyncIterator[Stack]:
    config = load_config(config_path)
    bus = EventBus()
    async with open_launcher() as launcher, trio.open_nursery() as nursery:
        state: StateStore | None = None
        if store:
            state = StateStore(str(config_path.parent / "state.db"), retention_days=7)
            await nursery.start(state.run)
            await nursery.start(state.consume, bus)
        supervisor = Supervisor(config, bus=bus, launcher=launcher)
        await nursery.start(supervisor.run)
        deps = AdminDeps(
            supervisor=supervisor,
            version=__version__,
            pid=os.getpid(),
            started_at=time.time(),
            config_path=config.source,
            token=config.admin.token,
            store=state,
        )
        if limits is not None:
            deps.limits = limits
        binds: list[str] = await nursery.start(AdminServer(deps, config.admin, config.base_dir).run)
        url = next(bind for bind in binds if bind.startswith("http://"))
        socket = next(bind for bind in binds if bind.startswith("unix:")).removeprefix("unix:")
        try:
            yield Stack(Admin(supervisor, deps, url, socket, config_path), state)
        finally:
            with trio.move_on_after(10):
                await supervisor.shutdown()
            nursery.cancel_scope.cancel()


def data_of(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is True
    return body["data"]


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code, body
    error: dict[str, Any] = body["error"]
    return error
