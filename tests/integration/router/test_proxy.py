"""The router as a WebSocket proxy for plain ``command =`` services (issues 9.4 and 14).

Both ends are independent of our code: the backend is a ``websockets``
server (in a thread), the client a raw socket with ``wsproto`` or the
``websockets`` client. Each case is one that a direct connection and nginx
get right: slow readers keep their pings, refusals and closes reach the
client, a reset is never silent, the head limit and HTTP/1.1 hold.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import trio
import wsproto
import wsproto.events as ws_events
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Response
from websockets.sync.client import connect
from websockets.sync.server import Server, ServerConnection, serve

from tests.integration.router.harness import (
    StaticSource,
    agent_table,
    endpoint,
    running_router,
    write_config,
)

DEADLINE = 10.0


class Backend:
    """A ``websockets`` server in a thread; ``handler(ws)`` serves each connection."""

    def __init__(self, handler: Callable[[ServerConnection], None], **options: Any) -> None:
        self.connections = 0
        self.close_codes: list[int | None] = []
        self._handler = handler
        options.setdefault("compression", None)
        self.server: Server = serve(self._serve, "127.0.0.1", 0, **options)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _serve(self, ws: ServerConnection) -> None:
        self.connections += 1
        try:
            self._handler(ws)
        except ConnectionClosed:
            pass
        finally:
            ws.close_timeout = 1
            try:
                ws.recv(timeout=2)
            except (ConnectionClosed, TimeoutError):
                pass
            self.close_codes.append(ws.close_code)

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


@contextmanager
def backend(handler: Callable[[ServerConnection], None], **options: Any) -> Iterator[Backend]:
    server = Backend(handler, **options)
    try:
        yield server
    finally:
        server.stop()


def source(tmp_path: Path, port: int, *, router: str = "", notices: bool = False) -> StaticSource:
    config = write_config(
        tmp_path / "agentvisor.toml", router=router, agents=agent_table("plain", notices=notices)
    )
    return StaticSource(config, [endpoint("plain:0", port)])


def raw_upgrade(port: int, path: str = "/ws") -> tuple[socket.socket, wsproto.WSConnection]:
    """A client socket after its handshake, with ``wsproto`` speaking for it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)  # a small window, like a phone's
    sock.settimeout(DEADLINE)
    sock.connect(("127.0.0.1", port))
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    sock.sendall(client.send(ws_events.Request(host="127.0.0.1", target=path)))
    while True:
        client.receive_data(sock.recv(65536))
        for event in client.events():
            if isinstance(event, ws_events.AcceptConnection):
                return sock, client
            raise AssertionError(f"handshake refused: {event}")


def http_answer(port: int, request: bytes) -> bytes:
    """Send ``request`` in one write; everything the router answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        sock.sendall(request)
        answer = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                raise AssertionError(f"reset instead of an answer (had {answer[:60]!r})") from None
            if not data:
                return answer
            answer += data


def upgrade_head(extra: str = "", version: str = "1.1") -> bytes:
    return (
        f"GET /ws HTTP/{version}\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


# -- a slow but live reader ------------------------------------------------------------


def stream_forever(ws: ServerConnection) -> None:
    chunk = "x" * 8000
    while True:
        ws.send(chunk)


def read_slowly(
    port: int, seconds: float, on_open: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Read ~1 MB/s for ``seconds``, answering pings; what the client saw."""
    sock, client = raw_upgrade(port)
    seen: dict[str, Any] = {"pings": 0, "bytes": 0, "close": None, "eof": False}
    if on_open is not None:
        on_open()
    end = time.monotonic() + seconds
    sock.settimeout(0.5)
    while time.monotonic() < end and seen["close"] is None:
        try:
            data = sock.recv(16384)
        except TimeoutError:
            continue
        if not data:
            seen["eof"] = True
            break
        seen["bytes"] += len(data)
        client.receive_data(data)
        for event in client.events():
            if isinstance(event, ws_events.Ping):
                seen["pings"] += 1
                sock.sendall(client.send(event.response()))
            elif isinstance(event, ws_events.CloseConnection):
                seen["close"] = event.code
        time.sleep(0.016)  # ≈ 1 MB/s
    sock.close()
    return seen


async def test_a_slow_live_reader_gets_keepalive_pings_and_stays(tmp_path: Path) -> None:
    with backend(stream_forever) as server:
        config = source(tmp_path, server.port, router="ping_interval = 0.3\nping_timeout = 2")
        async with running_router(config) as running:
            seen = await trio.to_thread.run_sync(read_slowly, port_of(running.url), 5.0)
    assert seen["close"] is None, seen
    assert not seen["eof"], seen
    assert seen["pings"] >= 2, seen
    assert seen["bytes"] > 2_000_000


async def test_an_admin_disconnect_reaches_a_slow_reader_as_1001(tmp_path: Path) -> None:
    with backend(stream_forever) as server:
        async with running_router(source(tmp_path, server.port)) as running:
            port = port_of(running.url)
            opened = threading.Event()
            async with trio.open_nursery() as nursery:
                result: dict[str, Any] = {}

                async def reader() -> None:
                    call = partial(read_slowly, port, DEADLINE, opened.set)
                    result.update(await trio.to_thread.run_sync(call))

                nursery.start_soon(reader)
                await trio.to_thread.run_sync(opened.wait, DEADLINE)
                with trio.fail_after(DEADLINE):
                    while not running.router.connections:
                        await trio.sleep(0.02)
                connection_id = next(iter(running.router.connections))
                await running.router.disconnect(connection_id, reason="admin", notify_client=True)
    assert result["close"] == 1001, result


# -- what a plain service says reaches the client as it said it -------------------------


