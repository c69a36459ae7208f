"""POST /api/v1/services: registration edits agentvisor.toml (comments kept) and runs the agent."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import trio

from agentvisor.config.load import load_config
from tests.integration.admin.harness import CHILDREN, all_running, sleeper, wait_until, write_config
from tests.integration.admin.stack import data_of, error_of, running_stack

DEADLINE = 20
SLEEPER = [sys.executable, str(CHILDREN / "sleeper.py")]
HEADER = "# The operator's notes: keep these!\n# port plan: 40000-49999\n"


def commented_config(tmp_path: Path) -> Path:
    path = write_config(tmp_path / "agentvisor.toml", "# agents below\n" + sleeper("alpha"))
    path.write_text(HEADER + path.read_text())
    return path


def seed_body(name: str, **extra: Any) -> dict[str, Any]:
    """The seed's register body, with a command worker (starts in milliseconds)."""
    return {
        "name": name,
        "description": "Weather information agent",
        "command": SLEEPER,
        "tags": ["weather", "information"],
        "config": {
            "max_sessions": 100,
            "session_timeout": 1800,
            "auto_restart": True,
            "health_check_enabled": False,
            "startsecs": 0,
        },
        **extra,
    }


async def test_register_writes_the_file_keeping_its_text_and_runs_the_agent(
    tmp_path: Path,
) -> None:
    config = commented_config(tmp_path)
    before = config.read_text()
    with trio.fail_after(DEADLINE):
        async with running_stack(config) as stack, stack.client() as client:
            data = data_of(await client.post("/api/v1/services", json=seed_body("weather")), 201)
            assert uuid.UUID(data["service_id"])
            assert data["name"] == "weather"
            assert data["message"] == "Service registered successfully"
            assert data["endpoint"].startswith("ws://127.0.0.1:")
            assert data["reload"]["added"] == ["weather"]
            assert data["service"]["config"]["max_sessions"] == 100
            await all_running(stack.admin)
            detail = data_of(await client.get(f"/api/v1/services/{data['service_id']}"))
            assert detail["name"] == "weather"
            assert detail["status"] == "running"
    after = config.read_text()
    assert after.startswith(before.rstrip("\n")), "the operator's text is kept byte for byte"
    assert "[agents.weather]" in after
    agent = load_config(config).agents["weather"]
    assert (agent.description, agent.tags, agent.autorestart.value) == (
        "Weather information agent",
        ("weather", "information"),
        "on-failure",
    )
    assert agent.health.enabled is False


async def test_unknown_fields_are_a_400_naming_each_of_them(tmp_path: Path) -> None:
    config = commented_config(tmp_path)
    before = config.read_bytes()
    async with running_stack(config, store=False) as stack, stack.client() as client:
        body = seed_body("x", colour="blue")
        body["config"]["max_sesions"] = 5
        error = error_of(await client.post("/api/v1/services", json=body), 400, "INVALID_REQUEST")
    assert "'colour'" in error["message"]
    assert "'config.max_sesions'" in error["message"]
    assert "max_sessions" in error["message"], "a close key is suggested"
    assert error["details"]["fields"] == ["colour", "config.max_sesions"]
    assert config.read_bytes() == before


async def test_malformed_bodies_are_400s_that_say_what_is_wrong(tmp_path: Path) -> None:
    config = commented_config(tmp_path)
    before = config.read_bytes()
    cases: list[tuple[Any, str]] = [
        ([1, 2], "must be a JSON object"),
        ({"command": SLEEPER}, "'name' is required"),
        ({"name": "Bad Name", "command": SLEEPER}, "lowercase"),
        ({"name": "x", "command": SLEEPER, "port": "8080"}, "'port' must be an integer"),
        ({"name": "x", "command": SLEEPER, "tags": "a,b"}, "'tags' must be an array"),
        ({"name": "x", "command": SLEEPER, "config": []}, "'config' must be an object"),
        ({"name": "x", "agent_factory_path": "nope.py"}, "agent file 'nope.py' not found"),
    ]
    async with running_stack(config, store=False) as stack, stack.client() as client:
        for body, message in cases:
            response = await client.post("/api/v1/services", json=body)
            assert message in error_of(response, 400, "INVALID_REQUEST")["message"], body
        raw = await client.post(
            "/api/v1/services", content=b"{oops", headers={"Content-Type": "application/json"}
        )
        assert "not valid JSON" in error_of(raw, 400, "INVALID_REQUEST")["message"]
        # Valid by the schema, but not as a table of the file: the validator's 422.
        cases = [
            ({"name": "x"}, "needs exactly one of `agent` or `command`"),
            ({"name": "x", "command": SLEEPER, "agent": "agent.py"}, "needs exactly one of"),
            ({"name": "x", "agent": "a.py", "agent_factory_path": "b.py"}, "agent: set twice"),
        ]
        (tmp_path / "agent.py").write_text("")
        for body, message in cases:
            response = await client.post("/api/v1/services", json=body)
            errors = error_of(response, 422, "CONFIG_INVALID")["details"]["errors"]
            assert any(message in e for e in errors), (body, errors)
    assert config.read_bytes() == before


