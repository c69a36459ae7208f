"""Instance selection: eligibility, affinity and each strategy on small examples."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import attrs
import pytest

from agentvisor.router.rules import ClientInfo
from agentvisor.router.strategies import Candidate, Selector, eligible

CLIENT = ClientInfo("10.0.0.1", headers={"X-User": "alice"}, query={"user": ("bob", "eve")})


def instance(instance_id: str, **fields: Any) -> Candidate:
    agent = instance_id.partition(":")[0]
    return attrs.evolve(Candidate(instance_id, agent), **fields)


def trio(*loads: int) -> list[Candidate]:
    return [instance(f"a:{index}", connections=load) for index, load in enumerate(loads)]


def pick(
    strategy: str,
    candidates: list[Candidate],
    *,
    client: ClientInfo = CLIENT,
    seed: int = 0,
    affinity: str | None = None,
    selector: Selector | None = None,
) -> str | None:
    chosen = (selector or Selector()).pick(
        strategy, candidates, client, random.Random(seed), affinity
    )
    return chosen.instance_id if chosen is not None else None


# --- eligibility ---------------------------------------------------------------------


def test_eligible_keeps_healthy_non_draining_instances_with_room() -> None:
    ok = instance("a:0", sessions=1, max_sessions=2)

    assert eligible([ok]) == (ok,)


def test_eligible_drops_unhealthy_instances() -> None:
    assert eligible([instance("a:0", healthy=False)]) == ()


def test_eligible_drops_draining_instances() -> None:
    assert eligible([instance("a:0", draining=True)]) == ()


def test_eligible_drops_full_instances() -> None:
    assert eligible([instance("a:0", sessions=2, max_sessions=2)]) == ()


def test_no_eligible_candidate_gives_none() -> None:
    assert pick("round_robin", [instance("a:0", healthy=False)]) is None


def test_no_candidates_gives_none() -> None:
    assert pick("least_connections", []) is None


def test_an_unknown_strategy_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        pick("fastest", trio(0))


# --- affinity ------------------------------------------------------------------------


def test_affinity_wins_over_the_strategy() -> None:
    assert pick("least_connections", trio(0, 9), affinity="a:1") == "a:1"


def test_affinity_is_reported_as_what_decided() -> None:
    selection = Selector().select("random", trio(0, 0), CLIENT, random.Random(0), "a:1")

    assert selection is not None
    assert selection.decided_by == "affinity"


def test_affinity_holds_for_a_full_instance() -> None:
    # the session already counts against the instance; moving it would count it twice
    full = instance("a:1", sessions=5, max_sessions=5)

    assert pick("least_connections", [instance("a:0"), full], affinity="a:1") == "a:1"


def test_affinity_to_an_unhealthy_instance_is_ignored() -> None:
    sick = instance("a:1", healthy=False)

    assert pick("least_connections", [instance("a:0"), sick], affinity="a:1") == "a:0"


def test_affinity_to_a_draining_instance_is_ignored() -> None:
    draining = instance("a:1", draining=True)

    assert pick("least_connections", [instance("a:0"), draining], affinity="a:1") == "a:0"


def test_affinity_to_an_instance_outside_the_candidates_is_ignored() -> None:
    assert pick("least_connections", trio(3, 0), affinity="other:0") == "a:1"


# --- round robin ---------------------------------------------------------------------


def test_round_robin_cycles_in_instance_order() -> None:
    selector = Selector()

    picks = [pick("round_robin", trio(0, 0, 0), selector=selector) for _ in range(4)]

    assert picks == ["a:0", "a:1", "a:2", "a:0"]


def test_round_robin_skips_ineligible_instances() -> None:
    selector = Selector()
    candidates = [instance("a:0"), instance("a:1", healthy=False), instance("a:2")]

    picks = [pick("round_robin", candidates, selector=selector) for _ in range(3)]

    assert picks == ["a:0", "a:2", "a:0"]


def test_round_robin_keeps_its_place_when_an_instance_fills_up() -> None:
    selector = Selector()
    assert pick("round_robin", trio(0, 0, 0), selector=selector) == "a:0"
    full = [instance("a:0"), instance("a:1", sessions=100), instance("a:2")]

    assert pick("round_robin", full, selector=selector) == "a:2"


def test_round_robin_keeps_one_rotation_per_agent_set() -> None:
    selector = Selector()
    both = [instance("a:0"), instance("b:0")]
    pick("round_robin", both, selector=selector)

    pick("round_robin", [instance("c:0"), instance("c:1")], selector=selector)

    assert pick("round_robin", both, selector=selector) == "b:0"


def test_round_robin_forgets_the_least_recently_used_rotation() -> None:
    selector = Selector(max_rotations=1)
    both = [instance("a:0"), instance("b:0")]
    pick("round_robin", both, selector=selector)

    pick("round_robin", [instance("c:0"), instance("c:1")], selector=selector)

    assert pick("round_robin", both, selector=selector) == "a:0"


# --- load-based and random -----------------------------------------------------------


def test_least_connections_picks_the_least_loaded() -> None:
    assert pick("least_connections", trio(4, 1, 3)) == "a:1"


def test_least_connections_breaks_ties_at_random() -> None:
    picks = {pick("least_connections", trio(2, 0, 0), seed=seed) for seed in range(40)}

    assert picks == {"a:1", "a:2"}


def test_power_of_two_with_two_instances_picks_the_less_loaded() -> None:
    assert {pick("power_of_two", trio(5, 1), seed=seed) for seed in range(20)} == {"a:1"}


def test_power_of_two_with_one_eligible_instance_picks_it() -> None:
    candidates = [instance("a:0", healthy=False), instance("a:1", connections=9)]

    assert pick("power_of_two", candidates) == "a:1"


def test_random_reaches_every_instance() -> None:
    assert {pick("random", trio(0, 0, 0), seed=seed) for seed in range(60)} == {
        "a:0",
        "a:1",
        "a:2",
    }


def test_weighted_random_never_picks_weight_zero_beside_positive_weights() -> None:
    candidates = [instance("a:0", weight=0.0), instance("a:1", weight=0.1)]

    assert {pick("weighted_random", candidates, seed=seed) for seed in range(100)} == {"a:1"}


def test_weighted_random_with_all_weights_zero_picks_uniformly() -> None:
    candidates = [instance("a:0", weight=0.0), instance("a:1", weight=0.0)]

    assert {pick("weighted_random", candidates, seed=seed) for seed in range(40)} == {
        "a:0",
        "a:1",
    }


def test_weighted_random_frequencies_follow_weights() -> None:
    candidates = [instance(f"a:{i}", weight=float(w)) for i, w in enumerate((1, 2, 3, 0))]
    selector, rng = Selector(), random.Random(7)
    counts: Counter[str] = Counter()
    for _ in range(6000):
        chosen = selector.pick("weighted_random", candidates, CLIENT, rng)
        assert chosen is not None
        counts[chosen.instance_id] += 1

    shares = [counts[f"a:{i}"] / 6000 for i in range(4)]

    assert shares == pytest.approx([1 / 6, 2 / 6, 3 / 6, 0.0], abs=0.03)


def test_the_callers_order_does_not_change_a_seeded_pick() -> None:
    candidates = trio(0, 0, 0, 0, 0)

    assert pick("random", candidates, seed=3) == pick("random", candidates[::-1], seed=3)


# --- hashing -------------------------------------------------------------------------


def test_ip_hash_sends_the_same_ip_to_the_same_instance() -> None:
    picks = {pick("ip_hash", trio(0, 0, 0, 0), seed=seed) for seed in range(10)}

    assert len(picks) == 1


def test_ip_hash_spreads_different_ips() -> None:
    clients = [ClientInfo(f"10.0.{n // 256}.{n % 256}") for n in range(200)]

    assert {pick("ip_hash", trio(0, 0, 0), client=c) for c in clients} == {"a:0", "a:1", "a:2"}


def test_ip_hash_ignores_load() -> None:
    light, heavy = trio(0, 0), trio(50, 0)

    assert pick("ip_hash", light) == pick("ip_hash", heavy)


def test_header_hash_uses_the_named_header_case_insensitively() -> None:
    other = ClientInfo("10.9.9.9", headers={"x-user": "alice"})

    assert pick("hash:header.X-USER", trio(0, 0, 0, 0)) == pick(
        "hash:header.x-user", trio(0, 0, 0, 0), client=other
    )


def test_query_hash_uses_the_first_value_of_the_parameter() -> None:
    only_bob = ClientInfo("10.9.9.9", query={"user": "bob"})

    assert pick("hash:query.user", trio(0, 0, 0, 0)) == pick(
        "hash:query.user", trio(0, 0, 0, 0), client=only_bob
    )


def test_a_missing_hash_key_falls_back_to_least_connections() -> None:
    selection = Selector().select("hash:header.x-team", trio(3, 1, 2), CLIENT, random.Random(0))

    assert selection is not None
    assert (selection.candidate.instance_id, selection.decided_by) == ("a:1", "least_connections")


def test_an_empty_hash_key_falls_back_to_least_connections() -> None:
    client = ClientInfo("10.0.0.1", query={"user": ""})

    assert pick("hash:query.user", trio(3, 1, 2), client=client) == "a:1"
