"""The editing endpoints' bodies: the seed's names mapped to agentvisor.toml's, shapes checked."""

from __future__ import annotations

from typing import Any

import pytest

from agentvisor.admin.bodies import (
    config_changes,
    parse_json_object,
    register_settings,
    rule_changes,
    rule_settings,
    scale_replicas,
)
from agentvisor.errors import InvalidRequest


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
        ({"name": "a", "command": "x", "replica": 2}, "did you mean 'replica' → 'replicas'?"),
        ({"name": "a", "command": "x", "config": {"auto_start": 1}}, "'config.auto_start'"),
        ({"name": "a", "command": ["x", 1]}, "'command' must be an array of strings"),
        ({"name": "a", "command": "x", "port": 70000}, "from 1 to 65535"),
        ({"name": "a", "command": "x", "replicas": True}, "'replicas' must be an integer"),
        ({"name": "a", "command": "x", "environment": {"A": 1}}, "an object of strings"),
        ({"name": "a", "command": "x", "auto_restart": 1}, "'auto_restart' must be true"),
        ({"name": "a", "command": "x", "agent": "y"}, "exactly one of"),
        ({"name": "a" * 101, "command": "x"}, "at most 100"),
        ({"name": "-a", "command": "x"}, "lowercase"),
        ({"name": "a", "command": "x", "autostart": 1, "auto_start": True}, "both set"),
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
        ({"name": "r", "conditions": [{"field": "p", "op": 1}]}, "'conditions[0].operator'"),
        ({"name": "r", "strategy": "a", "target_strategy": "b"}, "both set 'strategy'"),
        ({"name": "r", "enabled": "yes"}, "'enabled' must be true or false"),
    ],
)
def test_bad_rule_bodies_name_the_field(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        rule_settings(body)
    assert message in error.value.message