async def test_a_taken_name_is_a_409(tmp_path: Path) -> None:
    config = commented_config(tmp_path)
    async with running_stack(config, store=False) as stack, stack.client() as client:
        response = await client.post("/api/v1/services", json=seed_body("alpha"))
        error = error_of(response, 409, "SERVICE_ALREADY_EXISTS")
    assert "alpha" in error["message"]


async def test_an_invalid_result_is_a_422_with_every_error_and_the_file_unchanged(
    tmp_path: Path,
) -> None:
    config = commented_config(tmp_path)
    before = config.read_bytes()
    body = seed_body("broken", depends_on=["ghost"], autoscale={"min": 3, "max": 2})
    async with running_stack(config, store=False) as stack, stack.client() as client:
        error = error_of(await client.post("/api/v1/services", json=body), 422, "CONFIG_INVALID")
        assert [view.name for view in stack.supervisor.services()] == ["alpha"]
    errors = error["details"]["errors"]
    assert len(errors) == 2
    assert any("agents.broken.depends_on" in line for line in errors)
    assert any("agents.broken.autoscale.min" in line for line in errors)
    assert config.read_bytes() == before


async def test_twenty_concurrent_registrations_all_land(tmp_path: Path) -> None:
    config = commented_config(tmp_path)
    names = [f"svc-{index:02d}" for index in range(20)]
    statuses: dict[str, int] = {}
    with trio.fail_after(DEADLINE):
        async with running_stack(config, store=False) as stack, stack.client() as client:

            async def register(name: str) -> None:
                body = {"name": name, "command": SLEEPER, "auto_start": False}
                statuses[name] = (await client.post("/api/v1/services", json=body)).status_code

            async with trio.open_nursery() as nursery:
                for name in names:
                    nursery.start_soon(register, name)
            listed = data_of(await client.get("/api/v1/services?limit=100"))
            running_names = {view.name for view in stack.supervisor.services()}
    assert statuses == dict.fromkeys(names, 201)
    assert {service["name"] for service in listed["services"]} == {"alpha", *names}
    assert running_names == {"alpha", *names}
    assert set(load_config(config).agents) == {"alpha", *names}
    assert config.read_text().startswith(HEADER)


async def test_a_registered_agent_file_is_served_by_the_worker_runtime(tmp_path: Path) -> None:
    config = commented_config(tmp_path)
    agent = tmp_path / "echo.py"
    agent.write_text((Path(__file__).parents[3] / "examples" / "echo_agent.py").read_text())
    with trio.fail_after(DEADLINE):
        async with running_stack(config, store=False) as stack, stack.client() as client:
            body = {"name": "echo", "agent_factory_path": "echo.py", "tags": ["demo"]}
            data = data_of(await client.post("/api/v1/services", json=body), 201)
            assert data["service"]["kind"] == "agent"
            supervisor = stack.supervisor
            await wait_until(supervisor, lambda: supervisor.service("echo").state == "running")
    assert 'agent = "echo.py"' in config.read_text()
    assert json.dumps(["demo"]) in config.read_text().replace("'", '"')


async def test_agent_files_that_would_not_load_are_refused_before_the_file_changes(
    tmp_path: Path,
) -> None:
    # issue 11: registering (or pointing an agent at) a broken file used to land, then go fatal.
    config = commented_config(tmp_path)
    (tmp_path / "typo.py").write_text("def create_agent(:\n    pass\n")
    (tmp_path / "nothing.py").write_text("x = 1\n")
    (tmp_path / "echo.py").write_text(
        (Path(__file__).parents[3] / "examples" / "echo_agent.py").read_text()
    )
    before = config.read_bytes()
    with trio.fail_after(DEADLINE):
        async with running_stack(config, store=False) as stack, stack.client() as client:
            broken = {"name": "typo", "agent_factory_path": "typo.py"}
            error = error_of(
                await client.post("/api/v1/services", json=broken), 422, "CONFIG_INVALID"
            )
            [problem] = error["details"]["errors"]
            assert problem.startswith("agents.typo.agent: typo.py:1: ")
            assert config.read_bytes() == before
            good = {"name": "echo", "agent_factory_path": "echo.py"}
            data_of(await client.post("/api/v1/services", json=good), 201)
            registered = config.read_bytes()
            edit = await client.put("/api/v1/services/echo/config", json={"agent": "nothing.py"})
            error = error_of(edit, 422, "CONFIG_INVALID")
            assert "create_agent" in error["message"]
            assert config.read_bytes() == registered
            assert sorted(view.name for view in stack.supervisor.services()) == ["alpha", "echo"]
