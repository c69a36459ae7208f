"""The instance state machine from start to running, and its failed starts."""

from __future__ import annotations

import random

import pytest

from agentvisor.supervise.backoff import Backoff
from agentvisor.supervise.machine import (
    Exited,
    HealthChecked,
    Machine,
    SignalGroup,
    Spawn,
    SpawnFailed,
    Start,
    Timer,
    step,
)
from agentvisor.supervise.policy import Health
from agentvisor.supervise.states import ProcessState as S

from .fake_shell import (
    GATED,
    POLICY,
    FixedRandom,
    crash_while_starting,
    fatal_shell,
    retry_after_backoff,
    running_shell,
    shell,
    starting_shell,
)

# Starting → running ---------------------------------------------------------------


def test_start_spawns_and_enters_starting() -> None:
    machine, actions = step(Machine(), Start(), 0.0, POLICY, random.Random(0))

    assert (machine.state, actions) == (S.STARTING, (Spawn(),))


def test_spawned_records_pid_and_waits_startsecs() -> None:
    s = shell()
    s.send(Start(), at=5.0)

    assert (s.machine.pid, s.machine.spawned_at, s.machine.deadline) == (100, 5.0, 6.0)


def test_timer_at_startsecs_enters_running() -> None:
    s = starting_shell()

    s.send(Timer(), at=1.0)

    assert s.machine.state is S.RUNNING


def test_clean_start_runs_without_a_stable_timer() -> None:
    s = running_shell()

    assert s.machine.deadline is None


def test_startsecs_zero_runs_as_soon_as_spawned() -> None:
    s = shell(startsecs=0.0)

    s.send(Start(), at=0.0)

    assert s.machine.state is S.RUNNING


def test_uptime_counts_from_spawned() -> None:
    s = running_shell()

    assert s.machine.uptime(42.0) == 42.0


def test_uptime_is_none_without_a_process() -> None:
    assert Machine().uptime(42.0) is None


# Health-gated start ----------------------------------------------------------------


def test_health_gated_start_keeps_starting_after_startsecs_without_a_passing_check() -> None:
    s = starting_shell(GATED)

    s.send(Timer(), at=1.0)

    assert (s.machine.state, s.machine.deadline) == (S.STARTING, 30.0)


def test_health_gated_start_runs_on_first_passing_check_after_startsecs() -> None:
    s = starting_shell(GATED)
    s.send(Timer(), at=1.0)

    s.send(HealthChecked(ok=True), at=4.0)

    assert s.machine.state is S.RUNNING


def test_health_gated_start_with_early_passing_check_runs_at_startsecs() -> None:
    s = starting_shell(GATED)
    s.send(HealthChecked(ok=True), at=0.5)
    assert s.machine.state is S.STARTING

    s.send(Timer(), at=1.0)

    assert s.machine.state is S.RUNNING


def test_failed_checks_while_starting_do_not_make_it_unhealthy() -> None:
    s = starting_shell(GATED)

    for at in (0.5, 2.0, 4.0, 6.0, 8.0):
        assert s.send(HealthChecked(ok=False, message="refused"), at=at) == ()

    assert (s.machine.state, s.machine.health.status) == (S.STARTING, Health.UNKNOWN)


def test_no_passing_check_by_start_timeout_stops_the_process() -> None:
    s = starting_shell(GATED)
    s.wait_until(29.9)

    actions = s.send(Timer(), at=30.0)

    assert (s.machine.state, actions) == (S.STOPPING, (SignalGroup("TERM"),))


def test_start_timeout_stop_waits_stopwaitsecs_before_kill() -> None:
    s = starting_shell(GATED)

    s.wait_until(30.0)

    assert s.machine.deadline == 40.0


def test_exit_after_start_timeout_counts_as_a_failed_start() -> None:
    s = starting_shell(GATED)
    s.wait_until(30.0)

    actions = s.send(Exited(-15), at=30.5)

    assert (actions, s.machine.failures, s.machine.restarts) == ((Spawn(),), 1, 1)


def test_start_that_never_passes_a_health_check_goes_fatal_even_past_stable_secs() -> None:
    # start_timeout (30 s) longer than stable_secs (10 s): a process that never
    # answers a health check has never started, so its uptime must not reset
    # the failure count; it must end fatal after startretries + 1 attempts.
    s = starting_shell(GATED, startretries=2, stable_secs=10.0, start_timeout=30.0)

    for _ in range(10):
        if s.machine.state is not S.STARTING:
            break
        assert s.machine.spawned_at is not None
        s.wait_until(s.machine.spawned_at + 30.0)
        assert s.machine.state is S.STOPPING
        s.send(Exited(-15), at=s.now + 0.5)
        if s.machine.state is S.BACKOFF:
            retry_after_backoff(s)

    assert (s.machine.state, len(s.spawn_times())) == (S.FATAL, 3)


