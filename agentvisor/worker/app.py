"""The worker's ASGI app: the agent event protocol on ``ws_path``, ``/health`` and ``/stats``.

Written with anyio, so Hypercorn can serve it on asyncio or on trio. Each
WebSocket connection has a reader (frames → ``parse_frame`` → the session
manager) and a writer task that sends the frames sessions queue for it; a
session never waits for a client, and a client too slow to read its events
is disconnected (it can resume and get them from the replay buffer).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Any

import anyio
from attrs import frozen

from agentvisor.worker.limits import DEFAULT_MAX_MESSAGE_BYTES
from agentvisor.worker.protocol import (
    ErrorCode,
    FrameError,
    encode_event,
    error_fields,
    frame_error_fields,
    parse_frame,
    stamp,
)
from agentvisor.worker.sessions import SessionManager
from agentvisor.worker.turns import utc_timestamp

log = logging.getLogger("agentvisor.worker")

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Any], Awaitable[None]]

CLOSE_SERVICE_RESTART = 1012  # the router fails over on it (PROTOCOL.md §2)
CLOSE_POLICY = 1008
MAX_PENDING_FRAMES = 10_000


class Phase(StrEnum):
    STARTING = "starting"
    OK = "ok"
    SHUTTING_DOWN = "shutting_down"


@frozen
class _Close:
    code: int
    reason: str


class Connection:
    """One WebSocket client: the frames queued for it and the sessions attached to it."""

    def __init__(self, connection_id: str, max_pending: int = MAX_PENDING_FRAMES) -> None:
        self.id = connection_id
        self.attached: set[str] = set()
        self.closed = False
        self._max_pending = max_pending
        self._send, self._receive = anyio.create_memory_object_stream[str | _Close](float("inf"))

    def push(self, text: str) -> bool:
        if self.closed:
            return False
        if self._send.statistics().current_buffer_used >= self._max_pending:
            log.warning("connection %s reads too slowly; disconnecting it", self.id)
            self.close(CLOSE_POLICY, "too slow reading events; resume the session")
            return False
        self._send.send_nowait(text)
        return True

    def close(self, code: int, reason: str = "") -> None:
        """Send a close frame after the queued frames; queue nothing more."""
        if not self.closed:
            self.closed = True
            self._send.send_nowait(_Close(code, reason))
            self._send.close()

    def gone(self) -> None:
        """The client went away: stop queueing."""
        self.closed = True
        self._send.close()

    async def write(self, send: Send) -> None:
        async with self._receive:
            async for item in self._receive:
                if isinstance(item, _Close):
                    await send(
                        {"type": "websocket.close", "code": item.code, "reason": item.reason}
                    )
                    return
                await send({"type": "websocket.send", "text": item})


class WorkerApp:
    """ASGI 3 app of one worker. ``manager`` is set once the agent is ready."""

    def __init__(
        self,
        *,
        ws_path: str = "/",
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        self.ws_path = ws_path
        self.max_message_bytes = max_message_bytes
        self.info = dict(info or {})  # extra fields of /health (agent, service, replica, pid…)
        self.phase = Phase.STARTING
        self.manager: SessionManager | None = None
        self.connections: set[Connection] = set()

    def ready(self, manager: SessionManager) -> None:
        self.manager = manager
        self.phase = Phase.OK

    def close_connections(self, code: int = CLOSE_SERVICE_RESTART, reason: str = "") -> None:
        for connection in list(self.connections):
            connection.close(code, reason)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    # ------------------------------------------------------------ HTTP

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def health(self) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"status": self.phase.value}
        if self.manager is not None:
            stats = self.manager.statistics()
            body.update(sessions=stats["sessions"]["active"], uptime=stats["uptime"])
        body.update(self.info)
        return (200 if self.phase is Phase.OK else 503), body

    async def _http(self, scope: Scope, send: Send) -> None:
        method, path = scope.get("method", "GET"), scope.get("path", "/")
        status: int
        body: dict[str, Any]
        if path not in ("/health", "/stats"):
            status, body = 404, {"error": f"no such endpoint {path}; try /health or /stats"}
        elif method not in ("GET", "HEAD"):
            status, body = 405, {"error": f"{method} not allowed; use GET"}
        elif path == "/health":
            status, body = self.health()
        elif self.manager is None:
            status, body = 503, {"status": self.phase.value}
        else:
            status, body = 200, self.manager.statistics() | {"connections": len(self.connections)}
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else payload})

    async def _refuse(self, scope: Scope, send: Send, status: int, message: str) -> None:
        """Refuse a WebSocket handshake with an HTTP status (403 without the extension)."""
        if "websocket.http.response" in scope.get("extensions", {}):
            payload = json.dumps({"status": self.phase.value, "error": message}).encode()
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": payload})
        else:
            await send({"type": "websocket.close", "code": CLOSE_POLICY})

    # ------------------------------------------------------------ WebSocket

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        manager = self.manager
        if scope.get("path") != self.ws_path:
            await self._refuse(scope, send, 404, f"the agent protocol is served on {self.ws_path}")
            return
        if manager is None or self.phase is not Phase.OK:
            await self._refuse(scope, send, 503, f"worker is {self.phase.value}")
            return
        await send({"type": "websocket.accept"})
        connection = Connection(_connection_id(scope))
        self.connections.add(connection)
        manager.stats.connections += 1
        manager.stats.connections_total += 1
        try:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(connection.write, send)
                await self._read(connection, manager, receive)
                task_group.cancel_scope.cancel()
        finally:
            connection.gone()
            manager.disconnect(connection)
            self.connections.discard(connection)
            manager.stats.connections -= 1

    async def _read(
        self, connection: Connection, manager: SessionManager, receive: Receive
    ) -> None:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                return
            if kind == "websocket.receive":
                await self.handle_frame(
                    connection, manager, message.get("text"), message.get("bytes")
                )

    async def handle_frame(
        self, connection: Connection, manager: SessionManager, text: str | None, data: bytes | None
    ) -> None:
        """Answer one frame; whatever it holds, this neither raises nor closes the connection."""
        request = parse_frame(text, data, max_message_bytes=self.max_message_bytes)
        if isinstance(request, FrameError):
            connection.push(encode_event(stamp(frame_error_fields(request), utc_timestamp())))
            return
        try:
            await manager.handle(request, connection)
        except Exception:
            log.exception("internal error handling %s on connection %s", request, connection.id)
            fields = error_fields(ErrorCode.INTERNAL_ERROR, "internal error in the worker")
            connection.push(encode_event(stamp(fields, utc_timestamp())))


def _connection_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-agentvisor-connection-id":
            return str(value.decode("latin-1"))[:64]
    return uuid.uuid4().hex[:12]
