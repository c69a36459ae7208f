"""One health check of one worker instance, as a result rather than an exception.

The supervisor runs these on every instance's ``health.interval`` and counts
consecutive results against the thresholds; a failed check is data (the
message lands in the API, the console and the health history), so nothing
here raises except ``Cancelled``. Each check is bounded as a whole by
``timeout`` (the config's ``health.timeout``): connect, handshake, ping and
pong together.

httpx and trio-websocket are imported by the first check that needs them, not
with this module: the daemon imports it before its first worker starts, and
the two cost about as much CPU as the rest of the supervisor (the daemon
imports them in the background once the workers are starting).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import attrs
import trio

if TYPE_CHECKING:
    from trio_websocket import WebSocketConnection


@attrs.frozen
class CheckResult:
    ok: bool
    message: str  # "ok", or what failed, e.g. "connection refused", "HTTP 503"
    response_time: float  # seconds from the start of the check to its verdict


@attrs.define
class _Progress:
    """How far a WebSocket check got, read after it failed or timed out."""

    stage: str = "connect"  # connect | pong | close
    answered_after: float = 0.0


# ASYNC109: the timeout is health.timeout of the config, and running out of it
# is a result ("timed out after 5s") rather than an exception.
async def check_websocket(
    host: str,
    port: int,
    path: str,
    *,
    timeout: float,  # noqa: ASYNC109
    protocol_ping: bool,
) -> CheckResult:
    """Open ``ws://host:port/path``, exchange a ping and its pong, close.

    The WebSocket ping control frame proves the server's WebSocket layer
    answers. With ``protocol_ping`` (agent workers) the text frame
    ``{"event": "ping"}`` must also be answered by ``{"event": "pong"}``,
    which proves the application loop answers too; other frames before the
    pong are skipped. A server that answered but is slow to close is healthy.
    """
    started = trio.current_time()
    progress = _Progress()
    try:
        with trio.move_on_after(timeout):
            await _exchange_pings(host, port, path, protocol_ping, progress, started)
    except Exception as exc:  # a check reports every failure, never raises it
        if progress.stage != "close":
            return CheckResult(False, _describe(exc, progress.stage), trio.current_time() - started)
    if progress.stage == "close":
        return CheckResult(True, "ok", progress.answered_after)
    if progress.stage == "pong":
        return CheckResult(False, f"no pong within {timeout:g}s", trio.current_time() - started)
    return CheckResult(False, f"timed out after {timeout:g}s", trio.current_time() - started)


async def _exchange_pings(
    host: str, port: int, path: str, protocol_ping: bool, progress: _Progress, started: float
) -> None:
    """The WebSocket conversation of a check, on a TCP stream this function owns.

    Not ``open_websocket``: it leaves the socket to the garbage collector when
    the handshake is cancelled or rejected (trio-websocket 0.12), which under
    ``-W error`` turns into a ResourceWarning and in production into a late
    close. Here the stream is closed on every way out.
    """
    from trio_websocket import wrap_client_stream

    stream = await trio.open_tcp_stream(host, port)
    try:
        async with trio.open_nursery() as nursery:
            connection = await wrap_client_stream(
                nursery, stream, f"{_url_host(host)}:{port}", path or "/"
            )
            progress.stage = "pong"
            await connection.ping()
            if protocol_ping:
                await _exchange_protocol_ping(connection)
            progress.stage = "close"
            progress.answered_after = trio.current_time() - started
            await connection.aclose()  # also ends the reader task in the nursery
    finally:
        await trio.aclose_forcefully(stream)


async def _exchange_protocol_ping(connection: WebSocketConnection) -> None:
    await connection.send_message(json.dumps({"event": "ping"}))
    while True:
        message = await connection.get_message()
        try:
            frame = json.loads(message)
        except ValueError:
            continue  # not JSON: not our pong
        if isinstance(frame, dict) and frame.get("event") == "pong":
            return


async def check_http(
    host: str,
    port: int,
    path: str,
    *,
    timeout: float,  # noqa: ASYNC109
) -> CheckResult:
    """GET ``http://host:port/path``; any 2xx status is healthy."""
    import httpx

    started = trio.current_time()
    url = f"http://{_url_host(host)}:{port}{path if path.startswith('/') else '/' + path}"
    with trio.move_on_after(timeout):
        try:
            # trust_env=False: a health check of a local port must never go
            # through HTTP(S)_PROXY. verify=False: plain http, and it spares
            # loading the CA bundle (~25 ms of CPU) on every check.
            async with httpx.AsyncClient(timeout=timeout, trust_env=False, verify=False) as client:
                response = await client.get(url)
        except httpx.TimeoutException:
            return CheckResult(
                False, f"timed out after {timeout:g}s", trio.current_time() - started
            )
        except (httpx.HTTPError, OSError) as exc:
            return CheckResult(False, _describe(exc, "request"), trio.current_time() - started)
        except Exception as exc:  # a check reports every failure, never raises it
            return CheckResult(False, _unexpected(exc), trio.current_time() - started)
        elapsed = trio.current_time() - started
        if response.is_success:
            return CheckResult(True, "ok", elapsed)
        return CheckResult(False, f"HTTP {response.status_code}", elapsed)
    return CheckResult(False, f"timed out after {timeout:g}s", trio.current_time() - started)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _describe(exc: BaseException, stage: str) -> str:
    """A short, operator-readable reason for a failed check.

    The telling exception may sit in a cause chain (httpx, trio's connect
    errors) or in an exception group (trio-websocket's reader task).
    """
    from trio_websocket import ConnectionClosed, ConnectionRejected

    chain = _chain(exc)
    if any(isinstance(link, ConnectionRefusedError) for link in chain):
        return "connection refused"
    for link in chain:
        if isinstance(link, ConnectionRejected):
            return f"handshake failed: HTTP {link.status_code}"
    for link in chain:
        if isinstance(link, ConnectionClosed):
            reason = link.reason
            detail = f" ({reason.code} {reason.name})" if reason is not None else ""
            prefix = "no pong: " if stage == "pong" else "handshake failed: "
            return f"{prefix}connection closed{detail}"
    for link in chain:
        if isinstance(link, OSError) and link.strerror:
            return link.strerror.lower()  # "connection reset by peer", "no route to host"
    leaf = exc
    while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
        leaf = leaf.exceptions[0]
    text = str(leaf) or type(leaf).__name__
    return f"handshake failed: {text}" if stage == "connect" else text


def _unexpected(exc: Exception) -> str:
    return f"check failed: {type(exc).__name__}: {exc}"


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, its causes and contexts, and the members of exception groups."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if any(current is known for known in seen):
            continue
        seen.append(current)
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                todo.append(linked)
    return seen
