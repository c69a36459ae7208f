"""One agent as the supervisor holds it: its instances, its current operation, and how an
instance of it is put together (files, launch spec, policy) before its task starts."""

from __future__ import annotations

import errno
import logging
import random
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeVar

import attrs
import trio

from agentvisor.config.model import AgentConfig, Config
from agentvisor.errors import AgentvisorError
from agentvisor.events import EventBus
from agentvisor.supervise.instance import (
    Instance,
    InstanceGone,
    InstanceLogs,
    LineSink,
    LostTurnReader,
)
from agentvisor.supervise.logs import LogBook, RotatingLogFile
from agentvisor.supervise.policy import Policy
from agentvisor.supervise.ports import ephemeral_overlap
from agentvisor.supervise.process import Launcher
from agentvisor.supervise.registry import Endpoint, ServiceView, aggregate_state
from agentvisor.supervise.spec import launch_spec, log_path
from agentvisor.supervise.states import DrainReason, ProcessState

log = logging.getLogger("agentvisor.supervisor")

MiB = 1024 * 1024
T = TypeVar("T")


class Drain(Protocol):
    def __call__(
        self, instance_id: str, *, timeout: float, reason: DrainReason
    ) -> Awaitable[None]: ...


class OperationFailed(AgentvisorError):
    """A start or restart did not bring every instance up (the instances say why)."""

    code = "SERVICE_START_FAILED"


class ShuttingDown(AgentvisorError):
    code = "SHUTTING_DOWN"


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

    def add_instance(self, nursery: trio.Nursery, instance: Instance) -> Instance:
        """Add ``instance`` as the next replica and start its task in ``nursery``."""
        scope = trio.CancelScope()

        async def run_instance() -> None:
            with scope:
                await instance.run()

        nursery.start_soon(run_instance)
        self.instances.append(instance)
        self.scopes.append(scope)
        return instance

    def refresh(
        self, instance: Instance, port: int, config: Config, env: Mapping[str, str]
    ) -> None:
        """Give ``instance`` the current settings; its next (re)start uses them."""
        agent = self.config
        instance.host, instance.port, instance.ws_path = agent.host, port, agent.ws_path
        instance.spec = launch_spec(self.name, agent, instance.replica, port, config, env)

    def begin(self, nursery: trio.Nursery, work: Callable[[], Awaitable[None]]) -> Operation:
        """Make ``work`` this service's one operation (a task in ``nursery``), cancelling
        the one before."""
        if self.operation is not None:
            self.operation.cancel()
        operation = Operation(self.name)
        self.operation = operation.scope

        async def run() -> None:
            try:
                with operation.scope:
                    await work()
            except (AgentvisorError, InstanceGone) as error:
                log.warning("%s: %s", self.name, error)
                operation.error = error
            finally:
                if self.operation is operation.scope:
                    self.operation = None
                operation.done.set()

        nursery.start_soon(run)
        return operation

    def endpoints(self) -> list[Endpoint]:
        """Its instances with a port, for the router (routable or not: it filters)."""
        config = self.config
        return [
            Endpoint(
                instance_id=f"{self.name}:{instance.replica}",
                service=self.name,
                replica=instance.replica,
                host=instance.host,
                port=instance.port,
                ws_path=instance.ws_path,
                routable=config.routable and instance.accepts_clients,
                draining=instance.draining,
                weight=config.weight,
                max_sessions=config.max_sessions,
                sessions=sessions_in_use(instance),
                tags=config.tags,
            )
            for instance in list(self.instances)
            if instance.port is not None
        ]

    def check_up(self, what: str) -> None:
        """Raise :class:`OperationFailed` naming every instance that is not running."""
        down = [i for i in self.instances if i.state is not ProcessState.RUNNING]
        if down:
            reasons = "; ".join(
                f"{i.service}:{i.replica} {i.state}: {i.machine.reason}" for i in down
            )
            raise OperationFailed(f"{self.name} {what}: {reasons}")


async def run_detached(nursery: trio.Nursery, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` in ``nursery`` and wait for it; cancelling the wait does not cancel
    the work. Expected failures (AgentvisorError) reach the caller."""
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

    nursery.start_soon(run)
    await done.wait()
    if failure:
        raise failure[0]
    return outcome[0]


@attrs.frozen
class InstanceParts:
    """What every instance of the supervisor shares: where it runs and reports."""

    launcher: Launcher
    bus: EventBus
    env: Mapping[str, str]
    log_sink: LineSink | None


def new_instance(
    service: Service,
    replica: int,
    port: int,
    config: Config,
    parts: InstanceParts,
    seed: float,
    lost_turns: LostTurnReader | None,
) -> Instance:
    """An instance of ``service`` on ``port``, its log files open; its task not started.

    ``lost_turns`` reads the turns a dead worker had in flight (agent workers only).
    """
    agent = service.config
    files = {
        stream: RotatingLogFile(
            log_path(config, service.name, replica, stream),
            int(agent.stdout_log_max_mb * MiB),
            agent.stdout_log_backups,
        )
        for stream in ("stdout", "stderr")
    }
    forward = config.supervisor.forward_worker_output
    return Instance(
        service=service.name,
        replica=replica,
        host=agent.host,
        port=port,
        spec=launch_spec(service.name, agent, replica, port, config, parts.env),
        policy=Policy.from_agent(agent),
        health=agent.health,
        ws_path=agent.ws_path,
        protocol_ping=agent.agent is not None,
        launcher=parts.launcher,
        bus=parts.bus,
        logs=InstanceLogs(
            service.logbook,
            files,
            f"{service.name}:{replica}" if forward else None,
            parts.bus,
            parts.log_sink,
        ),
        rng=random.Random(seed),
        lost_turns=lost_turns,
    )


def sessions_in_use(instance: Instance) -> int:
    """What counts against ``max_sessions`` for the router: the worker's sessions with a
    client or a turn (it lets go of the others to make room), else all it holds."""
    stats = instance.worker_stats
    sessions = stats.get("sessions") if stats is not None else None
    in_use = sessions.get("in_use") if isinstance(sessions, dict) else None
    return in_use if isinstance(in_use, int) else instance.sessions


EPHEMERAL_PORTS = "/proc/sys/net/ipv4/ip_local_port_range"


def ephemeral_ports(path: str = EPHEMERAL_PORTS) -> tuple[int, int] | None:
    """The kernel's ephemeral port range, or None where it cannot be read (not Linux)."""
    try:
        with open(path) as file:
            first, last = (int(word) for word in file.read().split())
    except (OSError, ValueError):
        return None
    return first, last


def port_range_warning(config: Config) -> str | None:
    """The warning :func:`ports.ephemeral_overlap` gives for this host, if any."""
    ephemeral = ephemeral_ports()
    if ephemeral is None:
        return None
    return ephemeral_overlap(config.supervisor.port_range, ephemeral)


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
