"""The supervision policy taken from an agent's config, and the health thresholds."""

from __future__ import annotations

import pytest

from agentvisor.config.model import AgentConfig, AutoRestart, HealthConfig
from agentvisor.supervise.backoff import Backoff
from agentvisor.supervise.policy import Health, HealthTracker, Policy

AGENT = AgentConfig(
    command="worker",
    autorestart=AutoRestart.ALWAYS,
    exitcodes=(0, 3),
    startsecs=2.0,
    startretries=7,
    backoff_initial=0.25,
    backoff_max=12.0,
    backoff_factor=3.0,
    backoff_jitter=0.2,
    stable_secs=45.0,
    fatal_cooldown=120.0,
    stopsignal="INT",
    stopwaitsecs=4.0,
    health=HealthConfig(interval=5.0, timeout=2.0, unhealthy_threshold=4, healthy_threshold=2),
)


def test_from_agent_maps_start_and_retry_settings() -> None:
    policy = Policy.from_agent(AGENT)

    assert (policy.startsecs, policy.startretries, policy.stable_secs, policy.fatal_cooldown) == (
        2.0,
        7,
        45.0,
        120.0,
    )


def test_from_agent_maps_backoff_settings() -> None:
    assert Policy.from_agent(AGENT).backoff == Backoff(
        initial=0.25, maximum=12.0, factor=3.0, jitter=0.2
    )


def test_from_agent_maps_autorestart_and_exitcodes() -> None:
    policy = Policy.from_agent(AGENT)

    assert (policy.autorestart, policy.exitcodes) == (AutoRestart.ALWAYS, frozenset({0, 3}))


def test_from_agent_maps_stop_settings() -> None:
    policy = Policy.from_agent(AGENT)

    assert (policy.stopsignal, policy.stopwaitsecs) == ("INT", 4.0)


def test_from_agent_drops_the_sig_prefix_of_stopsignal() -> None:
    assert Policy.from_agent(AgentConfig(command="w", stopsignal="SIGTERM")).stopsignal == "TERM"


def test_from_agent_maps_health_thresholds() -> None:
    policy = Policy.from_agent(AGENT)

    assert (policy.healthy_threshold, policy.unhealthy_threshold) == (2, 4)


def test_enabled_health_checks_gate_the_start() -> None:
    assert Policy.from_agent(AGENT).health_gates_start


def test_disabled_health_checks_do_not_gate_the_start() -> None:
    agent = AgentConfig(command="w", health=HealthConfig(enabled=False))

    assert not Policy.from_agent(agent).health_gates_start


def test_start_timeout_leaves_room_for_startsecs_and_every_allowed_failing_check() -> None:
    # startsecs + unhealthy_threshold * (interval + timeout) = 2 + 4 * (5 + 2)
    assert Policy.from_agent(AGENT).start_timeout == 30.0


@pytest.mark.parametrize(
    ("autorestart", "code", "restart"),
    [
        (AutoRestart.ALWAYS, 0, True),
        (AutoRestart.ALWAYS, 1, True),
        (AutoRestart.ALWAYS, -9, True),
        (AutoRestart.NEVER, 0, False),
        (AutoRestart.NEVER, 1, False),
        (AutoRestart.NEVER, -9, False),
        (AutoRestart.ON_FAILURE, 0, False),
        (AutoRestart.ON_FAILURE, 3, False),
        (AutoRestart.ON_FAILURE, 1, True),
        (AutoRestart.ON_FAILURE, -9, True),
        (AutoRestart.ON_FAILURE, -15, True),
    ],
)
def test_wants_restart(autorestart: AutoRestart, code: int, restart: bool) -> None:
    policy = Policy(autorestart=autorestart, exitcodes=frozenset({0, 3}))

    assert policy.wants_restart(code) is restart


# HealthTracker -----------------------------------------------------------------------


def observe(
    tracker: HealthTracker, *results: bool, healthy: int = 1, unhealthy: int = 3
) -> HealthTracker:
    for ok in results:
        tracker = tracker.observe(ok, healthy, unhealthy)
    return tracker


def test_health_starts_unknown() -> None:
    assert HealthTracker().status is Health.UNKNOWN


def test_failures_below_unhealthy_threshold_keep_the_status() -> None:
    assert observe(HealthTracker(), False, False).status is Health.UNKNOWN


def test_unhealthy_threshold_consecutive_failures_make_it_unhealthy() -> None:
    assert observe(HealthTracker(), False, False, False).status is Health.UNHEALTHY


def test_a_success_resets_the_failure_streak() -> None:
    tracker = observe(HealthTracker(), False, False, True, False, False)

    assert (tracker.status, tracker.failures) == (Health.HEALTHY, 2)


def test_healthy_threshold_consecutive_successes_make_it_healthy() -> None:
    assert observe(HealthTracker(), True, True, healthy=2).status is Health.HEALTHY


def test_successes_below_healthy_threshold_keep_it_unhealthy() -> None:
    tracker = observe(HealthTracker(), False, False, False, True, healthy=2)

    assert (tracker.status, tracker.successes) == (Health.UNHEALTHY, 1)


def test_a_failure_resets_the_success_streak() -> None:
    tracker = observe(HealthTracker(), False, False, False, True, False, True, healthy=2)

    assert tracker.status is Health.UNHEALTHY


def test_failures_keep_counting_past_the_threshold() -> None:
    assert observe(HealthTracker(), *[False] * 5).failures == 5
