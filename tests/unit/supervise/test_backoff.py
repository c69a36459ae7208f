"""Backoff delays before automatic restarts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentvisor.supervise.backoff import Backoff

backoffs = st.builds(
    Backoff,
    initial=st.floats(0.0, 10.0),
    maximum=st.floats(0.0, 300.0),
    factor=st.floats(1.0, 10.0),
    jitter=st.floats(0.0, 1.0),
)
rands = st.floats(0.0, 1.0, exclude_max=True)
failure_counts = st.integers(0, 5000)


def test_first_failure_is_retried_at_once() -> None:
    assert Backoff().delay(1, 0.99) == 0.0


def test_second_failure_waits_backoff_initial() -> None:
    assert Backoff(initial=0.5, jitter=0.0).delay(2, 0.3) == 0.5


def test_delay_grows_by_factor() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0, factor=3.0, jitter=0.0)

    assert [backoff.delay(n, 0.5) for n in range(2, 6)] == [0.5, 1.5, 4.5, 13.5]


def test_delay_is_capped_at_maximum() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0, factor=2.0, jitter=0.0)

    assert backoff.delay(12, 0.5) == 30.0


def test_delay_after_many_failures_is_capped_at_maximum() -> None:
    # startretries has no upper bound: 2 ** 2000 overflows a float
    backoff = Backoff(initial=0.5, maximum=30.0, factor=2.0, jitter=0.0)

    assert backoff.delay(2000, 0.5) == 30.0


def test_jitter_spreads_the_delay_both_ways() -> None:
    backoff = Backoff(initial=10.0, maximum=30.0, factor=2.0, jitter=0.1)

    assert [backoff.delay(2, rand) for rand in (0.0, 0.5, 0.999)] == pytest.approx(
        [9.0, 10.0, 10.998]
    )


@settings(max_examples=200)
@given(backoff=backoffs, failures=st.integers(-3, 1), rand=rands)
def test_no_delay_for_the_first_failure(backoff: Backoff, failures: int, rand: float) -> None:
    assert backoff.delay(failures, rand) == 0.0


@settings(max_examples=200)
@given(backoff=backoffs, fewer=failure_counts, more=failure_counts, rand=rands)
def test_delay_without_jitter_never_shrinks_as_failures_grow(
    backoff: Backoff, fewer: int, more: int, rand: float
) -> None:
    fewer, more = sorted((fewer, more))
    steady = Backoff(backoff.initial, backoff.maximum, backoff.factor, jitter=0.0)

    assert steady.delay(fewer, rand) <= steady.delay(more, rand)


@settings(max_examples=200)
@given(backoff=backoffs, failures=failure_counts, rand=rands)
def test_delay_is_within_maximum_plus_jitter(backoff: Backoff, failures: int, rand: float) -> None:
    delay = backoff.delay(failures, rand)

    assert 0.0 <= delay <= backoff.maximum * (1 + backoff.jitter)


@settings(max_examples=200)
@given(backoff=backoffs, failures=st.integers(2, 60), rand=rands)
def test_jitter_stays_within_its_fraction_of_the_steady_delay(
    backoff: Backoff, failures: int, rand: float
) -> None:
    steady = Backoff(backoff.initial, backoff.maximum, backoff.factor, jitter=0.0).delay(
        failures, rand
    )

    delay = backoff.delay(failures, rand)

    low, high = steady * (1 - backoff.jitter), steady * (1 + backoff.jitter)
    assert low - 1e-9 <= delay <= high + 1e-9
