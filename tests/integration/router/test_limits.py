"""Limits, bad handshakes, keepalive and backpressure: the router stays up and bounded."""

from __future__ import annotations

import json
import socket
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
    with running_workers(tmp_path_factory.mktemp("store"), ["alpha:0"]) as started:
        yield started


def source_for(tmp_path: Path, workers: dict[str, Worker], router: str = "") -> StaticSource:
    config = write_config(tmp_path / "agentvisor.toml", router=router, agents=agent_table("alpha"))
    return StaticSource(config, [endpoint("alpha:0", workers["alpha:0"].port)])


async def test_beyond_max_connections_clients_get_1013(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers, router="max_connections = 2")
    async with running_router(source) as running:
        first, second = await Client.connect(running.url), await Client.connect(running.url)
        async with client(running.url) as third:
            code, reason = await third.closed()
        await first.close()
        await second.close()

    assert code == 1013
    assert "capacity" in reason


async def test_beyond_the_per_ip_cap_clients_get_1008(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers, router="max_connections_per_ip = 1")
    async with running_router(source) as running, client(running.url) as first:
        await first.event("connection_routed")
        async with client(running.url) as second:
            code, reason = await second.closed()
        still = await first.ask("fine")

    assert code == 1008
    assert "too many connections" in reason
    assert still["content"] == "fine"


async def test_a_connect_burst_beyond_the_rate_gets_1008_rate_limited(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers, router="connect_rate_per_ip = 1")  # burst 2
    codes = []
    async with running_router(source) as running:
        for _ in range(3):
            async with client(running.url) as ws:
                first = await ws.recv()
                if first["event"] == "error":
                    codes.append((await ws.closed())[0])
                    error = first["data"]

    assert codes == [1008]
    assert error["code"] == "RATE_LIMITED"


async def test_a_message_above_max_message_bytes_closes_1009(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers, router="max_message_bytes = 1000")
    async with running_router(source) as running, client(running.url) as ws:
        fits = await ws.ask("x" * 900)
        await ws.send({"event": "user.message", "content": "y" * 5000})
        code, _reason = await ws.closed()

    assert fits["content"] == "x" * 900
    assert code == 1009


async def test_a_disallowed_origin_is_closed_1008(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    router = 'allowed_origins = ["https://app.example.com", "https://*.trusted.example"]'
    source = source_for(tmp_path, workers, router=router)
    async with running_router(source) as running:
        async with client(running.url, origin="https://evil.example") as bad:
            code, _reason = await bad.closed()
        async with client(running.url, origin="https://a.trusted.example") as good:
            routed = await good.recv()
        async with client(running.url) as no_origin:  # not a browser: no Origin header
            plain = await no_origin.recv()

    assert code == 1008
    assert bad.received[0]["data"]["code"] == "UNAUTHORIZED"
    assert routed["event"] == plain["event"] == "connection_routed"


async def test_plain_http_gets_426_and_garbage_gets_400(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers)
    async with running_router(source) as running:
        port = int(running.base.rsplit(":", 1)[1])
        plain = await _exchange(port, b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
        garbage = await _exchange(port, b"\x16\x03\x01 not http at all\r\n\r\n")
        with trio.fail_after(5):  # the router reads until the client's end, then closes
            while running.router.statistics().sockets:
                await trio.sleep(0.01)
        statistics = running.router.statistics()

    assert plain.startswith(b"HTTP/1.1 426 ")
    assert garbage.startswith(b"HTTP/1.1 400 ")
    assert statistics.refused["426"] == 1
    assert statistics.sockets == 0


async def _exchange(port: int, request: bytes) -> bytes:
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(request)
            answer = b""
            while chunk := await stream.receive_some():
                answer += chunk
    return answer


async def test_a_slow_handshake_is_closed_after_handshake_timeout(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers, router="handshake_timeout = 0.3")
    async with running_router(source) as running:
        port = int(running.base.rsplit(":", 1)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # never finished
        started = trio.current_time()
        with trio.fail_after(3):
            leftover = await stream.receive_some()
        waited = trio.current_time() - started
        await stream.aclose()

    assert leftover == b""  # closed without an answer
    assert 0.2 <= waited < 2.0


async def test_an_idle_client_that_never_answers_pings_is_closed(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers, router="ping_interval = 0.2\nping_timeout = 0.3")
    async with running_router(source) as running:
        port = int(running.base.rsplit(":", 1)[1])
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        with trio.fail_after(5):  # reads (pings included), never answers
            while await trio.to_thread.run_sync(sock.recv, 65536):
                pass
        sock.close()
        async with client(running.url) as polite:  # websockets answers pings by itself
            await polite.recv()
            await trio.sleep(1.0)
            answer = await polite.ask("still here")

    assert answer["content"] == "still here"


async def test_a_slow_reader_is_bounded_and_stalls_no_one_else(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    """A client that does not read while its worker floods it: the router holds at most a
    read and a frame for it (TCP pushes back on the worker), and others go on meanwhile."""
    source = source_for(tmp_path, workers, router="management_events = false")
    count, size = 3000, 10_000  # 30 MB, far beyond every socket buffer on the way
    async with running_router(source) as running:
        slow = await Client.connect(running.url, max_queue=1)  # its reader stops at once
        await slow.send({"event": "test.flood", "count": count, "size": size})
        peak = 0
        async with client(running.url) as other:
            for number in range(20):
                answer = await other.ask(f"turn {number}")
                peak = max(peak, running.router.statistics().buffered_bytes)
        assert answer["content"].endswith("turn 19")
        received = 0
        with trio.fail_after(60):
            while received < count:
                raw = await trio.to_thread.run_sync(slow.ws.recv, 30.0)
                assert json.loads(raw)["n"] == received
                received += 1
        await slow.close()

    assert peak < 512 * 1024


async def test_the_router_is_still_up_after_bad_clients(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers)
    async with running_router(source) as running:
        with pytest.raises(InvalidStatus):
            await Client.connect(running.base + "/nowhere")
        port = int(running.base.rsplit(":", 1)[1])
        for junk in (
            b"\x00" * 10 + b"\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
            b"POST /ws HTTP/1.1\r\n\r\n",
        ):
            await _exchange(port, junk)
        async with client(running.url) as ws:
            answer = await ws.ask("alive")

    assert answer["content"] == "alive"
