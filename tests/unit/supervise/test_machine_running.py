"""The instance state machine while running: crash loops, autorestart, health."""

from __future__ import annotations

import random

import pytest

from agentvisor.config.model import AutoRestart
from agentvisor.supervise.machine import (
    Action,
    Exited,
    HealthChecked,
    SignalGroup,
    Spawn,
    Timer,
    step,
)
from agentvisor.supervise.policy import Health
from agentvisor.supervise.states import ProcessState as S

from .fake_shell import (
    POLICY,
    FakeShell,
    crash_while_starting,
    retry_after_backoff,
    running_at,
    running_shell,
    starting_shell,
)

# Crash loops after running ---------------------------------------------------------------


def crash_after_short_run(s: FakeShell, uptime: float = 2.0) -> None:
    """Bring the current process to ``running``, then let it exit(1) ``uptime`` after spawn."""
    if s.machine.state is S.BACKOFF:
        retry_after_backoff(s)
    assert s.machine.spawned_at is not None
    s.wait_until(s.machine.spawned_at + s.policy.startsecs)
    assert s.machine.state is S.RUNNING
    s.send(Exited(1), at=s.machine.spawned_at + uptime)


def test_first_crash_after_running_restarts_at_once() -> None:
    s = running_shell()

    actions = s.send(Exited(1), at=2.0)

    assert (actions, s.machine.state, s.machine.failures) == ((Spawn(),), S.STARTING, 1)


def test_second_short_run_in_a_row_backs_off() -> None:
    s = running_shell()
    crash_after_short_run(s)

    crash_after_short_run(s)

    assert s.machine.state is S.BACKOFF


def test_crash_loop_after_running_backs_off_with_growing_delays() -> None:
    s = running_shell(startretries=5)
    delays = []
    for _ in range(5):
        crash_after_short_run(s)
        if s.machine.state is S.BACKOFF:
            assert s.machine.deadline is not None
            delays.append(s.machine.deadline - s.now)

    assert delays == pytest.approx([1.0, 2.0, 4.0, 8.0])


def test_crash_loop_after_running_ends_fatal() -> None:
    s = running_shell()  # startretries=3
    for _ in range(10):
        if s.machine.state is S.FATAL:
            break
        crash_after_short_run(s)

    assert (s.machine.state, len(s.spawn_times())) == (S.FATAL, 4)


def test_running_with_failures_sets_a_stable_timer() -> None:
    s = running_shell()
    crash_after_short_run(s)  # failures 1, respawned at once at t=2

    s.wait_until(3.0)

    assert (s.machine.state, s.machine.deadline) == (S.RUNNING, 62.0)


def test_stable_timer_in_running_resets_failures() -> None:
    s = running_shell()
    crash_after_short_run(s)
    s.wait_until(3.0)

    s.send(Timer(), at=62.0)

    assert (s.machine.state, s.machine.failures, s.machine.deadline) == (S.RUNNING, 0, None)


def test_crash_after_stable_timer_restarts_at_once() -> None:
    s = running_shell()
    crash_after_short_run(s)
    crash_after_short_run(s)  # failures 2, in backoff
    retry_after_backoff(s)
    s.wait_until(s.now + 61.0)

    actions = s.send(Exited(1), at=s.now + 1.0)

    assert (actions, s.machine.failures) == ((Spawn(),), 1)


def test_crash_after_stable_uptime_restarts_at_once_with_failures_reset() -> None:
    machine = running_at(failures=3, spawned_at=0.0)  # stable timer not delivered yet

    machine, actions = step(machine, Exited(1), 60.0, POLICY, random.Random(0))

    assert (actions, machine.failures) == ((Spawn(),), 1)


# autorestart ---------------------------------------------------------------------


def test_autorestart_never_leaves_an_exit_exited() -> None:
    s = running_shell(autorestart=AutoRestart.NEVER)

    actions = s.send(Exited(1), at=5.0)

    assert (actions, s.machine.state, s.machine.pid, s.machine.deadline) == (
        (),
        S.EXITED,
        None,
        None,
    )


def test_exited_keeps_the_exit_code() -> None:
    s = running_shell(autorestart=AutoRestart.NEVER)

    s.send(Exited(3), at=5.0)

    assert s.machine.exit_code == 3


def test_on_failure_leaves_an_expected_exit_code_exited() -> None:
    s = running_shell(exitcodes=frozenset({0, 2}))

    actions = s.send(Exited(2), at=5.0)

    assert (actions, s.machine.state) == ((), S.EXITED)


