"""The autoscaling policy on a fake clock: counts, bounds, stabilization, cooldowns, zero."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agentvisor.config.model import AutoscaleConfig
from agentvisor.supervise.autoscale import (
    Action,
    Decision,
    PolicyState,
    ReplicaSignals,
    Signals,
    decide,
    initial_state,
    pick_victims,
)
from tests.strategies import autoscale_signals, short_autoscale_configs


def _load(sessions: int, replicas: int = 1, *, turns: int = 0, waiting: int = 0) -> Signals:
    """``sessions`` and ``turns`` spread over ``replicas`` running replicas."""
    per, extra = divmod(sessions, max(replicas, 1))
    return Signals(
        tuple(
            ReplicaSignals(r, "running", per + (r < extra), turns if r == 0 else 0)
            for r in range(replicas)
        ),
        waiting,
    )


def _run(
    config: AutoscaleConfig,
    loads: list[Signals],
    *,
    state: PolicyState | None = None,
    start: float = 0.0,
    step: float = 1.0,
) -> tuple[list[Decision], PolicyState]:
    state = state or initial_state(config)
    decisions = []
    for i, signals in enumerate(loads):
        decision, state = decide(config, state, signals, start + i * step)
        decisions.append(decision)
    return decisions, state


FAST = AutoscaleConfig(
    min=1, max=3, target_sessions=1, scale_up_cooldown=0, scale_down_cooldown=0, stabilization=0
)


def test_sessions_over_target_ask_for_ceil_replicas_capped_by_max() -> None:
    decision, state = decide(FAST, initial_state(FAST), _load(6), 0.0)
    assert (decision.action, decision.desired, state.desired) == (Action.SCALE_UP, 3, 3)
    assert decision.by_signal == {"sessions": 6}
    assert "capped by max 3" in decision.reason
    assert "1 → 3 replicas" in decision.describe(1)
    assert "sessions 6" in decision.describe(1)


def test_the_highest_signal_wins() -> None:
    config = AutoscaleConfig(
        min=1,
        max=10,
        target_sessions=20,
        target_turns=2,
        max_cpu_percent=50,
        scale_up_cooldown=0,
        stabilization=0,
    )
    busy = Signals(
        (
            ReplicaSignals(0, "running", 10, 5, cpu_percent=90.0),
            ReplicaSignals(1, "running", 10, 2, cpu_percent=70.0),
        )
    )
    decision, _ = decide(config, PolicyState(desired=2), busy, 0.0)
    assert decision.by_signal == {"sessions": 1, "turns": 4, "cpu": 4}
    assert decision.desired == 4
    assert "turns in flight ask for 4" in decision.reason


def test_a_new_count_must_hold_for_the_stabilization_window() -> None:
    config = AutoscaleConfig(min=1, max=4, target_sessions=10, scale_up_cooldown=0, stabilization=5)
    decisions, state = _run(config, [_load(35)] * 7)
    actions = [d.action for d in decisions]
    assert actions[:5] == [Action.WAIT] * 5
    assert actions[5] == Action.SCALE_UP
    assert decisions[5].desired == 4
    assert actions[6] == Action.HOLD
    assert state.desired == 4
    assert "waiting for it to hold 5s" in decisions[0].reason


def test_a_spike_shorter_than_the_window_moves_nothing() -> None:
    config = AutoscaleConfig(min=1, max=4, target_sessions=10, scale_up_cooldown=0, stabilization=3)
    loads = [_load(35), _load(35), _load(5), _load(35), _load(35), _load(5)]
    decisions, state = _run(config, loads)
    assert all(not d.scales for d in decisions)
    assert state.desired == 1


def test_on_the_way_up_the_lowest_count_of_the_window_is_taken() -> None:
    config = AutoscaleConfig(min=1, max=8, target_sessions=10, scale_up_cooldown=0, stabilization=2)
    decisions, _ = _run(config, [_load(70), _load(25), _load(70)])
    assert decisions[-1].action is Action.SCALE_UP
    assert decisions[-1].desired == 3


def test_cooldowns_space_the_changes() -> None:
    config = AutoscaleConfig(
        min=1,
        max=4,
        target_sessions=10,
        scale_up_cooldown=10,
        scale_down_cooldown=30,
        stabilization=0,
    )
    state = PolicyState(desired=1, changed_at=0.0)
    decision, state = decide(config, state, _load(25), 4.0)
    assert decision.action is Action.WAIT
    assert "scale_up_cooldown has 6.0s left" in decision.reason
    decision, state = decide(config, state, _load(25), 10.0)
    assert decision.action is Action.SCALE_UP
    assert state.changed_at == 10.0
    decision, state = decide(config, state, _load(0, 3), 39.0)
    assert decision.action is Action.WAIT
    assert "scale_down_cooldown" in decision.reason
    decision, state = decide(config, state, _load(0, 3), 40.0)
    assert decision.action is Action.SCALE_DOWN
    assert decision.desired == 1


def test_scale_to_zero_and_back_with_the_cold_start_fast_path() -> None:
    config = AutoscaleConfig(
        min=0,
        max=2,
        target_sessions=5,
        scale_up_cooldown=60,
        scale_down_cooldown=10,
        stabilization=30,
    )
    state = PolicyState(desired=1, changed_at=0.0)
    decisions, state = _run(config, [_load(0)] * 31, state=state, start=0.0)
    assert state.desired == 0
    assert decisions[-1].action is Action.SCALE_DOWN
    # a client arrives and waits: one replica at once, no window, no cooldown
    decision, state = decide(config, state, Signals((), waiting_clients=1), 31.0)
    assert (decision.action, decision.desired) == (Action.SCALE_UP, 1)
    assert decision.reason.startswith("cold start")
    # without a waiting client, growth from zero waits like any other
    cold = PolicyState(desired=0, changed_at=0.0)
    decision, _ = decide(config, cold, _load(3), 1.0)
    assert decision.action is Action.WAIT


def test_a_count_outside_new_bounds_is_corrected_at_once() -> None:
    config = AutoscaleConfig(min=2, max=3, scale_up_cooldown=1000, stabilization=1000)
    decision, state = decide(config, PolicyState(desired=1, changed_at=0.0), _load(0), 1.0)
    assert (decision.action, state.desired) == (Action.SCALE_UP, 2)
    assert "min is now 2" in decision.reason
    decision, state = decide(config, PolicyState(desired=5, changed_at=0.0), _load(0), 1.0)
    assert (decision.action, state.desired) == (Action.SCALE_DOWN, 3)


def test_victims_are_the_replicas_with_the_fewest_sessions() -> None:
    replicas = (
        ReplicaSignals(0, "running", 4, 1),
        ReplicaSignals(1, "running", 1, 0),
        ReplicaSignals(2, "running", 1, 1),
        ReplicaSignals(3, "backoff", 0, 0),
    )
    assert pick_victims(replicas, 1) == (3,)
    assert pick_victims(replicas, 3) == (3, 1, 2)
    assert pick_victims(replicas, 0) == ()


# -- properties ------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    short_autoscale_configs,
    st.lists(st.tuples(autoscale_signals(), st.floats(0.01, 30)), min_size=1, max_size=40),
)
def test_the_desired_count_stays_within_the_bounds(
    config: AutoscaleConfig, rounds: list[tuple[Signals, float]]
) -> None:
    state, now = initial_state(config), 0.0
    for signals, step in rounds:
        now += step
        decision, state = decide(config, state, signals, now)
        assert config.min <= decision.desired <= config.max
        assert config.min <= decision.wanted <= config.max
        assert state.desired == decision.desired


@settings(max_examples=100, deadline=None)
@given(short_autoscale_configs, autoscale_signals(), st.integers(0, 6))
def test_a_constant_load_changes_the_count_at_most_once(
    config: AutoscaleConfig, signals: Signals, start: int
) -> None:
    """From any count, under a load that does not change: one move to the wanted count
    (after the window and cooldown), then it holds for good."""
    state = PolicyState(desired=max(config.min, min(config.max, start)), changed_at=0.0)
    decisions, state = _run(config, [signals] * 150, state=state, start=0.0)
    changes = [d for d in decisions if d.scales]
    assert len(changes) <= 1
    assert state.desired == decisions[-1].wanted
    assert all(d.action is Action.HOLD for d in decisions[-5:])


@settings(max_examples=100, deadline=None)
@given(
    short_autoscale_configs,
    st.lists(st.tuples(autoscale_signals(), st.floats(0.01, 5)), min_size=2, max_size=60),
)
def test_cooldowns_and_the_window_are_respected(
    config: AutoscaleConfig, rounds: list[tuple[Signals, float]]
) -> None:
    """Every change waits its cooldown after the one before, unless it is a cold start
    or a bounds correction; a change needs a window of rounds all asking the same way."""
    state, now = initial_state(config), 0.0
    last_change: float | None = None
    asked: list[tuple[float, int]] = []  # (time, wanted) since the last change
    for signals, step in rounds:
        now += step
        before = state.desired
        decision, state = decide(config, state, signals, now)
        asked.append((now, decision.wanted))
        if not decision.scales:
            continue
        if decision.reason.startswith("cold start"):
            assert before == 0
            assert signals.waiting_clients
        else:
            up = decision.desired > before
            cooldown = config.scale_up_cooldown if up else config.scale_down_cooldown
            if last_change is not None:
                assert now - last_change >= cooldown
            window = [w for t, w in asked if now - t <= config.stabilization]
            assert all((w > before) == up and w != before for w in window)
        last_change, asked = now, []
