"""The autoscaling policy: how many replicas an agent should run, and why (pure).

Every ``interval`` the shell (``supervise.autoscaler``) gathers the signals
of each replica and calls :func:`decide` with the policy's state and the
time; :func:`decide` returns the decision and the next state. Nothing here
does I/O or reads a clock.

The count each signal asks for, the highest winning, clamped to
``[min, max]``:

- sessions: ``ceil(total active sessions / target_sessions)``;
- turns (with ``target_turns``): ``ceil(turns in flight / target_turns)``;
- cpu (with ``max_cpu_percent``): ``ceil(running * mean cpu / max_cpu_percent)``.

A new count is acted on only once it has held for ``stabilization``
seconds (on the way up the lowest count of that window is taken, on the way
down the highest, so a short spike or dip moves nothing) and the cooldown
since the last change has passed (``scale_up_cooldown`` before growing,
``scale_down_cooldown`` before shrinking). Two cases act at once: a count
outside the bounds (the bounds always hold), and the cold start — a client
is waiting and no replica runs — which starts one without waiting.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence

from attrs import evolve, frozen

from agentvisor.config.model import AutoscaleConfig


class Action(enum.StrEnum):
    HOLD = "hold"  # nothing to change
    WAIT = "wait"  # a different count is wanted, but not yet (stabilization or cooldown)
    SCALE_UP = "scale_up"
    SCALE_DOWN = "scale_down"


@frozen
class ReplicaSignals:
    """One replica as the shell saw it this round."""

    replica: int
    state: str  # the instance's state: running, starting, backoff, stopped…
    sessions: int  # active sessions (router connections, or the worker's count if higher)
    turns: int  # turns in flight
    cpu_percent: float | None = None
    rss_bytes: int | None = None


@frozen
class Signals:
    replicas: tuple[ReplicaSignals, ...] = ()
    waiting_clients: int = 0  # handshakes the router holds because no replica can take them

    @property
    def sessions(self) -> int:
        return sum(r.sessions for r in self.replicas)

    @property
    def turns(self) -> int:
        return sum(r.turns for r in self.replicas)

    @property
    def running(self) -> int:
        return sum(1 for r in self.replicas if r.state == "running")

    @property
    def cpu_percent(self) -> float | None:
        """Mean CPU percent of the running replicas that have a sample."""
        samples = [
            r.cpu_percent
            for r in self.replicas
            if r.state == "running" and r.cpu_percent is not None
        ]
        return sum(samples) / len(samples) if samples else None

    @property
    def rss_bytes(self) -> int:
        return sum(r.rss_bytes or 0 for r in self.replicas)


@frozen
class PolicyState:
    """What the policy remembers between rounds."""

    desired: int  # the count last acted on
    changed_at: float | None = None  # when it was last changed (None: never)
    pending: int | None = None  # a different count wanted since ``pending_since``
    pending_since: float = 0.0


@frozen
class Decision:
    action: Action
    desired: int  # the count to run now (the previous one unless the action scales)
    wanted: int  # what the signals ask for this round, clamped
    reason: str
    by_signal: dict[str, int]  # each signal's own count, before clamping
    sessions: int
    turns: int
    running: int
    cpu_percent: float | None
    waiting_clients: int
    at: float

    @property
    def scales(self) -> bool:
        return self.action in (Action.SCALE_UP, Action.SCALE_DOWN)

    def describe(self, previous: int) -> str:
        """One line for the audit log: the change, the reason and every signal."""
        cpu = "-" if self.cpu_percent is None else f"{self.cpu_percent:.0f}%"
        signals = (
            f"sessions {self.sessions}, turns {self.turns}, cpu {cpu}, "
            f"running {self.running}, waiting clients {self.waiting_clients}"
        )
        return f"{previous} → {self.desired} replicas: {self.reason} ({signals})"


def initial_state(config: AutoscaleConfig) -> PolicyState:
    return PolicyState(desired=config.min)


def wanted_by_signal(config: AutoscaleConfig, signals: Signals) -> dict[str, int]:
    """Each enabled signal's own replica count (unclamped)."""
    counts = {"sessions": math.ceil(signals.sessions / config.target_sessions)}
    if config.target_turns is not None:
        counts["turns"] = math.ceil(signals.turns / config.target_turns)
    cpu = signals.cpu_percent
    if config.max_cpu_percent is not None and cpu is not None:
        counts["cpu"] = math.ceil(signals.running * cpu / config.max_cpu_percent)
    if signals.waiting_clients:
        counts["waiting"] = 1
    return counts


