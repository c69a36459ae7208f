"""Relaying through the router: routed event, messages both ways, headers, closes, the table."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from websockets.exceptions import InvalidStatus

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
    store = tmp_path_factory.mktemp("store")
    with running_workers(store, ["alpha:0", "alpha:1"]) as started:
        yield started


@pytest.fixture(scope="module")
def chat_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A worker that speaks the ``chat.v1`` subprotocol (and refuses clients without it)."""
    store = tmp_path_factory.mktemp("chat")
    with running_workers(store, ["alpha:0"], "--subprotocol", "chat.v1") as started:
        yield started["alpha:0"]


def source_for(tmp_path: Path, workers: dict[str, Worker], router: str = "") -> StaticSource:
    config = write_config(tmp_path / "agentvisor.toml", router=router, agents=agent_table("alpha"))
    return StaticSource(config, [endpoint(name, w.port) for name, w in workers.items()])


async def test_first_message_is_connection_routed(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers)
    async with running_router(source) as running, client(running.url) as ws:
        routed = await ws.recv()

    assert routed["event"] == "connection_routed"
    data = routed["data"]
    assert data["target_service"] == "alpha"
    assert data["target_instance"] in ("alpha:0", "alpha:1")
    assert data["routing_strategy"] == "least_connections"
    assert data["service_endpoint"].startswith("ws://127.0.0.1:")
    assert data["rule"] is None
    assert data["connection_id"]
    assert routed["timestamp"].endswith("Z")


async def test_without_management_events_the_worker_speaks_first(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers, router="management_events = false")
    async with running_router(source) as running, client(running.url) as ws:
        await ws.send({"event": "ping"})
        first = await ws.recv()

    assert first["event"] == "pong"


async def test_a_conversation_keeps_its_history(tmp_path: Path, workers: dict[str, Worker]) -> None:
    source = source_for(tmp_path, workers)
    async with running_router(source) as running, client(running.url) as ws:
        first = await ws.ask("hello")
        second = await ws.ask("again", first["session_id"])

    assert first["content"] == "hello"
    assert second["content"] == "hello | again"
    assert second["seq"] > first["seq"]


async def test_the_worker_sees_the_forwarding_headers_and_the_query(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers)
    spoofed = {"X-Agentvisor-Route": "forged", "X-Forwarded-For": "10.9.9.9", "X-Custom": "kept"}
    async with (
        running_router(source) as running,
        client(running.url + "?service=alpha&x=1", additional_headers=spoofed) as ws,
    ):
        routed = await ws.event("connection_routed")
        await ws.send({"event": "test.headers"})
        seen = await ws.event("headers")

    headers = seen["headers"]
    assert headers["x-forwarded-for"] == "10.9.9.9, 127.0.0.1"
    assert headers["x-agentvisor-connection-id"] == routed["data"]["connection_id"]
    assert headers["x-agentvisor-route"] == "default"
    assert headers["x-custom"] == "kept"
    assert "sec-websocket-extensions" not in headers  # never negotiated: frames pass as they are
    assert seen["path"] == "/?service=alpha&x=1"


async def test_the_workers_subprotocol_choice_reaches_the_client(
    tmp_path: Path, chat_worker: Worker
) -> None:
    source = source_for(tmp_path, {"alpha:0": chat_worker})
    async with (
        running_router(source) as running,
        client(running.url, subprotocols=["chat.v2", "chat.v1"]) as ws,
    ):
        await ws.send({"event": "test.headers"})
        seen = await ws.event("headers")
        chosen = ws.ws.subprotocol

    assert chosen == "chat.v1"
    assert seen["subprotocol"] == "chat.v1"


