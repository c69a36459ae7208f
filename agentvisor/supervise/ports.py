"""Port assignment for instances (pure).

Replica i of an agent with a fixed ``port`` listens on ``port + i``. Others get
ports from ``port_range``, skipping every fixed port of the config, every port
already handed out, and ports the caller's ``is_free`` says are taken on the
host (the shell probes them). An instance keeps its port across restarts, so
the router's affinity and the operator's notes stay true.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from functools import partial

from agentvisor.config.model import AgentConfig
from agentvisor.errors import InsufficientResources, PortInUse


def fixed_ports(agents: Iterable[AgentConfig]) -> set[int]:
    """Every port a fixed-port agent's replicas use."""
    return {
        agent.port + replica
        for agent in agents
        if agent.port is not None
        for replica in range(max_replicas(agent))
    }


def max_replicas(agent: AgentConfig) -> int:
    """Replicas an agent may ever run: autoscale's maximum, else ``replicas`` (at least 1)."""
    return max(agent.autoscale.max if agent.autoscale is not None else agent.replicas, 1)


def slots(agent: AgentConfig) -> int:
    """Replicas that get a port now: all up to autoscale's maximum (the autoscaler starts
    them without a reload), else ``replicas``."""
    return agent.autoscale.max if agent.autoscale is not None else agent.replicas


def fixed_port(agent: AgentConfig, replica: int) -> int | None:
    return None if agent.port is None else agent.port + replica


def allocate_port(
    port_range: tuple[int, int],
    taken: Collection[int],
    is_free: Callable[[int], bool],
    start_at: int | None = None,
) -> int:
    """The first port of ``port_range`` not ``taken`` and free on the host.

    The search starts at ``start_at`` (the port after the last one handed out)
    and wraps, so ports are not reused at once after an instance goes away.
    """
    low, high = port_range
    span = high - low + 1
    first = start_at if start_at is not None and low <= start_at <= high else low
    for offset in range(span):
        port = low + (first - low + offset) % span
        if port not in taken and is_free(port):
            return port
    raise InsufficientResources(
        f"no free port left in port_range {low}-{high}; widen [supervisor] port_range"
    )


def ephemeral_overlap(port_range: tuple[int, int], ephemeral: tuple[int, int]) -> str | None:
    """A warning when ``port_range`` shares ports with the kernel's ephemeral range.

    The kernel hands those ports to outgoing connections (the router's, health
    checks', any program's), so one can hold a worker's port while the worker
    restarts, and the worker then fails to bind until it is released.
    """
    low, high = port_range
    first, last = ephemeral
    shared = min(high, last) - max(low, first) + 1
    if shared <= 0:
        return None
    return (
        f"[supervisor] port_range {low}-{high} shares {shared} ports with the kernel's "
        f"ephemeral ports {first}-{last} (net.ipv4.ip_local_port_range): an outgoing "
        "connection can take a worker's port while it restarts; choose a range outside it"
    )


Slot = tuple[str, int]  # (agent name, replica)


class PortBook:
    """Which instance has which port; plans a whole config's assignment before it applies.

    ``plan`` returns the assignment for every replica of ``agents`` without
    changing the book, so a reload that cannot get its ports is rejected
    before anything is stopped or started. An instance keeps an allocated port
    while its agent stays on allocated ports and no fixed port claims it.
    """

    def __init__(self, port_range: tuple[int, int], is_free: Callable[[str, int], bool]) -> None:
        self.port_range = port_range
        self._is_free = is_free
        self.assigned: dict[Slot, int] = {}
        self._allocated: set[Slot] = set()
        self._next: int | None = None

    def plan(self, agents: Mapping[str, AgentConfig]) -> dict[Slot, int]:
        reserved = fixed_ports(agents.values())
        plan: dict[Slot, int] = {}
        for name, agent in agents.items():
            for replica in range(slots(agent)):
                port = fixed_port(agent, replica)
                if port is None:
                    continue
                holder = self._holder(port)
                if holder is not None and holder in self._allocated and holder[0] in agents:
                    raise PortInUse(
                        f"port {port} of agents.{name} is allocated to {holder[0]}:{holder[1]} "
                        f"from port_range; choose a port outside {self.port_range[0]}-"
                        f"{self.port_range[1]}"
                    )
                plan[(name, replica)] = port
        cursor = self._next
        for name, agent in agents.items():
            if agent.port is not None:
                continue
            for replica in range(slots(agent)):
                slot = (name, replica)
                kept = self.assigned.get(slot)
                if slot in self._allocated and kept is not None and kept not in reserved:
                    plan[slot] = kept
                    continue
                taken = reserved | set(plan.values()) | set(self.assigned.values())
                is_free = partial(self._is_free, agent.host)
                port = allocate_port(self.port_range, taken, is_free, cursor)
                plan[slot] = port
                cursor = port + 1
        return plan

    def commit(self, agents: Mapping[str, AgentConfig], plan: Mapping[Slot, int]) -> None:
        """Make ``plan`` (from ``plan(agents)``) the book; ports of slots not in it are freed."""
        self.assigned = dict(plan)
        self._allocated = {slot for slot in plan if agents[slot[0]].port is None}
        allocated = [plan[slot] for slot in self._allocated]
        if allocated:
            self._next = max(allocated) + 1

    def _holder(self, port: int) -> Slot | None:
        return next((slot for slot, held in self.assigned.items() if held == port), None)
