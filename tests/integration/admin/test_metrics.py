"""``GET /metrics`` over a real Hypercorn and real workers, parsed by prometheus_client."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import attrs
import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from agentvisor.admin.metrics import INSTANCE_STATES
from agentvisor.events import HealthCheckCompleted
from tests.integration.admin.harness import (
    TOKEN,
    all_running,
    running_admin,
    sleeper,
    wait_until,
    write_config,
)


def samples(text: str) -> dict[str, list[Sample]]:
    """Every sample by its name (``..._total`` included), as Prometheus would read them."""
    found: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def value(found: dict[str, list[Sample]], name: str, **labels: str) -> float:
    matching = [s for s in found.get(name, []) if labels.items() <= s.labels.items()]
    assert len(matching) == 1, f"{name}{labels}: {matching}"
    return matching[0].value


async def scrape(client: httpx.AsyncClient) -> dict[str, list[Sample]]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_running_sleepers_are_described(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha", replicas=2))
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        await all_running(admin)
        supervisor = admin.supervisor

        def sampled() -> bool:
            instances = supervisor.service("alpha").instances
            return all(i.memory_bytes is not None and i.cpu_percent is not None for i in instances)

        with trio.fail_after(15):
            await wait_until(supervisor, sampled)
        found = await scrape(client)
    assert value(found, "agentvisor_info", version=admin.deps.version) == 1
    assert value(found, "agentvisor_uptime_seconds") >= 0
    assert value(found, "agentvisor_start_time_seconds") == admin.deps.started_at
    assert value(found, "agentvisor_service_replicas", service="alpha") == 2
    assert value(found, "agentvisor_service_running", service="alpha") == 2
    for replica in ("0", "1"):
        key = {"service": "alpha", "replica": replica}
        assert value(found, "agentvisor_instance_up", **key) == 1
        assert value(found, "agentvisor_instance_state", state="running", **key) == 1
        others = [s for s in INSTANCE_STATES if s != "running"]
        assert all(value(found, "agentvisor_instance_state", state=s, **key) == 0 for s in others)
        assert value(found, "agentvisor_instance_restarts_total", **key) == 0
        assert value(found, "agentvisor_instance_memory_bytes", **key) > 1_000_000
        assert value(found, "agentvisor_instance_cpu_percent", **key) >= 0
        assert value(found, "agentvisor_instance_uptime_seconds", **key) >= 0
        # Health checks are off for sleepers.
        assert value(found, "agentvisor_instance_health", status="disabled", **key) == 1
        assert value(found, "agentvisor_instance_health", status="healthy", **key) == 0
    assert value(found, "agentvisor_events_published_total") > 0
    assert value(found, "agentvisor_admin_event_streams") == 0
    assert not any(name.startswith("agentvisor_router_") for name in found), "no router given"


async def test_a_stopped_instance_is_down(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        await all_running(admin)
        assert (await client.post("/api/v1/services/alpha/stop")).status_code == 200
        found = await scrape(client)
    key = {"service": "alpha", "replica": "0"}
    assert value(found, "agentvisor_instance_up", **key) == 0
    assert value(found, "agentvisor_instance_state", state="stopped", **key) == 1
    assert value(found, "agentvisor_service_running", service="alpha") == 0
    assert "agentvisor_instance_memory_bytes" not in found  # no process, no figure


@attrs.frozen
class RouterFigures:
    """What ``Router.statistics()`` returns, as far as /metrics reads it."""

    connections: int = 3
    accepted: int = 10
    bytes_in: int = 1000
    bytes_out: int = 5000
    refused: Mapping[str, int] = attrs.field(factory=lambda: {"1008": 2, "1013": 1})
    messages_in: int = 40
    messages_out: int = 120
    failovers: int = 4
    failover_failures: int = 1


@attrs.frozen
class FakeRouter:
    figures: RouterFigures

    def statistics(self) -> RouterFigures:
        return self.figures


async def test_router_statistics_become_router_metrics(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        admin.deps.router = FakeRouter(RouterFigures())
        found = await scrape(client)
    assert value(found, "agentvisor_router_connections") == 3
    assert value(found, "agentvisor_router_connections_accepted_total") == 10
    assert value(found, "agentvisor_router_bytes_total", direction="in") == 1000
    assert value(found, "agentvisor_router_bytes_total", direction="out") == 5000
    assert value(found, "agentvisor_router_messages_total", direction="in") == 40
    assert value(found, "agentvisor_router_messages_total", direction="out") == 120
    assert value(found, "agentvisor_router_routing_failures_total") == 3
    assert value(found, "agentvisor_router_refused_total", code="1008") == 2
    assert value(found, "agentvisor_router_failovers_total", outcome="ok") == 4
    assert value(found, "agentvisor_router_failovers_total", outcome="failed") == 1


async def test_every_health_check_lands_in_the_histogram(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        for response_time, ok in ((0.003, True), (0.2, True), (20.0, False)):
            check = HealthCheckCompleted("alpha", 0, ok, "healthy", "", response_time, 0.0)
            admin.supervisor.bus.publish(check)
        admin.supervisor.bus.publish(HealthCheckCompleted("ghost", 0, True, "healthy", "", 1, 0))
        with trio.fail_after(10):
            while True:  # the recorder reads the bus in its own task
                found = await scrape(client)
                counts = found.get("agentvisor_health_check_duration_seconds_count", [])
                if counts and counts[0].value == 3:
                    break
                await trio.sleep(0.01)
    histogram = "agentvisor_health_check_duration_seconds"
    assert value(found, f"{histogram}_bucket", service="alpha", le="0.005") == 1
    assert value(found, f"{histogram}_bucket", service="alpha", le="0.25") == 2
    assert value(found, f"{histogram}_bucket", service="alpha", le="10.0") == 2
    assert value(found, f"{histogram}_bucket", service="alpha", le="+Inf") == 3
    assert value(found, f"{histogram}_sum", service="alpha") == pytest.approx(20.203)
    assert value(found, "agentvisor_health_checks_total", service="alpha", outcome="ok") == 2
    assert value(found, "agentvisor_health_checks_total", service="alpha", outcome="failed") == 1
    assert all(s.labels["service"] == "alpha" for s in found[f"{histogram}_count"]), "no ghost"


async def test_openmetrics_when_asked_for(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
        response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


async def test_metrics_need_the_token(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin:
        async with admin.tcp() as anonymous:
            refused = await anonymous.get("/metrics")
        async with admin.unix() as local:
            trusted = await local.get("/metrics")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "UNAUTHORIZED"
    assert trusted.status_code == 200
    assert "agentvisor_instance_up" in trusted.text


def exported_names(text: str) -> set[str]:
    """Every name a query may use: samples, and families without samples yet (sessions of
    command workers), with their ``_total`` / ``_bucket`` / ``_count`` / ``_sum`` names."""
    exported = set(samples(text))
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    for family in text_string_to_metric_families(text):
        exported |= {family.name, *(family.name + end for end in suffixes.get(family.type, ()))}
    return exported


DASHBOARD = Path(__file__).resolve().parents[3] / "contrib" / "grafana" / "agentvisor.json"


async def test_grafana_dashboard_queries_only_exported_metrics(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        await all_running(admin)
        admin.deps.router = FakeRouter(RouterFigures())
        text = (await client.get("/metrics")).text
    exported = exported_names(text)
    dashboard = json.loads(DASHBOARD.read_text())
    # A `datasource` variable, not an import-time input: file provisioning substitutes no
    # ${DS_...} inputs, so every query names the variable (issue 13).
    assert "__inputs" not in dashboard
    variables = dashboard["templating"]["list"]
    assert variables[0]["name"] == "datasource"
    assert variables[0]["type"] == "datasource"
    assert variables[0]["query"] == "prometheus"
    for variable in variables[1:]:
        assert variable["datasource"]["uid"] == "${datasource}", variable["name"]
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    queried: set[str] = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            queried.update(re.findall(r"agentvisor_[a-z_]+", target["expr"]))
    for variable in variables[1:]:
        queried.update(re.findall(r"agentvisor_[a-z_]+", variable["definition"]))
    assert sorted(queried - exported) == []
    families = {"instance_up", "instance_restarts_total", "instance_cpu_percent"}
    families |= {"instance_memory_bytes", "instance_sessions", "instance_health"}
    families |= {"router_connections", "router_messages_total"}
    assert {f"agentvisor_{name}" for name in families} <= queried


METRICS_TOKEN = "prometheus-reads-only"


async def test_the_metrics_token_reads_metrics_and_nothing_else(tmp_path: Path) -> None:
    extra = f'metrics_token = "{METRICS_TOKEN}"'
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"), admin_extra=extra)
    async with running_admin(config) as admin:
        async with admin.tcp(METRICS_TOKEN) as prometheus:
            scraped = await prometheus.get("/metrics")
            services = await prometheus.get("/api/v1/services")
            stopped = await prometheus.post("/api/v1/services/alpha/stop")
            posted = await prometheus.post("/metrics")
        async with admin.tcp() as anonymous:
            refused = await anonymous.get("/metrics")
        async with admin.tcp(TOKEN) as operator:
            still = await operator.get("/metrics")
    assert scraped.status_code == 200
    assert "agentvisor_instance_up" in scraped.text
    for answer in (services, stopped, posted, refused):
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"] == "UNAUTHORIZED"
    assert still.status_code == 200  # the admin token reads them too


async def test_labelled_counters_start_at_zero_for_the_values_known(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha") + sleeper("beta"))
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        admin.deps.router = FakeRouter(RouterFigures(refused={}))  # nothing refused yet
        found = await scrape(client)
    for code in ("1008", "1013", "overload"):
        assert value(found, "agentvisor_router_refused_total", code=code) == 0
    for service in ("alpha", "beta"):  # no check has run: the series exist, at 0
        for outcome in ("ok", "failed"):
            key = {"service": service, "outcome": outcome}
            assert value(found, "agentvisor_health_checks_total", **key) == 0
        count = "agentvisor_health_check_duration_seconds_count"
        assert value(found, count, service=service) == 0


async def test_agentvisors_own_process_is_exported(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        found = await scrape(client)
    assert value(found, "process_resident_memory_bytes") > 1_000_000
    assert value(found, "process_cpu_seconds_total") > 0
    assert value(found, "process_open_fds") > 0
    assert value(found, "process_start_time_seconds") <= admin.deps.started_at
    assert "python_info" in found
