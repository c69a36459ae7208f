"""The agent event protocol (PROTOCOL.md §1) as data: parse client frames, build server events.

Pure: no I/O, no clock. ``parse_frame`` turns any WebSocket frame into either
a request record or a ``FrameError`` carrying the protocol's error code, and
never raises; the connection answers a ``FrameError`` with ``agent.error`` and
keeps going. ``encode_event`` turns a server event into the text frame sent
on the wire and kept in the replay buffer and the session store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from attrs import field, frozen

from agentvisor.agent.types import (
    AgentEvent,
    FinalAnswer,
    PartialAnswer,
    Thinking,
    ToolCall,
    ToolOutput,
)
from agentvisor.errors import json_type
from agentvisor.worker.limits import DEFAULT_MAX_MESSAGE_BYTES

MessageId = str | int


class ErrorCode(StrEnum):
    INVALID_MESSAGE = "INVALID_MESSAGE"
    UNKNOWN_EVENT = "UNKNOWN_EVENT"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    SESSION_LIMIT = "SESSION_LIMIT"
    SESSION_BUSY = "SESSION_BUSY"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    AGENT_ERROR = "AGENT_ERROR"
    TOOL_ERROR = "TOOL_ERROR"
    TIMEOUT = "TIMEOUT"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    WORKER_LOST = "WORKER_LOST"
    MESSAGE_POISONED = "MESSAGE_POISONED"
    NO_TURN_RUNNING = "NO_TURN_RUNNING"  # a user.cancel with nothing to cancel
    TOO_MANY_IN_FLIGHT = "TOO_MANY_IN_FLIGHT"  # by the router: [router] max_messages_in_flight


# Whether the client can go on after the error (same connection, same session
# or a retry); SESSION_NOT_FOUND is the one that says "that session is gone".
RECOVERABLE: Mapping[ErrorCode, bool] = MappingProxyType(
    dict.fromkeys(ErrorCode, True)
    | {ErrorCode.SESSION_NOT_FOUND: False, ErrorCode.MESSAGE_POISONED: False}
)


class CloseReason(StrEnum):
    CLIENT = "client"
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"


# ---------------------------------------------------------------- requests


@frozen
class CreateSession:
    metadata: Mapping[str, Any] = field(factory=dict)


@frozen
class UserMessage:
    content: str
    session_id: str | None = None
    message_id: MessageId | None = None


@frozen
class Cancel:
    session_id: str


@frozen
class ResumeSession:
    session_id: str
    last_seq: int = 0


@frozen
class CloseSession:
    session_id: str


@frozen
class Ping:
    pass


Request = CreateSession | UserMessage | Cancel | ResumeSession | CloseSession | Ping


@frozen
class FrameError:
    """A frame the worker cannot act on; answered with ``agent.error``."""

    code: ErrorCode
    message: str
    session_id: str | None = None  # echoed when the frame named one
    message_id: MessageId | None = None


class _Invalid(Exception):
    """A field is missing or has the wrong type (internal to parsing)."""


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def frame_size_error(size: int, max_message_bytes: int) -> FrameError:
    return FrameError(
        ErrorCode.MESSAGE_TOO_LARGE,
        f"frame of {size} bytes exceeds the limit of {max_message_bytes} bytes",
    )


def text_size(text: str, max_message_bytes: int) -> int:
    """The UTF-8 size of ``text``, computed only when it could exceed the limit."""
    if len(text) * 4 <= max_message_bytes:
        return len(text)  # a lower bound that is already under the limit
    return len(text.encode("utf-8", "surrogatepass"))


def parse_frame(
    text: str | None,
    data: bytes | None = None,
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> Request | FrameError:
    """One client frame → a request, or the error to answer it with. Never raises."""
    if text is None:
        size = len(data) if data is not None else 0
        if size > max_message_bytes:
            return frame_size_error(size, max_message_bytes)
        return FrameError(
            ErrorCode.INVALID_MESSAGE, "binary frames are not accepted; send JSON as a text frame"
        )
    size = text_size(text, max_message_bytes)
    if size > max_message_bytes:
        return frame_size_error(size, max_message_bytes)
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        return FrameError(ErrorCode.INVALID_MESSAGE, f"not JSON: {_short(str(error))}")
    return parse_request(value)


def parse_request(value: object) -> Request | FrameError:
    """A decoded JSON value → a request, or the error to answer it with. Never raises."""
    if not isinstance(value, dict):
        return FrameError(
            ErrorCode.INVALID_MESSAGE, f"expected a JSON object, got {json_type(value)}"
        )
    session_id = value.get("session_id")
    echo_session = session_id if isinstance(session_id, str) else None
    message_id = value.get("message_id")
    echo_message = message_id if _is_message_id(message_id) else None
    event = value.get("event")
    if not isinstance(event, str):
        reason = "missing" if event is None else f"{json_type(event)}, not a string"
        return FrameError(
            ErrorCode.INVALID_MESSAGE, f'field "event" is {reason}', echo_session, echo_message
        )
    parser = _PARSERS.get(event)
    if parser is None:
        return FrameError(
            ErrorCode.UNKNOWN_EVENT,
            f"unknown event {_short(event)!r}; expected one of {', '.join(sorted(_PARSERS))}",
            echo_session,
            echo_message,
        )
    try:
        return parser(value)
    except _Invalid as error:
        return FrameError(
            ErrorCode.INVALID_MESSAGE, f"{event}: {error}", echo_session, echo_message
        )


def _create_session(value: dict[str, Any]) -> Request:
    metadata = value.get("metadata")
    if metadata is None:
        return CreateSession()
    if not isinstance(metadata, dict):
        raise _Invalid(f'field "metadata" must be an object, got {json_type(metadata)}')
    return CreateSession(metadata)


def _user_message(value: dict[str, Any]) -> Request:
    content = _required_str(value, "content")
    message_id = value.get("message_id")
    if message_id is not None and not _is_message_id(message_id):
        raise _Invalid(
            f'field "message_id" must be a string or an integer, got {json_type(message_id)}'
        )
    return UserMessage(content, _optional_str(value, "session_id"), message_id)


def _resume_session(value: dict[str, Any]) -> Request:
    last_seq = value.get("last_seq")
    if last_seq is None:
        last_seq = 0
    elif not isinstance(last_seq, int) or isinstance(last_seq, bool) or last_seq < 0:
        raise _Invalid(f'field "last_seq" must be an integer >= 0, got {_short(repr(last_seq))}')
    return ResumeSession(_required_str(value, "session_id"), last_seq)


def _cancel(value: dict[str, Any]) -> Request:
    return Cancel(_required_str(value, "session_id"))


def _close_session(value: dict[str, Any]) -> Request:
    return CloseSession(_required_str(value, "session_id"))


def _ping(value: dict[str, Any]) -> Request:
    return Ping()


_PARSERS: Mapping[str, Callable[[dict[str, Any]], Request]] = MappingProxyType(
    {
        "user.create_session": _create_session,
        "user.message": _user_message,
        "user.cancel": _cancel,
        "user.resume_session": _resume_session,
        "user.close_session": _close_session,
        "ping": _ping,
    }
)


def _required_str(value: Mapping[str, Any], name: str) -> str:
    item = value.get(name)
    if item is None:
        raise _Invalid(f'field "{name}" is missing')
    if not isinstance(item, str):
        raise _Invalid(f'field "{name}" must be a string, got {json_type(item)}')
    return item


def _optional_str(value: Mapping[str, Any], name: str) -> str | None:
    return None if value.get(name) is None else _required_str(value, name)


def _is_message_id(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- server events


def agent_event_fields(event: AgentEvent) -> dict[str, Any]:
    """The wire fields of an agent's event (without session, seq and timestamp)."""
    match event:
        case Thinking(content=content):
            return {"event": "agent.thinking", "content": content}
        case PartialAnswer(delta=delta):
            return {"event": "agent.partial_answer", "delta": delta}
        case ToolCall(call_id=call_id, tool=tool, arguments=arguments):
            return {
                "event": "agent.tool_call",
                "call_id": call_id,
                "tool": tool,
                "arguments": dict(arguments),
            }
        case ToolOutput(call_id=call_id, tool=tool, success=success, output=output, error=error):
            return {
                "event": "agent.tool_result",
                "call_id": call_id,
                "tool": tool,
                "success": success,
                "output": output,
                "error": error,
            }
        case FinalAnswer(content=content):
            return {"event": "agent.final_answer", "content": content}


