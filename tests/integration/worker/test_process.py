"""The worker as the supervisor runs it: a real process, killed, terminated, or failing to load."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import trio
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.children import LineReader
from tests.integration.worker.harness import (
    DEADLINE,
    READY,
    Client,
    Frame,
    Served,
    open_client,
    worker_argv,
    worker_process,
)


@pytest.mark.parametrize(
    ("runtime", "serve_command"),
    [("asyncio", False), ("trio", False), ("asyncio", True)],
    ids=["asyncio", "trio", "agentvisor-serve"],
)
async def test_a_full_turn_in_a_worker_process(
    tmp_path: Path, runtime: str, serve_command: bool
) -> None:
    async with (
        worker_process(tmp_path, runtime=runtime, serve_command=serve_command) as worker,
        open_client(worker.url) as client,
    ):
        await client.send({"event": "ping"})
        assert (await client.recv())["event"] == "pong"
        session_id = await client.create_session()
        frames = await client.turn(session_id, "tools:Lima")
        assert [f["event"] for f in frames] == [
            "agent.thinking",
            "agent.tool_call",
            "agent.tool_result",
            "agent.partial_answer",
            "agent.partial_answer",
            "agent.final_answer",
        ]
        assert [f["seq"] for f in frames] == [2, 3, 4, 5, 6, 7]
        assert frames[-1]["content"] == "It is sunny in Lima."
        if runtime == "asyncio":  # agents built on asyncio libraries just work
            answer = (await client.turn(session_id, "asyncio-sleep:0.01"))[-1]
            assert answer["content"] == "slept peak=1"
        await client.send({"event": "user.message", "session_id": session_id, "content": "wait"})
        assert (await client.recv())["delta"] == "waiting"
        await client.send({"event": "user.cancel", "session_id": session_id})
        assert (await client.recv())["event"] == "agent.cancelled"
        health = await worker.get("/health")
        assert (health.status_code, health.json()["status"]) == (200, "ok")
        assert (await worker.stats())["turns"]["total"] >= 1
    assert (tmp_path / "sessions.sqlite3").exists()


async def test_another_worker_resumes_a_session_with_its_history_after_the_first_died(
    tmp_path: Path,
) -> None:
    store = tmp_path / "shared.sqlite3"
    async with (
        worker_process(tmp_path, store=store, name="a") as first,
        open_client(first.url) as client,
    ):
        session_id = await client.create_session(user="ada")
        await client.turn(session_id, "tools:Lima")
        answer = (await client.turn(session_id, "count"))[-1]
        assert answer["content"] == "history=4"
        first.signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL
    async with (
        worker_process(tmp_path, store=store, name="b") as second,
        open_client(second.url) as client,
    ):
        await client.send(
            {"event": "user.resume_session", "session_id": session_id, "last_seq": answer["seq"]}
        )
        resumed = await client.recv()
        assert resumed == resumed | {
            "event": "agent.session_resumed",
            "session_id": session_id,
            "replayed": 0,
            "history_length": 6,
        }
        history = json.loads((await client.turn(session_id, "history"))[-1]["content"])
        assert [(m["role"], m["content"]) for m in history] == [
            ("user", "tools:Lima"),
            ("assistant", None),
            ("tool", "sunny in Lima"),
            ("assistant", "It is sunny in Lima."),
            ("user", "count"),
            ("assistant", "history=4"),
        ]
        meta = (await client.turn(session_id, "meta"))[-1]
        assert json.loads(meta["content"]) == {"user": "ada"}
        assert meta["seq"] == answer["seq"] + 2


async def read_until_closed(client: Client, frames: list[Frame]) -> None:
    while True:
        frames.append(await client.recv())


async def test_sigterm_finishes_or_cancels_turns_keeps_sessions_resumable_and_exits_0(
    tmp_path: Path,
) -> None:
    frames: list[Frame] = []
    async with worker_process(tmp_path, "--shutdown-timeout", "1") as worker:
        async with open_client(worker.url) as client:
            quick, slow = await client.create_session(), await client.create_session()
            message = {"event": "user.message"}
            await client.send(message | {"session_id": quick, "content": "sleep:0.5"})
            await client.send(message | {"session_id": slow, "content": "wait", "message_id": "s"})
            await client.recv_until("agent.partial_answer")
            worker.signal(signal.SIGTERM)
            with trio.fail_after(DEADLINE):
                while (await worker.get("/health")).status_code != 503:
                    await trio.sleep(0.02)
            with pytest.raises(InvalidStatus) as refused:
                await Client.connect(worker.url)
            assert refused.value.response.status_code == 503
            with pytest.raises(ConnectionClosed) as closed:
                await read_until_closed(client, frames)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1012
        assert await worker.wait() == 0
        assert "Traceback" not in worker.stderr
    ends = {f["session_id"]: f for f in frames}
    assert ends[quick]["event"] == "agent.final_answer"
    assert (ends[slow]["event"], ends[slow]["reason"]) == ("agent.cancelled", "shutdown")
    # issue 15: the sessions are not over, so no session_closed; they resume elsewhere
    assert not [f for f in frames if f["event"] == "agent.session_closed"]
    # the store was flushed: another worker resumes the session
    async with (
        worker_process(tmp_path, name="next") as successor,
        open_client(successor.url) as client,
    ):
        await client.send({"event": "user.resume_session", "session_id": quick, "last_seq": 99})
        assert (await client.recv())["history_length"] == 2


LOAD_ERRORS = {
    "missing": (None, "file not found"),
    "syntax": ("x = 1\ndef broken(:\n    pass\n", "SyntaxError at line 2: invalid syntax"),
    "import": (
        "import os\nimport no_such_module_here\n",
        "ModuleNotFoundError at line 2: No module named 'no_such_module_here'",
    ),
    "raises": ("x = 1\nraise RuntimeError('no API key')\n", "RuntimeError at line 2: no API key"),
    "neither": ("x = 1\n", "defines neither create_agent() nor agent"),
    "shape": ("agent = 42\n", "agent: int object is not an agent; accepted: an object with"),
    "factory": (
        "async def create_agent():\n    raise ValueError('bad model')\n",
        "create_agent() raised ValueError at line 2: bad model",
    ),
}


@pytest.mark.parametrize("case", list(LOAD_ERRORS))
async def test_load_errors_are_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    source, cause = LOAD_ERRORS[case]
    path = tmp_path / "weather.py"
    if source is not None:
        path.write_text(source)
    argv = worker_argv(path, "--port", "0", "--session-store", str(tmp_path / "s.sqlite3"))
    with trio.fail_after(DEADLINE):
        result = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"agentvisor: cannot load agent from {path}: {cause}")
    assert b"serving" not in result.stdout


async def test_sibling_modules_import_and_create_agent_may_be_async(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("GREETING = 'hello from a sibling'\n")
    agent = tmp_path / "sibling_agent.py"
    agent.write_text(
        "from helpers import GREETING\n\n"
        "async def create_agent():\n"
        "    async def answer(message):\n"
        "        return GREETING\n"
        "    return answer\n"
    )
    async with worker_process(tmp_path, agent=agent) as worker, open_client(worker.url) as client:
        assert (await client.turn(None, "hi"))[-1]["content"] == "hello from a sibling"


GATED_AGENT = """
import sys

