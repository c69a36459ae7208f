"""The admin API served by a real Hypercorn over a real Supervisor, hit with httpx."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from tests.integration.admin.harness import (
    TOKEN,
    all_running,
    running_admin,
    sleeper,
    wait_until,
    write_config,
)


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    error: dict[str, Any] = body["error"]
    return error


def data_of(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is True
    return body["data"]


# -- auth ---------------------------------------------------------------------------


async def test_tcp_needs_the_token_but_health_is_open(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin:
        async with admin.tcp() as anonymous:
            health = await anonymous.get("/health")
            assert health.status_code == 200
            assert health.json()["status"] == "ok"
            refused = await anonymous.get("/api/v1/info")
            error_of(refused, 401, "UNAUTHORIZED")
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
            # Unknown routes are not an oracle for anonymous callers either.
            error_of(await anonymous.get("/api/v1/nothing-here"), 401, "UNAUTHORIZED")
        async with admin.tcp("wrong-token") as wrong:
            error_of(await wrong.get("/api/v1/services"), 401, "UNAUTHORIZED")
        async with admin.tcp(TOKEN) as client:
            info = data_of(await client.get("/api/v1/info"))
    assert info["pid"] == os.getpid()
    assert info["config_path"] == str(config)
    assert info["binds"] == [admin.url, f"unix:{admin.socket}"]
    assert info["uptime_seconds"] >= 0
    assert info["auth"] is True
    assert TOKEN not in str(info)


async def test_unix_socket_is_trusted_and_private(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.unix() as client:
        assert stat.S_IMODE(os.stat(admin.socket).st_mode) == 0o600
        assert data_of(await client.get("/api/v1/info"))["version"]
    assert not os.path.exists(admin.socket), "the socket file is removed on shutdown"


async def test_without_a_token_loopback_tcp_is_open(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"), token=None)
    async with running_admin(config) as admin, admin.tcp() as client:
        assert data_of(await client.get("/api/v1/services"))["total"] == 1


# -- errors -------------------------------------------------------------------------


async def test_errors_use_the_envelope(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.unix() as client:
        missing = error_of(await client.get("/api/v1/services/nope"), 404, "SERVICE_NOT_FOUND")
        assert missing["message"] == "Service 'nope' not found"
        error_of(await client.post("/api/v1/services/nope/start"), 404, "SERVICE_NOT_FOUND")
        error_of(await client.get("/api/v1/logs/services/nope"), 404, "SERVICE_NOT_FOUND")
        error_of(await client.get("/api/v1/nothing-here"), 404, "NOT_FOUND")
        wrong_method = error_of(await client.get("/api/v1/reload"), 405, "METHOD_NOT_ALLOWED")
        assert "POST" in wrong_method["details"]["allowed"]


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/v1/services?limit=abc", "limit"),
        ("/api/v1/services?limit=1001", "limit"),
        ("/api/v1/services?limit=0", "limit"),
        ("/api/v1/services?offset=-1", "offset"),
        ("/api/v1/services?status=sleepy", "status"),
        ("/api/v1/logs/services/alpha?wait=forever", "wait"),
        ("/api/v1/logs/services/alpha?stream=stdin", "stream"),
        ("/api/v1/logs/services/alpha?instance=x", "instance"),
        ("/api/v1/logs/services/alpha?since=nan", "since"),
    ],
)
async def test_bad_query_parameters_are_400_naming_the_parameter(
    tmp_path: Path, path: str, parameter: str
) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.unix() as client:
        error = error_of(await client.get(path), 400, "INVALID_REQUEST")
    assert error["details"]["parameter"] == parameter
    assert f"'{parameter}'" in error["message"]


async def test_bad_operation_timeout_is_400(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.unix() as client:
        response = await client.post("/api/v1/services/alpha/restart?timeout=-1")
        assert error_of(response, 400, "INVALID_REQUEST")["details"]["parameter"] == "timeout"


async def test_reload_of_an_invalid_file_lists_every_error_and_changes_nothing(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.unix() as client:
        await all_running(admin)
        before = [i.pid for i in admin.supervisor.service("alpha").instances]
        config.write_text(
            config.read_text() + "\n[agents.bad]\ncommand = 'x'\nreplica = 2\n"
            "autorestart = 'sometimes'\n"
        )
        error = error_of(await client.post("/api/v1/reload"), 422, "CONFIG_INVALID")
        after = [i.pid for i in admin.supervisor.service("alpha").instances]
        names = [view.name for view in admin.supervisor.services()]
    errors = error["details"]["errors"]
    assert len(errors) >= 2
    assert all(line.startswith(f"{config}:") for line in errors)
    assert any('unknown key "replica"' in line for line in errors)
    assert any("agents.bad.autorestart" in line for line in errors)
    assert (after, names) == (before, ["alpha"])


async def test_reload_of_a_valid_edit_reports_what_changed(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha") + sleeper("beta"))
    async with running_admin(config) as admin, admin.unix() as client:
        write_config(config, sleeper("alpha") + sleeper("gamma"))
        result = data_of(await client.post("/api/v1/reload"))
    assert result["added"] == ["gamma"]
    assert result["removed"] == ["beta"]
    assert result["changed"] is True


# -- services -----------------------------------------------------------------------


async def test_services_are_listed_filtered_and_paged(tmp_path: Path) -> None:
    agents = (
        sleeper("alpha", tags=("weather",))
        + sleeper("beta", tags=("weather", "vip"))
        + sleeper("gamma", extra="autostart = false")
    )
    config = write_config(tmp_path / "agentvisor.toml", agents)
    async with running_admin(config) as admin, admin.unix() as client:
        supervisor = admin.supervisor
        await wait_until(
            supervisor,
            lambda: [v.state for v in supervisor.services()] == ["running", "running", "stopped"],
        )
        first = data_of(await client.get("/api/v1/services?limit=2"))
        second = data_of(await client.get("/api/v1/services?limit=2&offset=2"))
        weather = data_of(await client.get("/api/v1/services?tag=weather"))
        stopped = data_of(await client.get("/api/v1/services?status=stopped"))
    assert [s["name"] for s in first["services"]] == ["alpha", "beta"]
    assert first["total"] == 3
    assert first["page"] == {"limit": 2, "offset": 0, "has_next": True}
    assert [s["name"] for s in second["services"]] == ["gamma"]
    assert second["page"]["has_next"] is False
    assert [s["name"] for s in weather["services"]] == ["alpha", "beta"]
    assert [s["name"] for s in stopped["services"]] == ["gamma"]
    alpha = first["services"][0]
    assert alpha["service_id"] == "alpha"
    assert alpha["status"] == alpha["state"] == "running"
    assert alpha["replicas"] == {"desired": 1, "running": 1, "autoscale": None}
    assert alpha["instances"][0]["pid"] > 0
    assert alpha["endpoint"] == f"ws://127.0.0.1:{alpha['instances'][0]['port']}"


async def test_service_detail_shows_config_with_secrets_masked(tmp_path: Path) -> None:
    environment = (
        '[agents.alpha.environment]\nOPENAI_API_KEY = "sk-123"\nDB_PASSWORD = "hunter2"\n'
        'auth_token = "t"\nMY_SECRET_SAUCE = "x"\nLOG_LEVEL = "debug"\n'
    )
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha", replicas=2) + environment)
    async with running_admin(config) as admin, admin.unix() as client:
        await all_running(admin)
        detail = data_of(await client.get("/api/v1/services/alpha"))
        instances = data_of(await client.get("/api/v1/services/alpha/instances"))
    assert detail["config"]["environment"] == {
        "OPENAI_API_KEY": "***",
        "DB_PASSWORD": "***",
        "auth_token": "***",
        "MY_SECRET_SAUCE": "***",
        "LOG_LEVEL": "debug",
    }
    assert "sk-123" not in str(detail)
    assert "hunter2" not in str(detail)
    assert detail["config"]["replicas"] == 2
    assert detail["health"] == "disabled"
    assert set(detail["stats"]) >= {"uptime_seconds", "cpu_percent", "memory_bytes", "restarts"}
    assert instances["total"] == 2
    for replica, instance in enumerate(instances["instances"]):
        assert instance["replica"] == replica
        assert instance["state"] == "running"
        assert instance["pid"] > 0
        assert 40000 <= instance["port"] <= 49999
        assert instance["restarts"] == 0
        assert {"cpu_percent", "memory_bytes", "uptime_seconds", "health"} <= set(instance)


async def test_stop_start_and_restart_settle_before_answering(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.unix() as client:
        await all_running(admin)
        (old_pid,) = [i.pid for i in admin.supervisor.service("alpha").instances]
        stopped = data_of(await client.post("/api/v1/services/alpha/stop"))
        assert stopped["settled"] is True
        assert stopped["service"]["state"] == "stopped"
        assert stopped["service"]["instances"][0]["pid"] is None
        started = data_of(await client.post("/api/v1/services/alpha/start"))
        assert started["service"]["state"] == "running"
        new_pid = started["service"]["instances"][0]["pid"]
        assert new_pid not in (None, old_pid)
        restarted = data_of(await client.post("/api/v1/services/alpha/restart?force=true"))
        assert restarted["service"]["instances"][0]["pid"] not in (None, new_pid)


async def test_an_operation_still_running_after_its_timeout_is_accepted(tmp_path: Path) -> None:
    slow = '[agents.slow]\nstartsecs = 30\ncommand = ["sleep", "300"]\nhealth.enabled = false\n'
    config = write_config(tmp_path / "agentvisor.toml", slow)
    async with running_admin(config) as admin, admin.unix() as client:
        await client.post("/api/v1/services/slow/stop")
        response = await client.post("/api/v1/services/slow/start?timeout=0.2")
        accepted = data_of(response, 202)
    assert accepted["settled"] is False
    assert accepted["service"]["state"] == "starting"


# -- logs ---------------------------------------------------------------------------


async def test_logs_tail_and_long_poll_for_new_lines(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.unix() as client:
        book = admin.supervisor.logbook("alpha")
        await wait_until(admin.supervisor, lambda: book.last_seq >= 1)
        tail = data_of(await client.get("/api/v1/logs/services/alpha?limit=10"))
        assert [line["text"] for line in tail["lines"]] == ["ready"]
        assert tail["lines"][0]["stream"] == "stdout"
        assert tail["lines"][0]["instance"] == 0
        cursor = tail["next_since"]
        quiet = data_of(await client.get(f"/api/v1/logs/services/alpha?since={cursor}&wait=0.1"))
        assert (quiet["lines"], quiet["next_since"]) == ([], cursor)
        stderr_only = data_of(await client.get("/api/v1/logs/services/alpha?stream=stderr"))
        assert stderr_only["lines"] == []

        followed: list[Any] = []

        async def follow() -> None:
            url = f"/api/v1/logs/services/alpha?since={cursor}&wait=30"
            followed.append(data_of(await client.get(url, timeout=40)))

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(follow)
                await trio.testing.wait_all_tasks_blocked()
                await client.post("/api/v1/services/alpha/restart")  # prints "ready" again
    (answer,) = followed
    assert [line["text"] for line in answer["lines"]] == ["ready"]
    assert answer["next_since"] == answer["lines"][0]["seq"] > cursor
