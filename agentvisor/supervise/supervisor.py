"""The supervisor: turns the config's agents into supervised instances.

It owns one nursery holding every instance's task, starts agents in
``depends_on`` order, carries out operator commands (start, stop, rolling
restart), applies reloads with the diff semantics of ARCHITECTURE.md, and
samples every instance's process tree.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Mapping

import attrs
import httpx
import trio

from agentvisor.config.diff import plan_reload
from agentvisor.config.load import load_config
from agentvisor.config.model import AgentConfig, Config
from agentvisor.errors import ConfigInvalid, ServiceNotFound
from agentvisor.events import ConfigReloaded, EventBus, OperatorAction
from agentvisor.supervise.instance import Instance, InstanceLogs
from agentvisor.supervise.logs import LogBook, RotatingLogFile
from agentvisor.supervise.machine import Machine, Restart, Start, Stop
from agentvisor.supervise.policy import Health, Policy
from agentvisor.supervise.ports import allocate_port, fixed_port, fixed_ports
from agentvisor.supervise.process import Launcher
from agentvisor.supervise.registry import Endpoint, ServiceView, aggregate_state
from agentvisor.supervise.sampling import TreeSampler
from agentvisor.supervise.spec import launch_spec, state_dir
from agentvisor.supervise.states import ProcessState

log = logging.getLogger("agentvisor.supervisor")

S = ProcessState
MiB = 1024 * 1024


@attrs.frozen
class ReloadResult:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()
    scaled: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    needs_restart: tuple[str, ...] = ()  # sections whose change takes effect on the next start


def _started_or_failed(m: Machine) -> bool:
    return m.state not in (S.STOPPED, S.STARTING, S.STOPPING)


def _at_rest(m: Machine) -> bool:
    return m.state in (S.STOPPED, S.EXITED, S.FATAL)


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
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


class Service:
    """One agent: its config, instances (index = replica) and log book."""

    def __init__(self, name: str, config: AgentConfig) -> None:
        self.name = name
        self.config = config
        self.instances: list[Instance] = []
        self.scopes: list[trio.CancelScope] = []
        self.logbook = LogBook(name)
        self.waiting_for: str = ""

    def view(self) -> ServiceView:
        instances = tuple(instance.view() for instance in self.instances)
        desired = self.config.desired_replicas
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
    ) -> None:
        self.config = config
        self.config_path = config.source
        self.bus = bus
        self._launcher = launcher
        self._env = dict(os.environ if env is None else env)
        self._rng = rng or random.Random()
        self._port_free = port_free
        self._services: dict[str, Service] = {}
        self._ports: dict[tuple[str, int], int] = {}
        self._next_port: int | None = None
        self._sampler = TreeSampler()
        self._reload_lock = trio.Lock()
        self._nursery: trio.Nursery | None = None

    # Queries -----------------------------------------------------------------

    def services(self) -> list[ServiceView]:
        return [service.view() for service in self._services.values()]

    def service(self, name: str) -> ServiceView:
        return self._get(name).view()

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
                sessions=instance.sessions,
                tags=service.config.tags,
            )
            for service in self._services.values()
            for instance in service.instances
            if instance.port is not None
        ]

    def logbook(self, name: str) -> LogBook:
        return self._get(name).logbook

    def instances(self, name: str) -> list[Instance]:
        return list(self._get(name).instances)

    def _get(self, name: str) -> Service:
        try:
            return self._services[name]
        except KeyError:
            raise ServiceNotFound(name) from None

    # Running -----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Create every agent's instances, start the autostart ones, sample; never returns."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for name, agent in self.config.agents.items():
                await self._add_service(name, agent)
            for name, agent in self.config.agents.items():
                if agent.autostart:
                    nursery.start_soon(self._start_in_order, name, "autostart")
            nursery.start_soon(self._sample_forever)
            task_status.started()

    async def shutdown(self) -> None:
        """Stop every instance (stop signal, SIGKILL after stopwaitsecs); the caller bounds it."""
        self._publish_action("shutdown", "", "signal", "ok", "stopping every agent")
        async with trio.open_nursery() as nursery:
            for service in self._services.values():
                nursery.start_soon(self._stop_service, service, "agentvisor is shutting down")

    # Operator commands ---------------------------------------------------------

    async def start(self, name: str, *, source: str) -> None:
        self._get(name)
        self._publish_action("start", name, source, "ok", f"start requested by {source}")
        await self._start_in_order(name, source)

    async def stop(self, name: str, *, source: str) -> None:
        service = self._get(name)
        self._publish_action("stop", name, source, "ok", f"stop requested by {source}")
        await self._stop_service(service, f"stopped by {source}")

    async def restart(self, name: str, *, source: str, force: bool = False) -> None:
        """Rolling restart: one replica at a time, each back up before the next goes."""
        service = self._get(name)
        self._publish_action("restart", name, source, "ok", f"restart requested by {source}")
        for instance in list(service.instances):
            await self._restart_instance(instance, f"restarted by {source}")

    async def reload(self, *, source: str) -> ReloadResult:
        """Load the config file again and apply what changed; invalid → nothing changes."""
        async with self._reload_lock:
            try:
                new = await trio.to_thread.run_sync(load_config, self.config_path)
            except ConfigInvalid as error:
                self.bus.publish(
                    ConfigReloaded(
                        False, (), (), (), (), tuple(error.details["errors"]), time.time()
                    )
                )
                self._publish_action("reload", "", source, "rejected", error.message)
                raise
            result = await self._apply_config(new)
        self.bus.publish(
            ConfigReloaded(
                True,
                result.added,
                result.removed,
                result.restarted,
                result.updated + result.scaled,
                (),
                time.time(),
            )
        )
        self._publish_action("reload", "", source, "ok", _describe(result))
        return result

    # Internals -----------------------------------------------------------------

    async def _apply_config(self, new: Config) -> ReloadResult:
        plan = plan_reload(self.config, new)
        needs_restart = tuple(
            section
            for section, changed in (
                ("admin", plan.admin_changed),
                ("router", plan.router_changed),
                (
                    "supervisor.state_dir",
                    new.supervisor.state_dir != self.config.supervisor.state_dir,
                ),
            )
            if changed
        )
        self.config = attrs.evolve(new, source=self.config_path)
        for name in plan.removed:
            service = self._services.pop(name)
            await self._stop_service(service, "removed from the config")
            for scope in service.scopes:
                scope.cancel()
            for replica in range(len(service.instances)):
                self._ports.pop((name, replica), None)
        for name in plan.added:
            await self._add_service(name, new.agents[name])
            if new.agents[name].autostart:
                assert self._nursery is not None
                self._nursery.start_soon(self._start_in_order, name, "reload")
        for name in {*plan.live, *plan.scaled, *plan.restart}:
            self._update_live(self._services[name], new.agents[name])
        for name in plan.scaled:
            await self._scale_down(self._services[name])
        for name in plan.restart:
            service = self._services[name]
            for instance in list(service.instances):
                self._refresh_spec(service, instance)
                # A fatal instance is tried again: the change may be its fix.
                if instance.state in (S.STARTING, S.RUNNING, S.BACKOFF, S.FATAL):
                    await self._restart_instance(instance, "config changed")
        for name in plan.scaled:
            await self._scale_up(self._services[name])
        return ReloadResult(
            added=plan.added,
            removed=plan.removed,
            restarted=plan.restart,
            scaled=plan.scaled,
            updated=plan.live,
            needs_restart=needs_restart,
        )

    def _update_live(self, service: Service, agent: AgentConfig) -> None:
        service.config = agent
        policy = Policy.from_agent(agent)
        for instance in service.instances:
            instance.policy = policy
            instance.health = agent.health

    def _refresh_spec(self, service: Service, instance: Instance) -> None:
        agent = service.config
        port = self._port_for(service.name, agent, instance.replica)
        instance.host, instance.port = agent.host, port
        instance.ws_path = agent.ws_path
        instance.spec = launch_spec(
            service.name, agent, instance.replica, port, self.config, self._env
        )

    async def _scale_down(self, service: Service) -> None:
        while len(service.instances) > service.config.desired_replicas:
            instance = service.instances[-1]
            instance.send(Stop("scaled down"))
            await instance.wait_until(_at_rest)
            service.scopes.pop().cancel()
            service.instances.pop()
            self._ports.pop((service.name, instance.replica), None)

    async def _scale_up(self, service: Service) -> None:
        """Add replicas; they start when the service runs (or starts itself)."""
        live = [i for i in service.instances if i.state in (S.STARTING, S.RUNNING, S.BACKOFF)]
        start = bool(live) or (not service.instances and service.config.autostart)
        while len(service.instances) < service.config.desired_replicas:
            instance = await self._add_instance(service, len(service.instances))
            if start:
                instance.send(Start("scaled up"))

    async def _add_service(self, name: str, agent: AgentConfig) -> Service:
        service = Service(name, agent)
        self._services[name] = service
        for replica in range(agent.desired_replicas):
            await self._add_instance(service, replica)
        return service

    async def _add_instance(self, service: Service, replica: int) -> Instance:
        assert self._nursery is not None
        agent = service.config
        port = self._port_for(service.name, agent, replica)
        logs_dir = os.path.join(state_dir(self.config), "logs")
        max_bytes = int(agent.stdout_log_max_mb * MiB)
        files = {
            stream: RotatingLogFile(
                os.path.join(logs_dir, f"{service.name}.{replica}.{stream}.log"),
                max_bytes,
                agent.stdout_log_backups,
            )
            for stream in ("stdout", "stderr")
        }
        forward = self.config.supervisor.forward_worker_output
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
                service.logbook, files, f"{service.name}:{replica}" if forward else None
            ),
            rng=random.Random(self._rng.random()),
        )
        scope = trio.CancelScope()

        async def run_instance(*, task_status: trio.TaskStatus[None]) -> None:
            with scope:
                await instance.run(task_status=task_status)

        await self._nursery.start(run_instance)
        service.instances.append(instance)
        service.scopes.append(scope)
        return instance

    def _port_for(self, name: str, agent: AgentConfig, replica: int) -> int:
        port = fixed_port(agent, replica)
        if port is not None:
            self._ports[(name, replica)] = port
            return port
        if (name, replica) in self._ports and agent.port is None:
            return self._ports[(name, replica)]
        taken = fixed_ports(self.config.agents.values()) | set(self._ports.values())
        port = allocate_port(
            self.config.supervisor.port_range,
            taken,
            lambda candidate: self._port_free(agent.host, candidate),
            self._next_port,
        )
        self._ports[(name, replica)] = port
        self._next_port = port + 1
        return port

    async def _start_in_order(self, name: str, source: str) -> None:
        """Start ``name`` once its dependencies run and are healthy (starting them too)."""
        service = self._get(name)
        for dependency in service.config.depends_on:
            dep = self._services.get(dependency)
            if dep is None:
                continue
            if not all(_ready(i.machine) for i in dep.instances):
                service.waiting_for = f"waiting for {dependency}"
                if all(i.state is S.STOPPED for i in dep.instances):
                    await self._start_in_order(dependency, source)
                for instance in dep.instances:
                    await instance.wait_until(_ready)
        service.waiting_for = ""
        tickets = [(i, i.send(Start(f"started ({source})"))) for i in service.instances]
        for instance, ticket in tickets:
            await instance.wait_processed(ticket)
            await instance.wait_until(_started_or_failed)

    async def _stop_service(self, service: Service, reason: str) -> None:
        tickets = [(i, i.send(Stop(reason))) for i in service.instances]
        for instance, ticket in tickets:
            await instance.wait_processed(ticket)
            await instance.wait_until(_at_rest)

    async def _restart_instance(self, instance: Instance, reason: str) -> None:
        ticket = instance.send(Restart(reason))
        await instance.wait_processed(ticket)
        await instance.wait_until(_started_or_failed)

    def _publish_action(
        self, action: str, target: str, source: str, outcome: str, message: str
    ) -> None:
        log.info("%s %s (%s): %s", action, target or "agentvisor", source, message)
        self.bus.publish(OperatorAction(action, target, source, outcome, message, time.time()))

    # Sampling ------------------------------------------------------------------

    async def _sample_forever(self) -> None:
        # One client for the daemon's life: creating one costs a CA bundle load.
        timeout = min(2.0, self.config.supervisor.sample_interval)
        async with httpx.AsyncClient(verify=False, trust_env=False, timeout=timeout) as http:
            while True:
                await trio.sleep(self.config.supervisor.sample_interval)
                await self.sample_now()
                await self.read_worker_stats(http)

    async def read_worker_stats(self, http: httpx.AsyncClient) -> None:
        """Ask every running agent worker for its ``GET /stats`` (sessions, turns), concurrently."""
        async with trio.open_nursery() as nursery:
            for service in self._services.values():
                if service.config.agent is None:
                    continue  # command workers speak no stats protocol
                for instance in service.instances:
                    if instance.state is S.RUNNING and instance.port is not None:
                        nursery.start_soon(_read_stats, http, instance)

    async def sample_now(self) -> None:
        """Sample every live instance's process tree; restart those above max_memory_mb."""
        live = {
            instance.pid: instance
            for service in self._services.values()
            for instance in service.instances
            if instance.pid is not None
        }
        now = trio.current_time()
        samples = await trio.to_thread.run_sync(self._sampler.sample, list(live), now)
        for pid, sample in samples.items():
            instance = live[pid]
            instance.sample = sample
            limit = self._services[instance.service].config.max_memory_mb
            over = limit is not None and sample.rss_bytes > limit * MiB
            if over and instance.state is S.RUNNING:
                message = (
                    f"memory {sample.rss_bytes / MiB:.0f} MiB above max_memory_mb {limit:g}; "
                    "restarting"
                )
                self._publish_action("restart", instance.service, "memory", "ok", message)
                # As a failure: a worker over the limit right after each start backs off
                # and goes fatal; one that leaked slowly through a stable run restarts at once.
                instance.send(Restart(message, as_failure=True))


async def _read_stats(http: httpx.AsyncClient, instance: Instance) -> None:
    url = f"http://{instance.host}:{instance.port}/stats"
    try:
        response = await http.get(url)
        stats = response.raise_for_status().json()
        active = int(stats["sessions"]["active"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
        log.debug("%s:%d stats unavailable: %s", instance.service, instance.replica, error)
        return
    instance.worker_stats, instance.sessions = stats, active


def _describe(result: ReloadResult) -> str:
    parts = [
        f"{label}: {', '.join(names)}"
        for label, names in (
            ("added", result.added),
            ("removed", result.removed),
            ("restarted", result.restarted),
            ("scaled", result.scaled),
            ("updated", result.updated),
        )
        if names
    ]
    return "; ".join(parts) if parts else "no change"
