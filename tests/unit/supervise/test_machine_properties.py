"""Invariants of the instance state machine under arbitrary event sequences (Hypothesis).

A harness plays the shell's side of the contract: a ``Spawn`` is answered by
``Spawned`` or ``SpawnFailed`` before anything else, ``Exited`` only comes
while a process is up, and ``Timer`` comes at each deadline as time passes
(also early, drawn as an event, where it must change nothing).
"""

from __future__ import annotations

import random

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from agentvisor.config.model import STOP_SIGNALS, AutoRestart
from agentvisor.supervise.backoff import Backoff
from agentvisor.supervise.machine import (
    Action,
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
from agentvisor.supervise.policy import Policy
from agentvisor.supervise.states import PROCESS_STATES
from agentvisor.supervise.states import ProcessState as S

from .fake_shell import FakeShell

SETTINGS = settings(max_examples=100, deadline=None)


def seconds(high: float) -> st.SearchStrategy[float]:
    return st.floats(0.0, high, allow_nan=False, allow_infinity=False)


backoffs = st.builds(
    Backoff,
    initial=seconds(5.0),
    maximum=seconds(30.0),
    factor=st.floats(1.0, 3.0),
    jitter=st.floats(0.0, 1.0),
)

policies = st.builds(
    Policy,
    startsecs=st.one_of(st.just(0.0), seconds(5.0)),
    startretries=st.integers(0, 6),
    backoff=backoffs,
    stable_secs=st.floats(0.1, 60.0),
    fatal_cooldown=st.one_of(st.just(0.0), st.floats(0.1, 100.0)),
    autorestart=st.sampled_from(AutoRestart),
    exitcodes=st.frozensets(st.integers(-15, 3), max_size=3),
    stopsignal=st.sampled_from(STOP_SIGNALS),
    stopwaitsecs=st.one_of(st.just(0.0), seconds(10.0)),
    health_gates_start=st.booleans(),
    start_timeout=seconds(60.0),
    healthy_threshold=st.integers(1, 3),
    unhealthy_threshold=st.integers(1, 4),
)

deltas = st.one_of(st.just(0.0), seconds(2.0), seconds(100.0))
exit_codes = st.integers(-15, 3)


def shell_events(*, process_up: bool, operator: bool) -> st.SearchStrategy[Event]:
    """Events the shell may deliver; ``operator`` adds start, stop and restart requests."""
    choices: list[st.SearchStrategy[Event]] = [
        st.builds(HealthChecked, ok=st.booleans()),
        st.just(Timer()),  # the harness has delivered every due timer: this one is early
    ]
    if process_up:
        choices += [st.builds(Exited, exit_codes)] * 2
        choices.append(st.just(Restart("unhealthy", as_failure=True)))
    if operator:
        choices += [st.just(Start()), st.just(Stop()), st.builds(Restart, as_failure=st.booleans())]
    return st.one_of(choices)


EVENTS = {
    (process_up, operator): shell_events(process_up=process_up, operator=operator)
    for process_up in (False, True)
    for operator in (False, True)
}
spawn_answers = st.sampled_from([True, True, True, False])  # Spawned, mostly
answer_delays = st.one_of(st.just(0.0), seconds(0.5))


@attrs.define
class Harness:
    """The shell's side of the contract, checking every step on the way."""

    policy: Policy
    rng: random.Random
    machine: Machine = attrs.field(factory=Machine)
    now: float = 0.0
    awaiting_spawn: bool = False
    next_pid: int = 1000
    spawn_times: list[float] = attrs.field(factory=list)

    def deliver(self, event: Event) -> tuple[Action, ...]:
        before = self.machine
        after, actions = step(before, event, self.now, self.policy, self.rng)
        if isinstance(event, Timer) and (before.deadline is None or self.now < before.deadline):
            assert (after, actions) == (before, ()), "an early Timer changes nothing"
        self._check_step(before, after, actions)
        self.machine = after
        self.awaiting_spawn = Spawn() in actions
        if self.awaiting_spawn:
            self.spawn_times.append(self.now)
        self._check_machine()
        return actions

    def answer_spawn(self, ok: bool) -> None:
        assert self.awaiting_spawn
        if ok:
            self.next_pid += 1
            self.deliver(Spawned(self.next_pid))
        else:
            self.deliver(SpawnFailed("exec failed"))

    def wait(self, delta: float) -> None:
        """Let ``delta`` pass, delivering due timers at their deadlines; stop at a Spawn."""
        target = self.now + delta
        while not self.awaiting_spawn and self.machine.deadline is not None:
            if self.machine.deadline > target:
                break
            self.now = max(self.now, self.machine.deadline)
            self.deliver(Timer())
        if not self.awaiting_spawn:
            self.now = target

    def _check_step(self, before: Machine, after: Machine, actions: tuple[Action, ...]) -> None:
        assert len(actions) <= 1
        assert after.restarts >= before.restarts, "restarts never decrease"
        if Spawn() in actions:
            assert after.state is S.STARTING, "a Spawn leaves the machine in starting"
        if any(isinstance(a, SignalGroup | KillGroup) for a in actions):
            assert after.state is S.STOPPING
        for action in actions:
            if isinstance(action, SignalGroup):
                assert action.signal == self.policy.stopsignal != "KILL"

    def _check_machine(self) -> None:
        m, p, now = self.machine, self.policy, self.now
        if self.awaiting_spawn:
            assert (m.state, m.pid, m.deadline) == (S.STARTING, None, None)
        else:
            assert (m.pid is not None) == (m.state in PROCESS_STATES), m
        assert m.failures <= p.startretries + 1
        if m.state is S.FATAL:
            assert m.failures > p.startretries
        if m.state in (S.STOPPED, S.EXITED):
            assert m.deadline is None
        if m.state is S.BACKOFF:
            assert m.deadline is not None
            assert now <= m.deadline <= now + p.backoff.maximum * (1 + p.backoff.jitter) + 1e-9
        if m.state is S.FATAL and p.fatal_cooldown > 0:
            assert m.deadline is not None
            assert m.deadline >= now
        if m.state is S.FATAL and p.fatal_cooldown == 0:
            assert m.deadline is None
        if m.state is S.STARTING and not self.awaiting_spawn:
            assert m.deadline is not None, "starting always waits for something"
        if m.state is S.RUNNING:
            assert (m.deadline is None) == (m.failures == 0), "failures come with a stable timer"


def play(data: st.DataObject, h: Harness, steps: int, *, operator: bool) -> None:
    """Start the instance, then draw ``steps`` shell moves that respect the contract."""
    h.deliver(Start())
    for _ in range(steps):
        if h.awaiting_spawn:
            h.now += data.draw(answer_delays)
            h.answer_spawn(ok=data.draw(spawn_answers))
            continue
        h.wait(data.draw(deltas))
        if h.awaiting_spawn:
            continue
        h.deliver(data.draw(EVENTS[h.machine.pid is not None, operator]))


@SETTINGS
@given(policy=policies, seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 50), data=st.data())
def test_invariants_hold_after_every_step(
    policy: Policy, seed: int, steps: int, data: st.DataObject
) -> None:
    play(data, Harness(policy, random.Random(seed)), steps, operator=True)