def _clamp(config: AutoscaleConfig, count: int) -> int:
    return max(config.min, min(config.max, count))


def _explain(config: AutoscaleConfig, counts: dict[str, int], wanted: int) -> str:
    name = max(counts, key=lambda key: counts[key])
    raw = counts[name]
    what = {
        "sessions": f"sessions ask for {raw} at target_sessions {config.target_sessions}",
        "turns": f"turns in flight ask for {raw} at target_turns {config.target_turns}",
        "cpu": f"cpu asks for {raw} at max_cpu_percent {config.max_cpu_percent:g}"
        if config.max_cpu_percent is not None
        else "",
        "waiting": "a client is waiting",
    }[name]
    if raw > wanted:
        what += f", capped by max {config.max}"
    elif raw < wanted:
        what += f", held up by min {config.min}"
    return what


def decide(
    config: AutoscaleConfig, state: PolicyState, signals: Signals, now: float
) -> tuple[Decision, PolicyState]:
    """This round's decision and the state for the next round."""
    counts = wanted_by_signal(config, signals)
    wanted = _clamp(config, max(counts.values()))
    reason = _explain(config, counts, wanted)
    current = state.desired

    def decision(action: Action, desired: int, why: str) -> Decision:
        return Decision(
            action=action,
            desired=desired,
            wanted=wanted,
            reason=why,
            by_signal=counts,
            sessions=signals.sessions,
            turns=signals.turns,
            running=signals.running,
            cpu_percent=signals.cpu_percent,
            waiting_clients=signals.waiting_clients,
            at=now,
        )

    def act(desired: int, why: str) -> tuple[Decision, PolicyState]:
        action = Action.SCALE_UP if desired > current else Action.SCALE_DOWN
        return decision(action, desired, why), PolicyState(desired=desired, changed_at=now)

    if current != _clamp(config, current):
        bound = "min" if current < config.min else "max"
        return act(
            _clamp(config, current),
            f"outside the bounds: {bound} is now {config.min if bound == 'min' else config.max}",
        )
    if wanted == current:
        return decision(Action.HOLD, current, reason), evolve(state, pending=None)
    if current == 0 and signals.waiting_clients:
        return act(wanted, f"cold start: {reason}")

    up = wanted > current
    pending, since = state.pending, state.pending_since
    if pending is None or (pending > current) != up:
        pending, since = wanted, now  # a new direction starts its window now
    else:  # same direction: keep the most cautious count seen in the window
        pending = min(pending, wanted) if up else max(pending, wanted)
    waiting = evolve(state, pending=pending, pending_since=since)

    held = now - since
    if held < config.stabilization:
        why = f"{reason}; waiting for it to hold {config.stabilization:g}s ({held:.1f}s so far)"
        return decision(Action.WAIT, current, why), waiting
    cooldown = config.scale_up_cooldown if up else config.scale_down_cooldown
    if state.changed_at is not None and now - state.changed_at < cooldown:
        left = cooldown - (now - state.changed_at)
        kind = "scale_up_cooldown" if up else "scale_down_cooldown"
        return decision(Action.WAIT, current, f"{reason}; {kind} has {left:.1f}s left"), waiting
    return act(pending, reason)


def pick_victims(replicas: Sequence[ReplicaSignals], count: int) -> tuple[int, ...]:
    """The replicas to stop when shrinking by ``count``: those not running first, then the
    ones with the fewest sessions (then fewest turns; the highest replica on a tie)."""

    def cost(r: ReplicaSignals) -> tuple[int, int, int, int]:
        return (r.state == "running", r.sessions, r.turns, -r.replica)

    return tuple(r.replica for r in sorted(replicas, key=cost)[: max(count, 0)])
