"""A small httpx client for the admin API, sync and async.

The server is ``http(s)://host:port`` or the path of the admin unix socket
(``unix:`` prefix optional). Each endpoint is described once, as a ``Call``,
in ``_Endpoints``; the sync and async clients differ only in how they send
one, and share the decoding of the ``{"success", "data" | "error"}`` envelope.
Methods return the envelope's ``data``. API errors raise ``ApiError``; a
server that cannot be reached (refused, no socket, dropped, timed out) raises
``Unreachable``.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Awaitable, Mapping
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote

import attrs
import httpx

from agentvisor import __version__

#: How much longer than the server's own bound a call may take before it is abandoned.
SLACK = 15.0
DEFAULT_TIMEOUT = 10.0

R = TypeVar("R")


class ApiError(Exception):
    """The admin API answered with an error envelope (or something unreadable)."""

    def __init__(
        self, code: str, message: str, details: Mapping[str, Any] | None = None, status: int = 0
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.status = status


class Unreachable(Exception):
    """Nothing answered at ``target``; ``reason`` says why when it is known.

    ``maybe_down`` is False when agentvisor may well be running but we may not
    talk to it (a socket of another user), so "is it running?" would mislead.
    """

    def __init__(self, target: str, reason: str = "", *, maybe_down: bool = True) -> None:
        super().__init__(
            f"cannot reach agentvisor at {target}" + (f" ({reason})" if reason else "")
        )
        self.target = target
        self.reason = reason
        self.maybe_down = maybe_down


def probe_unix_socket(server: str, path: str) -> None:
    """Connect once to ``path`` and hang up; raises ``Unreachable`` saying what is wrong.

    Besides the precise reason, this avoids httpcore's sync backend leaking its
    socket when a unix connect fails (the redis-py #3314 kind of bug), which
    would be a ResourceWarning in every CLI call while agentvisor is down.
    """
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(DEFAULT_TIMEOUT)
        probe.connect(path)
    except FileNotFoundError:
        raise Unreachable(server) from None
    except PermissionError:
        raise Unreachable(
            server, "permission denied: run as the user agentvisor runs as", maybe_down=False
        ) from None
    except OSError as error:
        if error.errno == errno.ECONNREFUSED:
            raise Unreachable(server) from None
        raise Unreachable(server, error.strerror or str(error)) from None
    finally:
        probe.close()


@attrs.frozen
class Call:
    method: str
    path: str
    params: dict[str, str | int | float] = attrs.field(factory=dict)
    timeout: float | None = None  # None: the client's default


def parse_server(server: str) -> tuple[str, str | None]:
    """``server`` → (base URL, unix socket path or None)."""
    if server.startswith(("http://", "https://")):
        return server.rstrip("/"), None
    return "http://agentvisor", server.removeprefix("unix:")


def decode(response: httpx.Response) -> Any:
    """The ``data`` of a success envelope; raises ``ApiError`` for anything else."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiError(
            "BAD_RESPONSE",
            f"unexpected answer from the admin API (HTTP {response.status_code})",
            status=response.status_code,
        )
    if body.get("success") is True and response.is_success:
        return body.get("data")
    if "success" not in body and response.is_success:
        return body  # endpoints outside the envelope, like /health
    error = body.get("error")
    if not isinstance(error, dict):
        raise ApiError(
            "BAD_RESPONSE",
            f"the admin API failed without an error object (HTTP {response.status_code})",
            status=response.status_code,
        )
    details = error.get("details")
    raise ApiError(
        str(error.get("code", "INTERNAL_ERROR")),
        str(error.get("message", "unknown error")),
        details if isinstance(details, dict) else {},
        response.status_code,
    )


def _service_path(name: str, *rest: str) -> str:
    return "/".join(["/api/v1/services", quote(name, safe=""), *rest])


