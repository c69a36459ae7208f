"""The router through the admin API, agentvisor.client and agentvisorctl: connections,
disconnect and the routing dry run, against a real Supervisor, Router and Hypercorn."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from agentvisor import __version__
from agentvisor.admin.app import AdminDeps
from agentvisor.admin.serve import AdminServer
from agentvisor.cli import ctl
from agentvisor.client import AsyncAgentvisorClient
from tests.integration.router.harness import client
from tests.integration.router.supervised import Supervised, agent_config, supervised


@asynccontextmanager
async def with_admin(stack: Supervised) -> AsyncIterator[str]:
    """The admin API over ``stack`` on a unix socket; yields the socket's path."""
    config = stack.supervisor.config
    deps = AdminDeps(
        supervisor=stack.supervisor,
        version=__version__,
        pid=os.getpid(),
        started_at=time.time(),
        config_path=config.source,
        router=stack.router,
    )
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(AdminServer(deps, config.admin, config.base_dir).run)
        try:
            yield next(b for b in binds if b.startswith("unix:")).removeprefix("unix:")
        finally:
            nursery.cancel_scope.cancel()


def config_with_admin(tmp_path: Path) -> Path:
    path = agent_config(tmp_path / "agentvisor.toml")
    path.write_text(path.read_text().replace("bind = []", 'bind = ["unix:adm.sock"]', 1))
    return path


async def run_ctl(*argv: str) -> int:
    return await trio.to_thread.run_sync(partial(ctl.main, list(argv)))


async def test_connections_are_listed_shown_and_disconnected(tmp_path: Path) -> None:
    async with (
        supervised(config_with_admin(tmp_path)) as stack,
        with_admin(stack) as socket,
        AsyncAgentvisorClient(socket) as api,
        client(stack.url + "?service=chat") as ws,
    ):
        routed = await ws.event("connection_routed")
        connection_id = routed["data"]["connection_id"]
        answer = await ws.ask("hello")
        listed = await api.connections(service="chat")
        shown = await api.connection(connection_id)
        none = await api.connections(service="other")
        result = await api.disconnect(connection_id, reason="maintenance")
        code, reason = await ws.closed()
        after = await api.connections()

    assert listed["total"] == 1
    item = listed["connections"][0]
    assert item["connection_id"] == connection_id
    assert item["target_service_id"] == "chat"
    assert item["target_instance"] == routed["data"]["target_instance"]
    assert item["session_id"] == answer["session_id"]
    assert item["messages_in"] == 1
    assert item["bytes_received"] > 0
    assert item["status"] == "active"
    assert item["connected_at"].endswith("Z")
    assert shown["turns_in_flight"] == 0
    assert shown["upstream"].startswith("ws://127.0.0.1:")
    assert none["total"] == 0
    assert result["disconnected"] is True
    assert (code, reason) == (1001, "maintenance")
    notification = [e for e in ws.received if e["event"] == "management_notification"][-1]
    assert notification["data"]["type"] == "disconnect"
    assert after["total"] == 0


async def test_unknown_connections_are_404_and_bad_bodies_400(tmp_path: Path) -> None:
    async with supervised(config_with_admin(tmp_path)) as stack, with_admin(stack) as socket:
        transport = httpx.AsyncHTTPTransport(uds=socket)
        async with httpx.AsyncClient(base_url="http://agentvisor", transport=transport) as http:
            missing = await http.get("/api/v1/connections/nope")
            gone = await http.post("/api/v1/connections/nope/disconnect", json={})
            bad_status = await http.get("/api/v1/connections?status=sleepy")
            bad_ip = await http.post("/api/v1/routing/test", json={"ip": "not-an-ip"})
            bad_headers = await http.post("/api/v1/routing/test", json={"headers": [1]})

    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "CONNECTION_NOT_FOUND")
    assert gone.status_code == 404
    assert bad_status.status_code == 400
    assert bad_ip.status_code == 400
    assert bad_headers.status_code == 400


async def test_route_test_through_the_api_and_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with (
        supervised(config_with_admin(tmp_path)) as stack,
        with_admin(stack) as socket,
        AsyncAgentvisorClient(socket) as api,
    ):
        data = await api.route_test(ip="10.0.0.7", headers={"X-Tier": "gold"}, query={"a": "1"})
        exit_json = await run_ctl("-s", socket, "--json", "route", "test", "--ip", "10.0.0.7")
        printed_json = capsys.readouterr().out
        exit_text = await run_ctl("-s", socket, "route", "test", "--header", "x-tier=gold")
        printed_text = capsys.readouterr().out
        exit_bad = await run_ctl("-s", socket, "route", "test", "--header", "oops")

    assert data["action"] == "route"
    assert data["agents"] == ["chat"]
    assert data["instance"]["instance_id"] in ("chat:0", "chat:1")
    assert len(data["candidates"]) == 2
    assert exit_json == 0
    assert json.loads(printed_json)["strategy"] == "least_connections"
    assert exit_text == 0
    assert "instance:  chat:" in printed_text
    assert exit_bad == 2


async def test_ctl_connections_and_disconnect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with (
        supervised(config_with_admin(tmp_path)) as stack,
        with_admin(stack) as socket,
        client(stack.url) as ws,
    ):
        routed = await ws.event("connection_routed")
        connection_id = routed["data"]["connection_id"]
        listed = await run_ctl("-s", socket, "connections", "--service", "chat")
        table = capsys.readouterr().out
        done = await run_ctl("-s", socket, "disconnect", connection_id, "--reason", "bye")
        line = capsys.readouterr().out
        code, _reason = await ws.closed()
        missing = await run_ctl("-s", socket, "disconnect", connection_id)

    assert listed == 0
    assert connection_id in table
    assert "chat:" in table
    assert done == 0
    assert line.startswith(f"disconnected {connection_id}: bye")
    assert code == 1001
    assert missing == 1