@SETTINGS
@given(policy=policies, seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 50), data=st.data())
def test_no_more_than_startretries_plus_one_spawns_within_stable_secs(
    policy: Policy, seed: int, steps: int, data: st.DataObject
) -> None:
    # Without an operator, failures reset only after stable_secs of uptime or
    # after fatal_cooldown; with a cooldown of at least stable_secs, any window
    # of stable_secs sees at most startretries + 1 spawns: no full-speed loop.
    if 0 < policy.fatal_cooldown < policy.stable_secs:
        policy = attrs.evolve(policy, fatal_cooldown=policy.stable_secs)
    h = Harness(policy, random.Random(seed))

    play(data, h, steps, operator=False)

    for first in h.spawn_times:
        in_window = [t for t in h.spawn_times if first <= t < first + policy.stable_secs]
        assert len(in_window) <= policy.startretries + 1, h.spawn_times


@SETTINGS
@given(policy=policies, seed=st.integers(0, 2**32 - 1), data=st.data())
def test_a_process_that_always_crashes_is_spawned_startretries_plus_one_times(
    policy: Policy, seed: int, data: st.DataObject
) -> None:
    policy = attrs.evolve(policy, fatal_cooldown=0.0)
    if policy.autorestart is AutoRestart.NEVER:
        policy = attrs.evolve(policy, autorestart=AutoRestart.ON_FAILURE)
    crash_code = max(policy.exitcodes | {0}) + 1  # never an expected code
    s = FakeShell(policy, rng=random.Random(seed))
    s.send(Start(), at=0.0)

    for _ in range(4 * (policy.startretries + 2)):
        if s.machine.state is S.FATAL:
            break
        if s.machine.state is S.BACKOFF:
            assert s.machine.deadline is not None
            s.spawn_fails = data.draw(st.booleans())
            s.wait_until(s.machine.deadline)
            continue
        assert s.machine.spawned_at is not None
        # short of stable_secs by a margin that float rounding of spawned_at + uptime keeps
        uptime = policy.stable_secs * data.draw(st.floats(0.0, 0.99))
        s.wait_until(s.machine.spawned_at + uptime)
        if s.machine.state is S.STOPPING:  # a health-gated start timed out first
            s.send(Exited(-15))
        else:
            s.send(Exited(crash_code))

    assert (s.machine.state, len(s.spawn_times())) == (S.FATAL, policy.startretries + 1)
