"""The two HTTP/1.1 upgrade handshakes the router does itself (RFC 6455 §4), with h11.

The router is a WebSocket *server* for its clients and a *client* of the
workers; doing both handshakes here, rather than through a WebSocket
library, leaves it holding two plain byte streams it can relay frames
between. h11 parses the requests and responses, so malformed ones are
refused the way a real HTTP server refuses them. The only extension is
permessage-deflate (``compression.py`` decides where it is agreed: with the
client at the router, or by a transparent backend whose answer is passed
back), and a subprotocol is chosen by the worker and passed back to the client.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from urllib.parse import urlsplit

import h11
from attrs import frozen

from agentvisor.router.channels import Channel
from agentvisor.router.compression import backend_agreed

MAX_HEAD_BYTES = 16 * 1024
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: Request headers that belong to one hop (or that the router sets itself): not forwarded.
HOP_HEADERS = frozenset(
    {
        "host",
        "connection",
        "upgrade",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "content-length",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-accept",
        "x-forwarded-for",
        "x-agentvisor-connection-id",
        "x-agentvisor-route",
    }
)


class HandshakeError(Exception):
    """A request the router answers with an HTTP error instead of an upgrade."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class UpstreamRefused(Exception):
    """The worker did not accept the WebSocket upgrade.

    ``status`` and ``content_length``: of the worker's HTTP answer when it
    was one (a 403, 414, 431... refusal), for the router to pass on.
    """

    def __init__(self, message: str, *, status: int | None = None, content_length: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.content_length = content_length


@frozen
class UpgradeRequest:
    """A client's WebSocket upgrade request."""

    target: str  # path and query as sent
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]  # lower-cased names, in order
    key: str

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name]
        return ", ".join(values) if values else None


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


async def read_head(channel: Channel, initial: bytes = b"") -> tuple[bytes, bytes]:
    """Read up to the blank line ending an HTTP head; ``(head, bytes after it)``.

    The caller bounds the time (``handshake_timeout``); the size is bounded
    here. ``EOFError`` when the peer hangs up first.
    """
    buffer = initial
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end + 4 > MAX_HEAD_BYTES or (end < 0 and len(buffer) > MAX_HEAD_BYTES):
            # however it arrived: in one write or in several reads
            raise HandshakeError(431, f"request head larger than {MAX_HEAD_BYTES} bytes")
        if end >= 0:
            return buffer[: end + 4], buffer[end + 4 :]
        data = await channel.recv()
        if not data:
            raise EOFError("connection closed during the handshake")
        buffer += data


def _words(value: str | None) -> set[str]:
    return {item.strip().lower() for item in (value or "").split(",")}


def parse_upgrade(head: bytes) -> UpgradeRequest:
    """Parse and check a client's upgrade request; ``HandshakeError`` names what is wrong."""
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(head)
    try:
        event = connection.next_event()
    except h11.RemoteProtocolError as error:
        raise HandshakeError(400, f"malformed HTTP request: {error}") from None
    if not isinstance(event, h11.Request):
        raise HandshakeError(400, "malformed HTTP request")
    headers = tuple(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in event.headers
    )
    target = event.target.decode("latin-1")
    parts = urlsplit(target)
    request = UpgradeRequest(target, parts.path or "/", parts.query, headers, "")
    if event.method != b"GET":
        raise HandshakeError(405, "WebSocket handshakes use GET")
    if event.http_version != b"1.1":
        version = event.http_version.decode("ascii", "replace")
        raise HandshakeError(400, f"WebSocket handshakes need HTTP/1.1 (got HTTP/{version})")
    if "websocket" not in _words(request.header("upgrade")):
        raise HandshakeError(426, "this is a WebSocket endpoint: send Upgrade: websocket")
    if "upgrade" not in _words(request.header("connection")):
        raise HandshakeError(400, "missing Connection: Upgrade")
    if request.header("sec-websocket-version") != "13":
        raise HandshakeError(426, "unsupported WebSocket version (13 is supported)")
    key = request.header("sec-websocket-key") or ""
    try:
        decoded = base64.b64decode(key, validate=True)
    except ValueError:
        decoded = b""
    if len(decoded) != 16:
        raise HandshakeError(400, "missing or malformed Sec-WebSocket-Key")
    return UpgradeRequest(target, request.path, request.query, headers, key)


def accept_response(
    key: str, subprotocol: str | None = None, extensions: str | None = None
) -> bytes:
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
    ]
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    426: "Upgrade Required",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def error_response(status: int, message: str) -> bytes:
    body = (message + "\n").encode("utf-8")
    extra = "Sec-WebSocket-Version: 13\r\n" if status == 426 else ""
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n{extra}"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def upstream_request(
    *,
    host: str,
    port: int,
    path: str,
    query: str,
    headers: Iterable[tuple[str, str]],
    extra: Iterable[tuple[str, str]],
) -> tuple[bytes, str]:
    """The upgrade request to a worker and the key it must answer to.

    The client's end-to-end headers are passed on (cookies, authorization,
    user agent, origin, offered subprotocols); hop-by-hop ones are not, and
    the router's own ``X-Forwarded-For`` / ``X-Agentvisor-*`` replace any
    the client sent.
    """
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    target = path + ("?" + query if query else "")
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host}:{port}" if ":" not in host else f"Host: [{host}]:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    lines += [f"{name}: {value}" for name, value in headers if name not in HOP_HEADERS]
    lines += [f"{name}: {value}" for name, value in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), key


def check_upstream_response(
    head: bytes, key: str, *, offered: bool = False
) -> tuple[str | None, str | None]:
    """Check a worker's answer to our upgrade: its subprotocol and its extensions, if any.

    ``offered``: the client's permessage-deflate offers were passed on (a
    transparent route); then the worker may agree to permessage-deflate, and
    nothing else.
    """
    connection = h11.Connection(h11.CLIENT)
    connection.send(
        h11.Request(
            method="GET",
            target="/",
            headers=[("Host", "worker"), ("Connection", "Upgrade"), ("Upgrade", "websocket")],
        )
    )
    connection.receive_data(head)
    try:
        event = connection.next_event()
    except h11.RemoteProtocolError as error:
        raise UpstreamRefused(f"malformed handshake answer: {error}") from None
    if not isinstance(event, h11.InformationalResponse | h11.Response):
        raise UpstreamRefused("malformed handshake answer")
    if event.status_code != 101:
        length = 0
        for name, value in event.headers:
            if name == b"content-length" and value.isdigit():
                length = int(value)
        raise UpstreamRefused(
            f"the worker answered HTTP {event.status_code}",
            status=event.status_code,
            content_length=length,
        )
    answer = {name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers}
    if answer.get("sec-websocket-accept") != accept_key(key):
        raise UpstreamRefused("the worker's Sec-WebSocket-Accept does not match")
    extensions = answer.get("sec-websocket-extensions") or None
    agreed = backend_agreed(extensions, offered=offered)
    if agreed is None:
        raise UpstreamRefused("the worker enabled an extension the router did not offer")
    return answer.get("sec-websocket-protocol") or None, extensions if agreed else None
