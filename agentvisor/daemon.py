"""The composition root: ``trio.run``, the one root nursery, start order, shutdown.

Start order: pidfile (refuse a second daemon on the same state_dir) → signal
watcher (so no signal is lost) → supervisor (instances created, autostart
agents starting) → router → admin API (listening) → ``READY=1``. The router
and the admin API are imported only once the workers are starting, in a
thread: their imports (quart, flask, hypercorn) are most of the daemon's
start-up CPU, and no worker waits for them. The health checks' and sampler's
clients (httpx, trio-websocket) follow once the API answers. Shutdown is one path
under ``shutdown_timeout``: workers get their stop signal, then SIGKILL to
their groups, then the nursery is cancelled. A second SIGTERM/SIGINT during
shutdown skips the wait.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

import trio

from agentvisor import __version__, sdnotify
from agentvisor.config.load import load_config
from agentvisor.config.model import Config, LogFormat
from agentvisor.errors import AgentvisorError, ConfigInvalid
from agentvisor.events import EventBus
from agentvisor.pidfile import open_pidfile
from agentvisor.store.writer import StateStore
from agentvisor.supervise.autoscaler import Autoscaler
from agentvisor.supervise.process import OSLauncher, open_launcher
from agentvisor.supervise.spec import state_dir
from agentvisor.supervise.supervisor import Supervisor

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps
    from agentvisor.admin.serve import AdminServer
    from agentvisor.cluster.registry import ClusterRegistry
    from agentvisor.router.routing import EndpointSource
    from agentvisor.router.server import Router

log = logging.getLogger("agentvisor")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(config: Config, log_format: LogFormat | None = None) -> None:
    """agentvisor's own loggers at ``log_level``; every library's at WARNING or above.

    ``log_format`` (``agentvisor run --log-format``) overrides ``[supervisor] log_format``.
    """
    handler = logging.StreamHandler(sys.stderr)
    if (log_format or config.supervisor.log_format) is LogFormat.JSON:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    level = logging.getLevelName(config.supervisor.log_level.value.upper())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # httpx logs every request at info, Hypercorn and quart every request too:
    # libraries speak only when something is wrong, whatever log_level says.
    root.setLevel(max(level, logging.WARNING))
    logging.getLogger("agentvisor").setLevel(level)


class Daemon:
    """One running agentvisor; ``run`` returns after a graceful shutdown."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.bus = EventBus()
        self.supervisor: Supervisor | None = None
        self.store: StateStore | None = None
        self.router: Router | None = None
        self.cluster: ClusterRegistry | None = None
        self.router_binds: list[str] = []
        self.admin_binds: list[str] = []
        self._shutdown_requested = trio.Event()
        self._force = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[Daemon] = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            # The store outlives the parts in the inner nursery, so what they publish
            # while shutting down is still recorded.
            async with open_launcher() as launcher, trio.open_nursery() as outer:
                self.store = StateStore(
                    os.path.join(state_dir(config), "state.db"),
                    retention_days=config.supervisor.retention_days,
                    max_file_bytes=int(config.supervisor.store_max_mb * 1024 * 1024),
                    log_lines_per_second=config.supervisor.store_log_lines_per_second,
                )
                await outer.start(self.store.run)
                recovered = await self.store.recover_config_writes()
                if recovered:
                    log.warning(
                        "recovered %d audit entries of config edits cut off by the last stop",
                        recovered,
                    )
                await outer.start(self.store.consume, self.bus)
                async with trio.open_nursery() as nursery:
                    await self._run_parts(nursery, launcher, signals, task_status)
                outer.cancel_scope.cancel()

    async def _run_parts(
        self,
        nursery: trio.Nursery,
        launcher: OSLauncher,
        signals: Any,
        task_status: trio.TaskStatus[Daemon],
    ) -> None:
        config = self.config
        assert self.store is not None
        nursery.start_soon(self._watch_signals, signals)
        self.supervisor = Supervisor(
            config, bus=self.bus, launcher=launcher, log_sink=self.store.record_log_lines
        )
        await nursery.start(self.supervisor.run)
        router_class, deps_class, admin_class = await trio.to_thread.run_sync(import_web_stack)
        source: EndpointSource = self.supervisor
        if config.cluster is not None:  # Redis unreachable: logged, the node runs alone
            from agentvisor.cluster.registry import ClusterRegistry, ClusterView

            self.cluster = ClusterRegistry(config.cluster, self.supervisor, version=__version__)
            await nursery.start(self.cluster.run)
            source = ClusterView(self.supervisor, self.cluster)
        self.router = router_class(source, self.bus)
        self.router_binds = await nursery.start(self.router.run)
        if self.cluster is not None:
            self.cluster.router_binds = tuple(self.router_binds)
            self.cluster.connections = self.router.table.connections_of
        self.supervisor.drain = self.router.drain
        wire_autoscaler(self.supervisor.autoscaler, self.router)
        deps = deps_class(
            supervisor=self.supervisor,
            version=__version__,
            pid=os.getpid(),
            started_at=time.time(),
            config_path=config.source,
            token=config.admin.token,
            metrics_token=config.admin.metrics_token,
            store=self.store,
            router=self.router,
            cluster=self.cluster,
        )
        admin = admin_class(deps, config.admin, config.base_dir)
        self.admin_binds = await nursery.start(admin.run)
        if self.cluster is not None:
            self.cluster.admin_binds = tuple(self.admin_binds)
        # READY=1 means "the API answers", also when a reload ends before that.
        self.supervisor.notify = sdnotify.notify
        nursery.start_soon(sdnotify.run_watchdog)
        if check_clients_needed(config):
            nursery.start_soon(trio.to_thread.run_sync, import_check_clients)
        log.info(
            "agentvisor %s running %d agents; router on %s; admin API on %s",
            __version__,
            len(config.agents),
            ", ".join(self.router_binds),
            ", ".join(self.admin_binds),
        )
        sdnotify.notify("READY=1", f"STATUS=supervising {len(config.agents)} agents")
        task_status.started(self)
        await self._shutdown_requested.wait()
        await self._shut_down()
        nursery.cancel_scope.cancel()

    def request_shutdown(self) -> None:
        if self._shutdown_requested.is_set():
            self._force.set()
        self._shutdown_requested.set()

    async def _shut_down(self) -> None:
        assert self.supervisor is not None
        timeout = self.config.supervisor.shutdown_timeout
        sdnotify.notify("STOPPING=1")
        log.info("shutting down: stopping every worker (at most %gs)", timeout)
        supervisor, router = self.supervisor, self.router
        if self.cluster is not None:  # other routers stop choosing this node's instances
            with trio.move_on_after(min(2.0, timeout / 4)):
                await self.cluster.leave()

        async def stop_workers(done: trio.CancelScope) -> None:
            if router is not None:  # clients first: told, then closed with 1001
                with trio.move_on_after(min(5.0, timeout / 2)):
                    await router.shutdown()
            await supervisor.shutdown()
            done.cancel()

        with trio.move_on_after(timeout) as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stop_workers, nursery.cancel_scope)
                await self._force.wait()
                log.warning("second signal: killing workers now")
                nursery.cancel_scope.cancel()
        if scope.cancelled_caught:
            log.warning("shutdown_timeout of %gs passed: killing remaining workers", timeout)
        # Cancelling the nursery next kills any group still alive (Instance.run's finally).

    async def _watch_signals(self, signals: Any) -> None:
        # Reloads run as tasks of their own: a long rolling restart must not keep
        # SIGTERM from being seen.
        async with trio.open_nursery() as nursery:
            async for signum in signals:
                if signum != signal.SIGHUP:
                    log.info("received %s", signal.Signals(signum).name)
                    self.request_shutdown()
                elif self._shutdown_requested.is_set():
                    log.info("received SIGHUP while shutting down: ignored")
                else:
                    nursery.start_soon(self._reload)

    async def _reload(self) -> None:
        assert self.supervisor is not None
        try:  # the supervisor tells systemd (RELOADING=1, READY=1), as for API reloads
            result = await self.supervisor.reload(source="signal")
        except ConfigInvalid as error:
            log.error("reload rejected, the running config is unchanged:")
            for issue in error.issues:
                log.error("  %s", issue)
        except AgentvisorError as error:
            log.error("reload rejected, the running config is unchanged: %s", error.message)
        else:
            level = logging.WARNING if result.failed else logging.INFO
            log.log(level, "reloaded: %s", result.describe())


