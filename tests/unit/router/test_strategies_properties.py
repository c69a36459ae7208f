"""Invariants of instance selection over generated candidates (hypothesis)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from agentvisor.config.model import STRATEGIES
from agentvisor.router.rules import ClientInfo
from agentvisor.router.strategies import Candidate, Selector, eligible
from tests.strategies import router_candidates

examples = settings(max_examples=60, deadline=None)
seeds = st.integers(0, 2**32 - 1)
keys = st.sampled_from(["10.0.0.1", "::1", "", "alice"]) | st.text(max_size=4)
#: Every strategy, with hash keys a client may or may not send.
strategy_names = st.sampled_from(
    [*STRATEGIES, "hash:header.x-user", "hash:query.user", "hash:header.absent"]
)
client_infos = st.builds(
    lambda key: ClientInfo(key, headers={"x-user": key}, query={"user": key}), keys
)


def resumable(candidate: Candidate) -> bool:
    return candidate.healthy and not candidate.draining


@examples
@given(
    strategy=strategy_names,
    candidates=router_candidates(),
    client=client_infos,
    seed=seeds,
)
def test_without_affinity_the_pick_is_always_eligible(
    strategy: str, candidates: list[Candidate], client: ClientInfo, seed: int
) -> None:
    chosen = Selector().pick(strategy, candidates, client, random.Random(seed))

    if eligible(candidates):
        assert chosen in eligible(candidates)
    else:
        assert chosen is None


@examples
@given(
    data=st.data(),
    strategy=strategy_names,
    candidates=router_candidates(min_size=1),
    client=client_infos,
    seed=seeds,
)
def test_affinity_wins_when_its_instance_is_healthy_and_not_draining(
    data: st.DataObject, strategy: str, candidates: list[Candidate], client: ClientInfo, seed: int
) -> None:
    held = data.draw(st.sampled_from(candidates))

    chosen = Selector().pick(strategy, candidates, client, random.Random(seed), held.instance_id)

    if resumable(held):
        assert chosen == held
    else:
        assert chosen is None or chosen in eligible(candidates)


@examples
@given(candidates=router_candidates(), seed=seeds)
def test_round_robin_visits_each_eligible_instance_once_per_cycle(
    candidates: list[Candidate], seed: int
) -> None:
    selector, rng = Selector(), random.Random(seed)
    pool = eligible(candidates)
    client = ClientInfo("10.0.0.1")

    for _ in range(3):  # the rotation carries on across cycles
        cycle = [selector.pick("round_robin", candidates, client, rng) for _ in pool]
        assert sorted(c.instance_id for c in cycle if c) == sorted(c.instance_id for c in pool)


@examples
@given(candidates=router_candidates(), seed=seeds)
def test_least_connections_picks_a_least_loaded_eligible_instance(
    candidates: list[Candidate], seed: int
) -> None:
    chosen = Selector().pick(
        "least_connections", candidates, ClientInfo("10.0.0.1"), random.Random(seed)
    )

    if chosen is not None:
        assert chosen.connections == min(c.connections for c in eligible(candidates))


@examples
@given(candidates=router_candidates(), seed=seeds)
def test_power_of_two_never_picks_an_instance_loaded_above_all_others(
    candidates: list[Candidate], seed: int
) -> None:
    # What holds: the pick is the lighter of two distinct draws, so an instance
    # whose load is strictly above every other eligible one's is never chosen.
    pool = eligible(candidates)

    chosen = Selector().pick(
        "power_of_two", candidates, ClientInfo("10.0.0.1"), random.Random(seed)
    )

    if len(pool) >= 2:
        assert chosen is not None
        others = [c.connections for c in pool if c != chosen]
        assert chosen.connections <= max(others)


@examples
@given(
    strategy=st.sampled_from(["ip_hash", "hash:header.x-user", "hash:query.user"]),
    candidates=router_candidates(),
    key=keys.filter(bool),  # an empty key is no key: least_connections decides
    seeds=st.tuples(seeds, seeds),
)
def test_a_hash_key_always_reaches_the_same_instance(
    strategy: str, candidates: list[Candidate], key: str, seeds: tuple[int, int]
) -> None:
    client = ClientInfo(key, headers={"X-User": key}, query={"user": key})

    first = Selector().pick(strategy, candidates, client, random.Random(seeds[0]))
    again = Selector().pick(strategy, candidates[::-1], client, random.Random(seeds[1]))

    assert first == again
