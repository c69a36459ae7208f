"""Bearer-token authentication of the admin API.

When ``[admin] token`` is set, every request but ``GET /health``, the
``/docs`` page (static files, no data: see ``routes/docs.py``) and the web
console's pages and files (``console.py``) must carry
``Authorization: Bearer TOKEN``; ``GET /metrics`` also takes ``[admin] metrics_token``,
a read-only credential for Prometheus. Requests that arrive on the unix socket are
trusted: the socket is mode 0600, so only its owner can connect. Hypercorn
leaves ``server`` and ``client`` of the ASGI scope at ``None`` for unix
sockets (it only parses AF_INET/AF_INET6 addresses), which is how they are
told apart here; the integration tests pin that behaviour.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from quart import Quart, request

from agentvisor.admin.console import is_console_path
from agentvisor.errors import Unauthorized

#: Paths anyone may call: liveness probes from load balancers and systemd, the docs page.
OPEN_PATHS = frozenset({"/health", "/docs"})
#: The one path ``[admin] metrics_token`` opens.
METRICS_PATH = "/metrics"
#: Path prefixes anyone may call: the docs page's scripts and styles.
OPEN_PREFIXES = ("/docs/assets/",)


def arrived_on_unix_socket(scope: Mapping[str, Any]) -> bool:
    return scope.get("server") is None and scope.get("client") is None


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def token_matches(given: str | None, expected: str) -> bool:
    if given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def install_auth(app: Quart, token: str | None, metrics_token: str | None = None) -> None:
    """Require ``token`` on every request that is neither open nor on the unix socket.

    ``metrics_token`` is also good for ``GET /metrics`` (and only for it), so a
    Prometheus server holds a credential that can read figures but change nothing.
    """
    if not token:
        return

    async def check_token() -> None:
        path = request.path
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES) or is_console_path(path):
            return
        if arrived_on_unix_socket(request.scope):
            return
        given = bearer_token(request.headers.get("Authorization"))
        scrape = path == METRICS_PATH and request.method in ("GET", "HEAD")
        if scrape and metrics_token and token_matches(given, metrics_token):
            return
        if not token_matches(given, token):
            raise Unauthorized(
                "Missing or wrong bearer token; pass --token or set AGENTVISOR_TOKEN"
            )

    app.before_request(check_token)
