"""A small httpx client for the admin API, sync and async.

The server is ``http(s)://host:port`` or the path of the admin unix socket
(``unix:`` prefix optional). Each endpoint is described once, as a ``Call``,
in ``_Endpoints``; the sync and async clients differ only in how they send
one, and share the decoding of the ``{"success", "data" | "error"}`` envelope.
Methods return the envelope's ``data``. A request body is checked before it
is sent by the declaration the server parses it with (``api.bodies``: the
same schema, the same message naming the field), so the client and the
server cannot disagree about it. API errors raise ``ApiError``; a
server that cannot be reached (refused, no socket, dropped, timed out) raises
``Unreachable``. ``source`` names the caller in the audit log
(``agentvisorctl`` passes ``cli``; the server's default is ``api``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote

import attrs
import httpx

from agentvisor import __version__
from agentvisor.api import bodies
from agentvisor.api.check import Body
from agentvisor.envelope import DEFAULT_TIMEOUT, SseParser, decode, parse_server, probe_unix_socket
from agentvisor.envelope import ApiError as ApiError
from agentvisor.envelope import Unreachable as Unreachable
from agentvisor.errors import AgentvisorError

#: How much longer than the server's own bound a call may take before it is abandoned.
SLACK = 15.0
#: Who is asking, recorded as the ``source`` of operator actions in the audit log.
SOURCE_HEADER = "X-Agentvisor-Source"

R = TypeVar("R")


@attrs.frozen
class Call:
    method: str
    path: str
    params: dict[str, str | int | float] = attrs.field(factory=dict)
    timeout: float | None = None  # None: the client's default
    body: Any = None  # sent as JSON when not None


def _service_path(name: str, *rest: str) -> str:
    return "/".join(["/api/v1/services", quote(name, safe=""), *rest])


def _health_path(name: str, *rest: str) -> str:
    return "/".join(["/api/v1/health/services", quote(name, safe=""), *rest])


def _rule_path(name: str) -> str:
    return "/api/v1/routing/rules/" + quote(name, safe="")


def _without_none(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def checked(body: Body[Any], value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` if the server would accept its shape, else the ``ApiError`` (400) that the
    server would answer, raised before anything is sent."""
    try:
        return body.check(dict(value))
    except AgentvisorError as error:
        raise ApiError(error.code, error.message, error.details, 400) from None


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

    def preview_reload(self) -> R:
        """What a reload would do, the file read with agentvisor's environment; changes nothing."""
        params: dict[str, str | int | float] = {"dry_run": "true"}
        return self._send(Call("POST", "/api/v1/reload", params, timeout=60.0 + SLACK))

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

    # -- editing services (agentvisor.toml) -------------------------------------------

    def register(self, name: str, **fields: Any) -> R:
        """Register a service: ``agent=`` (a file) or ``command=``, plus any setting
        (``tags``, ``port``, ``replicas``, ``max_sessions``, ``config={...}`` …)."""
        body = checked(bodies.REGISTER, {"name": name, **_without_none(fields)})
        return self._send(Call("POST", "/api/v1/services", body=body, timeout=60.0 + SLACK))

    def update_config(self, name: str, changes: Mapping[str, Any]) -> R:
        """Merge-patch a service's settings (``None`` resets one to its default)."""
        path = _service_path(name, "config")
        body = checked(bodies.CONFIG_CHANGES, changes)
        return self._send(Call("PUT", path, body=body, timeout=60.0 + SLACK))

    def unregister(self, name: str, *, timeout: float | None = None) -> R:
        params = _drop_none(timeout=timeout)
        bound = (timeout if timeout is not None else 60.0) + SLACK
        return self._send(Call("DELETE", _service_path(name), params, bound))

    def scale(self, name: str, replicas: int) -> R:
        body = checked(bodies.SCALE, {"replicas": replicas})
        return self._send(Call("POST", _service_path(name, "scale"), body=body, timeout=60.0))

    # -- stats, health, history ----------------------------------------------------------

    def service_stats(self, name: str) -> R:
        return self._send(Call("GET", _service_path(name, "stats")))

    def service_health(self, name: str) -> R:
        return self._send(Call("GET", _health_path(name)))

    def check_health(self, name: str) -> R:
        """Run one health check of every instance now."""
        return self._send(Call("POST", _health_path(name, "check"), timeout=60.0))

    def health_history(
        self,
        name: str,
        *,
        limit: int | None = None,
        offset: int | None = None,
        instance: int | None = None,
    ) -> R:
        params = _drop_none(limit=limit, offset=offset, instance=instance)
        return self._send(Call("GET", _health_path(name, "history"), params))

    def stats(self) -> R:
        """The system overview (``GET /stats/overview``)."""
        return self._send(Call("GET", "/api/v1/stats/overview"))

    def timeseries(
        self,
        metric: str,
        *,
        period: str | None = None,
        interval: str | None = None,
        service: str | None = None,
    ) -> R:
        params = _drop_none(metric=metric, period=period, interval=interval, service_id=service)
        return self._send(Call("GET", "/api/v1/stats/timeseries", params))

    def search_logs(
        self,
        query: str,
        *,
        service: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> R:
        params = _drop_none(query=query, service_id=service, limit=limit, offset=offset)
        return self._send(Call("GET", "/api/v1/logs/search", params))

    def events(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        since: float | str | None = None,
        service: str | None = None,
        kind: str | None = None,
    ) -> R:
        """The audit log, newest first; ``since`` is epoch seconds or ISO 8601."""
        params = _drop_none(limit=limit, offset=offset, since=since, service_id=service, kind=kind)
        return self._send(Call("GET", "/api/v1/events", params))

    # -- routing rules ([[routes]] of agentvisor.toml) ----------------------------------------

    def rules(
        self, *, enabled: bool | None = None, limit: int | None = None, offset: int | None = None
    ) -> R:
        params = _drop_none(enabled=enabled, limit=limit, offset=offset)
        return self._send(Call("GET", "/api/v1/routing/rules", params))

    def rule(self, name: str) -> R:
        return self._send(Call("GET", _rule_path(name)))

    def create_rule(self, rule: Mapping[str, Any]) -> R:
        """``rule``: ``name``, ``priority``, ``conditions`` / ``match``, ``target_tags`` …"""
        body = checked(bodies.RULE, rule)
        return self._send(Call("POST", "/api/v1/routing/rules", body=body, timeout=60.0))

    def update_rule(self, name: str, changes: Mapping[str, Any]) -> R:
        body = checked(bodies.RULE_CHANGES, changes)
        return self._send(Call("PUT", _rule_path(name), body=body, timeout=60.0))

    def delete_rule(self, name: str) -> R:
        return self._send(Call("DELETE", _rule_path(name), timeout=60.0))

    # -- connections through the router and the routing dry run --------------------------------

    def connections(
        self,
        *,
        service: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> R:
        params = _drop_none(service_id=service, status=status, limit=limit, offset=offset)
        return self._send(Call("GET", "/api/v1/connections", params))

    def connection(self, connection_id: str) -> R:
        return self._send(Call("GET", "/api/v1/connections/" + quote(connection_id, safe="")))

    def disconnect(
        self, connection_id: str, *, reason: str | None = None, notify_client: bool = True
    ) -> R:
        """Close a client's connection (1001), after telling it unless ``notify_client`` is off."""
        body = checked(
            bodies.DISCONNECT, _without_none({"notify_client": notify_client, "reason": reason})
        )
        path = "/api/v1/connections/" + quote(connection_id, safe="") + "/disconnect"
        return self._send(Call("POST", path, body=body, timeout=30.0))

    def cluster_nodes(self) -> R:
        return self._send(Call("GET", "/api/v1/cluster/nodes"))

    def route_test(
        self,
        *,
        ip: str = "127.0.0.1",
        path: str = "/",
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str | list[str]] | None = None,
    ) -> R:
        """Where the router would send such a client (dry run)."""
        simulated = {"ip": ip, "path": path, "headers": dict(headers or {})}
        body = checked(bodies.ROUTING_TEST, {**simulated, "query": dict(query or {})})
        return self._send(Call("POST", "/api/v1/routing/test", body=body))


def _client_options(
    server: str, token: str | None, timeout: float, source: str | None
) -> dict[str, Any]:
    base_url, _uds = parse_server(server)
    headers = {"User-Agent": f"agentvisor-client/{__version__}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if source:
        headers[SOURCE_HEADER] = source
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
        source: str | None = None,
    ) -> None:
        self.server = server
        _base, uds = parse_server(server)
        self._probe_path = uds if transport is None else None
        self._probe_due = True
        if transport is None and uds is not None:
            transport = httpx.HTTPTransport(uds=uds)
        self._http = httpx.Client(
            transport=transport, **_client_options(server, token, timeout, source)
        )

    def _send(self, call: Call) -> Any:
        if self._probe_path is not None and self._probe_due:
            probe_unix_socket(self.server, self._probe_path)
            self._probe_due = False
        timeout = call.timeout if call.timeout is not None else httpx.USE_CLIENT_DEFAULT
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.body, timeout=timeout
            )
        except httpx.TransportError as error:
            self._probe_due = True  # the next connect may fail too: probe it first
            raise _unreachable(self.server, error) from error
        return decode(response)

    def stream_events(
        self, *, types: str | None = None, service: str | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Follow ``GET /api/v1/events/stream``: ``(kind, event)`` as they happen, until the
        server ends the stream. An API error (404 from an agentvisor without it) raises
        ``ApiError`` before the first event."""
        if self._probe_path is not None:
            probe_unix_socket(self.server, self._probe_path)
        params = _drop_none(types=types, service_id=service)
        timeout = httpx.Timeout(DEFAULT_TIMEOUT, read=None)  # idle streams get keepalives
        try:
            with self._http.stream(
                "GET", "/api/v1/events/stream", params=params, timeout=timeout
            ) as response:
                if not response.is_success:
                    response.read()
                    decode(response)
                parser = SseParser()
                for line in response.iter_lines():
                    yield from parser.feed(line)
        except httpx.TransportError as error:
            raise _unreachable(self.server, error) from error

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
        source: str | None = None,
    ) -> None:
        self.server = server
        _base, uds = parse_server(server)
        if transport is None and uds is not None:
            transport = httpx.AsyncHTTPTransport(uds=uds)
        self._http = httpx.AsyncClient(
            transport=transport, **_client_options(server, token, timeout, source)
        )

    async def _send(self, call: Call) -> Any:
        timeout = call.timeout if call.timeout is not None else httpx.USE_CLIENT_DEFAULT
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.body, timeout=timeout
            )
        except httpx.TransportError as error:
            raise _unreachable(self.server, error) from error
        return decode(response)

    async def stream_events(
        self, *, types: str | None = None, service: str | None = None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """As ``AgentvisorClient.stream_events``, asynchronously."""
        params = _drop_none(types=types, service_id=service)
        timeout = httpx.Timeout(DEFAULT_TIMEOUT, read=None)
        try:
            async with self._http.stream(
                "GET", "/api/v1/events/stream", params=params, timeout=timeout
            ) as response:
                if not response.is_success:
                    await response.aread()
                    decode(response)
                parser = SseParser()
                async for line in response.aiter_lines():
                    for event in parser.feed(line):
                        yield event
        except httpx.TransportError as error:
            raise _unreachable(self.server, error) from error

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
