"""The router's own life: wss://, graceful shutdown, cancellation, and the events it publishes."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from agentvisor.events import ConnectionClosed, ConnectionOpened, ConnectionRefused, EventBus
from tests.integration.router.harness import (
    Client,
    StaticSource,
    Worker,
    agent_table,
    client,
    endpoint,
    running_router,
    running_workers,
    write_config,
)


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Worker]]:
    with running_workers(tmp_path_factory.mktemp("store"), ["alpha:0"]) as started:
        yield started


def source_for(tmp_path: Path, workers: dict[str, Worker], router: str = "") -> StaticSource:
    config = write_config(tmp_path / "agentvisor.toml", router=router, agents=agent_table("alpha"))
    return StaticSource(config, [endpoint("alpha:0", workers["alpha:0"].port)])


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
    command += ["-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_wss_with_tls_cert_and_key(tmp_path: Path, workers: dict[str, Worker]) -> None:
    cert, key = self_signed(tmp_path)
    source = source_for(tmp_path, workers, router=f'tls_cert = "{cert}"\ntls_key = "{key}"')
    context = ssl.create_default_context(cafile=str(cert))
    async with running_router(source) as running:
        assert running.url.startswith("wss://")
        async with client(running.url, ssl=context) as ws:
            first = await ws.ask("secure")
            second = await ws.ask("still", first["session_id"])

    assert second["content"] == "secure | still"


async def test_shutdown_notifies_every_client_and_closes_1001(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers)
    async with (
        running_router(source) as running,
        client(running.url) as a,
        client(running.url) as b,
    ):
        await a.event("connection_routed")
        await b.event("connection_routed")
        with trio.fail_after(5):
            await running.router.shutdown()
        closes = [await a.closed(), await b.closed()]
        refused_after = running.router.statistics().connections

    assert closes == [(1001, "agentvisor is shutting down")] * 2
    for ws in (a, b):
        notice = [e for e in ws.received if e["event"] == "management_notification"][-1]
        assert notice["data"]["type"] == "shutdown"
    assert refused_after == 0


async def test_cancelling_the_router_closes_clients_1001(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers)
    async with running_router(source) as running:
        ws = await Client.connect(running.url)
        await ws.ask("hello")
    code, reason = await ws.closed()

    assert (code, reason) == (1001, "agentvisor is shutting down")


async def test_connections_are_published_on_the_bus(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers, router="max_connections = 1")
    bus = EventBus()
    async with bus.subscribe() as events, running_router(source, bus) as running:
        async with client(running.url) as ws:
            await ws.ask("hi")
            async with client(running.url) as refused:
                await refused.closed()
        with trio.fail_after(5):
            opened = await events.receive()
            rejected = await events.receive()
            closed = await events.receive()

    assert isinstance(opened, ConnectionOpened)
    assert (opened.service, opened.instance_id) == ("alpha", "alpha:0")
    assert isinstance(rejected, ConnectionRefused)
    assert rejected.code == 1013
    assert isinstance(closed, ConnectionClosed)
    assert closed.connection_id == opened.connection_id
    assert (closed.messages_in, closed.messages_out) == (1, 2)
