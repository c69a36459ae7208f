"""Admission limits: token bucket, total cap (1013), per-IP cap and rate (1008)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentvisor.config.model import RouterConfig
from agentvisor.router.limits import ConnectionLimits, TokenBucket

# --- token bucket --------------------------------------------------------------------


def test_a_bucket_allows_its_burst_at_once() -> None:
    bucket = TokenBucket(rate=1.0, burst=3.0)

    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]


def test_a_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=2.0)
    bucket.take(0.0)
    bucket.take(0.0)

    assert [bucket.take(0.49), bucket.take(0.5), bucket.take(0.5)] == [False, True, False]


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=2.0)
    bucket.take(0.0)

    assert [bucket.take(1000.0) for _ in range(3)] == [True, True, False]


def test_a_clock_going_back_adds_no_tokens() -> None:
    bucket = TokenBucket(rate=1.0, burst=1.0)
    bucket.take(10.0)

    assert not bucket.take(5.0)
    assert not bucket.take(10.5)  # the refill still counts from 10.0
    assert bucket.take(11.0)


def test_a_bucket_is_full_again_after_burst_over_rate() -> None:
    bucket = TokenBucket(rate=4.0, burst=2.0)
    bucket.take(1.0)
    bucket.take(1.0)

    assert bucket.full_at() == 1.5


def test_a_bucket_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=0.0, burst=1.0)


@settings(max_examples=200)
@given(
    rate=st.floats(0.1, 100.0),
    burst=st.floats(1.0, 50.0),
    steps=st.lists(st.floats(0.0, 5.0), max_size=40),
)
def test_a_bucket_admits_no_more_than_burst_plus_rate_times_elapsed(
    rate: float, burst: float, steps: list[float]
) -> None:
    bucket, now, taken = TokenBucket(rate, burst), 0.0, 0
    for step in steps:
        now += step
        taken += bucket.take(now)

    assert taken <= burst + rate * now + 1e-9


# --- connection limits ---------------------------------------------------------------


def test_connections_are_admitted_under_the_limits() -> None:
    limits = ConnectionLimits(max_connections=10, max_per_ip=5, connect_rate_per_ip=5.0)

    assert limits.admit("10.0.0.1", 0.0).admitted
    assert (limits.total, limits.open_from("10.0.0.1")) == (1, 1)


def test_beyond_max_connections_the_refusal_is_1013() -> None:
    limits = ConnectionLimits(max_connections=2, max_per_ip=5, connect_rate_per_ip=50.0)
    limits.admit("10.0.0.1", 0.0)
    limits.admit("10.0.0.2", 0.0)

    refusal = limits.admit("10.0.0.3", 0.0)

    assert (refusal.admitted, refusal.close_code) == (False, 1013)


def test_beyond_the_per_ip_cap_the_refusal_is_1008() -> None:
    limits = ConnectionLimits(max_connections=10, max_per_ip=2, connect_rate_per_ip=50.0)
    limits.admit("10.0.0.1", 0.0)
    limits.admit("10.0.0.1", 0.0)

    refusal = limits.admit("10.0.0.1", 0.0)

    assert (refusal.admitted, refusal.close_code) == (False, 1008)


def test_the_per_ip_cap_leaves_other_ips_alone() -> None:
    limits = ConnectionLimits(max_connections=10, max_per_ip=1, connect_rate_per_ip=50.0)
    limits.admit("10.0.0.1", 0.0)

    assert limits.admit("10.0.0.2", 0.0).admitted


def test_beyond_the_connect_rate_the_refusal_is_1008() -> None:
    limits = ConnectionLimits(max_connections=100, max_per_ip=100, connect_rate_per_ip=2.0)
    admitted = [limits.admit("10.0.0.1", 0.0).admitted for _ in range(4)]  # burst = 2 x rate

    refusal = limits.admit("10.0.0.1", 0.0)

    assert admitted == [True] * 4
    assert (refusal.admitted, refusal.close_code) == (False, 1008)
    assert "10.0.0.1" in refusal.reason


def test_the_connect_rate_recovers_with_time() -> None:
    limits = ConnectionLimits(max_connections=100, max_per_ip=100, connect_rate_per_ip=2.0)
    for _ in range(4):
        limits.admit("10.0.0.1", 0.0)

    assert limits.admit("10.0.0.1", 0.5).admitted


def test_a_slow_rate_still_allows_one_connection() -> None:
    limits = ConnectionLimits(max_connections=10, max_per_ip=10, connect_rate_per_ip=0.1)

    assert limits.admit("10.0.0.1", 0.0).admitted


def test_a_refusal_at_capacity_spends_no_rate_token() -> None:
    limits = ConnectionLimits(max_connections=1, max_per_ip=10, connect_rate_per_ip=0.5)
    limits.admit("10.0.0.9", 0.0)
    limits.admit("10.0.0.1", 0.0)  # refused: at capacity
    limits.release("10.0.0.9")

    assert limits.admit("10.0.0.1", 0.0).admitted


def test_release_frees_the_slot() -> None:
    limits = ConnectionLimits(max_connections=1, max_per_ip=1, connect_rate_per_ip=50.0)
    limits.admit("10.0.0.1", 0.0)
    limits.release("10.0.0.1")

    assert limits.admit("10.0.0.1", 0.1).admitted


def test_an_extra_release_is_ignored() -> None:
    limits = ConnectionLimits(max_connections=5, max_per_ip=5, connect_rate_per_ip=50.0)
    limits.admit("10.0.0.1", 0.0)
    limits.release("10.0.0.1")
    limits.release("10.0.0.1")
    limits.release("10.0.0.2")

    assert (limits.total, limits.open_from("10.0.0.1")) == (0, 0)


def test_from_config_reads_the_router_section() -> None:
    limits = ConnectionLimits.from_config(
        RouterConfig(max_connections=7, max_connections_per_ip=3, connect_rate_per_ip=4.0)
    )

    assert (limits.max_connections, limits.max_per_ip, limits.burst) == (7, 3, 8.0)


def test_reconfigure_keeps_open_connections_counted() -> None:
    limits = ConnectionLimits(max_connections=5, max_per_ip=5, connect_rate_per_ip=50.0)
    limits.admit("10.0.0.1", 0.0)
    limits.reconfigure(RouterConfig(max_connections=1))

    assert limits.admit("10.0.0.2", 0.0).close_code == 1013


def test_idle_full_buckets_are_forgotten() -> None:
    limits = ConnectionLimits(max_connections=10**6, max_per_ip=10, connect_rate_per_ip=1.0)
    for n in range(1000):
        limits.admit(f"10.0.{n // 256}.{n % 256}", 0.0)

    limits.admit("10.9.9.9", 2.0)  # burst / rate = 2 s later every old bucket is full

    assert limits.tracked_ips() == 1


def test_buckets_are_bounded_by_max_tracked_ips() -> None:
    limits = ConnectionLimits(
        max_connections=10**6, max_per_ip=10, connect_rate_per_ip=1.0, max_tracked_ips=100
    )
    for n in range(1000):
        limits.admit(f"10.0.{n // 256}.{n % 256}", 0.0)

    assert limits.tracked_ips() == 100


def test_a_bucket_that_is_not_full_is_kept() -> None:
    limits = ConnectionLimits(max_connections=100, max_per_ip=100, connect_rate_per_ip=1.0)
    limits.admit("10.0.0.1", 0.0)
    limits.admit("10.0.0.1", 0.0)
    limits.admit("10.0.0.2", 1.0)  # 10.0.0.1 has refilled one of its two tokens

    again = [limits.admit("10.0.0.1", 1.0).admitted for _ in range(2)]

    assert again == [True, False]  # not forgotten: no fresh burst