import anyio


async def create_agent():
    await anyio.to_thread.run_sync(sys.stdin.readline)  # the test says when

    async def answer(message):
        return "ready"

    return answer
"""


async def test_health_is_503_while_the_agent_is_created(tmp_path: Path) -> None:
    agent = tmp_path / "gated.py"
    agent.write_text(GATED_AGENT)
    argv = worker_argv(agent, "--port", "0", "--session-store", str(tmp_path / "s.sqlite3"))
    process = await trio.lowlevel.open_process(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        reader = LineReader(process.stdout)
        with trio.fail_after(DEADLINE):
            listening = await reader.line()
        port = int(listening.split("127.0.0.1:")[1].split(",")[0])
        served = Served(port)
        health = await served.get("/health")
        assert (health.status_code, health.json()["status"]) == (503, "starting")
        with pytest.raises(InvalidStatus) as refused:
            await Client.connect(served.url)
        assert refused.value.response.status_code == 503
        await process.stdin.send_all(b"go\n")
        with trio.fail_after(DEADLINE):
            assert READY.search(await reader.line())
        assert (await served.get("/health")).status_code == 200
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(DEADLINE):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
        with trio.move_on_after(DEADLINE, shield=True):
            await process.wait()
        await process.stdin.aclose()  # type: ignore[union-attr]
        await process.stdout.aclose()  # type: ignore[union-attr]


def test_a_port_in_use_is_one_line_too(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        argv = worker_argv(
            Path(__file__).parents[2] / "agents" / "scripted.py",
            "--port",
            str(port),
            "--session-store",
            str(tmp_path / "s.sqlite3"),
        )
        result = subprocess.run(argv, capture_output=True, timeout=DEADLINE, check=False)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        f"agentvisor: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
