"""Issue 10: the autoscaler's policy state shows in the API and its signals in ``/metrics``."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.integration.admin.harness import (
    TOKEN,
    all_running,
    running_admin,
    sleeper,
    wait_until,
    write_config,
)
from tests.integration.admin.test_client_cli import run_ctl
from tests.integration.admin.test_metrics import scrape, value

AUTOSCALE = (
    "autoscale.min = 1\nautoscale.max = 3\nautoscale.target_sessions = 2\n"
    "autoscale.decision_interval = 0.05\nautoscale.stabilization = 0\n"
)


async def test_an_autoscaled_agent_shows_its_policy_and_last_decision(tmp_path: Path) -> None:
    agents = sleeper("scaled", extra=AUTOSCALE) + sleeper("fixed")
    config = write_config(tmp_path / "agentvisor.toml", agents)
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        autoscaler = admin.supervisor.autoscaler
        with trio.fail_after(20):
            await wait_until(admin.supervisor, lambda: "scaled" in autoscaler.decisions())
        detail = (await client.get("/api/v1/services/scaled")).json()["data"]
        policy = detail["autoscale"]
        assert (policy["min"], policy["max"], policy["target_sessions"]) == (1, 3, 2)
        assert policy["desired"] == detail["replicas"]["desired"] == 1
        decision = policy["last_decision"]
        assert decision["signals"]["sessions"] == 0  # no client: the minimum holds
        assert decision["desired"] == 1
        assert decision["reason"]
        assert policy["last_change"] is None  # nothing to change from min
        assert (await client.get("/api/v1/services/fixed")).json()["data"]["autoscale"] is None

        found = await scrape(client)
        assert (
            value(found, "agentvisor_autoscaler_signal", service="scaled", signal="sessions") == 0
        )
        wanted = value(
            found, "agentvisor_autoscaler_wanted_replicas", service="scaled", signal="sessions"
        )
        assert wanted == 0  # ceil(0 / 2); the bounds lift it to min
        assert not [
            s for s in found["agentvisor_autoscaler_signal"] if s.labels["service"] == "fixed"
        ]


async def test_an_operator_scale_of_an_autoscaled_agent_is_a_conflict_that_names_the_bounds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agents = sleeper("scaled", extra=AUTOSCALE) + sleeper("fixed")
    config = write_config(tmp_path / "agentvisor.toml", agents)
    before = config.read_text()
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        with trio.fail_after(20):
            await all_running(admin)
            decisions = admin.supervisor.autoscaler.decisions
            await wait_until(admin.supervisor, lambda: "scaled" in decisions())
        response = await client.post("/api/v1/services/scaled/scale", json={"replicas": 3})
        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "SERVICE_AUTOSCALED"
        assert error["message"] == (
            "Service 'scaled' is autoscaled (1 to 3 replicas, 1 now); change autoscale.min / "
            "autoscale.max with PUT /services/{id}/config instead"
        )
        assert error["details"] == {"service": "scaled", "min": 1, "max": 3}
        assert config.read_text() == before

        listed = (await client.get("/api/v1/services")).json()["data"]["services"]
        replicas = {s["name"]: s["replicas"] for s in listed}
        assert replicas["scaled"] == {"desired": 1, "running": 1, "autoscale": {"min": 1, "max": 3}}
        assert replicas["fixed"] == {"desired": 1, "running": 1, "autoscale": None}

        assert await run_ctl("-s", admin.socket, "scale", "scaled", "3") == 1
        assert "is autoscaled (1 to 3 replicas" in capsys.readouterr().err
        assert await run_ctl("-s", admin.socket, "status") == 0
        table = capsys.readouterr().out
        assert "1/1 (1-3)" in next(line for line in table.splitlines() if "scaled" in line)
        assert await run_ctl("-s", admin.socket, "show", "scaled") == 0
        shown = " ".join(capsys.readouterr().out.split())
        assert "autoscale 1..3 replicas, desired 1, running 1" in shown
        assert "now: hold, sessions ask for 0 at target_sessions 2, held up by min 1" in shown
