"""``GET /api/v1/events/stream`` over a real Hypercorn: events, filters, slow and gone clients.

The stream is read by a small client of its own (trio socket + h11), so each
test decides when it reads, and an early close is a plain socket close.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import h11
import httpx
import pytest
import trio

from agentvisor.admin import serve
from agentvisor.admin.app import AdminLimits
from agentvisor.admin.serve import GRACEFUL_TIMEOUT
from agentvisor.events import LogLines
from tests.integration.admin.harness import (
    TOKEN,
    Admin,
    all_running,
    running_admin,
    sleeper,
    write_config,
)

STREAM = "/api/v1/events/stream"


@attrs.frozen
class Message:
    """One server-sent event, or a comment block (``event`` empty, ``comments`` set)."""

    event: str = ""
    data: Any = None
    comments: tuple[str, ...] = ()


def parse_block(block: str) -> Message:
    event, data, comments = "", [], []
    for line in block.split("\n"):
        if line.startswith(":"):
            comments.append(line[1:].strip())
        elif line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())
    return Message(event, json.loads("\n".join(data)) if data else None, tuple(comments))


class SseClient:
    """An HTTP/1.1 client of one event stream that reads only when asked."""

    def __init__(self, sock: trio.SocketStream) -> None:
        self.sock = sock
        self.http = h11.Connection(h11.CLIENT)
        self.text = ""
        self.ended = False  # the body ended as HTTP says it should
        self.status = 0
        self.headers: dict[str, str] = {}

    async def _next(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        while True:
            event = self.http.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.http.receive_data(await self.sock.receive_some(65536))

    async def start(self, target: str, token: str | None) -> None:
        headers = [("Host", "agentvisor"), ("Accept", "text/event-stream")]
        if token:
            headers.append(("Authorization", f"Bearer {token}"))
        request = h11.Request(method="GET", target=target, headers=headers)
        await self.sock.send_all(self.http.send(request) + self.http.send(h11.EndOfMessage()))
        response = await self._next()
        assert isinstance(response, h11.Response), response
        self.status = response.status_code
        self.headers = {k.decode(): v.decode() for k, v in response.headers}

    async def receive(self) -> Message:
        """The next message; EOFError once the body ended."""
        while "\n\n" not in self.text:
            event = await self._next()
            if isinstance(event, h11.Data):
                self.text += bytes(event.data).decode()
            elif isinstance(event, h11.EndOfMessage):
                self.ended = True
                raise EOFError("the stream ended")
            else:
                raise AssertionError(f"unexpected {event!r}")
        block, self.text = self.text.split("\n\n", 1)
        return parse_block(block)

    async def until(self, done: Callable[[Message], bool]) -> list[Message]:
        seen = []
        while True:
            message = await self.receive()
            seen.append(message)
            if done(message):
                return seen


@asynccontextmanager
async def open_stream(
    admin: Admin, query: str = "", token: str | None = TOKEN
) -> AsyncIterator[SseClient]:
    host, port = admin.url.removeprefix("http://").rsplit(":", 1)
    sock = await trio.open_tcp_stream(host, int(port))
    async with sock:
        client = SseClient(sock)
        await client.start(f"{STREAM}{query}", token)
        yield client


def is_ready(message: Message) -> bool:
    return "ready" in message.comments


def stopped(service: str) -> Callable[[Message], bool]:
    def check(message: Message) -> bool:
        data = message.data or {}
        return (
            message.event == "instance.state"
            and data.get("service") == service
            and data.get("new") == "stopped"
        )

    return check


def config_for(tmp_path: Path, agents: str) -> Path:
    return write_config(tmp_path / "agentvisor.toml", agents)


async def test_api_stop_shows_up_as_state_changes(tmp_path: Path) -> None:
    config = config_for(tmp_path, sleeper("alpha"))
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        await all_running(admin)
        with trio.fail_after(20):
            async with open_stream(admin) as stream:
                assert stream.status == 200
                assert stream.headers["content-type"].startswith("text/event-stream")
                assert stream.headers["cache-control"] == "no-cache"
                await stream.until(is_ready)
                stop = await client.post("/api/v1/services/alpha/stop")
                assert stop.status_code == 200, stop.text
                seen = await stream.until(stopped("alpha"))
    kinds = [message.event for message in seen]
    assert "operator.action" in kinds
    transition = seen[-1].data
    assert transition["old"] in ("running", "stopping")
    assert transition["replica"] == 0
    assert transition["kind"] == "instance.state"


async def test_service_filter_keeps_one_service(tmp_path: Path) -> None:
    config = config_for(tmp_path, sleeper("alpha") + sleeper("beta"))
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        await all_running(admin)
        with trio.fail_after(20):
            async with open_stream(admin, "?service_id=alpha&types=instance,operator") as stream:
                await stream.until(is_ready)
                # beta first: had the filter let it through, it would come before alpha's.
                assert (await client.post("/api/v1/services/beta/stop")).status_code == 200
                assert (await client.post("/api/v1/services/alpha/stop")).status_code == 200
                seen = await stream.until(stopped("alpha"))
    events = [message for message in seen if message.event]
    assert events, seen
    for message in events:
        assert message.event.startswith(("instance.", "operator."))
        about = message.data.get("service", message.data.get("target"))
        assert about == "alpha", message


async def test_bad_filters_are_refused_before_streaming(tmp_path: Path) -> None:
    config = config_for(tmp_path, sleeper("alpha"))
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        unknown_type = await client.get(STREAM, params={"types": "instance,bogus"})
        assert unknown_type.status_code == 400
        assert unknown_type.json()["error"]["code"] == "INVALID_REQUEST"
        assert "bogus" in unknown_type.json()["error"]["message"]
        unknown_service = await client.get(STREAM, params={"service_id": "nope"})
        assert unknown_service.status_code == 404
        assert unknown_service.json()["error"]["code"] == "SERVICE_NOT_FOUND"


async def test_stream_needs_the_token(tmp_path: Path) -> None:
    config = config_for(tmp_path, sleeper("alpha"))
    async with running_admin(config) as admin, admin.tcp() as anonymous:
        refused = await anonymous.get(STREAM)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "UNAUTHORIZED"


async def test_a_workers_output_arrives_as_log_lines(tmp_path: Path) -> None:
    config = config_for(tmp_path, sleeper("alpha", extra="autostart = false"))
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        with trio.fail_after(20):
            async with open_stream(admin, "?types=log&service_id=alpha") as stream:
                await stream.until(is_ready)
                assert (await client.post("/api/v1/services/alpha/start")).status_code == 200
                seen = await stream.until(lambda message: message.event == "log.lines")
    data = seen[-1].data
    assert (data["service"], data["replica"], data["stream"]) == ("alpha", 0, "stdout")
    assert data["texts"] == ["ready"]  # what the sleeper prints first
    assert data["first_seq"] == 1
    assert data["at"] > 0


async def test_an_idle_stream_gets_keepalives(tmp_path: Path) -> None:
    config = config_for(tmp_path, sleeper("alpha", extra="autostart = false"))
    limits = AdminLimits(stream_keepalive_interval=0.05)
    async with running_admin(config, limits=limits) as admin:
        with trio.fail_after(20):
            async with open_stream(admin, "?types=log") as stream:
                await stream.until(is_ready)
                seen = await stream.until(lambda message: "keepalive" in message.comments)
                batch = LogLines("alpha", 0, "stderr", 7, ("one", "two"), 1700000000.0)
                admin.supervisor.bus.publish(batch)
                after = await stream.until(lambda message: message.event == "log.lines")
    assert all(not message.event for message in seen), "nothing but comments while idle"
    assert after[-1].data == {
        "service": "alpha",
        "replica": 0,
        "stream": "stderr",
        "first_seq": 7,
        "texts": ["one", "two"],
        "at": 1700000000.0,
        "kind": "log.lines",
    }


async def metric(client: httpx.AsyncClient, name: str) -> float:
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is missing from /metrics")


async def test_slow_client_loses_events_instead_of_growing_memory(tmp_path: Path) -> None:
    # Not started: its own output ("ready") would be log lines too, and spoil the count.
    config = config_for(tmp_path, sleeper("alpha", extra="autostart = false"))
    limits = AdminLimits(stream_keepalive_interval=0.2, stream_buffer_events=16)
    published, text = 2000, "x" * 16384  # 32 MiB: more than the socket buffers on the way
    async with running_admin(config, limits=limits) as admin, admin.tcp(TOKEN) as client:
        with trio.fail_after(30):
            async with open_stream(admin, "?types=log.lines") as stream:
                await stream.until(is_ready)
                for seq in range(published):
                    admin.supervisor.bus.publish(LogLines("alpha", 0, "stdout", seq, (text,), 0.0))
                    await trio.sleep(0)  # the stream writes what the socket takes, no more
                # Now read: what was kept, then the notice of what was lost, then quiet.
                seen = await stream.until(lambda message: "keepalive" in message.comments)
            dropped_total = await metric(client, "agentvisor_admin_event_stream_dropped_total")
    delivered = sum(1 for message in seen if message.event == "log.lines")
    dropped = sum(message.data["dropped"] for message in seen if message.event == "dropped")
    assert delivered + dropped == published
    assert dropped > published // 2, "a client that does not read cannot have most events held"
    assert dropped_total == dropped


async def test_client_disconnect_ends_the_stream(tmp_path: Path) -> None:
    config = config_for(tmp_path, sleeper("alpha"))
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        with trio.fail_after(20):
            async with open_stream(admin) as stream:
                await stream.until(is_ready)
                assert await metric(client, "agentvisor_admin_event_streams") == 1
            while await metric(client, "agentvisor_admin_event_streams") != 0:
                await trio.sleep(0.02)


@pytest.mark.parametrize("how", ["stopping", "shutdown"])
async def test_stream_ends_cleanly_when_the_server_stops(tmp_path: Path, how: str) -> None:
    config = config_for(tmp_path, sleeper("alpha"))
    ready, ended = trio.Event(), trio.Event()

    async def follow(admin: Admin) -> None:
        async with open_stream(admin) as stream:
            try:
                while True:
                    if is_ready(await stream.receive()):
                        ready.set()
            except EOFError:
                assert stream.ended
                ended.set()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            async with running_admin(config) as admin:
                nursery.start_soon(follow, admin)
                await ready.wait()
                if how == "stopping":
                    admin.deps.stopping.set()  # what AdminServer does first when it stops
                    await ended.wait()
            # Leaving ``running_admin`` stopped the server: the stream did not hold it up.
            with trio.fail_after(GRACEFUL_TIMEOUT):
                await ended.wait()


async def test_a_client_that_stops_reading_does_not_hold_up_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hypercorn's writes are shielded: only the kernel's TCP_USER_TIMEOUT frees them.
    monkeypatch.setattr(serve, "STALLED_CLIENT_TIMEOUT", 1.0)
    config = config_for(tmp_path, sleeper("alpha"))
    limits = AdminLimits(stream_buffer_events=16)
    with trio.fail_after(30):
        async with running_admin(config, limits=limits) as admin:
            host, port = admin.url.removeprefix("http://").rsplit(":", 1)
            sock = await trio.open_tcp_stream(host, int(port))
            stream = SseClient(sock)
            await stream.start(f"{STREAM}?types=log.lines", TOKEN)
            await stream.until(is_ready)
            for seq in range(2000):  # 32 MiB, never read: every buffer on the way fills
                admin.supervisor.bus.publish(
                    LogLines("alpha", 0, "stdout", seq, ("x" * 16384,), 0.0)
                )
                await trio.sleep(0)
        # Leaving ``running_admin`` returned although the socket is still open and unread.
        await sock.aclose()