# Crashes while starting --------------------------------------------------------------


def test_first_crash_while_starting_respawns_at_once() -> None:
    s = starting_shell()

    actions = crash_while_starting(s)

    assert (actions, s.machine.state, s.machine.failures) == ((Spawn(),), S.STARTING, 1)


def test_spawn_failure_counts_like_a_crash() -> None:
    machine, _ = step(Machine(), Start(), 0.0, POLICY, random.Random(0))

    machine, actions = step(machine, SpawnFailed("no such file"), 0.0, POLICY, random.Random(0))

    assert (machine.failures, actions) == (1, (Spawn(),))


def test_first_crash_counts_an_automatic_restart() -> None:
    s = starting_shell()

    crash_while_starting(s)

    assert s.machine.restarts == 1


def test_second_consecutive_crash_backs_off_by_backoff_initial() -> None:
    s = starting_shell()
    crash_while_starting(s)

    actions = crash_while_starting(s)

    assert (actions, s.machine.state) == ((), S.BACKOFF)
    assert s.machine.deadline is not None
    assert s.machine.deadline - s.now == pytest.approx(1.0)


def test_backoff_delays_follow_backoff_delay_of_the_failure_count() -> None:
    s = starting_shell(startretries=6)
    crash_while_starting(s)
    delays = []
    for _ in range(5):
        crash_while_starting(s)
        assert s.machine.deadline is not None
        delays.append(s.machine.deadline - s.now)
        retry_after_backoff(s)

    assert delays == pytest.approx([s.policy.backoff.delay(n, 0.0) for n in range(2, 7)])
    assert delays == pytest.approx([1.0, 2.0, 4.0, 8.0, 8.0])


def test_backoff_delay_takes_its_jitter_from_the_rng() -> None:
    s = starting_shell(backoff=Backoff(initial=1.0, maximum=8.0, factor=2.0, jitter=0.5))
    s.rng = FixedRandom(0.9)
    crash_while_starting(s)

    crash_while_starting(s)

    assert s.machine.deadline is not None
    assert s.machine.deadline - s.now == pytest.approx(s.policy.backoff.delay(2, 0.9))


def test_timer_at_backoff_deadline_respawns_keeping_failures() -> None:
    s = starting_shell()
    crash_while_starting(s)
    crash_while_starting(s)
    assert s.machine.deadline is not None

    actions = s.send(Timer(), at=s.machine.deadline)

    assert (actions, s.machine.state, s.machine.failures) == ((Spawn(),), S.STARTING, 2)


def test_fatal_after_startretries_plus_one_consecutive_failures() -> None:
    s = starting_shell()  # startretries=3
    for _ in range(3):
        crash_while_starting(s)
        if s.machine.state is S.BACKOFF:
            retry_after_backoff(s)

    actions = crash_while_starting(s)

    assert (actions, s.machine.state, s.machine.failures) == ((), S.FATAL, 4)
    assert len(s.spawn_times()) == 4


def test_spawn_failures_end_fatal_after_startretries_plus_one_tries() -> None:
    s = shell(fatal_cooldown=0.0)
    s.spawn_fails = True

    s.send(Start(), at=0.0)
    s.wait_until(1000.0)

    assert (s.machine.state, len(s.spawn_times())) == (S.FATAL, 4)


def test_startretries_zero_goes_fatal_on_the_first_failure() -> None:
    s = starting_shell(startretries=0)

    crash_while_starting(s)

    assert s.machine.state is S.FATAL


def test_fatal_retries_after_fatal_cooldown() -> None:
    s = fatal_shell()

    assert s.machine.deadline == pytest.approx(s.now + 300.0)


def test_timer_at_fatal_cooldown_restarts_with_failures_reset() -> None:
    s = fatal_shell()
    assert s.machine.deadline is not None

    actions = s.send(Timer(), at=s.machine.deadline)

    assert (actions, s.machine.state, s.machine.failures) == ((Spawn(),), S.STARTING, 0)


def test_fatal_cooldown_zero_stays_fatal_without_a_deadline() -> None:
    s = fatal_shell(fatal_cooldown=0.0)

    s.wait_until(1e6)

    assert (s.machine.state, s.machine.deadline) == (S.FATAL, None)


def test_start_from_fatal_resets_failures() -> None:
    s = fatal_shell(fatal_cooldown=0.0)

    actions = s.send(Start(), at=s.now + 1.0)

    assert (actions, s.machine.failures) == ((Spawn(),), 0)