def import_web_stack() -> tuple[type[Router], type[AdminDeps], type[AdminServer]]:
    """The router and the admin API (in a worker thread: the event loop goes on starting
    workers)."""
    from agentvisor.admin.app import AdminDeps
    from agentvisor.admin.serve import AdminServer
    from agentvisor.router.server import Router

    return Router, AdminDeps, AdminServer


def check_clients_needed(config: Config) -> bool:
    """Whether an agent has health checks on or is an agent worker (whose /stats the
    sampler reads). If not, httpx and trio-websocket (4-5 MiB) stay unimported until a
    reload brings such an agent; its first check imports them then, on the event loop."""
    return any(a.health.enabled or a.agent is not None for a in config.agents.values())


def import_check_clients() -> None:
    """The clients of the health checks and the sampler, imported once the API answers
    (in a worker thread), so that a check does not import them on the event loop."""
    import httpx  # noqa: F401
    import trio_websocket  # noqa: F401


def wire_autoscaler(autoscaler: Autoscaler, router: Router) -> None:
    """The autoscaler reads the router's load and held clients; a held client wakes it."""
    autoscaler.load = router.load
    autoscaler.waiting = lambda: dict(router.cold_start.waiting)

    def wake() -> None:
        autoscaler.wake.set()

    router.cold_start.on_wait = wake


def raise_open_files_limit() -> None:
    """Each instance holds a few descriptors (pipes, pidfd, log files): lift the soft limit
    to the hard one, as supervisord's ``minfds`` does, so hundreds of workers fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as error:
            log.warning("cannot raise the open files limit from %d: %s", soft, error)


async def serve(config: Config) -> None:
    pidfile = os.path.join(state_dir(config), "agentvisor.pid")
    with open_pidfile(pidfile):
        await Daemon(config).run()


def run(config_path: str, log_format: LogFormat | None = None) -> int:
    """``agentvisor run``: load, validate, supervise until a signal; the exit code."""
    try:
        config = load_config(config_path)
    except ConfigInvalid as error:
        for issue in error.issues:
            print(issue, file=sys.stderr)
        print(f"agentvisor: {config_path} is invalid; nothing started", file=sys.stderr)
        return 1
    configure_logging(config, log_format)
    raise_open_files_limit()
    failures: list[str] = []
    try:
        trio.run(serve, config)
    except* AgentvisorError as group:
        failures += [e.message for e in _leaves(group) if isinstance(e, AgentvisorError)]
    except* OSError as group:
        failures += [str(e) for e in _leaves(group)]
    for message in failures:
        print(f"agentvisor: {message}", file=sys.stderr)
    return 1 if failures else 0


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    return [
        leaf
        for error in group.exceptions
        for leaf in (_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    ]
