"""The instance state machine on stop and restart, and events that do not apply."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from agentvisor.config.model import AutoRestart
from agentvisor.supervise.machine import (
    Event,
    Exited,
    HealthChecked,
    KillGroup,
    Machine,
    Restart,
    SignalGroup,
    Spawn,
    Spawned,
    SpawnFailed,
    Start,
    Stop,
    Timer,
    step,
)
from agentvisor.supervise.states import ProcessState as S

from .fake_shell import (
    POLICY,
    FakeShell,
    crash_while_starting,
    fatal_shell,
    running_at,
    running_shell,
    starting_shell,
)

# Stop ---------------------------------------------------------------------------


def test_stop_from_running_signals_the_group_with_stopsignal() -> None:
    s = running_shell(stopsignal="INT")

    actions = s.send(Stop(), at=5.0)

    assert (actions, s.machine.state) == ((SignalGroup("INT"),), S.STOPPING)


def test_stop_kills_after_stopwaitsecs() -> None:
    s = running_shell()

    s.send(Stop(), at=5.0)

    assert s.machine.deadline == 15.0


def test_timer_at_stopwaitsecs_kills_the_group() -> None:
    s = running_shell()
    s.send(Stop(), at=5.0)

    actions = s.send(Timer(), at=15.0)

    assert (actions, s.machine.state, s.machine.deadline) == ((KillGroup(),), S.STOPPING, None)


def test_exit_while_stopping_is_stopped() -> None:
    s = running_shell()
    s.send(Stop(), at=5.0)

    actions = s.send(Exited(-15), at=6.0)

    assert (actions, s.machine.state, s.machine.pid, s.machine.deadline) == (
        (),
        S.STOPPED,
        None,
        None,
    )


def test_stop_from_starting_signals_the_group() -> None:
    s = starting_shell()

    actions = s.send(Stop(), at=0.5)

    assert (actions, s.machine.state) == ((SignalGroup("TERM"),), S.STOPPING)


def test_stopwaitsecs_zero_kills_at_once() -> None:
    s = running_shell(stopwaitsecs=0.0)

    actions = s.send(Stop(), at=5.0)

    assert (actions, s.machine.state, s.machine.deadline) == ((KillGroup(),), S.STOPPING, None)


def test_stopsignal_kill_kills_at_once() -> None:
    s = running_shell(stopsignal="KILL")

    actions = s.send(Stop(), at=5.0)

    assert (actions, s.machine.deadline) == ((KillGroup(),), None)


def backoff_shell() -> FakeShell:
    s = starting_shell()
    crash_while_starting(s)
    crash_while_starting(s)
    assert s.machine.state is S.BACKOFF
    return s


def exited_shell() -> FakeShell:
    s = running_shell(autorestart=AutoRestart.NEVER)
    s.send(Exited(0), at=5.0)
    return s


@pytest.mark.parametrize(
    "make", [backoff_shell, fatal_shell, exited_shell], ids=["backoff", "fatal", "exited"]
)
def test_stop_at_rest_is_stopped_without_actions(make: Callable[[], FakeShell]) -> None:
    s = make()

    actions = s.send(Stop(), at=s.now + 0.1)

    assert (actions, s.machine.state, s.machine.deadline) == ((), S.STOPPED, None)


def test_stop_while_stopped_is_a_no_op() -> None:
    machine = Machine()

    assert step(machine, Stop(), 1.0, POLICY, random.Random(0)) == (machine, ())


def test_stop_in_backoff_cancels_the_retry() -> None:
    s = backoff_shell()
    s.send(Stop(), at=s.now + 0.1)

    s.wait_until(1e6)

    assert s.spawn_times() == [0.0, 0.1]


# Restart ---------------------------------------------------------------------------


def test_restart_from_running_stops_first() -> None:
    s = running_shell()

    actions = s.send(Restart(), at=5.0)

    assert (actions, s.machine.state) == ((SignalGroup("TERM"),), S.STOPPING)


def test_restart_spawns_once_the_process_exits() -> None:
    s = running_shell()
    s.send(Restart(), at=5.0)

    actions = s.send(Exited(-15), at=6.0)

    assert (actions, s.machine.state, s.machine.pid) == ((Spawn(),), S.STARTING, 101)


def test_restart_resets_failures() -> None:
    machine = running_at(failures=2)
    machine, _ = step(machine, Restart(), 5.0, POLICY, random.Random(0))

    machine, _ = step(machine, Exited(-15), 6.0, POLICY, random.Random(0))

    assert (machine.state, machine.failures) == (S.STARTING, 0)


def test_operator_restart_is_not_counted_as_an_automatic_restart() -> None:
    s = running_shell()
    s.send(Restart(), at=5.0)

    s.send(Exited(-15), at=6.0)

    assert s.machine.restarts == 0


def test_restart_as_failure_counts_toward_fatal() -> None:
    s = running_shell()
    s.send(Restart("unhealthy", as_failure=True), at=5.0)

    s.send(Exited(-15), at=6.0)

    assert (s.machine.failures, s.machine.restarts) == (1, 1)


def test_restart_from_stopped_spawns_at_once() -> None:
    machine, actions = step(Machine(), Restart(), 0.0, POLICY, random.Random(0))

    assert (machine.state, actions) == (S.STARTING, (Spawn(),))


def test_start_while_stopping_restarts_after_exit() -> None:
    s = running_shell()
    s.send(Stop(), at=5.0)
    assert s.send(Start(), at=5.5) == ()

    actions = s.send(Exited(-15), at=6.0)

    assert (actions, s.machine.state) == ((Spawn(),), S.STARTING)


def test_start_while_stopping_reports_the_start_reason_once_respawned() -> None:
    s = running_shell()
    s.send(Stop("stop requested"), at=5.0)
    s.send(Start("start requested"), at=5.5)

    s.send(Exited(-15), at=6.0)

    assert (s.machine.state, s.machine.reason) == (S.STARTING, "start requested")


def test_stop_while_restart_pending_cancels_the_restart() -> None:
    s = running_shell()
    s.send(Restart(), at=5.0)
    s.send(Stop(), at=5.5)

    actions = s.send(Exited(-15), at=6.0)

    assert (actions, s.machine.state) == ((), S.STOPPED)


def test_stop_while_recovering_from_unhealthy_cancels_the_recovery() -> None:
    s = running_shell()
    for at in (10.0, 20.0, 30.0):
        s.send(HealthChecked(ok=False), at=at)
    s.send(Stop(), at=31.0)

    actions = s.send(Exited(-15), at=32.0)

    assert (actions, s.machine.state, s.machine.failures) == ((), S.STOPPED, 0)


# Events that do not apply -------------------------------------------------------------


def assert_no_op(machine: Machine, event: Event, now: float) -> None:
    assert step(machine, event, now, POLICY, random.Random(0)) == (machine, ())


def test_exited_while_stopped_is_a_no_op() -> None:
    s = running_shell()
    s.send(Stop(), at=5.0)
    s.send(Exited(-15), at=6.0)

    assert_no_op(s.machine, Exited(0), 7.0)


def test_spawned_while_stopped_is_a_no_op() -> None:
    assert_no_op(Machine(), Spawned(123), 1.0)


def test_spawn_failed_while_running_is_a_no_op() -> None:
    assert_no_op(running_at(failures=0), SpawnFailed("late"), 5.0)


def test_timer_before_the_deadline_is_a_no_op() -> None:
    s = starting_shell()

    assert_no_op(s.machine, Timer(), 0.99)


def test_timer_without_a_deadline_is_a_no_op() -> None:
    assert_no_op(running_at(failures=0), Timer(), 1e6)


def test_start_while_running_is_a_no_op() -> None:
    assert_no_op(running_at(failures=2), Start(), 5.0)


def test_start_while_starting_is_a_no_op() -> None:
    s = starting_shell()

    assert_no_op(s.machine, Start(), 0.5)


def test_health_checked_while_stopped_is_a_no_op() -> None:
    assert_no_op(Machine(), HealthChecked(ok=False), 1.0)


def test_health_checked_while_stopping_is_a_no_op() -> None:
    s = running_shell()
    s.send(Stop(), at=5.0)

    assert_no_op(s.machine, HealthChecked(ok=False), 6.0)
