"""The router's listening sockets: binds parsed and opened, the open-files limit raised.

A bind that cannot be listened on is one line naming it and why
(``RouterBindError``); the origin check is here too, beside the other
checks made before a connection is routed.
"""

from __future__ import annotations

import fnmatch
import socket

from agentvisor.errors import AgentvisorError

LISTEN_BACKLOG = 4096


def parse_bind(bind: str) -> tuple[str, int]:
    """``"127.0.0.1:9090"``, ``"[::1]:9090"``, ``":9090"`` (all interfaces)."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class RouterBindError(AgentvisorError):
    """A ``[router] bind`` cannot be listened on (in use, not an address of this host)."""

    code = "ROUTER_BIND_FAILED"


def open_listener(bind: str) -> socket.socket:
    """A listening socket on ``bind``; a failure names the bind and why, in one line."""
    try:
        return _listen(bind)
    except OSError as error:
        reason = error.strerror or str(error)
        raise RouterBindError(f"cannot listen on router bind {bind!r}: {reason}") from None


def _listen(bind: str) -> socket.socket:
    host, port = parse_bind(bind)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """No Origin header (not a browser) passes; else it must match an entry (``*`` globs)."""
    if origin is None or "*" in allowed:
        return True
    lowered = origin.lower()
    return any(fnmatch.fnmatchcase(lowered, entry.lower()) for entry in allowed)


def raise_fd_limit(wanted: int) -> None:
    """Raise the soft open-files limit toward ``wanted`` (two sockets per client)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ImportError, ValueError, OSError):
        pass
