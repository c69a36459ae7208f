"""/api/v1/routing/rules: CRUD of the [[routes]] of agentvisor.toml, applied when changed."""

from __future__ import annotations

from pathlib import Path

from agentvisor.config.load import load_config
from tests.integration.admin.harness import sleeper, write_config
from tests.integration.admin.stack import data_of, error_of, running_stack

EXISTING = """
# Internal callers go to alpha first.
[[routes]]
name = "internal"
priority = 1
match = [{ field = "client_ip", op = "cidr", value = "10.0.0.0/8" }]
target_agents = ["alpha"]
"""
VIP = {
    "name": "vip",
    "priority": 10,
    "conditions": [{"field": "header.x-user-tier", "operator": "equals", "value": "vip"}],
    "target_strategy": "least_connections",
    "target_tags": ["fast"],
    "enabled": True,
}


def with_routes(tmp_path: Path) -> Path:
    return write_config(tmp_path / "agentvisor.toml", sleeper("alpha", tags=("fast",)) + EXISTING)


async def test_rules_are_created_listed_changed_and_deleted_in_the_file(tmp_path: Path) -> None:
    config = with_routes(tmp_path)
    async with running_stack(config, store=False) as stack, stack.client() as client:
        created = data_of(await client.post("/api/v1/routing/rules", json=VIP), 201)["rule"]
        assert created["rule_id"] == "vip"
        assert created["conditions"][0]["operator"] == "equals"
        assert [route.name for route in stack.supervisor.config.routes] == ["internal", "vip"]
        listed = data_of(await client.get("/api/v1/routing/rules"))
        assert [rule["name"] for rule in listed["rules"]] == ["vip", "internal"], "by priority"
        assert [rule["order"] for rule in listed["rules"]] == [1, 0]
        assert listed["total"] == 2
        assert data_of(await client.get("/api/v1/routing/rules/vip")) == created

        change = {
            "priority": 0,
            "enabled": False,
            "conditions": [{"field": "query.vip", "op": "exists"}],
        }
        changed = data_of(await client.put("/api/v1/routing/rules/vip", json=change))["rule"]
        assert (changed["priority"], changed["enabled"]) == (0, False)
        assert changed["conditions"] == [
            {"field": "query.vip", "operator": "exists", "value": None, "case_sensitive": False}
        ]
        off = data_of(await client.get("/api/v1/routing/rules?enabled=false"))["rules"]
        assert [rule["name"] for rule in off] == ["vip"]
        on = data_of(await client.get("/api/v1/routing/rules?enabled=true&limit=1"))
        assert [rule["name"] for rule in on["rules"]] == ["internal"]
        assert on["page"] == {"limit": 1, "offset": 0, "has_next": False}

        route = load_config(config).routes[1]
        assert (route.name, route.priority, route.enabled) == ("vip", 0, False)
        assert route.strategy == "least_connections"

        deleted = data_of(await client.delete("/api/v1/routing/rules/vip"))
        assert deleted == {**deleted, "rule_id": "vip", "deleted": True}
        error_of(await client.get("/api/v1/routing/rules/vip"), 404, "RULE_NOT_FOUND")
        assert [route.name for route in stack.supervisor.config.routes] == ["internal"]
    text = config.read_text()
    assert "# Internal callers go to alpha first." in text
    assert 'name = "vip"' not in text


async def test_a_rule_can_be_renamed(tmp_path: Path) -> None:
    config = with_routes(tmp_path)
    async with running_stack(config, store=False) as stack, stack.client() as client:
        renamed = await client.put("/api/v1/routing/rules/internal", json={"name": "office"})
        assert data_of(renamed)["rule"]["rule_id"] == "office"
        error_of(await client.get("/api/v1/routing/rules/internal"), 404, "RULE_NOT_FOUND")
    assert [route.name for route in load_config(config).routes] == ["office"]


async def test_bad_rule_bodies_are_400_and_unknown_rules_404(tmp_path: Path) -> None:
    config = with_routes(tmp_path)
    before = config.read_bytes()
    async with running_stack(config, store=False) as stack, stack.client() as client:
        post = client.post
        for body, message in (
            ({"priority": 3}, "'name' is required"),
            ({**VIP, "weight": 3}, "Unknown routing rule field 'weight'"),
            ({**VIP, "priority": "high"}, "'priority' must be an integer"),
            ({**VIP, "conditions": [{"operator": "equals"}]}, "'conditions[0].field'"),
            ({**VIP, "conditions": [{"field": "path", "oops": 1}]}, "conditions[0].oops"),
        ):
            response = await post("/api/v1/routing/rules", json=body)
            assert message in error_of(response, 400, "INVALID_REQUEST")["message"], body
        for method in (client.get, client.delete):
            error_of(await method("/api/v1/routing/rules/nope"), 404, "RULE_NOT_FOUND")
        response = await client.put("/api/v1/routing/rules/nope", json={"priority": 1})
        error_of(response, 404, "RULE_NOT_FOUND")
        # issue 13: a duplicate name is a conflict (409), as documented, not a bad body.
        duplicate = await post("/api/v1/routing/rules", json={**VIP, "name": "internal"})
        assert "already exists" in error_of(duplicate, 409, "RULE_ALREADY_EXISTS")["message"]
        # issue 13: an empty merge patch is valid by the schema; it changes nothing.
        response = await client.put("/api/v1/routing/rules/internal", json={})
        assert data_of(response)["rule"]["rule_id"] == "internal"
    assert config.read_bytes() == before


async def test_a_rule_the_config_rejects_is_a_422_and_the_file_unchanged(tmp_path: Path) -> None:
    config = with_routes(tmp_path)
    before = config.read_bytes()
    bad = {**VIP, "target_strategy": "fastest", "target_agents": ["ghost"]}
    async with running_stack(config, store=False) as stack, stack.client() as client:
        error = error_of(
            await client.post("/api/v1/routing/rules", json=bad), 422, "CONFIG_INVALID"
        )
        change = {"target_strategy": "fastest"}
        put = await client.put("/api/v1/routing/rules/internal", json=change)
        error_of(put, 422, "CONFIG_INVALID")
        assert [route.name for route in stack.supervisor.config.routes] == ["internal"]
    errors = error["details"]["errors"]
    assert any("routes[1].strategy" in line for line in errors)
    assert any("ghost" in line for line in errors)
    assert config.read_bytes() == before
