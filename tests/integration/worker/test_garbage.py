"""Hypothesis-generated garbage over a real socket: an error for each frame, never a closed socket.

The frames are the ones the pure parser rejects (arbitrary text, arbitrary
JSON, request-like objects with random fields and types), sent on one
connection to one worker process while another session of it is mid-turn.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, assume, given, settings
from websockets.sync.client import ClientConnection, connect

from agentvisor.worker.protocol import FrameError, parse_frame
from tests.integration.worker.harness import DEADLINE, READY, SCRIPTED, worker_argv
from tests.unit.worker.strategies import frames


@pytest.fixture(scope="module")
def worker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("garbage") / "sessions.sqlite3"
    argv = worker_argv(SCRIPTED, "--port", "0", "--session-store", str(store), "--runtime", "trio")
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as process:
        try:
            assert process.stdout is not None
            process.stdout.readline()  # listening on ..., creating the agent
            line = process.stdout.readline().decode()
            match = READY.search(line)
            assert match, line
            yield f"ws://127.0.0.1:{match.group(1)}/"
        finally:
            process.kill()
            process.wait(DEADLINE)
            assert process.stdout is not None
            process.stdout.close()


@pytest.fixture(scope="module")
def connection(worker_url: str) -> Iterator[ClientConnection]:
    with connect(worker_url, open_timeout=DEADLINE, proxy=None) as ws:
        yield ws


@pytest.fixture(scope="module")
def busy_session(worker_url: str) -> Iterator[ClientConnection]:
    """Another client whose session is mid-turn while the garbage flies."""
    with connect(worker_url, open_timeout=DEADLINE, proxy=None) as ws:
        ws.send(json.dumps({"event": "user.message", "content": "wait", "message_id": "w"}))
        assert json.loads(ws.recv(DEADLINE))["event"] == "agent.session_created"
        assert json.loads(ws.recv(DEADLINE))["delta"] == "waiting"
        yield ws


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much],
)
@given(frames())
def test_garbage_frames_get_an_error_each_and_the_connection_stays_open(
    connection: ClientConnection, busy_session: ClientConnection, frame: str
) -> None:
    expected = parse_frame(frame)
    assume(isinstance(expected, FrameError))
    assert isinstance(expected, FrameError)
    connection.send(frame)
    connection.send('{"event": "ping"}')
    error = json.loads(connection.recv(DEADLINE))
    assert (error["event"], error["code"]) == ("agent.error", expected.code.value)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", error["timestamp"])
    assert json.loads(connection.recv(DEADLINE))["event"] == "pong"
    busy_session.send('{"event": "ping"}')  # the other session's connection is unharmed
    assert json.loads(busy_session.recv(DEADLINE))["event"] == "pong"


def test_parser_and_socket_agree_on_a_binary_frame(connection: ClientConnection) -> None:
    connection.send(b"\x00\xff binary")
    assert json.loads(connection.recv(DEADLINE))["code"] == "INVALID_MESSAGE"
