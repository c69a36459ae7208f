"""The reload plan: which agents restart, scale, change live or stay untouched."""

from __future__ import annotations

from typing import Any

import attrs

from agentvisor.config.diff import PROCESS_FIELDS, ReloadPlan, changed_fields, plan_reload
from agentvisor.config.model import (
    AgentConfig,
    AutoscaleConfig,
    Config,
    HealthConfig,
    RouteConfig,
    RouterConfig,
)

OLD = Config(
    agents={
        "weather": AgentConfig(command="python weather.py"),
        "search": AgentConfig(agent="search.py", replicas=2),
    }
)


def _with(name: str, **changes: Any) -> Config:
    agents = dict(OLD.agents)
    agents[name] = attrs.evolve(agents[name], **changes)
    return attrs.evolve(OLD, agents=agents)


def test_same_config_changes_nothing() -> None:
    plan = plan_reload(OLD, OLD)
    assert plan == ReloadPlan(unchanged=("weather", "search"))
    assert plan.is_empty


def test_added_agent() -> None:
    new = attrs.evolve(OLD, agents={**OLD.agents, "news": AgentConfig(command="n")})
    assert plan_reload(OLD, new).added == ("news",)


def test_removed_agent() -> None:
    new = attrs.evolve(OLD, agents={"weather": OLD.agents["weather"]})
    plan = plan_reload(OLD, new)
    assert (plan.removed, plan.unchanged) == (("search",), ("weather",))


def test_command_change_restarts() -> None:
    plan = plan_reload(OLD, _with("weather", command="python weather2.py"))
    assert (plan.restart, plan.live, plan.unchanged) == (("weather",), (), ("search",))


def test_environment_change_restarts() -> None:
    assert plan_reload(OLD, _with("weather", environment={"A": "1"})).restart == ("weather",)


def test_tags_change_is_live() -> None:
    plan = plan_reload(OLD, _with("weather", tags=("fast",)))
    assert (plan.restart, plan.live) == ((), ("weather",))


def test_health_change_is_live_and_names_the_nested_field() -> None:
    plan = plan_reload(OLD, _with("weather", health=HealthConfig(interval=3.0)))
    assert plan.live == ("weather",)
    assert plan.changed_fields == {"weather": ("health.interval",)}


def test_ws_path_change_is_live() -> None:
    plan = plan_reload(OLD, _with("weather", ws_path="/agent"))
    assert (plan.restart, plan.live) == ((), ("weather",))


def test_replicas_change_scales_without_restart() -> None:
    plan = plan_reload(OLD, _with("search", replicas=4))
    assert (plan.scaled, plan.restart, plan.live) == (("search",), (), ())


def test_autoscale_bounds_scale() -> None:
    plan = plan_reload(OLD, _with("search", autoscale=AutoscaleConfig(min=2, max=8)))
    assert (plan.scaled, plan.changed_fields) == (("search",), {"search": ("autoscale",)})


def test_autoscale_target_change_is_live() -> None:
    old = _with("search", autoscale=AutoscaleConfig())
    new = attrs.evolve(
        old,
        agents={
            **old.agents,
            "search": attrs.evolve(
                old.agents["search"], autoscale=AutoscaleConfig(target_sessions=5)
            ),
        },
    )
    plan = plan_reload(old, new)
    assert (plan.scaled, plan.live) == ((), ("search",))
    assert plan.changed_fields == {"search": ("autoscale.target_sessions",)}


def test_restart_and_scale_together() -> None:
    plan = plan_reload(OLD, _with("search", replicas=3, agent="search2.py"))
    assert (plan.restart, plan.scaled, plan.live) == (("search",), ("search",), ())


def test_restarting_agent_is_not_also_live() -> None:
    plan = plan_reload(OLD, _with("weather", command="x", tags=("t",)))
    assert (plan.restart, plan.live) == (("weather",), ())
    assert plan.changed_fields == {"weather": ("command", "tags")}


def test_router_change_is_flagged() -> None:
    new = attrs.evolve(OLD, router=RouterConfig(max_connections=5))
    plan = plan_reload(OLD, new)
    assert (plan.router_changed, plan.routes_changed) == (True, False)
    assert plan.unchanged == ("weather", "search")


def test_routes_change_is_flagged() -> None:
    plan = plan_reload(OLD, attrs.evolve(OLD, routes=(RouteConfig(name="r"),)))
    assert plan.routes_changed
    assert not plan.is_empty


def test_source_and_base_dir_are_no_change() -> None:
    assert plan_reload(OLD, attrs.evolve(OLD, source="x", base_dir="/y")).is_empty


def test_changed_fields_of_equal_agents() -> None:
    assert changed_fields(AgentConfig(command="x"), AgentConfig(command="x")) == ()


def test_process_fields_are_agent_fields() -> None:
    assert {a.name for a in attrs.fields(AgentConfig)} >= PROCESS_FIELDS
