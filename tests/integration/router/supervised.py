"""A real Supervisor running agent workers, and a Router over it: for failover and drain tests."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from agentvisor.config.load import load_config
from agentvisor.events import EventBus
from agentvisor.router.server import Router
from agentvisor.supervise.process import open_launcher
from agentvisor.supervise.supervisor import Supervisor
from tests.integration.router.harness import AGENT

DEADLINE = 20.0


def agent_config(
    path: Path,
    *,
    replicas: int = 2,
    router: str = "",
    autorestart: str = "always",
    slow: float = 1.0,
    agent_file: Path | None = None,
) -> Path:
    """One agent, ``chat``, of ``replicas`` workers sharing a session store.

    The workers are ``tests/children/agent_server.py``, or agentvisor's own
    worker runtime serving ``agent_file``.
    """
    low = random.randrange(10000, 32000, 500)  # below the ephemeral ports; rarely the same
    command = json.dumps(
        [
            sys.executable,
            str(AGENT),
            "--port",
            "{port}",
            "--store",
            str(path.parent / "sessions"),
            "--name",
            "chat-{replica}",
            "--slow",
            str(slow),
        ]
    )
    path.write_text(
        f"""
[supervisor]
state_dir = "state"
sample_interval = 0.5
port_range = [{low}, {low + 499}]

[admin]
bind = []

[router]
bind = ["127.0.0.1:0"]
{router}

[agents.chat]
{f'agent = "{agent_file}"' if agent_file else f"command = {command}{chr(10)}router_notices = true"}
replicas = {replicas}
startsecs = 0
autorestart = "{autorestart}"
backoff_initial = 0.1
health.interval = 0.5
"""
    )
    return path


@attrs.frozen
class Supervised:
    supervisor: Supervisor
    router: Router
    url: str

    def pid_of(self, instance_id: str) -> int:
        name, _, replica = instance_id.partition(":")
        pid = self.supervisor.instances(name)[int(replica)].pid
        assert pid is not None
        return pid

    def instance(self, instance_id: str) -> Any:
        name, _, replica = instance_id.partition(":")
        return self.supervisor.instances(name)[int(replica)]

    async def wait(self, predicate: Callable[[], bool]) -> None:
        """Until ``predicate()`` holds, re-checked on every bus event (the caller bounds it)."""
        async with self.supervisor.bus.subscribe() as events:
            while not predicate():
                with trio.move_on_after(0.1):
                    await events.receive()

    def routable(self) -> list[str]:
        return [e.instance_id for e in self.supervisor.endpoints() if e.routable]


@asynccontextmanager
async def supervised(config_path: Path, **router_options: Any) -> AsyncIterator[Supervised]:
    bus = EventBus()
    async with open_launcher() as launcher, trio.open_nursery() as nursery:
        supervisor = Supervisor(load_config(config_path), bus=bus, launcher=launcher)
        await nursery.start(supervisor.run)
        router = Router(supervisor, bus, **router_options)
        binds: list[str] = await nursery.start(router.run)
        running = Supervised(supervisor, router, binds[0] + "/ws")
        desired = supervisor.config.agents["chat"].replicas
        try:
            with trio.fail_after(DEADLINE):
                await running.wait(lambda: len(running.routable()) == desired)
            yield running
        finally:
            with trio.move_on_after(10):
                await supervisor.shutdown()
            nursery.cancel_scope.cancel()
