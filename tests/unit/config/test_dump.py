"""Rendering a config as TOML that loads back to the same config."""

from __future__ import annotations

import tomllib

from agentvisor.config.dump import dump_config
from agentvisor.config.load import parse_config
from agentvisor.config.model import (
    AgentConfig,
    Condition,
    ConditionOp,
    Config,
    RouteConfig,
)


def test_default_config_round_trips() -> None:
    assert parse_config(dump_config(Config()), "dump.toml", {}) == Config()


def test_none_values_are_left_out() -> None:
    text = dump_config(Config(agents={"a": AgentConfig(command="x")}))
    assert "port" not in tomllib.loads(text)["agents"]["a"]


def test_dollar_signs_survive_interpolation() -> None:
    config = Config(agents={"a": AgentConfig(command="echo ${HOME} $$", environment={"K": "$"})})
    assert parse_config(dump_config(config), "dump.toml", {"HOME": "/root"}) == config


def test_conditions_are_inline_tables_one_per_line() -> None:
    route = RouteConfig(
        name="r",
        match=(
            Condition(field="path", op=ConditionOp.IN, value=("/a", "/b")),
            Condition(field="header.X", op=ConditionOp.EXISTS),
        ),
    )
    text = dump_config(Config(routes=(route,)))
    assert '    {field = "header.X", op = "exists", case_sensitive = false},\n' in text


def test_agent_tables_nest_under_agents() -> None:
    text = dump_config(Config(agents={"weather": AgentConfig(command="w")}))
    assert "[agents.weather]\n" in text
    assert "[agents.weather.health]\n" in text
