"""How an exit is audited (issue 15): asked-for stops are expected, failures are not."""

from __future__ import annotations

from agentvisor.supervise.machine import HealthChecked, Restart, Stop, exit_cause

from .fake_shell import POLICY, running_shell, starting_shell


def test_an_operator_stop_is_expected_with_its_reason() -> None:
    s = running_shell()
    s.send(Stop("stopped by api"))
    assert exit_cause(s.machine, -15, POLICY) == (True, "stopped by api")


def test_a_restart_is_expected_with_its_reason() -> None:
    s = running_shell()
    s.send(Restart("config changed"))
    assert exit_cause(s.machine, -9, POLICY) == (True, "config changed")


def test_a_stop_for_failing_health_is_unexpected() -> None:
    s = running_shell()
    for _ in range(POLICY.unhealthy_threshold):
        s.send(HealthChecked(False, "HTTP 503"))
    assert exit_cause(s.machine, -15, POLICY) == (False, "unhealthy: HTTP 503")


def test_dying_on_its_own_is_unexpected_unless_the_code_is_an_exitcode() -> None:
    s = running_shell()
    assert exit_cause(s.machine, -9, POLICY) == (False, "killed by signal 9")
    assert exit_cause(s.machine, 0, POLICY) == (True, "exited with code 0")
    assert exit_cause(starting_shell().machine, 0, POLICY) == (
        False,
        "exited with code 0 while starting",
    )
