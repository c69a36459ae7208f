"""Issue 9: only a death the worker caused counts against the messages it had in flight."""

from __future__ import annotations

import signal

from hypothesis import given
from hypothesis import strategies as st

from agentvisor.supervise.machine import HealthChecked, Restart, Stop, death_counts
from agentvisor.worker.limits import POISON_DEATHS, POISON_SHARED_DEATHS
from agentvisor.worker.poison import Deaths, judge

from .fake_shell import running_shell


def test_an_exit_of_its_own_counts_and_an_outside_signal_does_not() -> None:
    s = running_shell()

    assert death_counts(s.machine, 3)  # os._exit(3) in a tool
    assert death_counts(s.machine, 0)  # left mid-turn, even cleanly
    assert death_counts(s.machine, -signal.SIGSEGV)
    assert death_counts(s.machine, -signal.SIGABRT)
    assert not death_counts(s.machine, -signal.SIGKILL)  # a storm, kill -9, the OOM killer
    assert not death_counts(s.machine, -signal.SIGTERM)
    assert not death_counts(s.machine, -signal.SIGINT)
    assert not death_counts(s.machine, -200)  # no such signal: from outside


def test_a_stop_agentvisor_asked_for_does_not_count_unless_it_was_a_failure() -> None:
    for event in (Stop("scale-down"), Stop("removed from the config"), Restart("reload")):
        s = running_shell()
        s.send(event)
        assert not death_counts(s.machine, -signal.SIGKILL)  # escalated past stopwaitsecs
        assert not death_counts(s.machine, 1)
    s = running_shell()
    s.send(Restart("memory 900 MiB above max_memory_mb 512; restarting", as_failure=True))
    assert death_counts(s.machine, -signal.SIGTERM)
    s = running_shell()
    for _ in range(s.policy.unhealthy_threshold):  # a turn that hangs the worker
        s.send(HealthChecked(False, "timed out"))
    assert death_counts(s.machine, -signal.SIGTERM)


@given(st.lists(st.booleans(), max_size=8))
def test_a_message_is_poisoned_by_two_deaths_one_alone_or_by_four(alone: list[bool]) -> None:
    """``alone``: at each counted death, whether the message was its worker's only turn."""
    deaths = Deaths()
    for index, by_itself in enumerate(alone):
        deaths = deaths.after(alone=by_itself)
        seen = alone[: index + 1]
        expected = len(seen) >= POISON_SHARED_DEATHS or (len(seen) >= POISON_DEATHS and any(seen))
        assert deaths.poisoned is expected
        assert Deaths.from_fields(deaths.fields()) == deaths  # as the stores keep them
    assert not Deaths().poisoned
    assert not Deaths().after(alone=True).poisoned  # one death is never enough


@given(
    st.one_of(st.none(), st.text(max_size=5), st.integers()),
    st.one_of(st.none(), st.text(max_size=5)),
    st.booleans(),
    st.booleans(),
)
def test_a_verdict_judges_only_the_turn_the_dead_worker_ran(
    open_id: object, lost_id: str | None, counts: bool, alone: bool
) -> None:
    before = Deaths(1, 0)
    verdict = judge(open_id, before, lost_id, counts=counts, alone=alone)
    same = (None if open_id is None else str(open_id)) == lost_id
    if not same:
        assert verdict is None  # the session went on elsewhere
    elif counts:
        assert verdict == before.after(alone=alone)
    else:
        assert verdict == before


def test_counts_stored_before_deaths_were_told_apart_count_alone() -> None:
    assert Deaths.from_fields({"deaths": 2}) == Deaths(2, 2)
    assert Deaths.from_fields({"deaths": "x", "alone": True}) == Deaths()
    assert Deaths.from_fields({"deaths": 1, "alone": 5}) == Deaths(1, 1)
