"""The rules engine's decisions: priority, targets, defaults, narrowing, strategy."""

from __future__ import annotations

from agentvisor.config.model import (
    AgentConfig,
    Condition,
    ConditionOp,
    RouteAction,
    RouteConfig,
    RouterConfig,
)
from agentvisor.router.rules import (
    AgentInfo,
    ClientInfo,
    CompiledRules,
    NoRoute,
    Reject,
    Route,
)

AGENTS = {
    "weather": AgentInfo("weather", frozenset({"eu", "fast"})),
    "search": AgentInfo("search", frozenset({"eu"})),
    "chat": AgentInfo("chat", frozenset({"us"})),
    "hidden": AgentInfo("hidden", frozenset({"eu", "fast"}), routable=False),
}
ROUTABLE = ("weather", "search", "chat")
CLIENT = ClientInfo("10.0.0.1", path="/ws")


def on_path(path: str) -> tuple[Condition, ...]:
    return (Condition("path", ConditionOp.EQUALS, path),)


def engine(
    *routes: RouteConfig,
    default_agent: str | None = None,
    default_strategy: str = "least_connections",
) -> CompiledRules:
    router = RouterConfig(default_agent=default_agent, default_strategy=default_strategy)
    return CompiledRules.from_config(routes, router)


def client(**query: str | tuple[str, ...]) -> ClientInfo:
    return ClientInfo("10.0.0.1", path="/ws", query=query)


# --- rule order ----------------------------------------------------------------------


def test_higher_priority_rule_wins_over_earlier_rule() -> None:
    rules = engine(
        RouteConfig("low", target_agents=("chat",)),
        RouteConfig("high", priority=5, target_agents=("search",)),
    )

    assert rules.decide(CLIENT, AGENTS) == Route("high", ("search",), "least_connections")


def test_equal_priority_rules_are_tried_in_file_order() -> None:
    rules = engine(
        RouteConfig("first", target_agents=("chat",)),
        RouteConfig("second", target_agents=("search",)),
    )

    assert rules.decide(CLIENT, AGENTS) == Route("first", ("chat",), "least_connections")


def test_a_rule_whose_conditions_fail_is_skipped() -> None:
    rules = engine(
        RouteConfig("other-path", priority=9, match=on_path("/other"), target_agents=("chat",)),
        RouteConfig("fallback", target_agents=("search",)),
    )

    assert rules.decide(CLIENT, AGENTS) == Route("fallback", ("search",), "least_connections")


def test_every_condition_of_a_rule_must_hold() -> None:
    both = (*on_path("/ws"), Condition("header.x-team", ConditionOp.EXISTS))
    rules = engine(RouteConfig("both", match=both, target_agents=("chat",)))

    assert rules.decide(CLIENT, AGENTS) == Route(None, ROUTABLE, "least_connections")


def test_disabled_rules_are_skipped() -> None:
    rules = engine(
        RouteConfig("off", priority=9, enabled=False, target_agents=("chat",)),
        RouteConfig("on", target_agents=("search",)),
    )

    assert rules.decide(CLIENT, AGENTS) == Route("on", ("search",), "least_connections")


def test_disabled_rules_are_not_compiled() -> None:
    rules = engine(RouteConfig("off", enabled=False))

    assert rules.rules == ()


# --- targets -------------------------------------------------------------------------


def test_target_tags_select_agents_having_all_of_them() -> None:
    rules = engine(RouteConfig("fast-eu", target_tags=("eu", "fast")))

    assert rules.decide(CLIENT, AGENTS) == Route("fast-eu", ("weather",), "least_connections")


def test_targets_are_the_union_of_named_agents_and_tagged_agents() -> None:
    rules = engine(RouteConfig("mixed", target_agents=("chat",), target_tags=("fast",)))

    assert rules.decide(CLIENT, AGENTS) == Route("mixed", ("weather", "chat"), "least_connections")


def test_a_rule_without_targets_allows_every_routable_agent() -> None:
    rules = engine(RouteConfig("any"))

    assert rules.decide(CLIENT, AGENTS) == Route("any", ROUTABLE, "least_connections")


def test_a_named_agent_that_is_not_routable_is_not_a_candidate() -> None:
    rules = engine(RouteConfig("named", target_agents=("hidden", "chat")))

    assert rules.decide(CLIENT, AGENTS) == Route("named", ("chat",), "least_connections")


def test_a_rule_selecting_no_routable_agent_gives_no_route() -> None:
    rules = engine(RouteConfig("only-hidden", target_agents=("hidden",)))

    decision = rules.decide(CLIENT, AGENTS)

    assert isinstance(decision, NoRoute)
    assert "only-hidden" in decision.reason


# --- reject --------------------------------------------------------------------------


def test_a_reject_rule_rejects_naming_the_rule() -> None:
    rules = engine(RouteConfig("no-bots", action=RouteAction.REJECT))

    assert rules.decide(CLIENT, AGENTS) == Reject("no-bots", 'rejected by rule "no-bots"')


def test_a_reject_rule_wins_over_the_clients_service() -> None:
    rules = engine(RouteConfig("closed", action=RouteAction.REJECT))

    assert isinstance(rules.decide(client(service="chat"), AGENTS), Reject)


def test_a_lower_priority_reject_rule_does_not_apply_after_a_match() -> None:
    rules = engine(
        RouteConfig("closed", priority=-1, action=RouteAction.REJECT),
        RouteConfig("open", target_agents=("chat",)),
    )

    assert rules.decide(CLIENT, AGENTS) == Route("open", ("chat",), "least_connections")


# --- no rule: router defaults --------------------------------------------------------


def test_without_rules_every_routable_agent_is_a_candidate() -> None:
    assert engine().decide(CLIENT, AGENTS) == Route(None, ROUTABLE, "least_connections")


