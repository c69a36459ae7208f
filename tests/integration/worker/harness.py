"""Drive real workers: in this process (Hypercorn on trio) or as subprocesses, on port 0.

Clients are the independent ``websockets`` library (its threaded sync client,
called from trio through ``trio.to_thread``) and httpx for ``/health`` and
``/stats``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio
from websockets.sync.client import ClientConnection, connect

from agentvisor.worker.load import agent_factory, load_module
from agentvisor.worker.options import WorkerOptions
from agentvisor.worker.serve import Worker
from tests.children import LineReader

AGENTS = Path(__file__).resolve().parents[2] / "agents"
SCRIPTED = AGENTS / "scripted.py"
DEADLINE = 10  # seconds for any one step to happen
READY = re.compile(r"on ws://127\.0\.0\.1:(\d+)/")

Frame = dict[str, Any]


class Client:
    """One WebSocket connection of the ``websockets`` library, used from trio."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def connect(cls, url: str) -> Client:
        ws = await trio.to_thread.run_sync(
            partial(connect, url, open_timeout=DEADLINE, proxy=None, legacy=True)
        )
        return cls(ws)

    async def send(self, frame: Frame | str | bytes) -> None:
        data = frame if isinstance(frame, str | bytes) else json.dumps(frame)
        await trio.to_thread.run_sync(self.ws.send, data)

    async def recv(self, timeout: float = DEADLINE) -> Frame:
        text = await trio.to_thread.run_sync(partial(self.ws.recv, timeout))
        frame: Frame = json.loads(text)
        return frame

    async def recv_until(
        self, event: str, timeout: float = DEADLINE, where: Callable[[Frame], bool] | None = None
    ) -> list[Frame]:
        """Frames up to and including the first ``event`` (any if "") matching ``where``."""
        frames = []
        with trio.fail_after(timeout):
            while True:
                frame = await self.recv(timeout)
                frames.append(frame)
                if (not event or frame["event"] == event) and (where is None or where(frame)):
                    return frames

    async def ask(self, frame: Frame, until: str) -> list[Frame]:
        await self.send(frame)
        return await self.recv_until(until)

    async def create_session(self, **metadata: Any) -> str:
        frames = await self.ask(
            {"event": "user.create_session", "metadata": metadata}, "agent.session_created"
        )
        session_id: str = frames[-1]["session_id"]
        return session_id

    async def turn(self, session_id: str | None, content: str, **extra: Any) -> list[Frame]:
        """Send a message; the frames up to the end of its turn."""
        frame = {"event": "user.message", "content": content, **extra}
        if session_id is not None:
            frame["session_id"] = session_id
        await self.send(frame)
        return await self._until_turn_end()

    async def _until_turn_end(self) -> list[Frame]:
        ends = ("agent.final_answer", "agent.cancelled", "agent.error")
        frames = []
        with trio.fail_after(DEADLINE):
            while True:
                frame = await self.recv()
                frames.append(frame)
                if frame["event"] in ends:
                    return frames

    async def close(self) -> None:
        await trio.to_thread.run_sync(self.ws.close)


@asynccontextmanager
async def open_client(url: str) -> AsyncIterator[Client]:
    client = await Client.connect(url)
    try:
        yield client
    finally:
        with trio.move_on_after(DEADLINE, shield=True):
            await client.close()


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 UTC timestamp of the worker (``...Z``)."""
    assert text.endswith("Z"), text
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0)
    return moment


@attrs.frozen
class Served:
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.http, trust_env=False) as client:
            return await client.get(path)

    async def stats(self) -> Any:
        return (await self.get("/stats")).json()


@asynccontextmanager
async def serving(tmp_path: Path, agent: Path = SCRIPTED, **options: Any) -> AsyncIterator[Served]:
    """A worker in this process (Hypercorn's trio server), shut down gracefully on exit."""
    options.setdefault("shutdown_timeout", 0.5)
    worker_options = WorkerOptions(
        str(agent), port=0, session_store=str(tmp_path / "sessions.sqlite3"), **options
    )
    path = worker_options.agent_file
    worker = Worker(worker_options, agent_factory(load_module(path), path))
    async with trio.open_nursery() as nursery:
        with trio.fail_after(DEADLINE):
            port = await nursery.start(worker.run)
        try:
            yield Served(port)
        finally:
            worker.request_shutdown()


@attrs.frozen
class WorkerProcess(Served):
    process: trio.Process
    stderr_path: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    async def wait(self) -> int:
        with trio.fail_after(DEADLINE):
            return await self.process.wait()

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)


def worker_argv(agent: Path, *args: str, serve_command: bool = False) -> list[str]:
    if serve_command:
        entry = ["-c", "import sys; from agentvisor.cli.daemon import main; sys.exit(main())"]
        return [sys.executable, *entry, "serve", str(agent), *args]
    return [sys.executable, "-m", "agentvisor.worker", str(agent), *args]


@asynccontextmanager
async def worker_process(
    tmp_path: Path,
    *args: str,
    agent: Path = SCRIPTED,
    store: Path | None = None,
    runtime: str = "trio",
    serve_command: bool = False,
    name: str = "worker",
) -> AsyncIterator[WorkerProcess]:
    """``python -m agentvisor.worker`` on port 0, ready; SIGKILLed on exit if still running."""
    store = store or tmp_path / "sessions.sqlite3"
    argv = worker_argv(
        agent,
        "--port",
        "0",
        "--runtime",
        runtime,
        "--session-store",
        str(store),
        *args,
        serve_command=serve_command,
    )
    stderr_path = tmp_path / f"{name}.stderr"
    with stderr_path.open("wb") as stderr:
        process = await trio.lowlevel.open_process(
            argv, stdout=subprocess.PIPE, stderr=stderr, env=dict(os.environ)
        )
    try:
        assert process.stdout is not None
        reader = LineReader(process.stdout)
        with trio.fail_after(DEADLINE):
            line = await reader.line()
            assert line.startswith("agentvisor worker: listening on http://127.0.0.1:"), line
            line = await reader.line()
        match = READY.search(line)
        assert match, line
        yield WorkerProcess(int(match.group(1)), process, stderr_path)
    finally:
        if process.returncode is None:
            process.kill()
        with trio.move_on_after(DEADLINE, shield=True):
            await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()


async def wait_for_stats(served: Served, check: Callable[[Any], bool]) -> Any:
    """Poll ``/stats`` until ``check`` holds (the deadline fails the test)."""
    with trio.fail_after(DEADLINE):
        while True:
            stats = await served.stats()
            if check(stats):
                return stats
            await trio.sleep(0.02)
