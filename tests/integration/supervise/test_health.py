"""Health checks against tests/children/ws_server.py (the independent ``websockets`` library)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import trio

from agentvisor.supervise.health import CheckResult, check_http, check_websocket
from agentvisor.supervise.process import open_launcher
from tests.children import LineReader, child_spec, running

DEADLINE = 10
TIMEOUT = 0.5  # the checks' own bound, where a test needs it to run out


@asynccontextmanager
async def serving(*args: str) -> AsyncIterator[int]:
    """Run ws_server.py on a port of its choosing; yield that port."""
    async with (
        open_launcher() as launcher,
        running(launcher, child_spec("ws_server.py", *args)) as server,
    ):
        with trio.fail_after(DEADLINE):
            yield int(await LineReader(server.stdout).line())


@contextmanager
def silent_port(*, listening: bool) -> Iterator[int]:
    """A port of ours that refuses connections, or (listening) accepts and never answers.

    Bound and held for the whole test, so no other test can take it: a bound
    socket that does not listen makes the kernel refuse; one that listens
    completes TCP handshakes from its backlog without anybody reading.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        if listening:
            sock.listen(8)
        yield sock.getsockname()[1]


async def test_websocket_check_with_protocol_ping_is_healthy() -> None:
    async with serving() as port:
        result = await check_websocket("127.0.0.1", port, "/", timeout=5, protocol_ping=True)
    assert result.ok, result
    assert result.message == "ok"
    assert 0 < result.response_time < 5


async def test_control_ping_alone_passes_without_protocol_pong() -> None:
    async with serving("--no-pong") as port:
        result = await check_websocket("127.0.0.1", port, "/", timeout=5, protocol_ping=False)
    assert result.ok, result


async def test_a_missing_protocol_pong_is_unhealthy() -> None:
    async with serving("--no-pong") as port:
        result = await check_websocket("127.0.0.1", port, "/", timeout=TIMEOUT, protocol_ping=True)
    assert result == CheckResult(False, "no pong within 0.5s", result.response_time)
    assert result.response_time >= TIMEOUT


async def test_a_refused_websocket_connection_is_unhealthy() -> None:
    with silent_port(listening=False) as port:
        result = await check_websocket("127.0.0.1", port, "/", timeout=5, protocol_ping=True)
    assert not result.ok
    assert result.message == "connection refused"


async def test_a_silent_server_times_the_websocket_check_out() -> None:
    with silent_port(listening=True) as port:
        result = await check_websocket("127.0.0.1", port, "/", timeout=TIMEOUT, protocol_ping=True)
    assert not result.ok
    assert result.message == "timed out after 0.5s"


async def test_an_http_answer_to_the_upgrade_is_a_failed_handshake() -> None:
    async with serving("--fail-health") as port:
        result = await check_websocket("127.0.0.1", port, "/health", timeout=5, protocol_ping=True)
    assert not result.ok
    assert result.message == "handshake failed: HTTP 503"


async def test_http_check_is_healthy_on_200() -> None:
    async with serving() as port:
        result = await check_http("127.0.0.1", port, "/health", timeout=5)
    assert result.ok, result
    assert result.message == "ok"


async def test_http_503_is_unhealthy() -> None:
    async with serving("--fail-health") as port:
        result = await check_http("127.0.0.1", port, "/health", timeout=5)
    assert not result.ok
    assert result.message == "HTTP 503"


async def test_a_refused_http_connection_is_unhealthy() -> None:
    with silent_port(listening=False) as port:
        result = await check_http("127.0.0.1", port, "/health", timeout=5)
    assert result.message == "connection refused"
    assert not result.ok


async def test_a_silent_server_times_the_http_check_out() -> None:
    with silent_port(listening=True) as port:
        result = await check_http("127.0.0.1", port, "/health", timeout=TIMEOUT)
    assert not result.ok
    assert result.message == "timed out after 0.5s"


async def test_cancellation_propagates_out_of_a_check() -> None:
    finished = False
    with silent_port(listening=True) as port, trio.CancelScope() as scope:
        scope.cancel()
        await check_websocket("127.0.0.1", port, "/", timeout=5, protocol_ping=True)
        finished = True
    assert scope.cancelled_caught
    assert not finished
