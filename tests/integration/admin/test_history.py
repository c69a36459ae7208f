"""Health, stats, events, logs search and time series: live state and the state store's history."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import trio

from agentvisor.supervise.logs import LogLine
from tests.integration.admin.harness import CHILDREN, all_running, sleeper, write_config
from tests.integration.admin.stack import data_of, error_of, running_stack

DEADLINE = 20


def ws_worker(name: str, *args: str, checked: bool = True) -> str:
    """ws_server.py; without ``checked`` the supervisor does not gate its start on health."""
    command = json.dumps(
        [sys.executable, str(CHILDREN / "ws_server.py"), "--port", "{port}", *args]
    )
    enabled = "true" if checked else "false"
    return (
        f"[agents.{name}]\ncommand = {command}\nstartsecs = 0\n"
        f'health = {{ mode = "http", interval = 30, enabled = {enabled} }}\n'
    )


async def test_a_check_now_runs_on_every_instance_and_lands_in_the_history(tmp_path: Path) -> None:
    agents = ws_worker("good") + ws_worker("bad", "--fail-health", checked=False) + sleeper("idle")
    config = write_config(tmp_path / "agentvisor.toml", agents)
    with trio.fail_after(DEADLINE):
        async with running_stack(config) as stack, stack.client() as client:
            supervisor = stack.supervisor
            await all_running(stack.admin)
            good = data_of(await client.post("/api/v1/health/services/good/check"))
            assert (good["healthy"], good["status"]) == (True, "healthy")
            [result] = good["results"]
            assert (result["instance"], result["ok"], result["skipped"]) == (0, True, False)
            assert result["response_time_ms"] >= 0
            # "bad" runs without health checks, so running says nothing of listening yet.
            while True:
                bad = data_of(await client.post("/api/v1/health/services/bad/check"))
                if bad["results"][0]["message"] != "connection refused":
                    break
                await trio.sleep(0.05)
            assert (bad["healthy"], bad["status"]) == (False, "unhealthy")
            assert "503" in bad["results"][0]["message"]
            data_of(await client.post("/api/v1/services/idle/stop"))
            idle = data_of(await client.post("/api/v1/health/services/idle/check"))
            assert idle["status"] == "unknown"
            assert idle["results"][0]["skipped"] is True
            error_of(await client.post("/api/v1/health/services/x/check"), 404, "SERVICE_NOT_FOUND")

            now = data_of(await client.get("/api/v1/health/services/good"))
            assert now["instances"][0]["last_check"] is not None
            assert now == data_of(await client.get("/api/v1/services/good/health"))

            await stack.settle()
            history = data_of(await client.get("/api/v1/health/services/bad/history?limit=10"))
            manual = [c for c in history["checks"] if c["message"].startswith("manual check")]
            assert manual
            assert manual[0]["ok"] is False
            assert history["page"]["limit"] == 10
            assert supervisor.service("good").state == "running"


async def test_the_audit_log_pages_and_filters(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha") + sleeper("beta"))
    with trio.fail_after(DEADLINE):
        async with running_stack(config) as stack, stack.client() as client:
            await all_running(stack.admin)
            started = time.time()
            for _ in range(3):
                data_of(await client.post("/api/v1/services/beta/restart"))
            await stack.settle()
            restarts = data_of(
                await client.get("/api/v1/events?kind=operator.action&service_id=beta&limit=2")
            )
            assert [e["action"] for e in restarts["events"]] == ["restart", "restart"]
            assert restarts["page"] == {"limit": 2, "offset": 0, "has_next": True}
            last = data_of(
                await client.get(
                    "/api/v1/events?kind=operator.action&service_id=beta&limit=2&offset=2"
                )
            )
            assert len(last["events"]) == 1
            assert last["page"]["has_next"] is False
            stable_id = data_of(await client.get("/api/v1/services/alpha"))["service_id"]
            by_id = data_of(await client.get(f"/api/v1/events?service_id={stable_id}"))
            assert {e["service"] for e in by_id["events"]} == {"alpha"}
            recent = data_of(await client.get(f"/api/v1/events?since={started}&limit=1000"))
            assert all(e["timestamp"] >= started for e in recent["events"])
            assert any(e["kind"] == "instance.state" for e in recent["events"])
            for bad in ("since=yesterday", "limit=0", "limit=1001", "offset=-1"):
                error_of(await client.get(f"/api/v1/events?{bad}"), 400, "INVALID_REQUEST")
            error_of(await client.get("/api/v1/events?service_id=nope"), 404, "SERVICE_NOT_FOUND")


async def test_logs_search_finds_stored_lines(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha") + sleeper("beta"))
    async with running_stack(config) as stack, stack.client() as client:
        assert stack.store is not None
        at = time.time()
        stack.store.record_log_lines(
            [
                LogLine(1, at, "alpha", 0, "stderr", "ERROR upstream timeout talking to the LLM"),
                LogLine(2, at, "alpha", 0, "stdout", "all good"),
                LogLine(1, at, "beta", 0, "stdout", "error: upstream refused"),
            ]
        )
        await stack.settle()
        found = data_of(await client.get("/api/v1/logs/search?query=upstream"))
        assert [(hit["service"], hit["text"]) for hit in found["lines"]] == [
            ("beta", "error: upstream refused"),
            ("alpha", "ERROR upstream timeout talking to the LLM"),
        ]
        assert found["lines"][1]["highlights"] == [[6, 14]]
        only = data_of(await client.get("/api/v1/logs/search?query=upstream&service_id=alpha"))
        assert [hit["service"] for hit in only["lines"]] == ["alpha"]
        paged = data_of(await client.get("/api/v1/logs/search?query=upstream&limit=1"))
        assert paged["page"] == {"limit": 1, "offset": 0, "has_next": True}
        error_of(await client.get("/api/v1/logs/search"), 400, "INVALID_REQUEST")
        missing = await client.get("/api/v1/logs/search?query=x&service_id=ghost")
        error_of(missing, 404, "SERVICE_NOT_FOUND")


async def test_timeseries_buckets_the_stored_samples(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_stack(config) as stack, stack.client() as client:
        assert stack.store is not None
        stack.store.record_metric("alpha", 0, "connections", 4)
        await stack.settle()
        series = data_of(
            await client.get(
                "/api/v1/stats/timeseries?metric=connections&period=1h&interval=5m&service_id=alpha"
            )
        )
        assert (series["metric"], series["period"], series["interval"]) == (
            "connections",
            "1h",
            "5m",
        )
        assert len(series["data"]) == 12
        assert series["data"][-1]["value"] == 4
        assert series["data"][0]["value"] is None
        default = data_of(await client.get("/api/v1/stats/timeseries?metric=cpu"))
        assert (default["period_seconds"], default["interval_seconds"]) == (3600, 60)
        for bad in ("metric=speed", "period=soon", "interval=0s", "period=7d&interval=1s"):
            error_of(await client.get(f"/api/v1/stats/timeseries?{bad}"), 400, "INVALID_REQUEST")


async def test_overview_and_service_stats_have_the_seed_shape(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha") + sleeper("beta"))
    with trio.fail_after(DEADLINE):
        async with running_stack(config) as stack, stack.client() as client:
            await all_running(stack.admin)
            data_of(await client.post("/api/v1/services/beta/stop"))
            await stack.supervisor.sample_now()
            overview = data_of(await client.get("/api/v1/stats/overview"))
            same = data_of(await client.get("/api/v1/stats"))
            assert same["services"] == overview["services"]
            stats = data_of(await client.get("/api/v1/services/alpha/stats"))
    services = overview["services"]
    assert (services["total"], services["running"], services["stopped"], services["error"]) == (
        2,
        1,
        1,
        0,
    )
    assert set(overview) >= {"connections", "sessions", "performance", "resources"}
    assert overview["connections"] == {"total": 0, "active": 0, "peak_today": 0}
    resources = overview["resources"]
    assert resources["workers"]["memory_mb"] > 0
    assert resources["agentvisor"]["memory_mb"] > 0
    assert resources["total_memory_mb"] >= resources["workers"]["memory_mb"]
    seed_keys = {
        "total_connections",
        "active_connections",
        "peak_connections",
        "total_sessions",
        "active_sessions",
        "completed_sessions",
        "avg_session_duration",
        "memory_usage_mb",
        "cpu_usage_percent",
        "error_count",
        "error_rate",
    }
    assert set(stats["stats"]) >= seed_keys
    assert stats["stats"]["memory_usage_mb"] > 0


async def test_history_endpoints_need_the_store_and_say_so(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_stack(config, store=False) as stack, stack.client() as client:
        for path in (
            "/api/v1/events",
            "/api/v1/logs/search?query=x",
            "/api/v1/health/services/alpha/history",
            "/api/v1/stats/timeseries?metric=cpu",
        ):
            error = error_of(await client.get(path), 503, "STORE_UNAVAILABLE")
            assert "state store" in error["message"]
        overview = data_of(await client.get("/api/v1/stats/overview"))
        assert overview["services"]["total"] == 1
        assert data_of(await client.get("/api/v1/services/alpha"))["service_id"] == "alpha"
