"""Issue 10: the autoscaler's policy state shows in the API and its signals in ``/metrics``."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.integration.admin.harness import TOKEN, running_admin, sleeper, wait_until, write_config
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
