"""Issue 9: a worker death with a turn in flight counts against the message, not the agent."""

from __future__ import annotations

import attrs
from hypothesis import given
from hypothesis import strategies as st

from agentvisor.config.model import AutoRestart
from agentvisor.supervise.machine import Exited, Spawn
from agentvisor.supervise.states import ProcessState as S

from .fake_shell import POLICY, FakeShell, running_shell
from .test_machine_running import crash_after_short_run


def die_in_a_turn(s: FakeShell, code: int = 3) -> tuple[object, ...]:
    assert s.machine.spawned_at is not None
    s.wait_until(s.machine.spawned_at + s.policy.startsecs)
    assert s.machine.state is S.RUNNING
    return s.send(Exited(code, in_turn=True), at=s.now + 0.1)


def test_a_death_in_a_turn_is_replaced_at_once_without_counting_a_failure() -> None:
    s = running_shell()

    actions = die_in_a_turn(s)

    assert actions == (Spawn(),)
    assert (s.machine.state, s.machine.failures, s.machine.restarts) == (S.STARTING, 0, 1)
    assert "during a turn" in s.machine.reason


def test_a_poison_message_twice_in_a_row_never_backs_off() -> None:
    s = running_shell()
    die_in_a_turn(s)

    die_in_a_turn(s)

    assert (s.machine.state, s.machine.failures) == (S.STARTING, 0)


def test_a_crash_loop_without_turns_still_backs_off_after_message_deaths() -> None:
    s = running_shell()
    die_in_a_turn(s)
    crash_after_short_run(s)

    crash_after_short_run(s)

    assert s.machine.state is S.BACKOFF


def test_autorestart_never_leaves_a_worker_that_died_in_a_turn_exited() -> None:
    s = running_shell(attrs.evolve(POLICY, autorestart=AutoRestart.NEVER))

    die_in_a_turn(s)

    assert s.machine.state is S.EXITED


@given(st.lists(st.sampled_from(["turn", "ok"]), min_size=1, max_size=30))
def test_deaths_in_turns_never_lead_to_backoff_or_fatal(kinds: list[str]) -> None:
    """However many deaths in turns, between calm runs: never backoff nor fatal."""
    s = running_shell()
    for kind in kinds:
        if kind == "turn":
            die_in_a_turn(s)
        else:
            assert s.machine.spawned_at is not None
            s.wait_until(s.machine.spawned_at + s.policy.stable_secs + 1.0)
        assert s.machine.state in (S.STARTING, S.RUNNING)
        assert s.machine.failures == 0
