"""The router's connection to one worker instance: opened with the client's headers.

The upgrade request carries what the worker needs to know about the client
(PROTOCOL.md §2): ``X-Forwarded-For``, ``X-Agentvisor-Connection-Id``,
``X-Agentvisor-Route``, plus the client's own end-to-end headers and query,
so a worker behind the router sees what it would have seen directly.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen

from agentvisor.router.channels import ChannelClosed, SocketChannel, connect_tcp
from agentvisor.router.handshake import (
    HandshakeError,
    UpgradeRequest,
    UpstreamRefused,
    check_upstream_response,
    read_head,
    upstream_request,
)
from agentvisor.supervise.registry import Endpoint

#: Bytes of a worker's refusal body passed on to the client.
MAX_REFUSAL_BODY = 64 * 1024


@frozen
class Refusal:
    """A worker's HTTP answer to the upgrade that was not a 101: passed on to the client."""

    status: int
    response: bytes  # head and (bounded) body, as the worker sent them


class UpstreamFailed(Exception):
    """Connecting or upgrading to a worker failed; ``instance_id`` says which.

    ``refusal``: the worker's whole HTTP answer (head and body) when it
    refused the upgrade with a 4xx status, which the client gets as it is.
    """

    def __init__(self, instance_id: str, reason: str, refusal: Refusal | None = None) -> None:
        super().__init__(f"{instance_id}: {reason}")
        self.instance_id = instance_id
        self.reason = reason
        self.refusal = refusal


class Upstream:
    """A worker connection after its handshake (its frames are the connection core's)."""

    __slots__ = ("channel", "endpoint", "extensions", "initial", "subprotocol")

    def __init__(
        self,
        endpoint: Endpoint,
        channel: SocketChannel,
        initial: bytes,
        subprotocol: str | None,
        extensions: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.channel = channel
        self.initial = initial  # bytes that came right after the worker's 101
        self.subprotocol = subprotocol
        self.extensions = extensions  # permessage-deflate as the worker agreed (passed on)

    @property
    def url(self) -> str:
        host = self.endpoint.host
        host = f"[{host}]" if ":" in host else host
        return f"ws://{host}:{self.endpoint.port}{self.endpoint.ws_path}"


def forwarded_headers(
    request: UpgradeRequest, client_ip: str, connection_id: str, route: str
) -> Sequence[tuple[str, str]]:
    previous = request.header("x-forwarded-for")
    forwarded = f"{previous}, {client_ip}" if previous else client_ip
    return (
        ("X-Forwarded-For", forwarded),
        ("X-Agentvisor-Connection-Id", connection_id),
        ("X-Agentvisor-Route", route),
    )


async def open_upstream(
    endpoint: Endpoint,
    request: UpgradeRequest,
    *,
    client_ip: str,
    connection_id: str,
    route: str,
    extensions: str | None = None,
) -> Upstream:
    """Connect and upgrade; ``UpstreamFailed`` says why not. The caller bounds the time.

    ``extensions``: the client's permessage-deflate offers, for a transparent route.
    """
    try:
        channel = await connect_tcp(endpoint.host, endpoint.port)
    except OSError as error:
        raise UpstreamFailed(endpoint.instance_id, error.strerror or str(error)) from None
    try:
        head, key = upstream_request(
            host=endpoint.host,
            port=endpoint.port,
            path=endpoint.ws_path,
            query=request.query,
            headers=request.headers,
            extra=(
                *forwarded_headers(request, client_ip, connection_id, route),
                *([("Sec-WebSocket-Extensions", extensions)] if extensions else []),
            ),
        )
        await channel.send(head)
        answer, rest = await read_head(channel)
        try:
            subprotocol, agreed = check_upstream_response(
                answer, key, offered=extensions is not None
            )
        except UpstreamRefused as refused:
            if refused.status is None or not 400 <= refused.status < 500:
                raise
            body = await _read_body(channel, rest, refused.content_length)
            channel.close()
            refusal = Refusal(refused.status, answer + body)
            raise UpstreamFailed(endpoint.instance_id, str(refused), refusal) from None
    except (*ChannelClosed, EOFError, HandshakeError, UpstreamRefused) as error:
        channel.close()
        raise UpstreamFailed(endpoint.instance_id, str(error) or type(error).__name__) from None
    except BaseException:
        channel.close()
        raise
    return Upstream(endpoint, channel, rest, subprotocol, agreed)


async def _read_body(channel: SocketChannel, rest: bytes, length: int) -> bytes:
    """The body of a refusal: ``Content-Length`` bytes (bounded), or none."""
    wanted = min(length, MAX_REFUSAL_BODY)
    body = rest
    while len(body) < wanted:
        try:
            data = await channel.recv()
        except ChannelClosed:
            break
        if not data:
            break
        body += data
    return body[:wanted]
