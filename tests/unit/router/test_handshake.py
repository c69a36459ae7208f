"""The upgrade handshakes the router does itself (RFC 6455 §4)."""

from __future__ import annotations

import pytest

from agentvisor.router.handshake import (
    HandshakeError,
    UpstreamRefused,
    accept_key,
    accept_response,
    check_upstream_response,
    parse_upgrade,
    upstream_request,
)

REQUEST = (
    b"GET /ws?service=a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate\r\nX-Agentvisor-Route: forged\r\n"
    b"Cookie: c=1\r\n\r\n"
)


def test_the_rfc_example_key() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_an_upgrade_request_is_parsed() -> None:
    request = parse_upgrade(REQUEST)

    assert (request.path, request.query) == ("/ws", "service=a")
    assert request.header("cookie") == "c=1"
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in accept_response(request.key)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ((b"GET /ws", b"POST /ws"), 405),
        ((b"Upgrade: websocket\r\n", b""), 426),
        ((b"Version: 13", b"Version: 8"), 426),
        ((b"dGhlIHNhbXBsZSBub25jZQ==", b"short"), 400),
        ((b"keep-alive, Upgrade", b"keep-alive"), 400),
        ((b"HTTP/1.1\r\n", b"HTTP/1.1 junk\r\n"), 400),
    ],
)
def test_bad_requests_get_an_http_status(change: tuple[bytes, bytes], status: int) -> None:
    with pytest.raises(HandshakeError) as refused:
        parse_upgrade(REQUEST.replace(*change))
    assert refused.value.status == status


def test_the_upstream_request_drops_hop_headers_and_sets_the_routers() -> None:
    request = parse_upgrade(REQUEST)
    head, key = upstream_request(
        host="127.0.0.1",
        port=8100,
        path="/",
        query=request.query,
        headers=request.headers,
        extra=[("X-Agentvisor-Route", "default")],
    )
    text = head.decode()

    assert text.startswith("GET /?service=a HTTP/1.1\r\nHost: 127.0.0.1:8100\r\n")
    assert "permessage-deflate" not in text
    assert "forged" not in text
    assert "cookie: c=1" in text
    assert f"Sec-WebSocket-Key: {key}" in text


def test_the_workers_answer_is_checked() -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    good = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: v1\r\n\r\n"
    )
    assert check_upstream_response(good, key) == ("v1", None)
    deflate = good.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
    assert check_upstream_response(deflate, key, offered=True) == ("v1", "permessage-deflate")
    with pytest.raises(UpstreamRefused):  # not offered (an agent route): refused
        check_upstream_response(deflate, key)
    with pytest.raises(UpstreamRefused):  # offered, but another extension came back
        check_upstream_response(deflate.replace(b"permessage", b"x-webkit"), key, offered=True)
    with pytest.raises(UpstreamRefused):
        check_upstream_response(good.replace(b"s3pP", b"xxxx"), key)
    with pytest.raises(UpstreamRefused):
        check_upstream_response(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", key)
    with pytest.raises(UpstreamRefused):
        check_upstream_response(b"garbage\r\n\r\n", key)
