"""Consistent (rendezvous) hashing: keys stay put when other instances come and go."""

from __future__ import annotations

import math
from collections import Counter

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentvisor.router.strategies import Candidate, rendezvous_pick, rendezvous_score

KEYS = [f"10.{n // 65536}.{n // 256 % 256}.{n % 256}" for n in range(1000)]

instance_ids = st.lists(
    st.text(alphabet="abcdefghij:0123456789", min_size=1, max_size=10),
    min_size=1,
    max_size=8,
    unique=True,
)
weights = st.sampled_from([0.5, 1.0, 2.0, 3.0])


def owners(pool: list[Candidate]) -> list[str]:
    return [rendezvous_pick(key, pool).instance_id for key in KEYS]


def equal_pool(ids: list[str]) -> list[Candidate]:
    return [Candidate(instance_id, "a") for instance_id in ids]


def test_the_score_is_stable_across_processes() -> None:
    # blake2b, not Python's salted hash(): a fixed value proves it
    assert rendezvous_score("10.0.0.1", Candidate("a:0", "a")) == rendezvous_score(
        "10.0.0.1", Candidate("a:0", "other-agent")
    )
    assert rendezvous_score("10.0.0.1", Candidate("a:0", "a")) == pytest.approx(2.0779111165)


@settings(max_examples=15, deadline=None)
@given(ids=instance_ids, new=st.text(alphabet="klmnop", min_size=1, max_size=6))
def test_adding_an_instance_moves_about_a_share_of_keys_only_to_it(
    ids: list[str], new: str
) -> None:
    before = owners(equal_pool(ids))
    after = owners(equal_pool([*ids, new]))

    moved = [(old, now) for old, now in zip(before, after, strict=True) if old != now]

    assert all(now == new for _, now in moved)
    share = 1 / (len(ids) + 1)
    spread = 6 * math.sqrt(len(KEYS) * share * (1 - share))  # six standard deviations
    assert len(moved) <= len(KEYS) * share + spread


@settings(max_examples=15, deadline=None)
@given(data=st.data(), ids=instance_ids)
def test_adding_a_weighted_instance_moves_keys_only_to_it(
    data: st.DataObject, ids: list[str]
) -> None:
    pool = [Candidate(i, "a", weight=data.draw(weights)) for i in ids]
    new = Candidate("new:0", "a", weight=data.draw(weights))

    before, after = owners(pool), owners([*pool, new])

    assert all(now in (old, "new:0") for old, now in zip(before, after, strict=True))


@settings(max_examples=15, deadline=None)
@given(data=st.data(), ids=instance_ids.filter(lambda ids: len(ids) > 1))
def test_removing_an_instance_moves_only_its_keys(data: st.DataObject, ids: list[str]) -> None:
    pool = [Candidate(i, "a", weight=data.draw(weights)) for i in ids]
    gone = data.draw(st.sampled_from(ids))

    before = owners(pool)
    after = owners([c for c in pool if c.instance_id != gone])

    assert all(old == now for old, now in zip(before, after, strict=True) if old != gone)


def test_keys_spread_in_proportion_to_weight() -> None:
    pool = [Candidate("a:0", "a", weight=1.0), Candidate("a:1", "a", weight=3.0)]

    counts = Counter(owners(pool))

    assert abs(counts["a:1"] / len(KEYS) - 0.75) < 0.05


def test_weight_zero_owns_no_key_beside_positive_weights() -> None:
    pool = [Candidate("a:0", "a", weight=0.0), Candidate("a:1", "a", weight=0.5)]

    assert set(owners(pool)) == {"a:1"}


def test_all_weights_zero_hash_as_if_equal() -> None:
    zero = [Candidate(f"a:{i}", "a", weight=0.0) for i in range(3)]
    ones = [attrs.evolve(c, weight=1.0) for c in zero]

    assert owners(zero) == owners(ones)