def test_on_failure_restarts_an_unexpected_exit_code() -> None:
    s = running_shell(exitcodes=frozenset({0, 2}))

    actions = s.send(Exited(1), at=5.0)

    assert (actions, s.machine.state) == ((Spawn(),), S.STARTING)


def test_always_restarts_even_an_expected_exit_code() -> None:
    s = running_shell(autorestart=AutoRestart.ALWAYS)

    actions = s.send(Exited(0), at=5.0)

    assert (actions, s.machine.state) == ((Spawn(),), S.STARTING)


def test_on_failure_restarts_a_process_killed_by_a_signal() -> None:
    s = running_shell()

    actions = s.send(Exited(-9), at=5.0)

    assert (actions, s.machine.reason) == ((Spawn(),), "restarting: killed by signal 9")


def test_autorestart_never_still_retries_a_crash_while_starting() -> None:
    s = starting_shell(autorestart=AutoRestart.NEVER)

    actions = crash_while_starting(s)

    assert actions == (Spawn(),)


# Health while running ---------------------------------------------------------------


def fail_checks(s: FakeShell, count: int, every: float = 10.0) -> tuple[Action, ...]:
    actions: tuple[Action, ...] = ()
    for _ in range(count):
        actions = s.send(HealthChecked(ok=False, message="timed out"), at=s.now + every)
    return actions


def test_unhealthy_threshold_failed_checks_stop_a_running_instance() -> None:
    s = running_shell()

    actions = fail_checks(s, 3)

    assert (actions, s.machine.state, s.machine.health.status) == (
        (SignalGroup("TERM"),),
        S.STOPPING,
        Health.UNHEALTHY,
    )


def test_unhealthy_stop_says_why() -> None:
    s = running_shell()

    fail_checks(s, 3)

    assert s.machine.reason == "unhealthy: timed out"


def test_fewer_failed_checks_than_unhealthy_threshold_keep_running() -> None:
    s = running_shell()

    actions = fail_checks(s, 2)

    assert (actions, s.machine.state) == ((), S.RUNNING)


def test_passing_check_resets_the_failed_check_streak() -> None:
    s = running_shell()
    fail_checks(s, 2)
    s.send(HealthChecked(ok=True), at=s.now + 10.0)

    fail_checks(s, 2)

    assert s.machine.state is S.RUNNING


def test_exit_after_unhealthy_stop_restarts_as_a_failure() -> None:
    s = running_shell()
    fail_checks(s, 3)

    actions = s.send(Exited(-15), at=s.now + 1.0)

    assert (actions, s.machine.failures, s.machine.restarts) == ((Spawn(),), 1, 1)


def test_repeated_unhealthy_restarts_back_off() -> None:
    s = running_shell()
    fail_checks(s, 3)
    s.send(Exited(-15), at=s.now + 1.0)
    s.wait_until(s.now + 1.0)
    assert s.machine.state is S.RUNNING

    fail_checks(s, 3, every=1.0)
    s.send(Exited(-15), at=s.now + 1.0)

    assert s.machine.state is S.BACKOFF
    assert s.machine.deadline is not None
    assert s.machine.deadline - s.now == pytest.approx(1.0)


def test_unhealthy_after_stable_uptime_restarts_at_once_with_failures_reset() -> None:
    machine = running_at(failures=2)
    for at in (61.0, 62.0, 63.0):  # stable timer not delivered yet
        machine, _ = step(machine, HealthChecked(ok=False), at, POLICY, random.Random(0))

    machine, actions = step(machine, Exited(-15), 64.0, POLICY, random.Random(0))

    assert (actions, machine.failures) == ((Spawn(),), 1)


def test_unhealthy_with_autorestart_never_stays_running() -> None:
    s = running_shell(autorestart=AutoRestart.NEVER)

    actions = fail_checks(s, 5)

    assert (actions, s.machine.state, s.machine.health.status) == (
        (),
        S.RUNNING,
        Health.UNHEALTHY,
    )


def test_healthy_threshold_passing_checks_recover_health() -> None:
    s = running_shell(autorestart=AutoRestart.NEVER, healthy_threshold=2)
    fail_checks(s, 3)

    s.send(HealthChecked(ok=True), at=s.now + 10.0)
    assert s.machine.health.status is Health.UNHEALTHY
    s.send(HealthChecked(ok=True), at=s.now + 10.0)

    assert s.machine.health.status is Health.HEALTHY


def test_health_resets_for_a_new_process() -> None:
    s = running_shell(autorestart=AutoRestart.ALWAYS)
    fail_checks(s, 2)

    s.send(Exited(1), at=s.now + 1.0)

    assert s.machine.health.status is Health.UNKNOWN
    assert s.machine.health.failures == 0
