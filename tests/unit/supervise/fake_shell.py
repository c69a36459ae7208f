"""A fake of the shell that drives ``machine.step``, and the scenarios built with it.

It keeps the shell's side of the contract: every ``Spawn`` is answered at once
with ``Spawned(pid)`` (a fresh pid each time) or, while ``spawn_fails`` is
set, with ``SpawnFailed``; ``wait_until`` delivers ``Timer()`` at each
deadline that falls before the target time. Time is an explicit float and
randomness a seeded ``random.Random``: no clock, no trio.
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from agentvisor.config.model import AutoRestart
from agentvisor.supervise.backoff import Backoff
from agentvisor.supervise.machine import (
    Action,
    Event,
    Exited,
    Machine,
    Spawn,
    Spawned,
    SpawnFailed,
    Start,
    Timer,
    step,
)
from agentvisor.supervise.policy import Policy
from agentvisor.supervise.states import ProcessState as S


@attrs.define
class FakeShell:
    policy: Policy
    machine: Machine = attrs.field(factory=Machine)
    now: float = 0.0
    rng: random.Random = attrs.field(factory=lambda: random.Random(1234))
    next_pid: int = 100
    spawn_fails: bool = False
    log: list[tuple[float, Action]] = attrs.field(factory=list)  # every action, with its time

    def send(self, event: Event, at: float | None = None) -> tuple[Action, ...]:
        """Deliver ``event`` at ``at`` (default: now); answer a ``Spawn`` like the shell.

        Returns the actions of ``event`` itself (a ``Spawn`` shows up here even
        though it has already been answered).
        """
        if at is not None:
            assert at >= self.now, "time runs forward"
            self.now = at
        actions = self._step(event)
        if Spawn() in actions:
            self._answer_spawn()
        return actions

    def wait_until(self, target: float) -> None:
        """Let time pass to ``target``, delivering every ``Timer`` due on the way."""
        while self.machine.deadline is not None and self.machine.deadline <= target:
            self.send(Timer(), at=max(self.now, self.machine.deadline))
        self.now = max(self.now, target)

    def spawn_times(self) -> list[float]:
        return [at for at, action in self.log if action == Spawn()]

    def _answer_spawn(self) -> None:
        if self.spawn_fails:
            self.send(SpawnFailed("no such file"))
        else:
            pid, self.next_pid = self.next_pid, self.next_pid + 1
            self.send(Spawned(pid))

    def _step(self, event: Event) -> tuple[Action, ...]:
        self.machine, actions = step(self.machine, event, self.now, self.policy, self.rng)
        self.log += [(self.now, action) for action in actions]
        return actions


# Scenarios the machine tests start from ---------------------------------------

POLICY = Policy(
    startsecs=1.0,
    startretries=3,
    backoff=Backoff(initial=1.0, maximum=8.0, factor=2.0, jitter=0.0),
    stable_secs=60.0,
    fatal_cooldown=300.0,
    autorestart=AutoRestart.ON_FAILURE,
    exitcodes=frozenset({0}),
    stopsignal="TERM",
    stopwaitsecs=10.0,
    health_gates_start=False,
    start_timeout=30.0,
    healthy_threshold=1,
    unhealthy_threshold=3,
)
GATED = attrs.evolve(POLICY, health_gates_start=True)


class FixedRandom(random.Random):
    """A ``random.Random`` whose ``random()`` always returns ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def shell(policy: Policy = POLICY, **changes: Any) -> FakeShell:
    return FakeShell(attrs.evolve(policy, **changes))


def starting_shell(policy: Policy = POLICY, **changes: Any) -> FakeShell:
    """Started at t=0 and spawned (pid 100): in ``starting``."""
    s = shell(policy, **changes)
    s.send(Start(), at=0.0)
    assert s.machine.state is S.STARTING
    assert s.machine.pid == 100
    return s


def running_shell(policy: Policy = POLICY, **changes: Any) -> FakeShell:
    """Started at t=0, ``running`` since startsecs (pid 100, failures 0)."""
    s = starting_shell(policy, **changes)
    s.wait_until(s.policy.startsecs)
    assert s.machine.state is S.RUNNING
    return s


def crash_while_starting(s: FakeShell) -> tuple[Action, ...]:
    """The current process exits(1) 0.1 s later, before startsecs has passed."""
    assert s.machine.state is S.STARTING
    return s.send(Exited(1), at=s.now + 0.1)


def retry_after_backoff(s: FakeShell) -> None:
    assert s.machine.state is S.BACKOFF
    assert s.machine.deadline is not None
    s.wait_until(s.machine.deadline)
    assert s.machine.state is S.STARTING


def running_at(failures: int, *, spawned_at: float = 0.0, policy: Policy = POLICY) -> Machine:
    """A machine in ``running`` after ``failures`` failures, as the shell would have it."""
    deadline = spawned_at + policy.stable_secs if failures else None
    return Machine(
        state=S.RUNNING,
        reason="started",
        pid=7,
        spawned_at=spawned_at,
        deadline=deadline,
        failures=failures,
        restarts=failures,
        ran=True,
    )


def fatal_shell(**changes: Any) -> FakeShell:
    s = starting_shell(**changes)
    while s.machine.state is not S.FATAL:
        crash_while_starting(s)
        if s.machine.state is S.BACKOFF:
            retry_after_backoff(s)
    return s
