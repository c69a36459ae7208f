"""Snapshots of the live state, for the admin API, the CLI and (later) the router.

These are plain frozen records built on demand from the running instances;
nothing here is stored or mutated.
"""

from __future__ import annotations

from attrs import frozen

from agentvisor.config.model import AgentConfig


@frozen
class HealthView:
    status: str = "unknown"  # healthy | unhealthy | unknown
    last_check_at: float | None = None  # wall clock
    response_time: float | None = None  # seconds
    message: str = ""
    consecutive_failures: int = 0


@frozen
class InstanceView:
    service: str
    replica: int
    state: str  # stopped | starting | running | backoff | stopping | exited | fatal
    host: str
    port: int | None
    pid: int | None
    started_at: float | None  # wall clock of the current process's start
    uptime: float | None  # seconds, while a process is up
    restarts: int  # automatic restarts since agentvisor started this instance
    failures: int  # consecutive failures counted toward ``fatal``
    exit_code: int | None  # of the last process; negative = killed by that signal
    next_retry_at: float | None  # wall clock, in backoff and fatal
    reason: str  # why it is in this state
    health: HealthView
    cpu_percent: float | None
    memory_bytes: int | None
    sessions: int | None = None  # active sessions the worker reports (agent workers only)
    exit_reason: str = ""  # of the last process: "exit status 1: ModuleNotFoundError: ..."
    stderr_tail: tuple[str, ...] = ()  # last stderr lines of the current or last process


@frozen
class ServiceView:
    name: str
    state: str  # aggregate: see ``aggregate_state``
    kind: str  # "agent" | "command"
    description: str
    tags: tuple[str, ...]
    desired_replicas: int
    running: int
    instances: tuple[InstanceView, ...]
    config: AgentConfig


@frozen
class Endpoint:
    """An instance as the router sees it: where to connect, and whether it may take clients."""

    instance_id: str  # "name:replica"
    service: str
    replica: int
    host: str
    port: int
    ws_path: str
    routable: bool  # running, health not unhealthy, the agent is routable, not draining
    draining: bool
    weight: float
    max_sessions: int
    sessions: int  # active sessions last reported by the worker (0 when unknown)
    tags: tuple[str, ...]


def aggregate_state(states: list[str], desired: int) -> str:
    """One word for a service from its instances' states.

    ``running`` when every desired instance runs; ``fatal`` when any is fatal;
    otherwise the most telling state present (starting, backoff, stopping),
    ``degraded`` for a partial set, ``stopped`` when nothing runs.
    """
    if not states:
        return "stopped"
    running = states.count("running")
    if desired and running >= desired and running == len(states):
        return "running"
    for telling in ("fatal", "backoff", "starting", "stopping"):
        if telling in states:
            return telling
    if running:
        return "degraded"
    if "exited" in states:
        return "exited"
    return "stopped"