async def test_a_command_backend_gets_a_transparent_proxy(tmp_path: Path) -> None:
    def hello_then_going_away(ws: ServerConnection) -> None:
        ws.send("hello")
        ws.close(1001, "bye")

    with backend(hello_then_going_away) as server:
        async with running_router(source(tmp_path, server.port)) as running:

            def talk() -> tuple[list[str | bytes], int | None]:
                got: list[str | bytes] = []
                with connect(running.url, compression=None, open_timeout=DEADLINE) as ws:
                    try:
                        while True:
                            got.append(ws.recv(timeout=DEADLINE))
                    except ConnectionClosed as closed:
                        code = closed.rcvd.code if closed.rcvd else None
                return got, code

            messages, code = await trio.to_thread.run_sync(talk)
    assert messages == ["hello"]  # no connection_routed, no service_switched
    assert code == 1001
    assert server.connections == 1  # the deliberate close was not "failed over"


async def test_a_backend_refusal_reaches_the_client_with_its_status_and_body(
    tmp_path: Path,
) -> None:
    def refuse(connection: ServerConnection, request: Any) -> Response:
        body = b"no entry for you\n"
        headers = Headers([("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return Response(403, "Forbidden", headers, body)

    with backend(lambda ws: None, process_request=refuse) as server:
        async with running_router(source(tmp_path, server.port)) as running:

            def attempt() -> InvalidStatus:
                try:
                    connect(running.url, compression=None, open_timeout=DEADLINE).close()
                except InvalidStatus as refused:
                    return refused
                raise AssertionError("the upgrade was accepted")

            refused = await trio.to_thread.run_sync(attempt)
    assert refused.response.status_code == 403
    assert refused.response.body == b"no entry for you\n"


def close_at_once(ws: ServerConnection) -> None:
    ws.close(1011, "broken")


async def test_a_backend_closing_every_connection_is_not_reconnected_without_limit(
    tmp_path: Path,
) -> None:
    with backend(close_at_once) as server:
        config = source(tmp_path, server.port, notices=True)
        async with running_router(config, failover_grace=2.0) as running:

            def talk() -> tuple[list[str | bytes], int | None]:
                got: list[str | bytes] = []
                with connect(running.url, compression=None, open_timeout=DEADLINE) as ws:
                    try:
                        while True:
                            got.append(ws.recv(timeout=DEADLINE))
                    except ConnectionClosed as closed:
                        return got, closed.rcvd.code if closed.rcvd else None

            with trio.fail_after(DEADLINE * 2):
                messages, code = await trio.to_thread.run_sync(talk)
    assert code == 1011
    assert 2 <= server.connections <= 7  # opted in: failed over, within the bound
    assert any('"UPSTREAM_LOST"' in m for m in messages)
    assert not any('"session_preserved":true' in m for m in messages)


async def test_without_opting_in_a_1011_close_is_passed_to_the_client(tmp_path: Path) -> None:
    with backend(close_at_once) as server:
        async with running_router(source(tmp_path, server.port)) as running:

            def talk() -> int | None:
                with connect(running.url, compression=None, open_timeout=DEADLINE) as ws:
                    try:
                        ws.recv(timeout=DEADLINE)
                    except ConnectionClosed as closed:
                        return closed.rcvd.code if closed.rcvd else None
                return None

            code = await trio.to_thread.run_sync(talk)
    assert code == 1011
    assert server.connections == 1


async def test_after_a_backend_reset_the_client_is_told_not_left_sending(tmp_path: Path) -> None:
    def reset_after_one(ws: ServerConnection) -> None:
        ws.recv()
        sock = ws.socket
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a TCP reset

    with backend(reset_after_one) as server:
        async with running_router(source(tmp_path, server.port)) as running:

            def talk() -> int | None:
                with connect(running.url, compression=None, open_timeout=DEADLINE) as ws:
                    ws.send("one")
                    try:
                        for _ in range(50):
                            ws.send("more")
                            time.sleep(0.02)
                        ws.recv(timeout=DEADLINE)
                    except ConnectionClosed as closed:
                        return closed.rcvd.code if closed.rcvd else None
                return None

            code = await trio.to_thread.run_sync(talk)
    assert code == 1011  # not silence, not a claimed preserved session


async def test_a_vanished_client_is_reported_to_the_backend_as_going_away(
    tmp_path: Path,
) -> None:
    def wait_for_close(ws: ServerConnection) -> None:
        ws.recv(timeout=DEADLINE)

    with backend(wait_for_close) as server:
        async with running_router(source(tmp_path, server.port)) as running:
            port = port_of(running.url)

            def vanish() -> None:
                sock, _client = raw_upgrade(port)
                sock.close()  # no close frame

            await trio.to_thread.run_sync(vanish)
            with trio.fail_after(DEADLINE):
                while not server.close_codes:
                    await trio.sleep(0.02)
    assert server.close_codes == [1001]


# -- the request head -------------------------------------------------------------------


async def test_a_head_over_16_kib_in_one_write_gets_431(tmp_path: Path) -> None:
    with backend(lambda ws: None) as server:
        async with running_router(source(tmp_path, server.port)) as running:
            port = port_of(running.url)
            for size in (17_000, 40_000, 63_000):
                head = upgrade_head(f"X-Filler: {'a' * size}\r\n")
                answer = await trio.to_thread.run_sync(http_answer, port, head)
                assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    assert server.connections == 0


async def test_an_http_1_0_upgrade_is_refused(tmp_path: Path) -> None:
    with backend(lambda ws: None) as server:
        async with running_router(source(tmp_path, server.port)) as running:
            head = upgrade_head(version="1.0")
            answer = await trio.to_thread.run_sync(http_answer, port_of(running.url), head)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
    assert b"HTTP/1.1" in answer.split(b"\r\n\r\n", 1)[1]
    assert server.connections == 0
