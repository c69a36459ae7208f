"""Real workers, a real Router on 127.0.0.1:0, and an independent client (``websockets``).

Most tests route to agent processes started once per module
(``tests/children/agent_server.py``) through ``StaticSource``, a stand-in for
the supervisor's ``config`` and ``endpoints()``; the failover and rolling
restart tests run a real ``Supervisor`` instead. The client is the
``websockets`` library's sync client, driven from trio through threads, so
the router is never tested against its own code; every blocking call gets a
timeout because a thread cannot be cancelled.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from agentvisor.config.load import load_config
from agentvisor.config.model import Config
from agentvisor.events import EventBus
from agentvisor.router.server import Router
from agentvisor.supervise.registry import Endpoint

CHILDREN = Path(__file__).resolve().parents[2] / "children"
AGENT = CHILDREN / "agent_server.py"
TIMEOUT = 10.0


@attrs.frozen
class Worker:
    process: subprocess.Popen[str]
    port: int
    name: str


def start_worker(store: Path, name: str, *extra: str) -> Worker:
    process = subprocess.Popen(
        [sys.executable, str(AGENT), "--port", "0", "--store", str(store), "--name", name, *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return Worker(process, port, name)


@contextmanager
def running_workers(store: Path, names: list[str], *extra: str) -> Iterator[dict[str, Worker]]:
    workers: dict[str, Worker] = {}
    try:
        for name in names:
            workers[name] = start_worker(store, name, *extra)
        yield workers
    finally:
        for worker in workers.values():
            worker.process.kill()
            worker.process.wait()
            if worker.process.stdout is not None:
                worker.process.stdout.close()


def endpoint(instance_id: str, port: int, **changes: Any) -> Endpoint:
    service, _, replica = instance_id.partition(":")
    fields: dict[str, Any] = {
        "instance_id": instance_id,
        "service": service,
        "replica": int(replica or 0),
        "host": "127.0.0.1",
        "port": port,
        "ws_path": "/",
        "routable": True,
        "draining": False,
        "weight": 1.0,
        "max_sessions": 100,
        "sessions": 0,
        "tags": (),
    }
    fields.update(changes)
    return Endpoint(**fields)


def write_config(path: Path, *, router: str = "", agents: str = "", routes: str = "") -> Config:
    """A valid config whose agents are never started (``StaticSource`` stands in)."""
    path.write_text(
        f"""
[supervisor]
state_dir = "state"

[admin]
bind = []

[router]
bind = ["127.0.0.1:0"]
{router}

{agents}

{routes}
"""
    )
    return load_config(path)


def agent_table(
    name: str, *, tags: tuple[str, ...] = (), extra: str = "", notices: bool = True
) -> str:
    """A ``command =`` stand-in for a worker that speaks the agent protocol (the children's
    agent server): with ``notices`` it opts in to the router's notices and failover."""
    opt_in = "router_notices = true\n" if notices else ""
    return (
        f'[agents.{name}]\ncommand = ["true"]\ntags = {json.dumps(list(tags))}\n{opt_in}{extra}\n'
    )


@attrs.define
class StaticSource:
    """The supervisor as the router sees it: a config and a list of endpoints."""

    config: Config
    endpoint_list: list[Endpoint]

    def endpoints(self) -> list[Endpoint]:
        return list(self.endpoint_list)

    def set(self, instance_id: str, **changes: Any) -> None:
        self.endpoint_list = [
            attrs.evolve(e, **changes) if e.instance_id == instance_id else e
            for e in self.endpoint_list
        ]


@attrs.frozen
class Running:
    router: Router
    url: str  # ws://127.0.0.1:PORT/ws
    base: str  # ws://127.0.0.1:PORT
    bus: EventBus


@asynccontextmanager
async def running_router(
    source: Any, bus: EventBus | None = None, **options: Any
) -> AsyncIterator[Running]:
    bus = bus or EventBus()
    router = Router(source, bus, **options)
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(router.run)
        path = source.config.router.path
        try:
            yield Running(router, binds[0] + (path if path != "*" else "/ws"), binds[0], bus)
        finally:
            nursery.cancel_scope.cancel()


class Client:
    """A ``websockets`` sync client driven from trio (each call in a thread)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, url: str, **options: Any) -> Client:
        options.setdefault("open_timeout", TIMEOUT)
        options.setdefault("compression", None)
        options.setdefault("max_size", None)
        options.setdefault("legacy", True)  # we manage the lifetime across threads
        ws = await trio.to_thread.run_sync(partial(connect, url, **options))
        return cls(ws)

    async def send(self, event: dict[str, Any] | str | bytes) -> None:
        data = json.dumps(event) if isinstance(event, dict) else event
        await trio.to_thread.run_sync(self.ws.send, data)

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        raw = await trio.to_thread.run_sync(partial(self.ws.recv, timeout))
        event: dict[str, Any] = json.loads(raw)
        self.received.append(event)
        return event

    async def recv_until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        with trio.fail_after(timeout):
            while True:
                event = await self.recv(timeout)
                if predicate(event):
                    return event

    async def event(self, name: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        return await self.recv_until(lambda e: e.get("event") == name, timeout)

    async def ask(self, content: str, session_id: str | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"event": "user.message", "content": content}
        if session_id is not None:
            message["session_id"] = session_id
        await self.send(message)
        return await self.event("agent.final_answer")

    async def closed(self, timeout: float = TIMEOUT) -> tuple[int | None, str]:
        """Read until the router closes; the close code and reason received."""
        with trio.fail_after(timeout):
            while True:
                try:
                    raw = await trio.to_thread.run_sync(partial(self.ws.recv, timeout))
                except ConnectionClosed as closed:
                    frame = closed.rcvd
                    return (frame.code, frame.reason) if frame is not None else (None, "")
                except TimeoutError:
                    continue
                if isinstance(raw, str):
                    self.received.append(json.loads(raw))

    async def close(self) -> None:
        await trio.to_thread.run_sync(partial(self.ws.close))


@asynccontextmanager
async def client(url: str, **options: Any) -> AsyncIterator[Client]:
    connection = await Client.connect(url, **options)
    try:
        yield connection
    finally:
        await connection.close()
