"""The per-instance state machine: ``step(machine, event, now, policy, rng)`` (pure).

It reads no clock and touches no process. Time comes in as ``now`` (seconds
on any monotonic clock), randomness as ``rng``; decisions come out as data:
the new ``Machine`` (whose ``deadline`` says when to deliver ``Timer``) and
the actions for the shell to carry out (spawn, signal the group, kill it).
The shell guarantees that a ``Spawn`` action is answered by ``Spawned`` or
``SpawnFailed`` before any other event, and that every ``Exited`` belongs to
the current process.
"""

from __future__ import annotations

import enum
import random
import signal

import attrs
from attrs import frozen

from agentvisor.config.model import AutoRestart
from agentvisor.supervise.policy import Health, HealthTracker, Policy
from agentvisor.supervise.states import ProcessState

S = ProcessState


# Events ---------------------------------------------------------------------


@frozen
class Start:
    reason: str = "start requested"


@frozen
class Stop:
    reason: str = "stop requested"


@frozen
class Restart:
    """Stop, then start again at once; ``as_failure`` counts it toward fatal (unhealthy)."""

    reason: str = "restart requested"
    as_failure: bool = False


@frozen
class Spawned:
    pid: int


@frozen
class SpawnFailed:
    message: str


@frozen
class Exited:
    returncode: int
    #: The worker had a turn in flight: the death counts against that message (the
    #: worker runtime contains it: run once more, then ``MESSAGE_POISONED``), not
    #: toward backoff and fatal.
    in_turn: bool = False


@frozen
class HealthChecked:
    ok: bool
    message: str = ""


@frozen
class Timer:
    """The machine's ``deadline`` has passed."""


Event = Start | Stop | Restart | Spawned | SpawnFailed | Exited | HealthChecked | Timer


# Actions --------------------------------------------------------------------


@frozen
class Spawn:
    pass


@frozen
class SignalGroup:
    signal: str  # name without SIG, e.g. "TERM"


@frozen
class KillGroup:
    pass


Action = Spawn | SignalGroup | KillGroup


# State ----------------------------------------------------------------------


class AfterStop(enum.StrEnum):
    """What a stopping instance does once its process is gone."""

    REST = "rest"  # → stopped
    START = "start"  # → starting (operator restart, memory limit)
    RECOVER = "recover"  # → counted as a failure: starting / backoff / fatal


@frozen
class Machine:
    state: ProcessState = S.STOPPED
    reason: str = "not started"
    pid: int | None = None
    spawned_at: float | None = None
    deadline: float | None = None
    failures: int = 0  # consecutive, toward fatal
    restarts: int = 0  # automatic restarts
    exit_code: int | None = None
    healthy_seen: bool = False  # a check passed since this process was spawned
    ran: bool = False  # this process reached running
    health: HealthTracker = attrs.field(factory=HealthTracker)
    after_stop: AfterStop = AfterStop.REST

    def uptime(self, now: float) -> float | None:
        if self.spawned_at is None or self.state not in (S.STARTING, S.RUNNING, S.STOPPING):
            return None
        return now - self.spawned_at


Step = tuple[Machine, tuple[Action, ...]]


def step(m: Machine, event: Event, now: float, policy: Policy, rng: random.Random) -> Step:
    """Apply one event; return the new machine and what the shell must do."""
    match event:
        case Start(reason):
            return _on_start(m, reason, now)
        case Stop(reason):
            return _on_stop(m, reason, now, policy)
        case Restart(reason, as_failure):
            return _on_restart(m, reason, as_failure, now, policy)
        case Spawned(pid):
            if m.state is not S.STARTING:
                return m, ()
            m = attrs.evolve(m, pid=pid, spawned_at=now, healthy_seen=False)
            return _check_started(m, now, policy), ()
        case SpawnFailed(message):
            if m.state is not S.STARTING:
                return m, ()
            return _failed(m, f"cannot start: {message}", now, policy, rng)
        case Exited(code, in_turn):
            return _on_exit(m, code, in_turn, now, policy, rng)
        case HealthChecked(ok, message):
            return _on_health(m, ok, message, now, policy)
        case Timer():
            if m.deadline is None or now < m.deadline:
                return m, ()
            return _on_timer(m, now, policy)
    raise AssertionError(f"unhandled event {event!r}")  # pragma: no cover


def _spawn(m: Machine, reason: str) -> Step:
    starting = attrs.evolve(
        m,
        state=S.STARTING,
        reason=reason,
        pid=None,
        spawned_at=None,
        deadline=None,
        healthy_seen=False,
        ran=False,
        health=HealthTracker(),
        after_stop=AfterStop.REST,
    )
    return starting, (Spawn(),)


