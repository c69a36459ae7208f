"""Structuring parsed TOML into the models: types, enums, unknown keys, every issue."""

from __future__ import annotations

from typing import Any

from agentvisor.config.convert import (
    FromEnvironment,
    did_you_mean,
    key_path,
    show_value,
    structure_config,
    unstructure_config,
)
from agentvisor.config.model import (
    AgentConfig,
    AutoRestart,
    Condition,
    ConditionOp,
    Config,
    RouteConfig,
)


def _problems(raw: dict[str, Any]) -> list[str]:
    config, issues = structure_config(raw, "agentvisor.toml")
    assert config is None
    return [f"{issue.path}: {issue.message}" for issue in issues]


def _agent(**table: Any) -> dict[str, Any]:
    return {"agents": {"weather": {"command": "w", **table}}}


def test_empty_table_gives_the_defaults() -> None:
    config, issues = structure_config({}, "agentvisor.toml")
    assert issues == []
    assert config == Config()


def test_structured_config_remembers_its_source() -> None:
    config, _ = structure_config({}, "agentvisor.toml")
    assert config is not None
    assert config.source == "agentvisor.toml"


def test_string_where_an_integer_belongs() -> None:
    assert _problems(_agent(replicas="two")) == [
        'agents.weather.replicas: must be an integer, got "two"'
    ]


def test_boolean_is_not_an_integer() -> None:
    assert _problems(_agent(replicas=True)) == [
        "agents.weather.replicas: must be an integer, got true"
    ]


def test_boolean_is_not_a_number() -> None:
    assert _problems(_agent(weight=False)) == ["agents.weather.weight: must be a number, got false"]


def test_integer_is_accepted_as_a_number() -> None:
    config, _ = structure_config(_agent(weight=3), "agentvisor.toml")
    assert config is not None
    assert config.agents["weather"].weight == 3.0


def test_string_is_not_a_boolean() -> None:
    assert _problems(_agent(routable="yes")) == [
        'agents.weather.routable: must be true or false, got "yes"'
    ]


def test_number_is_not_a_string() -> None:
    assert _problems(_agent(description=3)) == [
        "agents.weather.description: must be a string, got 3"
    ]


def test_value_below_a_field_minimum() -> None:
    assert _problems(_agent(replicas=-1)) == ["agents.weather.replicas: must be >= 0, got -1"]


def test_value_above_a_field_maximum() -> None:
    assert _problems(_agent(replicas=5000)) == [
        "agents.weather.replicas: must be <= 1000, got 5000"
    ]


def test_model_validator_message_is_kept() -> None:
    assert _problems(_agent(port=70000)) == [
        "agents.weather.port: must be a port from 1 to 65535, got 70000"
    ]


def test_unknown_enum_value_suggests_the_closest() -> None:
    assert _problems(_agent(autorestart="on_failure")) == [
        'agents.weather.autorestart: unknown value "on_failure" '
        '(expected one of: always, on-failure, never; did you mean "on-failure"?)'
    ]


def test_unknown_enum_value_without_a_close_one_lists_the_values() -> None:
    assert _problems(_agent(runtime="gevent")) == [
        'agents.weather.runtime: unknown value "gevent" (expected one of: asyncio, trio)'
    ]


def test_enum_values_become_members() -> None:
    config, _ = structure_config(_agent(autorestart="always"), "agentvisor.toml")
    assert config is not None
    assert config.agents["weather"].autorestart is AutoRestart.ALWAYS


def test_unknown_key_suggests_the_closest() -> None:
    assert _problems(_agent(replica=2)) == [
        'agents.weather.replica: unknown key "replica" (did you mean "replicas"?)'
    ]


def test_unknown_key_without_a_close_one() -> None:
    assert _problems({"router": {"xyzzy": 1}}) == ['router.xyzzy: unknown key "xyzzy"']


def test_unknown_top_level_section() -> None:
    assert _problems({"agent": {}}) == ['agent: unknown key "agent" (did you mean "agents"?)']


def test_source_and_base_dir_are_not_keys() -> None:
    assert _problems({"source": "x"}) == ['source: unknown key "source"']


def test_unknown_key_in_a_nested_table() -> None:
    assert _problems(_agent(health={"intervall": 3})) == [
        'agents.weather.health.intervall: unknown key "intervall" (did you mean "interval"?)'
    ]


def test_scalar_where_a_table_belongs() -> None:
    assert _problems(_agent(health=3)) == ["agents.weather.health: must be a table, got 3"]


def test_agents_must_be_a_table() -> None:
    assert _problems({"agents": [1]}) == ["agents: must be a table, got [1]"]


def test_string_where_an_array_belongs() -> None:
    assert _problems(_agent(tags="a,b")) == [
        'agents.weather.tags: must be an array of strings, got "a,b"'
    ]


def test_bad_array_item_is_named_by_index() -> None:
    assert _problems(_agent(exitcodes=[0, "1"])) == [
        'agents.weather.exitcodes[1]: must be an integer, got "1"'
    ]


def test_arrays_become_tuples() -> None:
    config, _ = structure_config(_agent(tags=["a", "b"]), "agentvisor.toml")
    assert config is not None
    assert config.agents["weather"].tags == ("a", "b")


def test_port_range_needs_two_items() -> None:
    assert _problems({"supervisor": {"port_range": [1, 2, 3]}}) == [
        "supervisor.port_range: must be an array of 2 items, got [1, 2, 3]"
    ]


def test_command_may_be_a_string() -> None:
    config, _ = structure_config(_agent(command="python w.py"), "agentvisor.toml")
    assert config is not None
    assert config.agents["weather"].command == "python w.py"


