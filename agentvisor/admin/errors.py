"""The API's response envelope, and the only place HTTP statuses are chosen.

Every answer is ``{"success": true, "data": ...}`` or
``{"success": false, "error": {"code", "message", "details"}}``. An
``AgentvisorError`` gets the status of its code; Quart's HTTP errors (unknown
route, wrong method, malformed body) keep theirs; anything unexpected is
logged with its traceback and answered 500 ``INTERNAL_ERROR`` without one.
Query parameters are parsed here too, so that a bad one is always a 400
``INVALID_REQUEST`` naming the parameter.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, overload

from quart import Quart, Response, jsonify
from werkzeug.exceptions import HTTPException

from agentvisor.errors import AgentvisorError, InvalidRequest

log = logging.getLogger("agentvisor.admin")

#: HTTP status for each API code; unknown codes are 500.
STATUS_BY_CODE: Mapping[str, int] = {
    "INVALID_REQUEST": 400,
    "UNAUTHORIZED": 401,
    "NOT_FOUND": 404,
    "SERVICE_NOT_FOUND": 404,
    "RULE_NOT_FOUND": 404,
    "CONNECTION_NOT_FOUND": 404,
    "CLUSTER_NOT_CONFIGURED": 404,  # a cluster request to a node without [cluster]
    "METHOD_NOT_ALLOWED": 405,
    "SERVICE_ALREADY_EXISTS": 409,
    "RULE_ALREADY_EXISTS": 409,
    "SERVICE_AUTOSCALED": 409,  # scale asked of an agent whose count the autoscaler owns
    "PORT_IN_USE": 409,
    "ALREADY_RUNNING": 409,
    "CONFIG_LOCKED": 409,  # another node is editing the shared config
    "CONFIG_INVALID": 422,
    "RATE_LIMITED": 429,
    "SERVICE_START_FAILED": 500,
    "CONFIG_WRITE_FAILED": 500,
    "INTERNAL_ERROR": 500,
    "INSUFFICIENT_RESOURCES": 409,  # the host cannot take it (no free port): not a server fault
    "STORE_UNAVAILABLE": 503,
    "UNAVAILABLE": 503,
    "SHUTTING_DOWN": 503,
    "ROUTING_FAILED": 503,
    "HEALTH_CHECK_FAILED": 503,
}

#: API code for Quart/werkzeug HTTP errors that carry no code of ours.
_CODE_BY_STATUS: Mapping[int, str] = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "INVALID_REQUEST",
    415: "INVALID_REQUEST",
    429: "RATE_LIMITED",
}


def success(data: Any, status: int = 200) -> tuple[Response, int]:
    return jsonify({"success": True, "data": data}), status


def failure(
    code: str, message: str, details: Mapping[str, Any] | None = None, *, status: int | None = None
) -> tuple[Response, int]:
    body = {"code": code, "message": message, "details": dict(details or {})}
    response = jsonify({"success": False, "error": body})
    status = status if status is not None else STATUS_BY_CODE.get(code, 500)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="agentvisor"'
    if status == 413:
        # Answered before the body was read: the connection cannot carry another request.
        response.headers["Connection"] = "close"
    retry_after = (details or {}).get("retry_after_seconds")
    if status in (429, 503) and isinstance(retry_after, int | float):
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response, status


async def _agentvisor_error(error: AgentvisorError) -> tuple[Response, int]:
    return failure(error.code, error.message, error.details)


async def _http_error(error: HTTPException) -> tuple[Response, int]:
    status = error.code or 500
    code = _CODE_BY_STATUS.get(status, "INVALID_REQUEST" if status < 500 else "INTERNAL_ERROR")
    details: dict[str, Any] = {}
    allowed: list[str] = []
    if status == 404:
        message = "No such endpoint; see /api/v1 in the API documentation"
    elif status == 405:
        message = "Method not allowed on this endpoint"
        allowed = sorted(getattr(error, "valid_methods", None) or ())
        if allowed:
            details["allowed"] = allowed
    else:
        message = error.description or error.name
    response, status = failure(code, message, details, status=status)
    if allowed:
        response.headers["Allow"] = ", ".join(allowed)  # RFC 9110: a 405 names what is
    return response, status


async def _unexpected_error(error: Exception) -> tuple[Response, int]:
    log.error("admin API request failed", exc_info=error)
    return failure("INTERNAL_ERROR", "Internal error; the details are in agentvisor's log")


def install_error_handlers(app: Quart) -> None:
    app.register_error_handler(AgentvisorError, _agentvisor_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


# -- query parameters ------------------------------------------------------------------


@overload
def query_int(
    args: Mapping[str, str],
    name: str,
    default: int,
    *,
    minimum: int = ...,
    maximum: int | None = ...,
) -> int: ...
@overload
def query_int(
    args: Mapping[str, str],
    name: str,
    default: None,
    *,
    minimum: int = ...,
    maximum: int | None = ...,
) -> int | None: ...
def query_int(
    args: Mapping[str, str],
    name: str,
    default: int | None,
    *,
    minimum: int = 0,
    maximum: int | None = None,
) -> int | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    bound = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        raise InvalidRequest(
            f"Query parameter '{name}' must be an integer {bound}, got {raw!r}",
            parameter=name,
            value=raw,
        )
    return value


def query_float(
    args: Mapping[str, str], name: str, default: float, *, minimum: float, maximum: float
) -> float:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not minimum <= value <= maximum:  # NaN fails too
        raise InvalidRequest(
            f"Query parameter '{name}' must be a number of seconds from {minimum:g} "
            f"to {maximum:g}, got {raw!r}",
            parameter=name,
            value=raw,
        )
    return value


def query_bool(args: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise InvalidRequest(
        f"Query parameter '{name}' must be true or false, got {raw!r}", parameter=name, value=raw
    )


def query_choice(args: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise InvalidRequest(
            f"Query parameter '{name}' must be one of {', '.join(choices)}, got {raw!r}",
            parameter=name,
            value=raw,
            choices=list(choices),
        )
    return raw


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> float | None:
    """``"90"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"7d"``, ``"2w"`` as seconds; None if not one."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        return None
    return float(found.group(1)) * _UNIT_SECONDS[found.group(2)]


