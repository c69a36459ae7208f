"""The supervisor: turns the config's agents into supervised instances.

It owns one nursery holding every instance's task and every operation.
Operator commands (start, stop, rolling restart) and reloads run as tasks in
that nursery, so a caller that gives up (a cut connection, a timeout) never
leaves one half done; callers wait for the outcome with their own deadline.
Each service has at most one operation at a time: a new command replaces the
running one (stop cancels a start still waiting for its dependencies).
"""

from __future__ import annotations

import functools
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TypeVar

import attrs
import trio

from agentvisor.config.diff import ReloadPlan, plan_reload
from agentvisor.config.interpolate import EnvironmentUse
from agentvisor.config.model import AgentConfig, Config
from agentvisor.errors import AgentvisorError, ServiceNotFound
from agentvisor.events import ConfigReloaded, EventBus, OperatorAction
from agentvisor.supervise.agentfiles import load_checked
from agentvisor.supervise.autoscaler import Autoscaler
from agentvisor.supervise.conditions import at_rest, ready, scale_plan, up_or_failed
from agentvisor.supervise.instance import Instance, LineSink, LostTurnReader
from agentvisor.supervise.logs import LogBook
from agentvisor.supervise.lostturns import RedisTurns, take_lost_turns
from agentvisor.supervise.machine import Restart, Start, Stop
from agentvisor.supervise.monitor import Monitor, Watched
from agentvisor.supervise.policy import Policy
from agentvisor.supervise.ports import PortBook
from agentvisor.supervise.process import Launcher
from agentvisor.supervise.registry import Endpoint, ServiceView
from agentvisor.supervise.reloading import ReloadResult, sections_needing_restart
from agentvisor.supervise.service import (
    Drain,
    InstanceParts,
    Operation,
    OperationFailed,
    Service,
    ShuttingDown,
    new_instance,
    port_is_free,
    port_range_warning,
    run_detached,
)
from agentvisor.supervise.spec import forget_agent_files, session_namespace, session_store_path
from agentvisor.supervise.states import DrainReason, ProcessState

log = logging.getLogger("agentvisor.supervisor")