def _drop_none(**params: str | int | float | bool | None) -> dict[str, str | int | float]:
    clean: dict[str, str | int | float] = {}
    for key, value in params.items():
        if value is None:
            continue
        clean[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return clean


class _Endpoints(Generic[R]):
    """Every endpoint, once; ``_send`` is the only difference between sync and async."""

    def _send(self, call: Call) -> R:
        raise NotImplementedError

    def health(self) -> R:
        return self._send(Call("GET", "/health"))

    def info(self) -> R:
        return self._send(Call("GET", "/api/v1/info"))

    def services(
        self,
        *,
        tag: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> R:
        params = _drop_none(tag=tag, status=status, limit=limit, offset=offset)
        return self._send(Call("GET", "/api/v1/services", params))

    def service(self, name: str) -> R:
        return self._send(Call("GET", _service_path(name)))

    def instances(self, name: str) -> R:
        return self._send(Call("GET", _service_path(name, "instances")))

    def _operate(self, name: str, action: str, timeout: float | None, force: bool) -> R:
        params = _drop_none(timeout=timeout, force=force or None)
        bound = (timeout if timeout is not None else 60.0) + SLACK
        return self._send(Call("POST", _service_path(name, action), params, bound))

    def start(self, name: str, *, timeout: float | None = None) -> R:
        return self._operate(name, "start", timeout, False)

    def stop(self, name: str, *, timeout: float | None = None) -> R:
        return self._operate(name, "stop", timeout, False)

    def restart(self, name: str, *, force: bool = False, timeout: float | None = None) -> R:
        return self._operate(name, "restart", timeout, force)

    def reload(self) -> R:
        return self._send(Call("POST", "/api/v1/reload", timeout=60.0 + SLACK))

    def logs(
        self,
        name: str,
        *,
        limit: int | None = None,
        stream: str | None = None,
        instance: int | None = None,
        since: int | None = None,
        wait: float | None = None,
    ) -> R:
        params = _drop_none(limit=limit, stream=stream, instance=instance, since=since, wait=wait)
        path = "/api/v1/logs/services/" + quote(name, safe="")
        return self._send(Call("GET", path, params, None if wait is None else wait + SLACK))


def _client_options(server: str, token: str | None, timeout: float) -> dict[str, Any]:
    base_url, _uds = parse_server(server)
    headers = {"User-Agent": f"agentvisor-client/{__version__}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return {"base_url": base_url, "headers": headers, "timeout": timeout, "trust_env": False}


def _unreachable(server: str, error: httpx.TransportError) -> Unreachable:
    if isinstance(error, httpx.TimeoutException):
        return Unreachable(server, "no answer in time")
    return Unreachable(server)


class AgentvisorClient(_Endpoints[Any]):
    """Blocking client, for the CLI: ``with AgentvisorClient(server) as c: c.info()``."""

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server
        _base, uds = parse_server(server)
        self._probe_path = uds if transport is None else None
        self._probe_due = True
        if transport is None and uds is not None:
            transport = httpx.HTTPTransport(uds=uds)
        self._http = httpx.Client(transport=transport, **_client_options(server, token, timeout))

    def _send(self, call: Call) -> Any:
        if self._probe_path is not None and self._probe_due:
            probe_unix_socket(self.server, self._probe_path)
            self._probe_due = False
        timeout = call.timeout if call.timeout is not None else httpx.USE_CLIENT_DEFAULT
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, timeout=timeout
            )
        except httpx.TransportError as error:
            self._probe_due = True  # the next connect may fail too: probe it first
            raise _unreachable(self.server, error) from error
        return decode(response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncAgentvisorClient(_Endpoints[Awaitable[Any]]):
    """Async client (trio or asyncio): ``async with AsyncAgentvisorClient(server) as c``."""

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.server = server
        _base, uds = parse_server(server)
        if transport is None and uds is not None:
            transport = httpx.AsyncHTTPTransport(uds=uds)
        self._http = httpx.AsyncClient(
            transport=transport, **_client_options(server, token, timeout)
        )

    async def _send(self, call: Call) -> Any:
        timeout = call.timeout if call.timeout is not None else httpx.USE_CLIENT_DEFAULT
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, timeout=timeout
            )
        except httpx.TransportError as error:
            raise _unreachable(self.server, error) from error
        return decode(response)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
