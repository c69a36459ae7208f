"""Properties over generated configs: round trips and reload plans."""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from agentvisor.config.diff import PROCESS_FIELDS, SCALE_FIELDS, plan_reload
from agentvisor.config.dump import dump_config
from agentvisor.config.load import parse_config
from agentvisor.config.model import AgentConfig, Config
from tests.strategies import agent_configs, configs

AGENT_FIELDS = tuple(a.name for a in attrs.fields(AgentConfig))
LIVE_FIELDS = tuple(f for f in AGENT_FIELDS if f not in PROCESS_FIELDS | SCALE_FIELDS)


def _change_one_field(config: Config, data: st.DataObject, fields: tuple[str, ...]) -> Config:
    """``config`` with one field of one agent taken from another generated agent."""
    name = data.draw(st.sampled_from(sorted(config.agents)))
    field = data.draw(st.sampled_from(fields))
    donor = data.draw(agent_configs(port=65000))
    changed = attrs.evolve(config.agents[name], **{field: getattr(donor, field)})
    return attrs.evolve(config, agents={**config.agents, name: changed})


@settings(max_examples=25, deadline=None)
@given(configs())
def test_dump_then_parse_gives_the_config_back(config: Config) -> None:
    # parse_config validates too: the strategy only makes valid configs
    assert parse_config(dump_config(config), "dump.toml", {}) == config


@settings(max_examples=25, deadline=None)
@given(configs())
def test_reload_of_the_same_config_changes_nothing(config: Config) -> None:
    plan = plan_reload(config, config)
    assert plan.is_empty
    assert plan.unchanged == tuple(config.agents)


@settings(max_examples=25, deadline=None)
@given(configs(), st.data())
def test_changing_one_agent_touches_no_other_agent(config: Config, data: st.DataObject) -> None:
    if not config.agents:
        return
    new = _change_one_field(config, data, AGENT_FIELDS)
    plan = plan_reload(config, new)
    touched = {*plan.restart, *plan.scaled, *plan.live, *plan.added, *plan.removed}
    assert len(touched) <= 1
    assert set(plan.changed_fields) == touched
    assert set(plan.unchanged) == set(config.agents) - touched
    assert not plan.router_changed
    assert not plan.routes_changed
    assert not plan.admin_changed


@settings(max_examples=25, deadline=None)
@given(configs(), st.data())
def test_changing_a_live_field_never_restarts(config: Config, data: st.DataObject) -> None:
    if not config.agents:
        return
    plan = plan_reload(config, _change_one_field(config, data, LIVE_FIELDS))
    assert plan.restart == ()
    assert plan.scaled == ()


@settings(max_examples=25, deadline=None)
@given(configs(), st.data())
def test_changing_a_process_field_restarts_that_agent(config: Config, data: st.DataObject) -> None:
    if not config.agents:
        return
    new = _change_one_field(config, data, tuple(sorted(PROCESS_FIELDS)))
    plan = plan_reload(config, new)
    assert set(plan.restart) == set(plan.changed_fields)
    assert plan.live == ()
