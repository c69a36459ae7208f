"""Which replicas a scale retires and adds (``conditions.scale_plan``)."""

from __future__ import annotations

from typing import Any

from hypothesis import given

from agentvisor.supervise.conditions import ScalePlan, scale_plan
from tests.strategies import scale_situations


def test_scaling_down_retires_victims_first_then_the_highest() -> None:
    plan = scale_plan([0, 1, 2, 3], 2, victims={1}, has_port=set(range(4)))
    assert plan == ScalePlan(retire=(3, 1), add=())


def test_scaling_up_takes_the_lowest_free_numbers_with_a_port() -> None:
    plan = scale_plan([0, 3], 4, retiring={1}, has_port={0, 1, 2, 3, 4, 5})
    assert plan == ScalePlan(retire=(), add=(2, 4))


def test_a_replica_without_a_port_is_not_added() -> None:
    assert scale_plan([], 3, has_port={0, 2}).add == (0, 2)


@given(scale_situations())
def test_a_scale_plan_never_exceeds_desired_nor_reuses_a_number(case: dict[str, Any]) -> None:
    replicas, desired = case["replicas"], case["desired"]
    plan = scale_plan(
        replicas,
        desired,
        victims=case["victims"],
        retiring=case["retiring"],
        has_port=case["has_port"],
    )
    kept = [r for i, r in enumerate(replicas) if i not in plan.retire]
    assert len(kept) == min(len(replicas), desired)
    assert len(kept) + len(plan.add) <= desired
    assert not set(plan.add) & (set(replicas) | case["retiring"])
    assert set(plan.add) <= case["has_port"]
    assert list(plan.add) == sorted(plan.add)
    assert list(plan.retire) == sorted(plan.retire, reverse=True)
    # Victims go before any other replica does.
    retired = {replicas[i] for i in plan.retire}
    if retired - case["victims"]:
        assert case["victims"] <= retired
