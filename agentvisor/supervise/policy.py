"""Supervision settings of one agent, and the health thresholds (pure)."""

from __future__ import annotations

import enum

import attrs
from attrs import frozen

from agentvisor.config.model import AgentConfig, AutoRestart
from agentvisor.supervise.backoff import Backoff


@frozen
class Policy:
    """What the state machine needs to know of an agent's config."""

    startsecs: float = 1.0
    startretries: int = 5
    backoff: Backoff = attrs.field(factory=Backoff)
    stable_secs: float = 60.0
    fatal_cooldown: float = 300.0
    autorestart: AutoRestart = AutoRestart.ON_FAILURE
    exitcodes: frozenset[int] = frozenset({0})
    stopsignal: str = "TERM"
    stopwaitsecs: float = 10.0
    health_gates_start: bool = False
    start_timeout: float = 30.0  # from spawn: no passing health check by then = failed start
    healthy_threshold: int = 1
    unhealthy_threshold: int = 3

    @classmethod
    def from_agent(cls, agent: AgentConfig) -> Policy:
        health = agent.health
        return cls(
            startsecs=agent.startsecs,
            startretries=agent.startretries,
            backoff=Backoff(
                agent.backoff_initial,
                agent.backoff_max,
                agent.backoff_factor,
                agent.backoff_jitter,
            ),
            stable_secs=agent.stable_secs,
            fatal_cooldown=agent.fatal_cooldown,
            autorestart=agent.autorestart,
            exitcodes=frozenset(agent.exitcodes),
            stopsignal=agent.stopsignal.removeprefix("SIG"),
            stopwaitsecs=agent.stopwaitsecs,
            health_gates_start=health.enabled,
            # Room for a slow start: startsecs, then every failing check the
            # thresholds allow, each bounded by its timeout.
            start_timeout=agent.startsecs
            + health.unhealthy_threshold * (health.interval + health.timeout),
            healthy_threshold=health.healthy_threshold,
            unhealthy_threshold=health.unhealthy_threshold,
        )

    def wants_restart(self, returncode: int) -> bool:
        """Whether an exit from ``running`` with this code is restarted (autorestart)."""
        if self.autorestart is AutoRestart.ALWAYS:
            return True
        if self.autorestart is AutoRestart.NEVER:
            return False
        return returncode not in self.exitcodes


class Health(enum.StrEnum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@frozen
class HealthTracker:
    """Consecutive check results folded into healthy / unhealthy by thresholds."""

    status: Health = Health.UNKNOWN
    successes: int = 0
    failures: int = 0

    def observe(self, ok: bool, healthy_threshold: int, unhealthy_threshold: int) -> HealthTracker:
        if ok:
            successes, failures = self.successes + 1, 0
            status = Health.HEALTHY if successes >= healthy_threshold else self.status
        else:
            successes, failures = 0, self.failures + 1
            status = Health.UNHEALTHY if failures >= unhealthy_threshold else self.status
        return attrs.evolve(self, status=status, successes=successes, failures=failures)
