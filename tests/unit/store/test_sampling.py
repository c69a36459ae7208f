"""The store's per-service token bucket for worker lines (issue 15), on explicit times."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agentvisor.store.sampling import LogSampler


def test_a_burst_goes_in_then_the_rate_then_the_rest_is_counted() -> None:
    sampler = LogSampler(rate=100, burst=1000)
    assert sampler.admit("web", 1500, now=0.0) == 1000
    assert sampler.admit("web", 600, now=1.0) == 100
    assert sampler.sampled_out == 500 + 500


def test_one_flooding_service_leaves_the_others_their_share() -> None:
    sampler = LogSampler(rate=10, burst=10)
    assert sampler.admit("flood", 10_000, now=0.0) == 10
    assert sampler.admit("quiet", 5, now=0.0) == 5


@given(st.lists(st.tuples(st.integers(0, 5000), st.floats(0, 10)), max_size=50))
def test_never_more_than_burst_plus_rate_times_time(chunks: list[tuple[int, float]]) -> None:
    sampler = LogSampler(rate=50, burst=200)
    now, kept, offered = 0.0, 0, 0
    for lines, gap in chunks:
        now += gap
        got = sampler.admit("web", lines, now)
        assert 0 <= got <= lines
        kept, offered = kept + got, offered + lines
    assert kept <= 200 + 50 * now + 1e-6
    assert sampler.sampled_out == offered - kept
