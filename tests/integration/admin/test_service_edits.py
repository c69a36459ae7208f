"""PUT config, scale and DELETE of services: persisted in agentvisor.toml, applied, audited."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import trio

from agentvisor.config.load import load_config
from tests.integration.admin.harness import CHILDREN, all_running, sleeper, wait_until, write_config
from tests.integration.admin.stack import data_of, error_of, running_stack

DEADLINE = 20
SLEEPER = [sys.executable, str(CHILDREN / "sleeper.py")]
KEEP = "# beta is on call for the night shift\n"


def two_services(tmp_path: Path) -> Path:
    agents = sleeper("alpha") + KEEP + sleeper("beta")
    return write_config(tmp_path / "agentvisor.toml", agents)


async def test_a_live_setting_applies_without_a_restart(tmp_path: Path) -> None:
    config = two_services(tmp_path)
    with trio.fail_after(DEADLINE):
        async with running_stack(config, store=False) as stack, stack.client() as client:
            await all_running(stack.admin)
            pid = stack.supervisor.service("beta").instances[0].pid
            body = {"description": "nightly", "max_sessions": 7, "auto_restart": False}
            data = data_of(await client.put("/api/v1/services/beta/config", json=body))
            assert (data["applied"], data["restarted"], data["changed"]) == (
                "updated live",
                False,
                True,
            )
            assert data["service"]["description"] == "nightly"
            assert stack.supervisor.service("beta").instances[0].pid == pid
    agent = load_config(config).agents["beta"]
    assert (agent.description, agent.max_sessions, agent.autorestart.value) == (
        "nightly",
        7,
        "never",
    )
    assert KEEP in config.read_text()


async def test_a_process_setting_restarts_and_secrets_are_masked(tmp_path: Path) -> None:
    config = two_services(tmp_path)
    with trio.fail_after(DEADLINE):
        async with running_stack(config, store=False) as stack, stack.client() as client:
            await all_running(stack.admin)
            pid = stack.supervisor.service("beta").instances[0].pid
            body = {"environment": {"API_KEY": "sk-very-secret", "MODE": "fast"}}
            data = data_of(await client.put("/api/v1/services/beta/config", json=body))
            assert (data["applied"], data["restarted"]) == ("restarted", True)
            assert data["service"]["config"]["environment"] == {"API_KEY": "***", "MODE": "fast"}
            assert "sk-very-secret" not in str(data)
            new_pid = stack.supervisor.service("beta").instances[0].pid
            assert new_pid not in (None, pid)
            # A merge patch: None puts a setting back to its default.
            reset = await client.put("/api/v1/services/beta/config", json={"environment": None})
            assert data_of(reset)["service"]["config"]["environment"] == {}
    assert load_config(config).agents["beta"].environment == {}


async def test_config_updates_that_cannot_be_applied_are_refused(tmp_path: Path) -> None:
    config = two_services(tmp_path)
    before = config.read_bytes()
    async with running_stack(config, store=False) as stack, stack.client() as client:
        put = client.put
        error_of(
            await put("/api/v1/services/nope/config", json={"replicas": 2}),
            404,
            "SERVICE_NOT_FOUND",
        )
        error = error_of(
            await put("/api/v1/services/beta/config", json={"replicas": "two"}),
            400,
            "INVALID_REQUEST",
        )
        assert "'replicas' must be an integer" in error["message"]
        error = error_of(
            await put("/api/v1/services/beta/config", json={"name": "b"}), 400, "INVALID_REQUEST"
        )
        assert "cannot be changed" in error["message"]
        # issue 13: an empty merge patch is valid by the schema: it changes nothing.
        assert data_of(await put("/api/v1/services/beta/config", json={}))["changed"] is False
        # A value out of its range is the schema's 400; only the whole file says the rest.
        error = error_of(
            await put("/api/v1/services/beta/config", json={"autorestart": "maybe"}),
            400,
            "INVALID_REQUEST",
        )
        assert error["details"]["field"] == "autorestart"
        invalid = await put("/api/v1/services/beta/config", json={"depends_on": ["ghost"]})
        errors = error_of(invalid, 422, "CONFIG_INVALID")["details"]["errors"]
        assert any("agents.beta.depends_on" in line for line in errors)
    assert config.read_bytes() == before


async def test_scale_is_persisted_and_applied_both_ways(tmp_path: Path) -> None:
    config = two_services(tmp_path)
    with trio.fail_after(DEADLINE):
        async with running_stack(config, store=False) as stack, stack.client() as client:
            await all_running(stack.admin)
            data = data_of(await client.post("/api/v1/services/beta/scale", json={"replicas": 3}))
            assert data["replicas"] == {"previous": 1, "desired": 3}
            assert data["reload"]["scaled"] == ["beta"]
            supervisor = stack.supervisor
            await wait_until(supervisor, lambda: supervisor.service("beta").running == 3)
            assert load_config(config).agents["beta"].replicas == 3
            # Down again: the replicas beyond the new count are retired.
            down = await client.post("/api/v1/services/beta/scale", json={"replicas": 1})
            assert data_of(down)["replicas"] == {"previous": 3, "desired": 1}
            await wait_until(supervisor, lambda: len(supervisor.service("beta").instances) == 1)
            assert supervisor.service("beta").state == "running"
    assert load_config(config).agents["beta"].replicas == 1
    assert KEEP in config.read_text()


async def test_scale_refuses_bad_bodies_and_unknown_services(tmp_path: Path) -> None:
    config = two_services(tmp_path)
    before = config.read_bytes()
    async with running_stack(config, store=False) as stack, stack.client() as client:
        for body, message in (
            ({}, "'replicas' is required"),
            ({"replicas": -1}, "from 0 to 1000"),
            ({"replicas": 1.5}, "must be an integer"),
            ({"replicas": 2, "now": True}, "Unknown scale field 'now'"),
        ):
            response = await client.post("/api/v1/services/beta/scale", json=body)
            assert message in error_of(response, 400, "INVALID_REQUEST")["message"]
        response = await client.post("/api/v1/services/ghost/scale", json={"replicas": 2})
        error_of(response, 404, "SERVICE_NOT_FOUND")
    assert config.read_bytes() == before


async def test_delete_by_stable_id_stops_it_and_removes_it_from_the_file(tmp_path: Path) -> None:
    config = two_services(tmp_path)
    with trio.fail_after(DEADLINE):
        async with running_stack(config) as stack, stack.client() as client:
            await all_running(stack.admin)
            pid = stack.supervisor.service("beta").instances[0].pid
            stable_id = data_of(await client.get("/api/v1/services/beta"))["service_id"]
            assert uuid.UUID(stable_id)
            data = data_of(await client.delete(f"/api/v1/services/{stable_id}"))
            assert (data["name"], data["removed"], data["stopped"]) == ("beta", True, True)
            assert data["service_id"] == stable_id
            error_of(await client.get("/api/v1/services/beta"), 404, "SERVICE_NOT_FOUND")
            error_of(await client.delete("/api/v1/services/beta"), 404, "SERVICE_NOT_FOUND")
            assert [view.name for view in stack.supervisor.services()] == ["alpha"]
    assert pid is not None
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    text = config.read_text()
    assert "[agents.beta]" not in text
    assert set(load_config(config).agents) == {"alpha"}


async def test_every_service_endpoint_takes_the_stable_id_or_the_name(tmp_path: Path) -> None:
    config = two_services(tmp_path)
    with trio.fail_after(DEADLINE):
        async with running_stack(config) as stack, stack.client() as client:
            await all_running(stack.admin)
            listed = data_of(await client.get("/api/v1/services"))["services"]
            ids = {service["name"]: service["service_id"] for service in listed}
            assert all(uuid.UUID(value) for value in ids.values())
            for ref in (ids["beta"], "beta"):
                for path in ("", "/instances", "/stats", "/health"):
                    data = data_of(await client.get(f"/api/v1/services/{ref}{path}"))
                    assert data["service_id"] == ids["beta"], path
                logs = data_of(await client.get(f"/api/v1/logs/services/{ref}"))
                assert logs["name"] == "beta"
                stopped = data_of(await client.post(f"/api/v1/services/{ref}/stop"))
                assert stopped["service"]["status"] == "stopped"
                started = data_of(await client.post(f"/api/v1/services/{ref}/start"))
                assert started["service"]["status"] == "running"
            unknown = str(uuid.uuid4())
            error_of(await client.get(f"/api/v1/services/{unknown}"), 404, "SERVICE_NOT_FOUND")


async def test_operator_actions_are_audited_with_their_source(tmp_path: Path) -> None:
    config = two_services(tmp_path)
    with trio.fail_after(DEADLINE):
        async with running_stack(config) as stack:
            await all_running(stack.admin)
            async with stack.client("cli") as cli, stack.client() as api:
                data_of(await cli.post("/api/v1/services/beta/stop"))
                data_of(await api.post("/api/v1/services/beta/start"))
                body = {"name": "gamma", "command": SLEEPER, "auto_start": False}
                data_of(await cli.post("/api/v1/services", json=body), 201)
                data_of(await api.post("/api/v1/services/gamma/scale", json={"replicas": 2}))
                bad = await api.post(
                    "/api/v1/services", json={**body, "name": "delta", "depends_on": ["ghost"]}
                )
                error_of(bad, 422, "CONFIG_INVALID")
                await stack.settle()
                events = data_of(await api.get("/api/v1/events?kind=operator.action&limit=50"))
    actions = [
        (event["action"], event["service"], event["source"], event["outcome"])
        for event in reversed(events["events"])
        if event["action"] != "reload"
    ]
    assert actions == [
        ("stop", "beta", "cli", "ok"),
        ("start", "beta", "api", "ok"),
        ("register", "gamma", "cli", "ok"),
        ("scale", "gamma", "api", "ok"),
        ("register", "delta", "api", "rejected"),
    ]


async def test_a_slow_rolling_restart_does_not_hold_up_other_edits(tmp_path: Path) -> None:
    config = two_services(tmp_path)
    with trio.fail_after(DEADLINE):
        async with running_stack(config, store=False) as stack, stack.client() as client:
            await all_running(stack.admin)
            # The new process must stay up 60 s to count as started: the roll waits for it.
            slow = {"startsecs": 60, "environment": {"GENERATION": "2"}}
            response = await client.put("/api/v1/services/beta/config?timeout=0.2", json=slow)
            data = data_of(response, 202)
            assert (data["settled"], data["applied"]) == (False, "restarted")
            body = {"name": "gamma", "command": SLEEPER, "auto_start": False}
            with trio.fail_after(5):
                data_of(await client.post("/api/v1/services", json=body), 201)
            assert stack.supervisor.service("beta").state == "starting"
    assert set(load_config(config).agents) == {"alpha", "beta", "gamma"}
