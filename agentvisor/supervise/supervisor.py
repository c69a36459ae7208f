"""The supervisor: turns the config's agents into supervised instances.

It owns one nursery holding every instance's task and every operation.
Operator commands (start, stop, rolling restart) and reloads run as tasks in
that nursery, so a caller that gives up (a cut connection, a timeout) never
leaves one half done; callers wait for the outcome with their own deadline.
Each service has at most one operation at a time: a new command replaces the
running one (stop cancels a start still waiting for its dependencies).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import attrs
import trio

from agentvisor.config.diff import ReloadPlan, plan_reload
from agentvisor.config.load import load_config
from agentvisor.config.model import AgentConfig, Config
from agentvisor.errors import AgentvisorError, ConfigInvalid, ServiceNotFound
from agentvisor.events import ConfigReloaded, EventBus, OperatorAction
from agentvisor.supervise.agentfiles import check_changed_agent_files
from agentvisor.supervise.autoscaler import Autoscaler
from agentvisor.supervise.instance import Instance, InstanceGone, InstanceLogs, LineSink
from agentvisor.supervise.logs import LogBook, RotatingLogFile
from agentvisor.supervise.lostturns import LostTurn, RedisTurns, take_lost_turns
from agentvisor.supervise.machine import Machine, Restart, Start, Stop
from agentvisor.supervise.monitor import Monitor, Watched
from agentvisor.supervise.policy import Health, Policy
from agentvisor.supervise.ports import PortBook
from agentvisor.supervise.process import Launcher
from agentvisor.supervise.registry import Endpoint, ServiceView, aggregate_state
from agentvisor.supervise.spec import (
    forget_agent_files,
    launch_spec,
    log_path,
    session_namespace,
    session_store_path,
)
from agentvisor.supervise.states import ProcessState

log = logging.getLogger("agentvisor.supervisor")

S = ProcessState
MiB = 1024 * 1024
T = TypeVar("T")


class Drain(Protocol):
    def __call__(self, instance_id: str, *, timeout: float) -> Awaitable[None]: ...


class OperationFailed(AgentvisorError):
    """A start or restart did not bring every instance up (the instances say why)."""

    code = "SERVICE_START_FAILED"


class ShuttingDown(AgentvisorError):
    code = "SHUTTING_DOWN"


@attrs.frozen
class ReloadResult:
    """What a reload did: the plan's outcome, and what it could not do."""

    plan: ReloadPlan
    failed: tuple[str, ...] = ()  # rolling restarts that stopped: "name: why"
    needs_restart: tuple[str, ...] = ()  # sections that take effect on the next start

    def to_dict(self) -> dict[str, Any]:
        """The API's shape: names per kind of change, and whether anything changed."""
        plan = self.plan
        lists = {
            "added": plan.added,
            "removed": plan.removed,
            "restarted": plan.restart,
            "scaled": plan.scaled,
            "updated": plan.live,
            "failed": self.failed,
            "needs_restart": self.needs_restart,
        }
        data: dict[str, Any] = {key: list(names) for key, names in lists.items()}
        data["changed"] = not plan.is_empty
        return data

    def describe(self) -> str:
        plan = self.plan
        parts = [
            f"{label}: {', '.join(names)}"
            for label, names in (
                ("added", plan.added),
                ("removed", plan.removed),
                ("restarted", plan.restart),
                ("scaled", plan.scaled),
                ("updated", plan.live),
            )
            if names
        ]
        parts += [f"FAILED {failure}" for failure in self.failed]
        parts += [f"{section} changes apply on the next start" for section in self.needs_restart]
        return "; ".join(parts) if parts else "no change"


def _load_checked(path: str, running: Config) -> Config:
    """The config file loaded, validated, and the agent files of the agents it adds or
    changes load-checked (blocking): an unchanged agent is not restarted by the reload."""
    config = load_config(path)
    issues = check_changed_agent_files(running, config, shown_as=path)
    if issues:
        raise ConfigInvalid(issues)
    return config


def _at_rest(m: Machine) -> bool:
    return m.state in (S.STOPPED, S.EXITED, S.FATAL)


def _up_or_failed(m: Machine) -> bool:
    """Running, or a start that did not work out (backoff: failed twice; fatal; exited)."""
    return m.state in (S.RUNNING, S.BACKOFF, S.FATAL, S.EXITED, S.STOPPED)


def _ready(m: Machine) -> bool:
    return m.state is S.RUNNING and m.health.status is not Health.UNHEALTHY