async def test_large_binary_messages_pass_unchanged(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    """200 KB frames are larger than the hold limit: they stream through in pieces."""
    source = source_for(tmp_path, workers, router="management_events = false")
    payloads = [os.urandom(size) for size in (1, 125, 126, 65535, 65536, 200_000)]
    async with running_router(source) as running, client(running.url) as ws:
        for payload in payloads:
            await ws.send(payload)
        echoed = [await trio.to_thread.run_sync(ws.ws.recv, 10.0) for _ in payloads]

    assert echoed == payloads


async def test_a_burst_of_messages_arrives_in_order(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers, router="management_events = false")
    async with running_router(source) as running, client(running.url) as ws:
        for number in range(300):
            await ws.send(json.dumps({"event": "echo-me", "n": number}))
        answers = [await ws.recv() for _ in range(300)]

    assert [answer["message"] for answer in answers] == ["echo-me"] * 300


async def test_a_client_ping_is_answered_through_the_worker(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers)
    async with running_router(source) as running, client(running.url) as ws:
        pong = await trio.to_thread.run_sync(ws.ws.ping, b"are you there")
        answered = await trio.to_thread.run_sync(pong.wait, 5.0)

    assert answered


async def test_the_client_close_code_goes_to_the_worker_and_back(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers)
    async with running_router(source) as running:
        ws = await Client.connect(running.url)
        await ws.event("connection_routed")
        await trio.to_thread.run_sync(lambda: ws.ws.close(4001, "bye"))
        with trio.fail_after(5):
            while running.router.connections:
                await trio.sleep(0.02)

    assert ws.ws.close_code == 4001  # the worker's answer, relayed


async def test_a_worker_close_reaches_the_client(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers)
    async with running_router(source) as running, client(running.url) as ws:
        await ws.send({"event": "test.close", "code": 4000})
        code, reason = await ws.closed()

    assert (code, reason) == (4000, "asked to")


async def test_the_table_counts_messages_and_sessions(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers)
    async with running_router(source) as running, client(running.url) as ws:
        first = await ws.ask("one")
        await ws.ask("two", first["session_id"])
        page = running.router.list_connections()
        detail = running.router.details(page.items[0].id)

    record = page.items[0]
    assert page.total == 1
    assert record.messages_in == 2
    assert record.messages_out == 3  # session_created and two answers (not our own events)
    assert record.bytes_in > 0
    assert record.bytes_out > 0
    assert record.session_ids == (first["session_id"],)
    assert detail["turns_in_flight"] == 0
    assert detail["last_seq"][first["session_id"]] >= 3


async def test_the_engine_carries_plain_traffic(tmp_path: Path, workers: dict[str, Worker]) -> None:
    """Steady traffic is relayed by the engine, not by per-connection tasks."""
    source = source_for(tmp_path, workers, router="management_events = false")
    async with running_router(source) as running, client(running.url) as ws:
        for number in range(50):
            await ws.send(json.dumps({"event": "x", "n": number}))
            await ws.recv()
        connection = next(iter(running.router.connections.values()))
        in_engine = connection.in_engine

    assert in_engine
    assert running.router.engine.entries >= 1


async def test_a_wrong_path_is_answered_404(tmp_path: Path, workers: dict[str, Worker]) -> None:
    source = source_for(tmp_path, workers)
    async with running_router(source) as running:
        with pytest.raises(InvalidStatus) as refused:
            await Client.connect(running.base + "/elsewhere")

    assert refused.value.response.status_code == 404


async def test_any_path_is_accepted_with_a_star(tmp_path: Path, workers: dict[str, Worker]) -> None:
    source = source_for(tmp_path, workers, router='path = "*"')
    async with running_router(source) as running, client(running.base + "/any/where") as ws:
        routed = await ws.recv()

    assert routed["event"] == "connection_routed"


async def test_a_command_workers_user_message_reaches_it_as_sent(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    """Only ``agent =`` workers get a router-assigned ``message_id``: a command worker
    speaks its own protocol, and its frames are relayed unchanged."""
    source = source_for(tmp_path, workers, router="management_events = false")
    async with running_router(source) as running, client(running.url) as ws:
        await ws.send({"event": "user.message", "content": "hello"})
        answer = await ws.event("agent.final_answer")
    assert answer["content"] == "hello"
    assert "message_id" not in answer  # the worker saw no message_id
