"""Port assignment for instances (pure).

Replica i of an agent with a fixed ``port`` listens on ``port + i``. Others get
ports from ``port_range``, skipping every fixed port of the config, every port
already handed out, and ports the caller's ``is_free`` says are taken on the
host (the shell probes them). An instance keeps its port across restarts, so
the router's affinity and the operator's notes stay true.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from agentvisor.config.model import AgentConfig
from agentvisor.errors import InsufficientResources


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