S = ProcessState
T = TypeVar("T")


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
        self._env = dict(os.environ if env is None else env)
        self._parts = InstanceParts(launcher, bus, self._env, log_sink)
        self._rng = rng or random.Random()
        self._ports = PortBook(config.supervisor.port_range, port_free)
        self._services: dict[str, Service] = {}
        self._reload_lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        self._closing = False
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
        return [e for service in list(self._services.values()) for e in service.endpoints()]

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
            self._warn_about_port_range()
            for name, agent in self.config.agents.items():
                self._add_service_soon(name, agent)
            for service in self._services.values():
                if service.config.autostart:
                    self._begin(service, self._start_op(service, "autostart"))
            nursery.start_soon(self._monitor.run, lambda: self.config.supervisor.sample_interval)
            nursery.start_soon(self.autoscaler.run)
            task_status.started()

    def _warn_about_port_range(self) -> None:
        warning = port_range_warning(self.config)
        if warning is not None:
            log.warning("%s", warning)

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
        """Rolling restart: one replica at a time, each back up before the next goes;
        ``force`` skips draining its clients to the other replicas first."""
        service = self._get(name)
        self._publish_action("restart", name, source, "ok", f"restart requested by {source}")
        roll = self._roll_op(
            service, f"restarted by {source}", drain=None if force else DrainReason.RESTART
        )
        await self._operate(service, roll)

    async def reload(self, *, source: str) -> ReloadResult:
        """Load the config file again and apply what changed; invalid → nothing changes."""
        return await self._in_background(lambda: self._reload(source))

    async def preview_reload(self) -> ReloadResult:
        """What ``reload`` would do now, the file read with agentvisor's environment and
        checked as a reload checks it; nothing changes, nothing is recorded.

        Invalid → the same errors a reload would give (``ConfigInvalid``, ``PortInUse``…).
        """
        async with self._reload_lock:  # not half-way through another reload's changes
            new, environment, _ports = await self._checked(None)  # commits nothing
            plan = plan_reload(self.config, new)
            return ReloadResult(
                plan,
                needs_restart=sections_needing_restart(plan, self.config, new),
                dry_run=True,
                config_path=self.config_path,
                environment=environment,
            )

    async def apply(self, config: Config, *, source: str) -> ReloadResult:
        """Apply a config already loaded and validated (an API edit just written to the
        file) through the reload path: only what changed is touched."""
        return await self._in_background(lambda: self._reload(source, config))

    # Operations ---------------------------------------------------------------

    async def _in_background(self, work: Callable[[], Awaitable[T]]) -> T:
        assert self._nursery is not None
        return await run_detached(self._nursery, work)

    def _begin(self, service: Service, work: Callable[[], Awaitable[None]]) -> Operation:
        assert self._nursery is not None
        return service.begin(self._nursery, work)

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
                await instance.wait_until(up_or_failed)
            service.check_up("did not start")

        return start

    def _stop_op(self, service: Service, reason: str) -> Callable[[], Awaitable[None]]:
        async def stop() -> None:
            tickets = [(i, i.send(Stop(reason))) for i in service.instances]
            for instance, ticket in tickets:
                await instance.wait_processed(ticket)
                await instance.wait_until(at_rest)

        return stop

    def _roll_op(
        self,
        service: Service,
        reason: str,
        *,
        only_live: bool = False,
        drain: DrainReason | None = DrainReason.RESTART,
    ) -> Callable[[], Awaitable[None]]:
        """Restart one replica at a time (with a fresh launch spec), its clients drained to
        the others first (told ``drain``; None: not drained); stop at the first that does
        not come back, leaving the rest."""

        async def roll() -> None:
            for instance in list(service.instances):
                live = instance.state in (S.STARTING, S.RUNNING, S.BACKOFF, S.FATAL)
                self._refresh_spec(service, instance)
                if only_live and not live:
                    continue  # a reload restarts what runs; a stopped replica starts fresh later
                try:
                    if drain is not None:
                        await self._drain(service, instance, drain)
                    ticket = instance.send(Restart(reason))
                    await instance.wait_processed(ticket)
                    await instance.wait_until(up_or_failed)
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
            if dependency is None or all(ready(i.machine) for i in dependency.instances):
                continue
            service.waiting_for = f"waiting for {name}"
            if dependency.operation is None and all(
                i.state is S.STOPPED for i in dependency.instances
            ):
                self._begin(dependency, self._start_op(dependency, f"{source}, for {service.name}"))
            for instance in dependency.instances:
                await instance.wait_until(ready)

    async def _drain(self, service: Service, instance: Instance, reason: DrainReason) -> None:
        """Take no new clients on ``instance``; let the router move its clients away once
        their turns end (up to drain_timeout), telling them ``reason``. It stays draining
        until the caller clears it."""
        if self.drain is None or instance.state is not S.RUNNING:
            return
        instance.draining = True
        instance_id = f"{service.name}:{instance.replica}"
        await self.drain(instance_id, timeout=service.config.drain_timeout, reason=reason)

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
                new, environment, ports = await self._checked(new)
            except AgentvisorError as error:
                errors = error.details.get("errors", [error.message])
                self.bus.publish(ConfigReloaded(False, (), (), (), (), tuple(errors), time.time()))
                self._publish_action("reload", "", source, "rejected", error.message)
                raise
            plan, needs_restart = self._apply_quick(new, ports)
            rolls = {
                name: self._begin(
                    self._services[name],
                    self._roll_op(
                        self._services[name],
                        "config changed",
                        only_live=True,
                        drain=DrainReason.RELOAD,
                    ),
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
        result = ReloadResult(
            plan, failed, needs_restart, config_path=self.config_path, environment=environment
        )
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

    async def _checked(
        self, new: Config | None
    ) -> tuple[Config, EnvironmentUse, Mapping[tuple[str, int], int]]:
        """The config to apply (the file read again and checked when None), the ``${VAR}``
        names it used and its ports; raises what makes a reload refuse (no ports, no change)."""
        if new is not None:  # an API edit, checked and written already
            return new, EnvironmentUse(), self._ports.plan(new.agents)
        loaded, environment = await trio.to_thread.run_sync(
            load_checked, self.config_path, self.config
        )
        return loaded, environment, self._ports.plan(loaded.agents)

    def _apply_quick(
        self, new: Config, ports: Mapping[tuple[str, int], int]
    ) -> tuple[ReloadPlan, tuple[str, ...]]:
        """Everything of a reload but the rolling restarts: no waiting on processes."""
        plan = plan_reload(self.config, new)
        needs_restart = sections_needing_restart(plan, self.config, new)
        range_changed = new.supervisor.port_range != self.config.supervisor.port_range
        # The node keeps the cluster it joined at start (its registry, its workers' store).
        self.config = attrs.evolve(new, source=self.config_path, cluster=self.config.cluster)
        self._ports.commit(new.agents, ports)
        if range_changed:
            self._warn_about_port_range()
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
                # Clients of a route that has other agents move there first.
                async with trio.open_nursery() as nursery:
                    for instance in service.instances:
                        nursery.start_soon(self._drain, service, instance, DrainReason.REMOVAL)
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
        plan = scale_plan(
            [i.replica for i in service.instances],
            service.desired,
            victims=victims,
            retiring=service.retiring,
            has_port={r for name, r in self._ports.assigned if name == service.name},
        )
        for index in plan.retire:
            instance, scope = service.instances.pop(index), service.scopes.pop(index)
            self._begin_detached(instance, scope)
        live = any(i.state in (S.STARTING, S.RUNNING, S.BACKOFF) for i in service.instances)
        start = live or (not service.instances and service.config.autostart)
        for replica in plan.add:
            instance = self._add_instance_soon(service, replica)
            if start:
                instance.send(Start("scaled up"))
        pairs = sorted(
            zip(service.instances, service.scopes, strict=True), key=lambda pair: pair[0].replica
        )
        service.instances[:] = [instance for instance, _ in pairs]
        service.scopes[:] = [scope for _, scope in pairs]

    def _begin_detached(self, instance: Instance, scope: trio.CancelScope) -> None:
        """Stop an instance no longer part of its service, then end its task."""
        assert self._nursery is not None

        service = self._services[instance.service]
        service.retiring.add(instance.replica)

        async def retire() -> None:
            try:
                await self._drain(service, instance, DrainReason.SCALE_DOWN)
                instance.send(Stop("scaled down"))
                await instance.wait_until(at_rest)
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
        port = self._ports.assigned[(service.name, replica)]
        return service.add_instance(
            self._nursery,
            new_instance(
                service,
                replica,
                port,
                self.config,
                self._parts,
                self._rng.random(),
                self._lost_turns_reader(service),
            ),
        )

    def _lost_turns_reader(self, service: Service) -> LostTurnReader | None:
        """Where a dead worker of an agent left its turns: Redis in a cluster."""
        if service.config.agent is None:
            return None
        cluster = self.config.cluster
        if cluster is None:
            return functools.partial(take_lost_turns, session_store_path(self.config, service.name))
        if self._redis_turns is None:
            self._redis_turns = RedisTurns(cluster)
        return functools.partial(self._redis_turns.take, session_namespace(cluster, service.name))

    def _refresh_spec(self, service: Service, instance: Instance) -> None:
        port = self._ports.assigned[(service.name, instance.replica)]
        service.refresh(instance, port, self.config, self._env)

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