def _begin_stop(m: Machine, reason: str, after: AfterStop, now: float, policy: Policy) -> Step:
    stopping = attrs.evolve(
        m,
        state=S.STOPPING,
        reason=reason,
        deadline=now + policy.stopwaitsecs,
        after_stop=after,
    )
    if policy.stopwaitsecs <= 0 or policy.stopsignal == "KILL":
        return attrs.evolve(stopping, deadline=None), (KillGroup(),)
    return stopping, (SignalGroup(policy.stopsignal),)


def _on_start(m: Machine, reason: str, now: float) -> Step:
    if m.state in (S.STARTING, S.RUNNING):
        return m, ()
    if m.state is S.STOPPING:
        return attrs.evolve(m, reason=reason, after_stop=AfterStop.START), ()
    return _spawn(attrs.evolve(m, failures=0), reason)


def _on_stop(m: Machine, reason: str, now: float, policy: Policy) -> Step:
    if m.state in (S.STARTING, S.RUNNING):
        return _begin_stop(m, reason, AfterStop.REST, now, policy)
    if m.state is S.STOPPING:
        return attrs.evolve(m, reason=reason, after_stop=AfterStop.REST), ()
    if m.state is S.STOPPED:
        return m, ()
    return attrs.evolve(m, state=S.STOPPED, reason=reason, deadline=None), ()


def _on_restart(m: Machine, reason: str, as_failure: bool, now: float, policy: Policy) -> Step:
    after = AfterStop.RECOVER if as_failure else AfterStop.START
    if m.state in (S.STARTING, S.RUNNING):
        return _begin_stop(m, reason, after, now, policy)
    if m.state is S.STOPPING:
        return attrs.evolve(m, reason=reason, after_stop=after), ()
    return _spawn(attrs.evolve(m, failures=0), reason)


def _check_started(m: Machine, now: float, policy: Policy) -> Machine:
    """In ``starting``: move to ``running`` when due, else set the next deadline."""
    assert m.spawned_at is not None
    started_at = m.spawned_at + policy.startsecs
    health_ok = m.healthy_seen or not policy.health_gates_start
    if now >= started_at and health_ok:
        deadline = m.spawned_at + policy.stable_secs if m.failures else None
        return attrs.evolve(m, state=S.RUNNING, reason="started", deadline=deadline, ran=True)
    if now < started_at:
        return attrs.evolve(m, deadline=started_at)
    return attrs.evolve(
        m,
        reason="waiting for the first passing health check",
        deadline=m.spawned_at + max(policy.start_timeout, policy.startsecs),
    )


def _failed(m: Machine, reason: str, now: float, policy: Policy, rng: random.Random) -> Step:
    """A failed start or a crash: retry after the backoff delay, or go fatal."""
    failures = m.failures + 1
    base = attrs.evolve(m, pid=None, failures=failures, healthy_seen=False)
    if failures > policy.startretries:
        retry_at = now + policy.fatal_cooldown if policy.fatal_cooldown > 0 else None
        fatal = attrs.evolve(
            base,
            state=S.FATAL,
            reason=f"{reason}; gave up after {failures} failures in a row",
            deadline=retry_at,
        )
        return fatal, ()
    delay = policy.backoff.delay(failures, rng.random())
    base = attrs.evolve(base, restarts=m.restarts + 1)
    if delay <= 0:
        return _spawn(base, f"restarting: {reason}")
    backoff = attrs.evolve(
        base, state=S.BACKOFF, reason=f"{reason}; retrying in {delay:.2f}s", deadline=now + delay
    )
    return backoff, ()