def test_command_may_be_a_list_of_strings() -> None:
    config, _ = structure_config(_agent(command=["python", "w.py"]), "agentvisor.toml")
    assert config is not None
    assert config.agents["weather"].command == ("python", "w.py")


def test_command_of_another_type() -> None:
    assert _problems(_agent(command=3)) == [
        "agents.weather.command: must be a string or an array of strings, got 3"
    ]


def test_command_list_with_a_number() -> None:
    assert _problems(_agent(command=["python", 3])) == [
        "agents.weather.command[1]: must be a string, got 3"
    ]


def test_environment_value_must_be_a_string() -> None:
    assert _problems(_agent(environment={"PORT": 8080})) == [
        "agents.weather.environment.PORT: must be a string, got 8080"
    ]


def test_condition_value_takes_any_toml_value() -> None:
    raw = {"routes": [{"name": "r", "match": [{"field": "path", "op": "in", "value": ["a", 1]}]}]}
    config, _ = structure_config(raw, "agentvisor.toml")
    assert config is not None
    assert config.routes[0].match[0].value == ("a", 1)


def test_missing_required_key() -> None:
    assert _problems({"routes": [{"priority": 1}]}) == ["routes[0].name: is required"]


def test_routes_are_indexed_from_zero() -> None:
    raw = {"routes": [{"name": "a"}, {"name": "b", "strategy": 3}]}
    assert _problems(raw) == ["routes[1].strategy: must be a string, got 3"]


def test_condition_op_in_an_array_of_routes() -> None:
    raw = {"routes": [{"name": "a", "match": [{"field": "path", "op": "regx"}]}]}
    assert _problems(raw) == [
        'routes[0].match[0].op: unknown value "regx" (expected one of: equals, not_equals, '
        "contains, starts_with, ends_with, regex, in, not_in, exists, cidr; "
        'did you mean "regex"?)'
    ]


def test_every_problem_is_reported() -> None:
    raw = {
        "supervisor": {"log_level": "loud"},
        "agents": {"a": {"replicas": "2", "weigth": 1}, "b": {"port": "x"}},
        "routes": [{"name": 1}],
    }
    assert sorted(_problems(raw)) == [
        'agents.a.replicas: must be an integer, got "2"',
        'agents.a.weigth: unknown key "weigth" (did you mean "weight"?)',
        'agents.b.port: must be an integer, got "x"',
        "routes[0].name: must be a string, got 1",
        'supervisor.log_level: unknown value "loud" (expected one of: debug, info, warning, error)',
    ]


def test_odd_agent_names_are_quoted_in_paths() -> None:
    assert _problems({"agents": {"my agent": {"replicas": "x"}}}) == [
        'agents."my agent".replicas: must be an integer, got "x"'
    ]


def test_interpolated_string_is_accepted_as_an_integer() -> None:
    config, _ = structure_config(_agent(port=FromEnvironment("8200")), "agentvisor.toml")
    assert config is not None
    assert config.agents["weather"].port == 8200


def test_interpolated_string_is_accepted_as_a_boolean() -> None:
    config, _ = structure_config(_agent(routable=FromEnvironment("false")), "agentvisor.toml")
    assert config is not None
    assert config.agents["weather"].routable is False


def test_interpolated_string_that_is_no_number() -> None:
    assert _problems(_agent(weight=FromEnvironment("heavy"))) == [
        'agents.weather.weight: must be a number, got "heavy"'
    ]


def test_unstructure_omits_none_and_uses_toml_types() -> None:
    config = Config(
        agents={"a": AgentConfig(command=("x", "y"))},
        routes=(
            RouteConfig(
                name="r", match=(Condition(field="path", op=ConditionOp.IN, value=("a",)),)
            ),
        ),
    )
    data = unstructure_config(config)
    agent = data["agents"]["a"]
    assert "port" not in agent
    assert "autoscale" not in agent
    assert agent["command"] == ["x", "y"]
    assert agent["autorestart"] == "on-failure"
    assert type(agent["autorestart"]) is str
    assert data["routes"][0]["match"][0] == {
        "field": "path",
        "op": "in",
        "value": ["a"],
        "case_sensitive": False,
    }
    assert "source" not in data


def test_key_path_quotes_keys_that_are_not_bare() -> None:
    assert key_path("agents", "a.b", "environment", 'say "hi"') == (
        'agents."a.b".environment."say \\"hi\\""'
    )


def test_key_path_with_indexes() -> None:
    assert key_path("routes", 1, "match", 0, "value") == "routes[1].match[0].value"


def test_show_value_spells_toml() -> None:
    assert [show_value(v) for v in ("a", True, 1.5, [1, "b"], {"k": 1})] == [
        '"a"',
        "true",
        "1.5",
        '[1, "b"]',
        "a table",
    ]


def test_show_value_shortens_long_strings() -> None:
    assert show_value("x" * 100) == '"' + "x" * 55 + '"…'


def test_did_you_mean_ignores_case() -> None:
    assert did_you_mean("REPLICAS", ["replicas", "port"]) == "replicas"


def test_did_you_mean_finds_nothing_far() -> None:
    assert did_you_mean("zzz", ["replicas", "port"]) is None


def test_unknown_key_that_belongs_in_a_sub_table() -> None:
    assert _problems(_agent(interval=3)) == [
        'agents.weather.interval: unknown key "interval" (did you mean "health.interval"?)'
    ]


def test_unknown_key_that_belongs_in_an_optional_sub_table() -> None:
    assert _problems(_agent(target_sessions=3)) == [
        'agents.weather.target_sessions: unknown key "target_sessions" '
        '(did you mean "autoscale.target_sessions"?)'
    ]
