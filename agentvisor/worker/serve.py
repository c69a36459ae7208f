"""Run one agent file as a worker: load it, serve it with Hypercorn, shut down on SIGTERM.

``run(options)`` is the whole life of ``python -m agentvisor.worker`` and of
``agentvisor serve``: import the agent file (a failure is one line on stderr
and exit status 2), open the session store, bind, serve ``/health`` (503
while starting) while ``create_agent()`` runs, then the agent protocol. The
event loop is the one ``--runtime`` names: asyncio (agents built on asyncio
libraries just work) or trio, each with Hypercorn's matching server.

SIGTERM or SIGINT starts the graceful shutdown: ``/health`` answers 503 and
new WebSocket handshakes are refused, running turns may finish for up to
``shutdown_timeout`` and are then cancelled, the sessions that changed are
saved (they are not closed: another replica resumes them), attached clients get
a close frame (1012, so a router fails over), the store is flushed, and the
process exits 0. A second
signal stops at once (exit 1).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import sniffio
from anyio.abc import TaskGroup, TaskStatus
from hypercorn.config import Config as HypercornConfig

from agentvisor.worker.app import WorkerApp
from agentvisor.worker.load import (
    EXIT_LOAD_ERROR,
    AgentFactory,
    AgentLoadError,
    agent_factory,
    load_module,
)
from agentvisor.worker.options import WorkerOptions
from agentvisor.worker.sessions import SessionManager, SessionSettings
from agentvisor.worker.store import SessionStore, StoreError, open_session_store

log = logging.getLogger("agentvisor.worker")

_E = TypeVar("_E", bound=BaseException)

EXIT_OK = 0
EXIT_FORCED = 1
GRACEFUL_CLOSE_TIMEOUT = 3.0  # for clients to answer the close frames at shutdown


class ListenError(Exception):
    """The worker's address cannot be bound."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port)."""
    host = host.strip("[]")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as error:
        raise ListenError(f"cannot listen on {host}:{port}: {error.strerror or error}") from error
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {error.strerror or error}") from error
    return sock


def hypercorn_config(fd: int, options: WorkerOptions) -> HypercornConfig:
    """Hypercorn's config for serving on the listening socket ``fd`` (Hypercorn closes it)."""
    config = HypercornConfig()
    config.bind = [f"fd://{fd}"]
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    config.graceful_timeout = GRACEFUL_CLOSE_TIMEOUT
    # Frames above max_message_bytes get MESSAGE_TOO_LARGE and the connection stays
    # open; only frames far above it make Hypercorn close the connection (1009).
    config.websocket_max_message_size = max(16 * 1024 * 1024, 4 * options.max_message_bytes)
    config.include_server_header = False
    return config


async def _serve_hypercorn(
    app: WorkerApp, config: HypercornConfig, shutdown_trigger: Callable[[], Awaitable[Any]]
) -> None:
    if sniffio.current_async_library() == "trio":
        from hypercorn.trio import serve as serve_trio

        await serve_trio(app, config, shutdown_trigger=shutdown_trigger)
    else:
        from hypercorn.asyncio import serve as serve_asyncio

        await serve_asyncio(app, config, shutdown_trigger=shutdown_trigger)


