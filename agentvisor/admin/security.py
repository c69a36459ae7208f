"""The admin API's request guards: CORS, the bearer token, rate and body limits.

The order is fixed here:

1. a CORS preflight from an allowed origin is answered at once, before the
   token is checked, since browsers send preflights without credentials;
2. the body: larger than ``max_body_bytes`` is a 413 (and the connection is
   closed, its body unread); a mutating request's body is read whole and must
   be JSON (400), whether or not the handler would read it, so no handler
   meets a body it cannot parse. Read before any other answer because
   Hypercorn closes a connection answered before its body ended, which a
   client reusing it meets as a reset; Quart buffers the body meanwhile
   anyway, so reading it first costs no memory;
3. the bearer token (``auth.py``);
4. the per-client rate limit on mutating requests (POST, PUT, PATCH, DELETE),
   after the token so that anonymous callers spend nobody's tokens; GETs are
   never limited (the console polls, ``tail -f`` long-polls).

CORS answers only origins listed in ``[admin] cors_origins`` (read on each
request, so a reload applies), always echoing the one origin and never ``*``;
``"*"`` in the list allows any origin, still echoed. Credentials are bearer
tokens in ``Authorization``, never cookies, so ``Allow-Credentials`` is not
sent. Clients are told apart by IP on TCP (a reverse proxy in front makes
them one client: we trust no ``X-Forwarded-For``); the unix socket is one
client.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from quart import Quart, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from agentvisor.admin.auth import arrived_on_unix_socket, install_auth
from agentvisor.errors import AgentvisorError, InvalidRequest
from agentvisor.router.limits import TokenBucket

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID"
EXPOSED_HEADERS = "Retry-After, WWW-Authenticate"
#: How long a browser may cache a preflight answer (seconds).
PREFLIGHT_MAX_AGE = 600
#: The unix socket's clients share one bucket under this key.
UNIX_CLIENT = "unix"


class RateLimited(AgentvisorError):
    """Too many mutating requests from one client; ``retry_after_seconds`` says when to retry."""

    code = "RATE_LIMITED"


class ClientBuckets:
    """One token bucket per client; memory bounded however many clients come.

    A bucket is forgotten once it would be full again (a full bucket and a
    fresh one behave the same), and never more than ``max_clients`` are
    kept: beyond that the least recently used goes, which gives that client
    a fresh burst, a small leniency only under a flood from many addresses.
    """

    def __init__(self, rate: float, burst: float, *, max_clients: int = 65536) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str, now: float) -> float:
        """Spend one of ``client``'s tokens: 0.0 when allowed, else the seconds until one."""
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if oldest.full_at() > now:
                break
            self._buckets.popitem(last=False)
        bucket = self._buckets.pop(client, None) or TokenBucket(self.rate, self.burst)
        self._buckets[client] = bucket  # most recently used last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if bucket.take(now):
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


def parse_json_body(body: bytes) -> Any:
    """Decode a request body as JSON; anything else is a 400 that says where it broke.

    ``json.loads`` on bytes detects the UTF-8/16/32 encoding itself, so a body
    that is not text is a ``ValueError`` like any other malformed one; nesting
    deep enough to exhaust the recursion limit is malformed too (not a 500).
    """
    try:
        return json.loads(body)
    except ValueError as error:
        raise InvalidRequest(f"The request body is not valid JSON: {error}") from None
    except RecursionError:
        raise InvalidRequest("The request body is not valid JSON: nested too deeply") from None


def client_key() -> str:
    """The rate limit's notion of a client: its IP, or the unix socket as a whole."""
    if arrived_on_unix_socket(request.scope):
        return UNIX_CLIENT
    client = request.scope.get("client")
    return str(client[0]) if client else UNIX_CLIENT


def origin_allowed(origin: str, allowed: tuple[str, ...]) -> bool:
    return origin in allowed or "*" in allowed


def install_security(app: Quart, deps: AdminDeps) -> None:
    """Register the guards in their order (see the module docstring)."""
    limits = deps.limits
    buckets = ClientBuckets(limits.mutating_rate, limits.mutating_burst)

    def cors_origin() -> str | None:
        origin = request.headers.get("Origin")
        if origin and origin_allowed(origin, deps.supervisor.config.admin.cors_origins):
            return origin
        return None

    async def answer_preflight() -> Response | None:
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        origin = cors_origin()
        if origin is None:
            return None  # no CORS headers: the browser refuses; Quart answers the OPTIONS
        response = Response(b"", status=204)
        response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
        return response  # the origin is added by ``add_cors_headers``, like every answer

    async def limit_rate() -> None:
        if request.method not in MUTATING_METHODS:
            return
        wait = buckets.take(client_key(), limits.clock())
        if wait > 0:
            raise RateLimited(
                f"Too many changes from this client (at most {limits.mutating_rate:g} per "
                f"second, bursts of {limits.mutating_burst:g}); retry in {wait:.2f} s",
                retry_after_seconds=math.ceil(wait * 1000) / 1000,
            )

    async def check_body() -> None:
        length = request.content_length
        too_large = RequestEntityTooLarge(
            f"Request body is larger than {limits.max_body_bytes} bytes; send less"
        )
        if length is not None and length > limits.max_body_bytes:
            raise too_large
        if request.method not in MUTATING_METHODS or length == 0:
            return
        try:
            body = await request.get_data(cache=True, as_text=False, parse_form_data=False)
        except RequestEntityTooLarge:
            raise too_large from None  # chunked, with no Content-Length to refuse early
        if body.strip():  # an empty body is no body (POST .../stop needs none)
            parse_json_body(body)

    async def add_cors_headers(response: Response) -> Response:
        if "Origin" not in request.headers:
            return response
        response.vary.add("Origin")
        origin = cors_origin()
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        return response

    app.before_request(answer_preflight)
    app.before_request(check_body)
    install_auth(app, deps.token, deps.metrics_token)
    app.before_request(limit_rate)
    app.after_request(add_cors_headers)