def test_without_a_matching_rule_the_default_agent_is_used() -> None:
    rules = engine(default_agent="search")

    assert rules.decide(CLIENT, AGENTS) == Route(None, ("search",), "least_connections")


def test_the_default_strategy_applies_without_a_rule() -> None:
    rules = engine(default_strategy="round_robin")

    assert rules.decide(CLIENT, AGENTS) == Route(None, ROUTABLE, "round_robin")


def test_a_default_agent_that_is_not_routable_gives_no_route() -> None:
    decision = engine(default_agent="hidden").decide(CLIENT, AGENTS)

    assert isinstance(decision, NoRoute)
    assert "hidden" in decision.reason


def test_the_clients_service_overrides_the_default_agent() -> None:
    # CONFIG.md: default_agent is "used when no rule, service or tag selects one"
    rules = engine(default_agent="search")

    assert rules.decide(client(service="chat"), AGENTS) == Route(
        None, ("chat",), "least_connections"
    )


def test_the_clients_tag_overrides_the_default_agent() -> None:
    rules = engine(default_agent="search")

    assert rules.decide(client(tag="us"), AGENTS) == Route(None, ("chat",), "least_connections")


def test_the_default_agent_is_not_used_when_a_rule_matches() -> None:
    rules = engine(RouteConfig("chat", target_agents=("chat",)), default_agent="search")

    assert rules.decide(CLIENT, AGENTS) == Route("chat", ("chat",), "least_connections")


# --- the client's service and tags --------------------------------------------------


def test_service_narrows_the_rules_candidates_to_that_agent() -> None:
    rules = engine(RouteConfig("eu", target_tags=("eu",)))

    assert rules.decide(client(service="search"), AGENTS) == Route(
        "eu", ("search",), "least_connections"
    )


def test_a_service_the_rule_does_not_allow_gives_no_route_naming_it() -> None:
    rules = engine(RouteConfig("eu", target_tags=("eu",)))

    decision = rules.decide(client(service="chat"), AGENTS)

    assert decision == NoRoute('service "chat" is not allowed by rule "eu"', "SERVICE_NOT_FOUND")


def test_an_unknown_service_gives_service_not_found() -> None:
    decision = engine().decide(client(service="nope"), AGENTS)

    assert decision == NoRoute('unknown service "nope"', "SERVICE_NOT_FOUND")


def test_a_service_that_is_not_routable_gives_no_route() -> None:
    decision = engine().decide(client(service="hidden"), AGENTS)

    assert decision == NoRoute('service "hidden" is not routable', "SERVICE_NOT_FOUND")


def test_service_from_the_header_narrows_like_the_query() -> None:
    header_client = ClientInfo("10.0.0.1", headers={"X-Agentvisor-Service": "chat"})

    assert engine().decide(header_client, AGENTS) == Route(None, ("chat",), "least_connections")


def test_tags_narrow_to_agents_having_all_of_them() -> None:
    decision = engine().decide(client(tag=("eu", "fast")), AGENTS)

    assert decision == Route(None, ("weather",), "least_connections")


def test_tags_narrow_within_the_rules_candidates() -> None:
    rules = engine(RouteConfig("pair", target_agents=("search", "chat")))

    assert rules.decide(client(tag="eu"), AGENTS) == Route("pair", ("search",), "least_connections")


def test_tags_narrowing_to_nothing_gives_no_route() -> None:
    rules = engine(RouteConfig("pair", target_agents=("search", "chat")))

    decision = rules.decide(client(tag="fast"), AGENTS)

    assert isinstance(decision, NoRoute)
    assert '"fast"' in decision.reason


def test_service_and_tags_together_must_both_hold() -> None:
    decision = engine().decide(client(service="search", tag="fast"), AGENTS)

    assert isinstance(decision, NoRoute)


# --- strategy ------------------------------------------------------------------------


def test_the_rules_strategy_is_used() -> None:
    rules = engine(RouteConfig("rr", strategy="round_robin"), default_strategy="random")

    assert rules.decide(CLIENT, AGENTS) == Route("rr", ROUTABLE, "round_robin")


def test_a_rule_without_strategy_uses_the_default() -> None:
    rules = engine(RouteConfig("plain"), default_strategy="random")

    assert rules.decide(CLIENT, AGENTS) == Route("plain", ROUTABLE, "random")


def test_a_routing_hint_replaces_the_default_strategy() -> None:
    rules = engine(RouteConfig("plain"))

    decision = rules.decide(client(routing_hint="ip_hash"), AGENTS)

    assert decision == Route("plain", ROUTABLE, "ip_hash")


def test_a_routing_hint_applies_without_a_matching_rule() -> None:
    decision = engine().decide(client(routing_hint="hash:query.user"), AGENTS)

    assert decision == Route(None, ROUTABLE, "hash:query.user")


def test_a_routing_hint_never_overrides_the_rules_own_strategy() -> None:
    rules = engine(RouteConfig("rr", strategy="round_robin"))

    decision = rules.decide(client(routing_hint="random"), AGENTS)

    assert decision == Route("rr", ROUTABLE, "round_robin")


def test_an_invalid_routing_hint_is_ignored() -> None:
    decision = engine().decide(client(routing_hint="fastest"), AGENTS)

    assert decision == Route(None, ROUTABLE, "least_connections")


def test_agent_info_from_config_keeps_tags_routability_and_weight() -> None:
    config = AgentConfig(command="x", tags=("eu", "fast"), routable=False, weight=2.0)

    assert AgentInfo.from_config("w", config) == AgentInfo(
        "w", frozenset({"eu", "fast"}), routable=False, weight=2.0
    )
