"""agentvisor from its composition root (``Daemon``), in this process: for autoscaling tests.

Everything the daemon composes is real: the supervisor starting agent
workers (agentvisor's own runtime serving ``tests/agents/ledger.py``), the
router on 127.0.0.1 port 0, the state store in ``tmp_path`` and the admin API
on 127.0.0.1 port 0. Clients are the ``websockets`` library
(``tests.integration.router.harness.Client``) and httpx.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from agentvisor.config.load import load_config
from agentvisor.daemon import Daemon
from agentvisor.router.server import Router
from agentvisor.supervise.supervisor import Supervisor
from agentvisor.worker.store import open_sqlite_store

LEDGER = Path(__file__).resolve().parents[2] / "agents" / "ledger.py"
#: Bounds a whole daemon's shutdown (workers get SIGTERM, then SIGKILL).
SHUTDOWN_DEADLINE = 30.0


def scaled_config(path: Path, autoscale: str, *, startsecs: float = 0, agent: str = "") -> Path:
    """One autoscaled agent, ``chat``, serving the ledger agent; ``autoscale`` is the body
    of ``[agents.chat.autoscale]``, ``agent`` more lines of ``[agents.chat]``."""
    low = random.randrange(10000, 32000, 500)  # below the ephemeral ports; rarely the same
    path.write_text(
        f"""
[supervisor]
state_dir = "state"
sample_interval = 0.5
port_range = [{low}, {low + 499}]
shutdown_timeout = 20

[admin]
bind = ["127.0.0.1:0"]

[router]
bind = ["127.0.0.1:0"]
default_strategy = "least_connections"

[agents.chat]
agent = "{LEDGER}"
startsecs = {startsecs}
drain_timeout = 15
health.interval = 0.5
{agent}

[agents.chat.autoscale]
{autoscale}
"""
    )
    return path


@attrs.frozen
class Running:
    daemon: Daemon
    url: str  # ws://127.0.0.1:PORT/ws
    api: str  # http://127.0.0.1:PORT

    @property
    def supervisor(self) -> Supervisor:
        assert self.daemon.supervisor is not None
        return self.daemon.supervisor

    @property
    def router(self) -> Router:
        assert self.daemon.router is not None
        return self.daemon.router

    def routable(self) -> list[str]:
        """Instances the router may send new clients to, by id."""
        return sorted(e.instance_id for e in self.supervisor.endpoints() if e.routable)

    def replicas(self) -> list[int]:
        """Replicas of ``chat`` that exist (started, starting or draining away), by number."""
        service = self.supervisor.services_by_name()["chat"]
        return sorted({i.replica for i in service.instances} | service.retiring)

    async def wait(self, predicate: Callable[[], bool]) -> None:
        """Until ``predicate()`` holds, re-checked on every bus event (the caller bounds it)."""
        async with self.daemon.bus.subscribe() as events:
            while not predicate():
                with trio.move_on_after(0.1):
                    await events.receive()

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.api, timeout=10)

    async def stored_history(self, session_id: str) -> list[str]:
        """The user messages of a session as the shared session store holds them."""
        path = Path(self.supervisor.config.base_dir) / "state" / "sessions" / "chat.sqlite3"
        async with open_sqlite_store(str(path)) as store:
            stored = await store.load(session_id)
        assert stored is not None, session_id
        return [m["content"] for m in stored.history if m.get("role") == "user"]


@asynccontextmanager
async def running_daemon(config_path: Path) -> AsyncIterator[Running]:
    daemon = Daemon(load_config(config_path))
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            admin = next(b for b in daemon.admin_binds if b.startswith("http://"))
            try:
                yield Running(daemon, daemon.router_binds[0] + "/ws", admin)
            finally:
                scope.deadline = trio.current_time() + SHUTDOWN_DEADLINE
                daemon.request_shutdown()


def answer_text(answer: dict[str, Any]) -> tuple[str, str]:
    """A ledger answer split into the conversation it saw and the replica that answered."""
    text, _, replica = str(answer["content"]).rpartition(" @ ")
    return text, replica
