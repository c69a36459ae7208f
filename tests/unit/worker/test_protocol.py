"""Parsing client frames and encoding server events (pure)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentvisor.agent.types import FinalAnswer, ToolCall, ToolOutput
from agentvisor.worker.protocol import (
    Cancel,
    CloseSession,
    CreateSession,
    ErrorCode,
    FrameError,
    Ping,
    ResumeSession,
    UserMessage,
    agent_event_fields,
    encode_event,
    parse_frame,
    parse_request,
    stamp,
)
from tests.unit.worker.strategies import frames, json_values, protocol_objects

REQUEST_TYPES = (CreateSession, UserMessage, Cancel, ResumeSession, CloseSession, Ping)


def error_code(result: object) -> ErrorCode:
    assert isinstance(result, FrameError), result
    return result.code


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ({"event": "ping"}, Ping()),
        ({"event": "user.create_session"}, CreateSession()),
        ({"event": "user.create_session", "metadata": None}, CreateSession()),
        (
            {"event": "user.create_session", "metadata": {"user": "u1"}},
            CreateSession({"user": "u1"}),
        ),
        ({"event": "user.message", "content": "hi"}, UserMessage("hi")),
        (
            {"event": "user.message", "content": "hi", "session_id": "s", "message_id": 7},
            UserMessage("hi", "s", 7),
        ),
        ({"event": "user.cancel", "session_id": "s"}, Cancel("s")),
        ({"event": "user.resume_session", "session_id": "s"}, ResumeSession("s", 0)),
        ({"event": "user.resume_session", "session_id": "s", "last_seq": 4}, ResumeSession("s", 4)),
        ({"event": "user.close_session", "session_id": "s"}, CloseSession("s")),
        ({"event": "ping", "extra": [1, 2], "timestamp": "x"}, Ping()),  # extra fields ignored
    ],
)
def test_valid_requests(frame: dict[str, object], expected: object) -> None:
    assert parse_frame(json.dumps(frame)) == expected


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        ("not json", ErrorCode.INVALID_MESSAGE, "not JSON"),
        ("[1, 2]", ErrorCode.INVALID_MESSAGE, "expected a JSON object, got an array"),
        ('"ping"', ErrorCode.INVALID_MESSAGE, "got a string"),
        ("{}", ErrorCode.INVALID_MESSAGE, 'field "event" is missing'),
        ('{"event": 3}', ErrorCode.INVALID_MESSAGE, "a number, not a string"),
        ('{"event": "user.fly"}', ErrorCode.UNKNOWN_EVENT, "unknown event 'user.fly'"),
        ('{"event": "user.message"}', ErrorCode.INVALID_MESSAGE, 'field "content" is missing'),
        ('{"event": "user.message", "content": 5}', ErrorCode.INVALID_MESSAGE, "must be a string"),
        (
            '{"event": "user.message", "content": "x", "session_id": 5}',
            ErrorCode.INVALID_MESSAGE,
            '"session_id" must be a string',
        ),
        (
            '{"event": "user.message", "content": "x", "message_id": true}',
            ErrorCode.INVALID_MESSAGE,
            '"message_id" must be a string or an integer',
        ),
        ('{"event": "user.create_session", "metadata": [1]}', ErrorCode.INVALID_MESSAGE, "object"),
        ('{"event": "user.cancel"}', ErrorCode.INVALID_MESSAGE, '"session_id" is missing'),
        (
            '{"event": "user.resume_session", "session_id": "s", "last_seq": -1}',
            ErrorCode.INVALID_MESSAGE,
            "integer >= 0",
        ),
        ('{"event": "ping", "x": NaN}', ErrorCode.INVALID_MESSAGE, "NaN is not valid JSON"),
        ("[" * 100_000, ErrorCode.INVALID_MESSAGE, "not JSON"),
    ],
)
def test_invalid_frames_name_the_problem(text: str, code: ErrorCode, words: str) -> None:
    result = parse_frame(text)
    assert error_code(result) is code
    assert isinstance(result, FrameError)
    assert words in result.message


def test_errors_echo_the_session_and_message_ids_they_can() -> None:
    result = parse_frame('{"event": "user.message", "session_id": "s1", "message_id": "m1"}')
    assert isinstance(result, FrameError)
    assert (result.session_id, result.message_id) == ("s1", "m1")


def test_binary_frames_are_invalid() -> None:
    assert error_code(parse_frame(None, b'{"event": "ping"}')) is ErrorCode.INVALID_MESSAGE


def test_frames_over_the_limit_are_too_large() -> None:
    text = json.dumps({"event": "user.message", "content": "é" * 600}, ensure_ascii=False)
    assert isinstance(parse_frame(text, max_message_bytes=2000), UserMessage)
    result = parse_frame(text, max_message_bytes=1000)
    assert error_code(result) is ErrorCode.MESSAGE_TOO_LARGE
    assert isinstance(result, FrameError)
    assert "1000 bytes" in result.message
    assert error_code(parse_frame(None, b"x" * 11, max_message_bytes=10)) is (
        ErrorCode.MESSAGE_TOO_LARGE
    )


@given(st.text() | frames())
def test_any_text_frame_parses_to_a_request_or_an_error(text: str) -> None:
    result = parse_frame(text)
    assert isinstance(result, (FrameError, *REQUEST_TYPES))
    if isinstance(result, FrameError):
        assert result.message
        assert encode_event(stamp({"event": "agent.error", "m": result.message}, "t"))


@given(st.binary())
def test_any_binary_frame_is_an_error(data: bytes) -> None:
    assert isinstance(parse_frame(None, data), FrameError)


@given(json_values | protocol_objects())
def test_any_json_value_parses_to_a_request_or_an_error(value: object) -> None:
    result = parse_request(value)
    assert isinstance(result, (FrameError, *REQUEST_TYPES))
    if not isinstance(value, dict) or not isinstance(value.get("event"), str):
        assert error_code(result) is ErrorCode.INVALID_MESSAGE


def test_stamp_puts_the_envelope_first() -> None:
    event = stamp({"event": "agent.final_answer", "content": "x"}, "T", session_id="s", seq=3)
    assert list(event) == ["event", "session_id", "seq", "timestamp", "content"]


def test_agent_events_have_their_wire_fields() -> None:
    assert agent_event_fields(ToolCall("c", "t", {"a": 1})) == {
        "event": "agent.tool_call",
        "call_id": "c",
        "tool": "t",
        "arguments": {"a": 1},
    }
    assert agent_event_fields(ToolOutput("c", "t", False, None, "boom"))["error"] == "boom"
    assert agent_event_fields(FinalAnswer("done")) == {
        "event": "agent.final_answer",
        "content": "done",
    }


def test_encoding_never_fails_on_what_agents_produce() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque"

    text = encode_event({"event": "x", "output": Opaque(), "n": float("nan"), "s": "\ud800"})
    assert json.loads(text) == {"event": "x", "output": "opaque", "n": "nan", "s": "\ud800"}
    text.encode("utf-8")  # valid UTF-8 on the wire
    assert encode_event({"event": "x", "text": "天气"}) == '{"event":"x","text":"天气"}'