def _host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class Worker:
    """One worker's parts, from bind to shutdown; ``run`` returns once it has shut down.

    ``announce`` gets two lines for the process's stdout: one when the port is
    bound (``/health`` answers 503 while the agent is created), one when the
    agent is served.
    """

    def __init__(
        self,
        options: WorkerOptions,
        create_agent: AgentFactory,
        info: Mapping[str, Any] | None = None,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        self.options = options
        self.create_agent = create_agent
        self.app = WorkerApp(
            ws_path=options.ws_path, max_message_bytes=options.max_message_bytes, info=info
        )
        self._announce = announce or (lambda line: None)
        self._shutdown_requested = anyio.Event()
        self._stop_serving = anyio.Event()
        self._starting = anyio.CancelScope()

    @property
    def shutdown_requested(self) -> bool:
        return self._shutdown_requested.is_set()

    def request_shutdown(self) -> None:
        """Start the graceful shutdown (while the agent is being created: stop creating it)."""
        self._shutdown_requested.set()
        self._starting.cancel()

    async def run(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until ``request_shutdown``; ``task_status.started(port)`` once ready.

        Raises ``AgentLoadError`` if ``create_agent()`` fails, ``StoreError`` if the
        session store cannot be opened, ``ListenError`` if the address cannot be bound.
        """
        options = self.options
        settings = SessionSettings(
            max_sessions=options.max_sessions,
            session_timeout=options.session_timeout,
            on_busy=options.on_busy,
            replay_limit=options.replay_limit,
        )
        async with open_session_store(options) as store:
            sock = await anyio.to_thread.run_sync(bind_socket, options.host, options.port)
            port = int(sock.getsockname()[1])
            config = hypercorn_config(sock.detach(), options)
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(_serve_hypercorn, self.app, config, self._stop_serving.wait)
                self._announce(
                    f"agentvisor worker: listening on http://{_host_in_url(options.host)}:{port}, "
                    f"creating the agent of "
                    f"{options.agent_file}"
                )
                failure = await self._serve(task_group, store, settings, port, task_status)
            if failure is not None:
                raise failure

    async def _serve(
        self,
        task_group: TaskGroup,
        store: SessionStore,
        settings: SessionSettings,
        port: int,
        task_status: TaskStatus[int],
    ) -> AgentLoadError | None:
        """Create the agent, then serve it until shutdown; the load error if it failed.

        Hypercorn is stopped through its shutdown trigger in every case, so it
        cleans up after itself even when the agent never became ready.
        """
        try:
            with self._starting:
                agent = await self.create_agent()
        except AgentLoadError as error:
            self._stop_serving.set()
            return error
        if self._starting.cancelled_caught:  # shut down while starting
            self._stop_serving.set()
            return None
        manager = SessionManager(agent, store, settings)
        await task_group.start(manager.run)
        self.app.ready(manager)
        self._announce(
            f"agentvisor worker: serving {self.options.agent_file} on "
            f"ws://{_host_in_url(self.options.host)}:{port}{self.options.ws_path} "
            f"(runtime {sniffio.current_async_library()}, pid {os.getpid()})"
        )
        task_status.started(port)
        await self._shutdown_requested.wait()
        await self._shut_down(manager)
        return None

    async def _shut_down(self, manager: SessionManager) -> None:
        self.app.phase = self.app.phase.SHUTTING_DOWN
        sessions = len(manager.sessions)
        log.info(
            "shutting down: %d sessions, %d turns running", sessions, manager.stats.turns_running
        )
        await manager.shutdown(self.options.shutdown_timeout)
        self.app.close_connections()
        self._stop_serving.set()


async def _watch_signals(worker: Worker, forced: list[bool], scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if worker.shutdown_requested:
                log.warning("second %s: stopping now", signal.Signals(signum).name)
                forced.append(True)
                scope.cancel()
                return
            log.info("%s: shutting down gracefully", signal.Signals(signum).name)
            worker.request_shutdown()


def _announce(line: str) -> None:
    print(line, flush=True)


async def _main(options: WorkerOptions, create_agent: AgentFactory) -> int:
    info = {
        "agent": os.path.basename(options.agent_file),
        "service": os.environ.get("AGENTVISOR_SERVICE"),
        "replica": os.environ.get("AGENTVISOR_REPLICA"),
        "pid": os.getpid(),
    }
    info = {key: value for key, value in info.items() if value}
    worker = Worker(options, create_agent, info, announce=_announce)
    forced: list[bool] = []
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(_watch_signals, worker, forced, task_group.cancel_scope)
        await worker.run()
        task_group.cancel_scope.cancel()
    return EXIT_FORCED if forced else EXIT_OK


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("agentvisor")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def run(options: WorkerOptions) -> int:
    """The whole life of one worker process; returns its exit status."""
    configure_logging()
    try:
        create_agent = agent_factory(load_module(options.agent_file), options.agent_file)
    except AgentLoadError as error:
        print(error.line, file=sys.stderr, flush=True)
        return EXIT_LOAD_ERROR
    try:
        return anyio.run(_main, options, create_agent, backend=options.runtime.value)
    except* AgentLoadError as group:
        print(_first(group, AgentLoadError).line, file=sys.stderr, flush=True)
    except* StoreError as group:
        print(f"agentvisor: {_first(group, StoreError)}", file=sys.stderr, flush=True)
    except* ListenError as group:
        print(f"agentvisor: {_first(group, ListenError)}", file=sys.stderr, flush=True)
    return EXIT_LOAD_ERROR


def _first(group: BaseExceptionGroup[Any], kind: type[_E]) -> _E:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first(error, kind)
        if isinstance(error, kind):
            return error
    raise group
