"""The admin API's answers as a client reads them: the envelope, its errors, event streams.

``decode`` turns a response into the envelope's ``data`` or an ``ApiError``;
``Unreachable`` is nothing answering at all (``probe_unix_socket`` says why for
a unix socket); ``SseParser`` reads ``/api/v1/events/stream``. Used by
``agentvisor.client``, which re-exports the errors.
"""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Mapping
from typing import Any

import httpx

DEFAULT_TIMEOUT = 10.0


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


class SseParser:
    """Server-sent events, a line at a time → ``(event, data)`` for messages whose data is
    a JSON object; comments (keepalives), ``retry:`` and unreadable data are skipped."""

    def __init__(self) -> None:
        self.kind = "message"
        self.data: list[str] = []

    def feed(self, line: str) -> list[tuple[str, dict[str, Any]]]:
        if line.startswith(":"):
            return []
        if line:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                self.kind = value
            elif field == "data":
                self.data.append(value)
            return []
        kind, data = self.kind, self.data
        self.kind, self.data = "message", []
        try:
            payload = json.loads("\n".join(data)) if data else None
        except ValueError:
            payload = None
        return [(kind, payload)] if isinstance(payload, dict) else []