def query_duration(
    args: Mapping[str, str], name: str, default: float | None, *, minimum: float, maximum: float
) -> float | None:
    """A duration such as ``5m`` or ``3600`` (seconds), within the bounds, for ``name``."""
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    value = parse_duration(raw)
    if value is None or not minimum <= value <= maximum:
        bound = f"at least {minimum:g}s"
        if math.isfinite(maximum):
            bound = f"from {minimum:g}s to {maximum:g}s"
        raise InvalidRequest(
            f"Query parameter '{name}' must be a duration like 30s, 5m, 1h or 7d "
            f"({bound}), got {raw!r}",
            parameter=name,
            value=raw,
        )
    return value


#: Seconds since the epoch, as ``params.Time`` documents them (``float()`` takes more).
EPOCH_SECONDS = re.compile(r"\d{1,15}(\.\d{1,9})?")


def query_time(args: Mapping[str, str], name: str) -> float | None:
    """A point in time: ISO 8601 (``2024-01-01T10:00:00Z``) or seconds since the epoch.

    A time before the epoch is the epoch (nothing is older)."""
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    if EPOCH_SECONDS.fullmatch(raw):
        value = float(raw)
    else:
        try:
            text = raw.upper().replace("Z", "+00:00").replace(" ", "+")
            # a stamp without a zone is taken as local time
            value = max(datetime.fromisoformat(text).timestamp(), 0.0)
        except (ValueError, OverflowError):
            value = math.nan
    if not math.isfinite(value) or value < 0:
        raise InvalidRequest(
            f"Query parameter '{name}' must be an ISO 8601 time (2024-01-01T10:00:00Z) "
            f"or seconds since the epoch, got {raw!r}",
            parameter=name,
            value=raw,
        )
    return value


def page_of(limit: int, offset: int, *, has_next: bool) -> dict[str, Any]:
    """The ``page`` object of every listing, as in the seed."""
    return {"limit": limit, "offset": offset, "has_next": has_next}