def error_fields(
    code: ErrorCode,
    message: str,
    *,
    session_id: str | None = None,
    message_id: MessageId | None = None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {"event": "agent.error"}
    if session_id is not None:
        fields["session_id"] = session_id
    fields.update(code=code.value, message=message, recoverable=RECOVERABLE[code])
    if message_id is not None:
        fields["message_id"] = message_id
    return fields


def frame_error_fields(error: FrameError) -> dict[str, Any]:
    return error_fields(
        error.code, error.message, session_id=error.session_id, message_id=error.message_id
    )


def stamp(
    fields: Mapping[str, Any],
    timestamp: str,
    *,
    session_id: str | None = None,
    seq: int | None = None,
) -> dict[str, Any]:
    """``fields`` with ``event`` first, then ``session_id``, ``seq`` and ``timestamp``."""
    head: dict[str, Any] = {"event": fields["event"]}
    if session_id is not None:
        head["session_id"] = session_id
    if seq is not None:
        head["seq"] = seq
    head["timestamp"] = timestamp
    for key, value in fields.items():
        head.setdefault(key, value)
    return head


def encode_event(event: Mapping[str, Any]) -> str:
    """The text frame of a server event: compact JSON, valid UTF-8, never NaN.

    Values JSON cannot hold become strings; text that cannot be UTF-8 encoded
    (lone surrogates from ``"\\ud800"`` escapes) is sent ``\\u``-escaped.
    """
    value: Any = event
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        value = _jsonable(event, depth=0)
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text


_MAX_DEPTH = 64


def _jsonable(value: object, depth: int) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= _MAX_DEPTH:
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item, depth + 1) for item in value]
    return str(value)
