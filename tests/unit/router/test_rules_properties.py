"""Properties of the rules engine over generated routes, agents and clients."""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from agentvisor.config.model import RouteAction
from agentvisor.config.validate import check_strategy
from agentvisor.router.rules import (
    ClientInfo,
    CompiledRules,
    Decision,
    NoRoute,
    Reject,
    Route,
    condition_matches,
)
from tests.strategies import RoutingSetup, client_infos, routing_clients, routing_setups

examples = settings(max_examples=60, deadline=None)


@st.composite
def clients_for(draw: st.DrawFn, setup: RoutingSetup) -> ClientInfo:
    """A client that may name one of the agents or tags, or something unknown."""
    client = draw(routing_clients())
    names = [*setup.agents, "unknown"]
    tags = [tag for agent in setup.agents.values() for tag in agent.tags] + ["no-such-tag"]
    query = dict(client.query)
    if draw(st.integers(0, 2)) == 0:
        query["service"] = (draw(st.sampled_from(names)),)
    if draw(st.integers(0, 3)) == 0:
        query["tag"] = tuple(draw(st.lists(st.sampled_from(tags), min_size=1, max_size=2)))
    return attrs.evolve(client, query=query)


def decide(setup: RoutingSetup, client: ClientInfo) -> Decision:
    return CompiledRules.from_config(setup.routes, setup.router).decide(client, setup.agents)


def expected_rule(setup: RoutingSetup, client: ClientInfo) -> str | None:
    """The first enabled rule whose conditions all hold, by priority then file order."""
    enabled = [route for route in setup.routes if route.enabled]
    for route in sorted(enabled, key=lambda r: -r.priority):
        if all(condition_matches(condition, client) for condition in route.match):
            return route.name
    return None


@examples
@given(data=st.data(), setup=routing_setups())
def test_a_route_or_reject_names_the_first_matching_rule(
    data: st.DataObject, setup: RoutingSetup
) -> None:
    client = data.draw(clients_for(setup))

    decision = decide(setup, client)

    if isinstance(decision, Route | Reject):
        assert decision.rule == expected_rule(setup, client)


@examples
@given(data=st.data(), setup=routing_setups())
def test_a_matching_reject_rule_always_rejects(data: st.DataObject, setup: RoutingSetup) -> None:
    client = data.draw(clients_for(setup))
    first = expected_rule(setup, client)
    rule = next((r for r in setup.routes if r.name == first), None)

    rejects = rule is not None and rule.action is RouteAction.REJECT

    assert isinstance(decide(setup, client), Reject) == rejects


@examples
@given(data=st.data(), setup=routing_setups())
def test_a_route_names_distinct_routable_agents_and_a_valid_strategy(
    data: st.DataObject, setup: RoutingSetup
) -> None:
    decision = decide(setup, data.draw(clients_for(setup)))

    if isinstance(decision, Route):
        assert decision.agents
        assert all(setup.agents[name].routable for name in decision.agents)
        assert len(set(decision.agents)) == len(decision.agents)
        assert check_strategy(decision.strategy) is None


@examples
@given(data=st.data(), setup=routing_setups())
def test_a_route_honours_the_clients_service_and_tags(
    data: st.DataObject, setup: RoutingSetup
) -> None:
    client = data.draw(clients_for(setup))

    decision = decide(setup, client)

    if isinstance(decision, Route):
        if client.service is not None:
            assert decision.agents == (client.service,)
        wanted = set(client.tags)
        assert all(wanted <= setup.agents[name].tags for name in decision.agents)


@examples
@given(data=st.data(), setup=routing_setups())
def test_a_route_stays_within_the_matched_rules_targets(
    data: st.DataObject, setup: RoutingSetup
) -> None:
    client = data.draw(clients_for(setup))

    decision = decide(setup, client)

    rule = next((r for r in setup.routes if r.name == expected_rule(setup, client)), None)
    if (
        isinstance(decision, Route)
        and rule is not None
        and (rule.target_agents or rule.target_tags)
    ):
        for name in decision.agents:
            tagged = bool(rule.target_tags) and set(rule.target_tags) <= setup.agents[name].tags
            assert name in rule.target_agents or tagged


@settings(max_examples=40, deadline=None)
@given(setup=routing_setups(), client=client_infos())
def test_decide_answers_any_client_without_raising(setup: RoutingSetup, client: ClientInfo) -> None:
    # arbitrary header and query text, addresses that are not IPs, empty values
    assert isinstance(decide(setup, client), Route | Reject | NoRoute)