def port_is_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now (used only when allocating a port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
                return False
            raise
    return True


@attrs.define(eq=False)
class Operation:
    """A start, stop, restart or removal running in the supervisor's nursery."""

    service: str
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    done: trio.Event = attrs.field(factory=trio.Event)
    error: BaseException | None = None  # set when it failed (not when it was replaced)


class Service:
    """One agent: its config, instances (index = replica), log book, current operation."""

    def __init__(self, name: str, config: AgentConfig) -> None:
        self.name = name
        self.config = config
        self.instances: list[Instance] = []
        self.scopes: list[trio.CancelScope] = []
        self.logbook = LogBook(name)
        self.waiting_for = ""
        self.operation: trio.CancelScope | None = None
        self.autoscaled: int | None = None  # the autoscaler's count (within min..max)
        self.retiring: set[int] = set()  # replicas scaled away, still draining or stopping

    @property
    def desired(self) -> int:
        """Replicas to run: the autoscaler's count when autoscaled, else the config's."""
        bounds = self.config.autoscale
        if bounds is None or self.autoscaled is None:
            return self.config.desired_replicas
        return max(bounds.min, min(bounds.max, self.autoscaled))

    def view(self) -> ServiceView:
        instances = tuple(instance.view() for instance in self.instances)
        desired = self.desired
        state = aggregate_state([i.state for i in instances], desired)
        if self.waiting_for and state == "stopped":
            state = "waiting"
        return ServiceView(
            name=self.name,
            state=state,
            kind="agent" if self.config.agent is not None else "command",
            description=self.config.description,
            tags=self.config.tags,
            desired_replicas=desired,
            running=sum(1 for i in instances if i.state == "running"),
            instances=instances,
            config=self.config,
        )


class Supervisor:
    def __init__(
        self,
        config: Config,
        *,
        bus: EventBus,
        launcher: Launcher,
        env: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
        port_free: Callable[[str, int], bool] = port_is_free,
        log_sink: LineSink | None = None,
    ) -> None:
        self.config = config
        self.config_path = config.source
        self.bus = bus
        self._launcher = launcher
        self._env = dict(os.environ if env is None else env)
        self._rng = rng or random.Random()
        self._ports = PortBook(config.supervisor.port_range, port_free)
        self._services: dict[str, Service] = {}
        self._reload_lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        self._closing = False
        self._log_sink = log_sink
        self._redis_turns: RedisTurns | None = None
        #: The router's drain (set by the daemon; supervise may not import the router):
        #: move an instance's clients elsewhere once their turns end.
        self.drain: Drain | None = None
        #: systemd's sd_notify (set by the daemon; supervise does not talk to systemd):
        #: every reload, by signal or through the API, is told as RELOADING=1 … READY=1.
        self.notify: Callable[..., object] | None = None
        self._monitor = Monitor(self._watched, self._memory_restart, bus.publish)
        self.autoscaler = Autoscaler(self)

    # Queries -----------------------------------------------------------------

    def services(self) -> list[ServiceView]:
        return [service.view() for service in self._services.values()]

    def service(self, name: str) -> ServiceView:
        return self._get(name).view()

    def logbook(self, name: str) -> LogBook:
        return self._get(name).logbook

    def instances(self, name: str) -> list[Instance]:
        return list(self._get(name).instances)

    def services_by_name(self) -> dict[str, Service]:
        """The services themselves (for the autoscaler, which lives beside the supervisor)."""
        return dict(self._services)

    def endpoints(self) -> list[Endpoint]:
        """Every instance with a port, for the router (routable or not: it filters)."""
        return [
            Endpoint(
                instance_id=f"{service.name}:{instance.replica}",
                service=service.name,
                replica=instance.replica,
                host=instance.host,
                port=instance.port,
                ws_path=instance.ws_path,
                routable=service.config.routable and instance.accepts_clients,
                draining=instance.draining,
                weight=service.config.weight,
                max_sessions=service.config.max_sessions,
                sessions=_sessions_in_use(instance),
                tags=service.config.tags,
            )
            for service, instance in self._all_instances()
            if instance.port is not None
        ]

    def _get(self, name: str) -> Service:
        try:
            return self._services[name]
        except KeyError:
            raise ServiceNotFound(name) from None

    def _all_instances(self) -> Iterator[tuple[Service, Instance]]:
        for service in list(self._services.values()):
            for instance in list(service.instances):
                yield service, instance

    # Running -----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Create every agent's instances, start the autostart ones, sample; never returns."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._ports.commit(self.config.agents, self._ports.plan(self.config.agents))
            for name, agent in self.config.agents.items():
                self._add_service_soon(name, agent)
            for service in self._services.values():
                if service.config.autostart:
                    self._begin(service, self._start_op(service, "autostart"))
            nursery.start_soon(self._monitor.run, lambda: self.config.supervisor.sample_interval)
            nursery.start_soon(self.autoscaler.run)
            task_status.started()

    async def shutdown(self) -> None:
        """Stop every instance (stop signal, SIGKILL after stopwaitsecs); the caller bounds it."""
        self._closing = True
        self._publish_action("shutdown", "", "signal", "ok", "stopping every agent")
        async with self._reload_lock, trio.open_nursery() as nursery:
            for service in self._services.values():
                if service.operation is not None:
                    service.operation.cancel()
                nursery.start_soon(self._stop_op(service, "agentvisor is shutting down"))

    # Operator commands ---------------------------------------------------------

    async def start(self, name: str, *, source: str) -> None:
        service = self._get(name)
        self._publish_action("start", name, source, "ok", f"start requested by {source}")
        await self._operate(service, self._start_op(service, source))

    async def stop(self, name: str, *, source: str) -> None:
        service = self._get(name)
        self._publish_action("stop", name, source, "ok", f"stop requested by {source}")
        await self._operate(service, self._stop_op(service, f"stopped by {source}"))

    async def restart(self, name: str, *, source: str, force: bool = False) -> None:
        """Rolling restart: one replica at a time, each back up before the next goes.

        ``force`` will skip draining once the router drains connections; today
        there is nothing to drain and it changes nothing.
        """
        service = self._get(name)
        self._publish_action("restart", name, source, "ok", f"restart requested by {source}")
        roll = self._roll_op(service, f"restarted by {source}", drain=not force)
        await self._operate(service, roll)

    async def reload(self, *, source: str) -> ReloadResult:
        """Load the config file again and apply what changed; invalid → nothing changes."""
        return await self._in_background(lambda: self._reload(source))

    async def apply(self, config: Config, *, source: str) -> ReloadResult:
        """Apply a config already loaded and validated (an API edit just written to the
        file) through the reload path: only what changed is touched."""
        return await self._in_background(lambda: self._reload(source, config))

    # Operations ---------------------------------------------------------------

    async def _in_background(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` in the supervisor's nursery and wait for it; cancelling the wait
        does not cancel the work. Expected failures (AgentvisorError) reach the caller."""
        assert self._nursery is not None
        done = trio.Event()
        outcome: list[T] = []
        failure: list[AgentvisorError] = []

        async def run() -> None:
            try:
                outcome.append(await work())
            except AgentvisorError as error:
                failure.append(error)
            finally:
                done.set()

        self._nursery.start_soon(run)
        await done.wait()
        if failure:
            raise failure[0]
        return outcome[0]

    def _begin(self, service: Service, work: Callable[[], Awaitable[None]]) -> Operation:
        """Make ``work`` the service's one operation, cancelling the one before."""
        assert self._nursery is not None
        if service.operation is not None:
            service.operation.cancel()
        operation = Operation(service.name)
        service.operation = operation.scope

        async def run() -> None:
            try:
                with operation.scope:
                    await work()
            except (AgentvisorError, InstanceGone) as error:
                log.warning("%s: %s", service.name, error)
                operation.error = error
            finally:
                if service.operation is operation.scope:
                    service.operation = None
                operation.done.set()

        self._nursery.start_soon(run)
        return operation

    async def _operate(self, service: Service, work: Callable[[], Awaitable[None]]) -> None:
        if self._closing:
            raise ShuttingDown("agentvisor is shutting down")
        operation = self._begin(service, work)
        await operation.done.wait()
        if isinstance(operation.error, AgentvisorError):
            raise operation.error
        if operation.error is not None:
            raise OperationFailed(str(operation.error))

    def _start_op(self, service: Service, source: str) -> Callable[[], Awaitable[None]]:
        async def start() -> None:
            try:
                await self._wait_dependencies(service, source)
            finally:
                service.waiting_for = ""
            tickets = [(i, i.send(Start(f"started ({source})"))) for i in service.instances]
            for instance, ticket in tickets:
                await instance.wait_processed(ticket)
                await instance.wait_until(_up_or_failed)
            _check_up(service, "did not start")

        return start

    def _stop_op(self, service: Service, reason: str) -> Callable[[], Awaitable[None]]:
        async def stop() -> None:
            tickets = [(i, i.send(Stop(reason))) for i in service.instances]
            for instance, ticket in tickets:
                await instance.wait_processed(ticket)
                await instance.wait_until(_at_rest)

        return stop

    def _roll_op(
        self, service: Service, reason: str, *, only_live: bool = False, drain: bool = True
    ) -> Callable[[], Awaitable[None]]:
        """Restart one replica at a time (with a fresh launch spec), its clients drained to
        the others first; stop at the first that does not come back, leaving the rest."""

        async def roll() -> None:
            for instance in list(service.instances):
                live = instance.state in (S.STARTING, S.RUNNING, S.BACKOFF, S.FATAL)
                self._refresh_spec(service, instance)
                if only_live and not live:
                    continue  # a reload restarts what runs; a stopped replica starts fresh later
                try:
                    if drain:
                        await self._drain(service, instance)
                    ticket = instance.send(Restart(reason))
                    await instance.wait_processed(ticket)
                    await instance.wait_until(_up_or_failed)
                finally:
                    instance.draining = False
                if instance.state is not S.RUNNING:
                    raise OperationFailed(
                        f"{service.name}:{instance.replica} did not come back after the "
                        f"restart ({instance.machine.reason}); the replicas after it were "
                        "left as they were"
                    )

        return roll

    async def _wait_dependencies(self, service: Service, source: str) -> None:
        """Wait until every dependency runs and is healthy, starting stopped ones."""
        for name in service.config.depends_on:
            dependency = self._services.get(name)
            if dependency is None or all(_ready(i.machine) for i in dependency.instances):
                continue
            service.waiting_for = f"waiting for {name}"
            if dependency.operation is None and all(
                i.state is S.STOPPED for i in dependency.instances
            ):
                self._begin(dependency, self._start_op(dependency, f"{source}, for {service.name}"))
            for instance in dependency.instances:
                await instance.wait_until(_ready)

    async def _drain(self, service: Service, instance: Instance) -> None:
        """Take no new clients on ``instance``; let the router move its clients away once
        their turns end (up to drain_timeout). It stays draining until the caller clears it."""
        if self.drain is None or instance.state is not S.RUNNING:
            return
        instance.draining = True
        instance_id = f"{service.name}:{instance.replica}"
        await self.drain(instance_id, timeout=service.config.drain_timeout)

    # Reload ---------------------------------------------------------------------

    async def _reload(self, source: str, new: Config | None = None) -> ReloadResult:
        if self._closing:
            raise ShuttingDown("agentvisor is shutting down")
        self._tell_systemd(
            "RELOADING=1",
            f"MONOTONIC_USEC={time.monotonic_ns() // 1000}",
            f"STATUS=reloading the config (requested by {source})",
        )
        status = "reload rejected: still running the previous config"
        try:
            result = await self._reload_now(source, new)
            status = f"supervising {len(self.config.agents)} agents; reload: {result.describe()}"
            return result
        finally:
            self._tell_systemd("READY=1", "STATUS=" + " ".join(status.split()))

    def _tell_systemd(self, *states: str) -> None:
        if self.notify is not None:
            self.notify(*states)

    async def _reload_now(self, source: str, new: Config | None) -> ReloadResult:
        async with self._reload_lock:
            try:
                if new is None:
                    new = await trio.to_thread.run_sync(
                        _load_checked, self.config_path, self.config
                    )
                ports = self._ports.plan(new.agents)  # no ports, no change at all
            except AgentvisorError as error:
                errors = error.details.get("errors", [error.message])
                self.bus.publish(ConfigReloaded(False, (), (), (), (), tuple(errors), time.time()))
                self._publish_action("reload", "", source, "rejected", error.message)
                raise
            plan, needs_restart = self._apply_quick(new, ports)
            rolls = {
                name: self._begin(
                    self._services[name],
                    self._roll_op(self._services[name], "config changed", only_live=True),
                )
                for name in plan.restart
            }
            for name in plan.added:
                if new.agents[name].autostart:
                    self._begin(
                        self._services[name], self._start_op(self._services[name], "reload")
                    )
        for roll in rolls.values():  # outside the lock: a newer reload may take over a roll
            await roll.done.wait()
        failed = tuple(f"{name}: {roll.error}" for name, roll in rolls.items() if roll.error)
        result = ReloadResult(plan, failed, needs_restart)
        self.bus.publish(
            ConfigReloaded(
                True,
                plan.added,
                plan.removed,
                plan.restart,
                plan.live + plan.scaled,
                failed,
                time.time(),
            )
        )
        outcome = "failed" if failed else "ok"
        self._publish_action("reload", "", source, outcome, result.describe())
        return result

    def _apply_quick(
        self, new: Config, ports: Mapping[tuple[str, int], int]
    ) -> tuple[ReloadPlan, tuple[str, ...]]:
        """Everything of a reload but the rolling restarts: no waiting on processes."""
        plan = plan_reload(self.config, new)
        needs_restart = tuple(
            section
            for section, changed in (
                ("[admin]", plan.admin_changed),
                (
                    "[router] " + ", ".join(plan.router_restart_fields),
                    bool(plan.router_restart_fields),
                ),
                ("state_dir", new.supervisor.state_dir != self.config.supervisor.state_dir),
                ("[cluster]", new.cluster != self.config.cluster),
            )
            if changed
        )
        # The node keeps the cluster it joined at start (its registry, its workers' store).
        self.config = attrs.evolve(new, source=self.config_path, cluster=self.config.cluster)
        self._ports.commit(new.agents, ports)
        for name in plan.removed:
            service = self._services.pop(name)
            if service.operation is not None:
                service.operation.cancel()
            self._begin(service, self._remove_op(service))
        for name in plan.added:
            self._add_service_soon(name, new.agents[name])
        for name in {*plan.live, *plan.scaled, *plan.restart}:
            service = self._services[name]
            service.config = new.agents[name]
            policy = Policy.from_agent(service.config)
            for instance in service.instances:
                instance.policy, instance.health = policy, service.config.health
                # (a replica being scaled away has no port any more: _scale retires it)
                if name not in plan.restart and (name, instance.replica) in self._ports.assigned:
                    self._refresh_spec(service, instance)  # used by the next (re)start
        for name in plan.scaled:
            self._scale(self._services[name])
        return plan, needs_restart

    def _remove_op(self, service: Service) -> Callable[[], Awaitable[None]]:
        async def remove() -> None:
            try:
                await self._stop_op(service, "removed from the config")()
            finally:
                for scope in service.scopes:
                    scope.cancel()
            if service.name not in self._services:  # (not added back meanwhile)
                deleted = await trio.to_thread.run_sync(
                    forget_agent_files, self.config, service.name
                )
                log.info("%s: removed, with its files: %s", service.name, " ".join(deleted))

        return remove

    def scale_to(self, name: str, desired: int, victims: Sequence[int] = ()) -> None:
        """The autoscaler's hook: run ``desired`` replicas, retiring ``victims`` first."""
        if self._closing:
            return
        service = self._get(name)
        service.autoscaled = desired
        self._scale(service, victims)

    def _scale(self, service: Service, victims: Sequence[int] = ()) -> None:
        """Retire replicas beyond the desired count (``victims`` first, then the highest);
        add missing ones on the lowest free replica numbers that have a port."""
        desired = service.desired
        order = sorted(
            range(len(service.instances)),
            key=lambda i: (service.instances[i].replica in victims, i),
        )
        for index in sorted(order[desired:], reverse=True):
            instance, scope = service.instances.pop(index), service.scopes.pop(index)
            self._begin_detached(instance, scope)
        live = any(i.state in (S.STARTING, S.RUNNING, S.BACKOFF) for i in service.instances)
        start = live or (not service.instances and service.config.autostart)
        taken = {i.replica for i in service.instances} | service.retiring
        free = (
            replica
            for replica in range(desired + len(taken))
            if replica not in taken and (service.name, replica) in self._ports.assigned
        )
        for _, replica in zip(range(desired - len(service.instances)), free, strict=False):
            instance = self._add_instance_soon(service, replica)
            if start:
                instance.send(Start("scaled up"))
        pairs = sorted(zip(service.instances, service.scopes, strict=True), key=_by_replica)
        service.instances[:] = [instance for instance, _ in pairs]
        service.scopes[:] = [scope for _, scope in pairs]

    def _begin_detached(self, instance: Instance, scope: trio.CancelScope) -> None:
        """Stop an instance no longer part of its service, then end its task."""
        assert self._nursery is not None

        service = self._services[instance.service]
        service.retiring.add(instance.replica)

        async def retire() -> None:
            try:
                await self._drain(service, instance)
                instance.send(Stop("scaled down"))
                await instance.wait_until(_at_rest)
            finally:
                scope.cancel()
                service.retiring.discard(instance.replica)
            # A scale-up while this replica was going could not use its number (its port);
            # now that it is free, the missing replicas start.
            current = self._services.get(service.name) is service and not self._closing
            if current and len(service.instances) < service.desired:
                self._scale(service)

        self._nursery.start_soon(retire)

    # Building services -----------------------------------------------------------

    def _add_service_soon(self, name: str, agent: AgentConfig) -> Service:
        service = Service(name, agent)
        self._services[name] = service
        for replica in range(agent.desired_replicas):
            self._add_instance_soon(service, replica)
        return service

    def _add_instance_soon(self, service: Service, replica: int) -> Instance:
        """Create an instance and start its task; it queues events until the task runs."""
        assert self._nursery is not None
        agent = service.config
        files = {
            stream: RotatingLogFile(
                log_path(self.config, service.name, replica, stream),
                int(agent.stdout_log_max_mb * MiB),
                agent.stdout_log_backups,
            )
            for stream in ("stdout", "stderr")
        }
        forward = self.config.supervisor.forward_worker_output
        port = self._ports.assigned[(service.name, replica)]
        instance = Instance(
            service=service.name,
            replica=replica,
            host=agent.host,
            port=port,
            spec=launch_spec(service.name, agent, replica, port, self.config, self._env),
            policy=Policy.from_agent(agent),
            health=agent.health,
            ws_path=agent.ws_path,
            protocol_ping=agent.agent is not None,
            launcher=self._launcher,
            bus=self.bus,
            logs=InstanceLogs(
                service.logbook,
                files,
                f"{service.name}:{replica}" if forward else None,
                self.bus,
                self._log_sink,
            ),
            rng=random.Random(self._rng.random()),
            lost_turns=self._lost_turns_reader(service.name) if agent.agent is not None else None,
        )
        scope = trio.CancelScope()

        async def run_instance() -> None:
            with scope:
                await instance.run()

        self._nursery.start_soon(run_instance)
        service.instances.append(instance)
        service.scopes.append(scope)
        return instance

    def _lost_turns_reader(self, name: str) -> Callable[[int], Awaitable[list[LostTurn]]]:
        """Where a dead worker of agent ``name`` left its turns: Redis in a cluster."""
        cluster = self.config.cluster
        if cluster is None:
            return functools.partial(take_lost_turns, session_store_path(self.config, name))
        if self._redis_turns is None:
            self._redis_turns = RedisTurns(cluster)
        return functools.partial(self._redis_turns.take, session_namespace(cluster, name))

    def _refresh_spec(self, service: Service, instance: Instance) -> None:
        agent = service.config
        port = self._ports.assigned[(service.name, instance.replica)]
        instance.host, instance.port, instance.ws_path = agent.host, port, agent.ws_path
        instance.spec = launch_spec(
            service.name, agent, instance.replica, port, self.config, self._env
        )

    # Monitoring ----------------------------------------------------------------

    def _watched(self) -> Iterator[Watched]:
        for service, instance in self._all_instances():
            yield instance, service.config.max_memory_mb, service.config.agent is not None

    def _memory_restart(self, instance: Instance, message: str) -> None:
        self._publish_action("restart", instance.service, "memory", "ok", message)

    async def sample_now(self) -> None:
        await self._monitor.sample_now()

    def _publish_action(
        self, action: str, target: str, source: str, outcome: str, message: str
    ) -> None:
        log.info("%s %s (%s): %s", action, target or "agentvisor", source, message)
        self.bus.publish(OperatorAction(action, target, source, outcome, message, time.time()))


def _sessions_in_use(instance: Instance) -> int:
    """What counts against ``max_sessions`` for the router: the worker's sessions with a
    client or a turn (it lets go of the others to make room), else all it holds."""
    stats = instance.worker_stats
    sessions = stats.get("sessions") if stats is not None else None
    in_use = sessions.get("in_use") if isinstance(sessions, dict) else None
    return in_use if isinstance(in_use, int) else instance.sessions


def _by_replica(pair: tuple[Instance, trio.CancelScope]) -> int:
    return pair[0].replica


def _check_up(service: Service, what: str) -> None:
    down = [i for i in service.instances if i.state is not S.RUNNING]
    if down:
        reasons = "; ".join(f"{i.service}:{i.replica} {i.state}: {i.machine.reason}" for i in down)
        raise OperationFailed(f"{service.name} {what}: {reasons}")