def _describe_exit(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exited with code {code}"


def exit_cause(m: Machine, code: int, policy: Policy) -> tuple[bool, str]:
    """Whether the exit of ``m``'s process with ``code`` was expected, and why it went.

    For the audit log, judged before ``Exited`` is applied. Expected: agentvisor
    was stopping it for anything but a failure (an operator's stop or restart,
    a scale-down, a reload's restart or removal, the daemon's shutdown, the
    memory limit), or it exited from ``running`` with one of ``exitcodes``.
    Unexpected: it died on its own, or was stopped as a failure (unhealthy, no
    passing health check in time), which counts toward ``fatal``.
    """
    if m.state is S.STOPPING:
        return m.after_stop is not AfterStop.RECOVER, m.reason
    if m.state is S.STARTING:
        return False, f"{_describe_exit(code)} while starting"
    return code in policy.exitcodes, _describe_exit(code)


#: Signals a process raises on itself (a fault, ``abort()``, a resource limit): a death by
#: one of them is the worker's own doing. Any other signal came from outside.
SELF_INFLICTED_SIGNALS = frozenset(
    {"SEGV", "BUS", "ILL", "FPE", "ABRT", "SYS", "TRAP", "XCPU", "XFSZ"}
)


def death_counts(m: Machine, code: int) -> bool:
    """Whether the death of ``m``'s process with ``code`` counts against the messages it had
    in flight (``agentvisor.worker.poison``). Judged before ``Exited`` is applied.

    It counts when the worker caused it: it exited by itself (any exit status, or one of
    ``SELF_INFLICTED_SIGNALS``) while agentvisor was not stopping it, or agentvisor
    stopped it as a failure (unhealthy: a turn that hangs it; over ``max_memory_mb``: a
    turn that makes it grow). It does not count when agentvisor was stopping it for
    anything else (an operator, a scale-down, a reload, shutdown) or another process
    signalled it (a SIGKILL storm, ``kill``, the kernel's OOM killer).
    """
    if m.state is S.STOPPING:
        return m.after_stop is AfterStop.RECOVER
    if code >= 0:
        return True
    try:
        name = signal.Signals(-code).name.removeprefix("SIG")
    except ValueError:
        return False
    return name in SELF_INFLICTED_SIGNALS


def _on_exit(
    m: Machine, code: int, in_turn: bool, now: float, policy: Policy, rng: random.Random
) -> Step:
    if m.state not in (S.STARTING, S.RUNNING, S.STOPPING):
        return m, ()  # no process: nothing to account for
    m = attrs.evolve(m, exit_code=code)
    uptime = m.uptime(now) or 0.0
    if in_turn and m.state is S.RUNNING and policy.wants_restart(code):
        # Counted against the message in flight: replaced at once, failures unchanged.
        replaced = attrs.evolve(m, pid=None, healthy_seen=False, restarts=m.restarts + 1)
        return _spawn(replaced, f"restarting: {_describe_exit(code)} during a turn")
    match m.state:
        case S.STARTING:
            return _failed(m, f"{_describe_exit(code)} while starting", now, policy, rng)
        case S.RUNNING:
            if uptime >= policy.stable_secs:
                m = attrs.evolve(m, failures=0)
            if not policy.wants_restart(code):
                rest = attrs.evolve(
                    m, state=S.EXITED, reason=_describe_exit(code), pid=None, deadline=None
                )
                return rest, ()
            return _failed(m, _describe_exit(code), now, policy, rng)
        case S.STOPPING:
            match m.after_stop:
                case AfterStop.START:
                    return _spawn(attrs.evolve(m, failures=0), m.reason)
                case AfterStop.RECOVER:
                    # Only a stable *run* resets the count, not a long failed start.
                    if m.ran and uptime >= policy.stable_secs:
                        m = attrs.evolve(m, failures=0)
                    return _failed(m, m.reason, now, policy, rng)
                case AfterStop.REST:
                    stopped = attrs.evolve(m, state=S.STOPPED, pid=None, deadline=None)
                    return stopped, ()
    return m, ()


def _on_health(m: Machine, ok: bool, message: str, now: float, policy: Policy) -> Step:
    if m.state not in (S.STARTING, S.RUNNING):
        return m, ()
    if m.state is S.STARTING and not ok:
        return m, ()  # not listening yet is normal while starting; start_timeout bounds it
    health = m.health.observe(ok, policy.healthy_threshold, policy.unhealthy_threshold)
    m = attrs.evolve(m, health=health)
    if m.state is S.STARTING:
        return _check_started(attrs.evolve(m, healthy_seen=True), now, policy), ()
    became_unhealthy = health.status is Health.UNHEALTHY and health.failures == (
        policy.unhealthy_threshold
    )
    if became_unhealthy and policy.autorestart is not AutoRestart.NEVER:
        reason = f"unhealthy: {message}" if message else "unhealthy"
        return _begin_stop(m, reason, AfterStop.RECOVER, now, policy)
    return m, ()


def _on_timer(m: Machine, now: float, policy: Policy) -> Step:
    match m.state:
        case S.BACKOFF:
            return _spawn(m, "retrying after backoff")
        case S.FATAL:
            return _spawn(attrs.evolve(m, failures=0), "retrying after fatal_cooldown")
        case S.STARTING:
            if (
                m.spawned_at is not None
                and now >= m.spawned_at + policy.start_timeout
                and (policy.health_gates_start and not m.healthy_seen)
            ):
                reason = f"no passing health check within {policy.start_timeout:g}s"
                return _begin_stop(m, reason, AfterStop.RECOVER, now, policy)
            return _check_started(m, now, policy), ()
        case S.RUNNING:
            return attrs.evolve(m, failures=0, deadline=None), ()
        case S.STOPPING:
            reason = f"{m.reason}; still up after stopwaitsecs {policy.stopwaitsecs:g}s: SIGKILL"
            return attrs.evolve(m, reason=reason, deadline=None), (KillGroup(),)
    return attrs.evolve(m, deadline=None), ()
