"""The request bodies (api.bodies): checked by their schema, the seed's names mapped to the
file's."""

from __future__ import annotations

from typing import Any

import pytest

from agentvisor.api.bodies import CONFIG_CHANGES, REGISTER, RULE, RULE_CHANGES, SCALE
from agentvisor.api.check import parse_json_object
from agentvisor.errors import ConfigInvalid, InvalidRequest


def register_settings(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return REGISTER.load(REGISTER.check(body))


def config_changes(body: dict[str, Any]) -> dict[str, Any]:
    return CONFIG_CHANGES.load(CONFIG_CHANGES.check(body))


def scale_replicas(body: dict[str, Any]) -> int:
    return SCALE.load(SCALE.check(body))


def rule_settings(body: dict[str, Any]) -> dict[str, Any]:
    return RULE.load(RULE.check(body))


def rule_changes(body: dict[str, Any]) -> dict[str, Any]:
    return RULE_CHANGES.load(RULE_CHANGES.check(body))


def test_the_seed_register_body_maps_to_file_keys() -> None:
    body = {
        "name": "weather-agent",
        "description": "Weather information agent",
        "agent_factory_path": "./agents/weather_agent.py",
        "host": "localhost",
        "port": 8081,
        "tags": ["weather", "information"],
        "auto_start": True,
        "config": {
            "max_sessions": 100,
            "session_timeout": 1800,
            "auto_restart": True,
            "health_check_enabled": True,
        },
    }
    name, settings = register_settings(body)
    assert name == "weather-agent"
    assert settings == {
        "description": "Weather information agent",
        "agent": "./agents/weather_agent.py",
        "host": "localhost",
        "port": 8081,
        "tags": ["weather", "information"],
        "autostart": True,
        "max_sessions": 100,
        "session_timeout": 1800,
        "autorestart": "on-failure",
        "health": {"enabled": True},
    }


def test_auto_restart_false_means_never_and_a_string_is_kept() -> None:
    assert config_changes({"auto_restart": False}) == {"autorestart": "never"}
    assert config_changes({"auto_restart": "always"}) == {"autorestart": "always"}


def test_health_enabled_merges_with_a_health_table() -> None:
    changes = config_changes({"health": {"interval": 5}, "health_check_enabled": False})
    assert changes == {"health": {"interval": 5, "enabled": False}}


def test_a_merge_patch_keeps_none_to_reset_a_key() -> None:
    assert config_changes({"port": None, "config": {"max_sessions": None}}) == {
        "port": None,
        "max_sessions": None,
    }
    _name, settings = register_settings({"name": "a", "command": "x", "port": None})
    assert settings == {"command": "x"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "a", "command": "x", "colour": 1}, "Unknown service field 'colour'"),
        ({"name": "a", "command": "x", "replica": 2}, "field 'replica' (did you mean 'replicas'?)"),
        (
            {"name": "a", "command": "x", "replica": 2, "tgas": []},
            "fields 'replica', 'tgas' (did you mean 'replicas' for 'replica', 'tags' for 'tgas'?)",
        ),
        ({"name": "a", "command": "x", "config": {"auto_start": 1}}, "'config.auto_start'"),
        ({"name": "a", "command": ["x", 1]}, "'command' must be a string or an array of strings"),
        ({"name": "a", "command": "x", "port": 70000}, "an integer from 1 to 65535"),
        ({"name": "a", "command": "x", "replicas": True}, "'replicas' must be an integer"),
        ({"name": "a", "command": "x", "environment": {"A": 1}}, "'environment.A' must be a str"),
        ({"name": "a", "command": "x", "auto_restart": 1}, "'auto_restart' must be true"),
        ({"name": "a" * 101, "command": "x"}, "at most 100"),
        ({"name": "-a", "command": "x"}, "lowercase"),
        ({"name": "a", "command": "x", "health": {"intervall": 1}}, "(did you mean 'interval'?)"),
        ({"name": "a", "command": "x", "health": {"interval": 0}}, "a number above 0, got 0"),
        ({"name": "a", "command": "x", "stopsignal": "TERMINATE"}, 'one of "TERM"'),
        ({"name": "a", "command": "x", "max_sessions": 2**60}, "from 1 to 9007199254740991"),
    ],
)
def test_bad_register_bodies_name_the_field(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        register_settings(body)
    assert message in error.value.message


def test_config_changes_refuse_renames_and_take_empty_patches() -> None:
    with pytest.raises(InvalidRequest, match="cannot be changed"):
        config_changes({"name": "b"})
    assert config_changes({}) == {}  # issue 13: a merge patch of nothing changes nothing


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "needs a JSON object"),
        (b"[1]", "must be a JSON object, got an array"),
        (b'"x"', "got a string"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe{", "not"),
        (b'{"replicas": NaN}', "NaN is not JSON"),
        (b'{"replicas": 1e999}', "too large"),
    ],
)
def test_bodies_must_be_json_objects(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_json_object(raw)


def test_scale_takes_only_replicas() -> None:
    assert scale_replicas({"replicas": 3}) == 3
    for body in ({}, {"replicas": -1}, {"replicas": "3"}, {"replicas": 1, "x": 2}):
        with pytest.raises(InvalidRequest):
            scale_replicas(body)


def test_the_seed_rule_body_maps_to_a_routes_entry() -> None:
    body = {
        "name": "VIP用户路由",
        "priority": 10,
        "conditions": [{"field": "header.x-user-tier", "operator": "equals", "value": "vip"}],
        "target_strategy": "least_connections",
        "target_tags": ["high-performance"],
        "enabled": True,
    }
    assert rule_settings(body) == {
        "name": "VIP用户路由",
        "priority": 10,
        "match": [{"field": "header.x-user-tier", "op": "equals", "value": "vip"}],
        "strategy": "least_connections",
        "target_tags": ["high-performance"],
        "enabled": True,
    }


def test_rule_bodies_accept_the_file_names_and_echoed_ids() -> None:
    body = {"rule_id": "r", "name": "r", "match": [{"field": "path", "op": "exists"}]}
    assert rule_settings(body) == {"name": "r", "match": [{"field": "path", "op": "exists"}]}
    assert rule_changes({"target_service": "alpha", "description": None}) == {
        "target_agents": ["alpha"],
        "description": None,
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "'name' is required"),
        ({"name": "r", "weight": 1}, "Unknown routing rule field 'weight'"),
        ({"name": "r", "conditions": {}}, "'conditions' must be an array"),
        ({"name": "r", "conditions": ["x"]}, "'conditions[0]' must be an object"),
        ({"name": "r", "conditions": [{"value": 1}]}, "'conditions[0].field' is required"),
        ({"name": "r", "conditions": [{"field": "p", "op": 1}]}, "'conditions[0].op' must be"),
        ({"name": "r", "conditions": [{"field": "p", "operator": "is"}]}, 'one of "equals"'),
        ({"name": " "}, "'name' must be the rule's unique name (not blank)"),
        ({"name": "r", "enabled": "yes"}, "'enabled' must be true or false"),
    ],
)
def test_bad_rule_bodies_name_the_field(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        rule_settings(body)
    assert message in error.value.message


def test_the_schemas_and_the_validation_are_one() -> None:
    """What the document publishes is what the server checks: the same dict."""
    from agentvisor.admin.openapi import build_document
    from agentvisor.api.bodies import BODIES

    components = build_document("0", auth=True)["components"]["schemas"]
    for body in BODIES:
        assert components[body.name] is body.schema


def test_every_declared_body_schema_is_a_valid_openapi_30_schema() -> None:
    from agentvisor.api.bodies import BODIES

    for body in BODIES:
        assert body.validator() is not None  # check_schema raises on a bad declaration


def test_two_spellings_of_one_key_are_the_key_twice_a_422() -> None:
    with pytest.raises(ConfigInvalid, match="autostart: set twice, as 'autostart' and as"):
        register_settings({"name": "a", "command": "x", "autostart": False, "auto_start": True})
    with pytest.raises(ConfigInvalid, match="replicas: set twice"):
        register_settings({"name": "a", "command": "x", "replicas": 1, "config": {"replicas": 2}})
    with pytest.raises(ConfigInvalid, match="strategy: set twice"):
        rule_settings({"name": "r", "strategy": "a", "target_strategy": "b"})
    # null is "not given" when creating, so it does not clash
    _name, settings = register_settings(
        {"name": "a", "command": "x", "autostart": None, "auto_start": False}
    )
    assert settings == {"command": "x", "autostart": False}
    # in a merge patch null resets, so it is a value
    with pytest.raises(ConfigInvalid, match="autostart: set twice"):
        config_changes({"autostart": None, "auto_start": False})
