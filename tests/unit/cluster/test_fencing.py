"""The config lock's rules: lock values, when a grant may write, why a write was refused."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agentvisor.cluster.fencing import LEASE_MARGIN, Grant, LockValue, refusal
from tests.strategies import node_names

tokens = st.text(alphabet="0123456789abcdef", min_size=1, max_size=16)
values = st.builds(LockValue, tokens, st.integers(1, 2**53), node_names)


@given(values)
def test_a_lock_value_survives_its_text(value: LockValue) -> None:
    assert LockValue.parse(value.text()) == value


@given(st.text() | st.none())
def test_any_text_is_a_lock_value_or_none(text: str | None) -> None:
    parsed = LockValue.parse(text)
    assert parsed is None or parsed.text().split(" ", 2)[0] == parsed.token


@given(values, st.floats(0, 1e6), st.floats(0.01, 100), st.floats(0, 200))
def test_a_grant_is_never_used_in_the_last_part_of_its_lease(
    value: LockValue, start: float, lease: float, elapsed: float
) -> None:
    grant = Grant(value, start + lease)
    usable = grant.usable(start + elapsed, lease)
    assert usable == (start + elapsed < start + lease - LEASE_MARGIN * lease)


@given(values, values | st.none(), st.integers(0, 2**53))
def test_a_write_is_accepted_only_by_the_holder_with_a_fence_above_the_last(
    mine: LockValue, holder: LockValue | None, last: int
) -> None:
    reason = refusal(Grant(mine, 10.0), holder, last)
    accepted = holder is not None and holder.token == mine.token and mine.fence > last
    assert (reason is None) == accepted
    if holder is not None and holder.token != mine.token:
        assert reason is not None
        assert f"node {holder.node} took it" in reason
