"""The agent event protocol over real sockets: a worker in this process, ``websockets`` clients."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from websockets.exceptions import InvalidStatus

from tests.integration.worker.harness import (
    Client,
    Frame,
    open_client,
    parse_timestamp,
    serving,
    wait_for_stats,
)

TURN_END = ("agent.final_answer", "agent.cancelled", "agent.error")


def events(frames: list[Frame]) -> list[str]:
    return [frame["event"] for frame in frames]


async def test_a_full_turn_with_tool_calls(tmp_path: Path) -> None:
    async with serving(tmp_path) as worker, open_client(worker.url) as client:
        session_id = await client.create_session(user="ada")
        frames = await client.turn(session_id, "tools:Paris", message_id="m1")
    assert events(frames) == [
        "agent.thinking",
        "agent.tool_call",
        "agent.tool_result",
        "agent.partial_answer",
        "agent.partial_answer",
        "agent.final_answer",
    ]
    call, result = frames[1], frames[2]
    assert (call["call_id"], call["tool"], call["arguments"]) == (
        "call-1",
        "weather",
        {"city": "Paris"},
    )
    assert (result["success"], result["output"], result["error"]) == (True, "sunny in Paris", None)
    assert "".join(f["delta"] for f in frames[3:5]) == "It is sunny in Paris."
    assert frames[-1]["content"] == "It is sunny in Paris."
    assert all(f["session_id"] == session_id and f["message_id"] == "m1" for f in frames)


async def test_seq_counts_every_session_event_and_timestamps_are_utc(tmp_path: Path) -> None:
    async with serving(tmp_path) as worker, open_client(worker.url) as client:
        await client.send({"event": "user.message", "content": "tools:Oslo"})
        first = await client.recv_until("agent.final_answer")
        second = await client.turn(first[0]["session_id"], "stream:3")
        await client.send({"event": "ping"})
        pong = await client.recv()
    frames = first + second
    assert frames[0]["event"] == "agent.session_created"
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    moments = [parse_timestamp(f["timestamp"]) for f in [*frames, pong]]
    assert moments == sorted(moments)
    assert "seq" not in pong
    # the runtime supplies the final answer of an agent that streamed without one
    assert second[-1]["content"] == "0 1 2 "


async def test_metadata_and_history_reach_the_agent(tmp_path: Path) -> None:
    async with serving(tmp_path) as worker, open_client(worker.url) as client:
        session_id = await client.create_session(user="ada", plan="pro")
        meta = await client.turn(session_id, "meta")
        await client.turn(session_id, "tools:Rome")
        history = await client.turn(session_id, "history")
    assert json.loads(meta[-1]["content"]) == {"user": "ada", "plan": "pro"}
    messages = json.loads(history[-1]["content"])
    assert [m["role"] for m in messages] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert messages[3]["tool_calls"][0]["function"] == {
        "name": "weather",
        "arguments": '{"city": "Rome"}',
    }
    assert messages[4] == {"role": "tool", "tool_call_id": "call-1", "content": "sunny in Rome"}


async def test_bad_frames_get_errors_and_the_connection_stays_open(tmp_path: Path) -> None:
    cases: list[tuple[str | bytes, str]] = [
        ("not json", "INVALID_MESSAGE"),
        ("[1, 2, 3]", "INVALID_MESSAGE"),
        ('{"content": "no event"}', "INVALID_MESSAGE"),
        ('{"event": "user.message", "content": 42}', "INVALID_MESSAGE"),
        ('{"event": "user.dance"}', "UNKNOWN_EVENT"),
        ('{"event": "user.message", "session_id": "nope", "content": "x"}', "SESSION_NOT_FOUND"),
        ('{"event": "user.cancel", "session_id": "nope"}', "SESSION_NOT_FOUND"),
        ('{"event": "user.resume_session", "session_id": "nope"}', "SESSION_NOT_FOUND"),
        (b'{"event": "ping"}', "INVALID_MESSAGE"),
        (json.dumps({"event": "user.message", "content": "x" * 5000}), "MESSAGE_TOO_LARGE"),
    ]
    async with (
        serving(tmp_path, max_message_bytes=4096) as worker,
        open_client(worker.url) as other,
        open_client(worker.url) as client,
    ):
        other_session = await other.create_session()
        await other.send(
            {"event": "user.message", "session_id": other_session, "content": "sleep:0.3"}
        )
        for frame, code in cases:
            await client.send(frame)
            error = await client.recv()
            assert (error["event"], error["code"]) == ("agent.error", code), frame
            assert error["recoverable"] is (code != "SESSION_NOT_FOUND")
            assert error["message"]
        await client.send({"event": "ping"})
        assert (await client.recv())["event"] == "pong"
        # the other session's turn was not disturbed
        answer = (await other.recv_until("agent.final_answer"))[-1]
        assert answer["content"] == "slept peak=1"


async def test_resume_on_a_new_connection_replays_after_last_seq(tmp_path: Path) -> None:
    async with serving(tmp_path) as worker:
        async with open_client(worker.url) as first:
            session_id = await first.create_session()
            await first.turn(session_id, "hello")  # seq 2: the answer
            await first.send(
                {"event": "user.message", "session_id": session_id, "content": "sleep:0.2"}
            )
        # disconnected: the turn goes on and its answer waits in the replay buffer
        await wait_for_stats(
            worker, lambda s: s["turns"]["running"] == 0 and s["turns"]["total"] == 2
        )
        async with open_client(worker.url) as second:
            await second.send(
                {"event": "user.resume_session", "session_id": session_id, "last_seq": 1}
            )
            frames = await second.recv_until("agent.session_resumed")
            replayed, resumed = frames[:-1], frames[-1]
            assert [(f["seq"], f["event"]) for f in replayed] == [
                (2, "agent.final_answer"),
                (3, "agent.final_answer"),
            ]
            assert replayed[1]["content"] == "slept peak=1"
            assert resumed["replayed"] == 2
            assert resumed["history_length"] == 4
            assert "seq" not in resumed
            # the session goes on on the new connection, numbering on
            answer = (await second.turn(session_id, "count"))[-1]
            assert (answer["seq"], answer["content"]) == (4, "history=4")


async def test_cancel_stops_the_running_turn(tmp_path: Path) -> None:
    async with serving(tmp_path) as worker, open_client(worker.url) as client:
        session_id = await client.create_session()
        await client.send(
            {"event": "user.message", "session_id": session_id, "content": "wait", "message_id": 7}
        )
        assert (await client.recv())["delta"] == "waiting"
        await client.send({"event": "user.cancel", "session_id": session_id})
        cancelled = await client.recv()
        assert (cancelled["event"], cancelled["message_id"]) == ("agent.cancelled", 7)
        stats = await worker.stats()
        assert stats["turns"]["running"] == 0
        assert stats["turns"]["cancelled"] == 1
        # the session survives; the cancelled turn is in its history with the text shown
        answer = (await client.turn(session_id, "count"))[-1]
        assert answer["content"] == "history=2"


async def test_issue_11_a_cancel_with_nothing_running_gets_a_precise_reply(tmp_path: Path) -> None:
    # It got no reply at all: a client waiting for agent.cancelled waited forever.
    async with serving(tmp_path) as worker, open_client(worker.url) as client:
        session_id = await client.create_session()
        await client.send({"event": "user.cancel", "session_id": session_id})
        idle = await client.recv()
        await client.turn(session_id, "count")
        await client.send({"event": "user.cancel", "session_id": session_id})  # turn over
        late = await client.recv()
        answer = (await client.turn(session_id, "count"))[-1]
    for reply in (idle, late):
        assert (reply["event"], reply["code"], reply["recoverable"]) == (
            "agent.error",
            "NO_TURN_RUNNING",
            True,
        )
        assert reply["session_id"] == session_id
        assert "seq" not in reply  # a reply to the request, not an event of the session
        assert "nothing to cancel" in reply["message"]
    assert answer["content"] == "history=2"  # the session goes on


@pytest.mark.parametrize("on_busy", ["queue", "reject", "interrupt"])
async def test_on_busy(tmp_path: Path, on_busy: str) -> None:
    async with serving(tmp_path, on_busy=on_busy) as worker, open_client(worker.url) as client:
        session_id = await client.create_session()
        message = {"event": "user.message", "session_id": session_id}
        await client.send(message | {"content": "wait", "message_id": "a"})
        await client.recv_until("agent.partial_answer")
        await client.send(message | {"content": "count", "message_id": "b"})
        if on_busy == "queue":  # "b" waits for "a"; cancelling "a" lets "b" run
            await client.send({"event": "user.cancel", "session_id": session_id})
        frames = await client.recv_until(
            "", where=lambda f: f["event"] in TURN_END and f["message_id"] == "b"
        )
        ends = [
            (f["event"], f.get("code"), f["message_id"]) for f in frames if f["event"] in TURN_END
        ]
        if on_busy == "reject":
            assert ends == [("agent.error", "SESSION_BUSY", "b")]
            await client.send({"event": "user.cancel", "session_id": session_id})
            assert (await client.recv())["event"] == "agent.cancelled"
            return
        assert ends == [("agent.cancelled", None, "a"), ("agent.final_answer", None, "b")]
        assert frames[-1]["content"] == "history=2"
        if on_busy == "interrupt":
            assert frames[-2]["reason"] == "interrupt"


async def test_queued_messages_run_in_order(tmp_path: Path) -> None:
    async with serving(tmp_path) as worker, open_client(worker.url) as client:
        session_id = await client.create_session()
        for index, content in enumerate(["sleep:0.2", "count", "count"]):
            await client.send(
                {
                    "event": "user.message",
                    "session_id": session_id,
                    "content": content,
                    "message_id": index,
                }
            )
        frames = await client.recv_until("agent.final_answer", where=lambda f: f["message_id"] == 2)
        answers = [(f["message_id"], f["content"]) for f in frames]
        assert answers == [(0, "slept peak=1"), (1, "history=2"), (2, "history=4")]


async def test_session_limit(tmp_path: Path) -> None:
    async with serving(tmp_path, max_sessions=2) as worker, open_client(worker.url) as client:
        await client.create_session()
        await client.create_session()
        await client.send({"event": "user.create_session"})
        error = await client.recv()
        assert (error["code"], error["recoverable"]) == ("SESSION_LIMIT", True)
        assert (await worker.stats())["sessions"]["active"] == 2


async def test_idle_sessions_time_out(tmp_path: Path) -> None:
    async with serving(tmp_path, session_timeout=0.3) as worker, open_client(worker.url) as client:
        session_id = await client.create_session()
        closed = await client.recv()
        assert (closed["event"], closed["session_id"], closed["reason"]) == (
            "agent.session_closed",
            session_id,
            "timeout",
        )
        await client.send({"event": "user.resume_session", "session_id": session_id})
        assert (await client.recv())["code"] == "SESSION_NOT_FOUND"
        stats = await worker.stats()
        assert stats["sessions"] | {"total": 1} == {
            "active": 0,
            "total": 1,
            "completed": 1,
            "in_use": 0,
        }


async def test_close_session(tmp_path: Path) -> None:
    async with serving(tmp_path) as worker, open_client(worker.url) as client:
        session_id = await client.create_session()
        await client.send({"event": "user.close_session", "session_id": session_id})
        closed = await client.recv()
        assert (closed["event"], closed["reason"], closed["seq"]) == (
            "agent.session_closed",
            "client",
            2,
        )
        await client.send({"event": "user.message", "session_id": session_id, "content": "x"})
        assert (await client.recv())["code"] == "SESSION_NOT_FOUND"


async def test_agent_errors_are_reported_without_traceback(tmp_path: Path) -> None:
    async with serving(tmp_path) as worker, open_client(worker.url) as client:
        session_id = await client.create_session()
        frames = await client.turn(session_id, "fail:the disk is full")
        error = frames[-1]
        assert error["code"] == "AGENT_ERROR"
        assert error["message"] == "ValueError: the disk is full"
        assert "Traceback" not in json.dumps(frames)
        assert (await client.turn(session_id, "count"))[-1]["content"] == "history=2"
        assert (await worker.stats())["turns"]["errors"] == 1


async def test_twenty_sessions_run_their_turns_concurrently(tmp_path: Path) -> None:
    count = 20
    answers: list[Frame] = []
    async with serving(tmp_path) as worker:
        clients = [await Client.connect(worker.url) for _ in range(count)]
        try:

            async def converse(client: Client) -> None:
                answers.append((await client.turn(None, "sleep:0.5"))[-1])

            async with trio.open_nursery() as nursery:
                for client in clients:
                    nursery.start_soon(converse, client)
        finally:
            for client in clients:
                await client.close()
        stats = await worker.stats()
    assert len(answers) == count
    peaks = [int(answer["content"].removeprefix("slept peak=")) for answer in answers]
    assert max(peaks) >= count * 3 // 4  # (in practice all 20 sleep at once)
    assert stats["turns"]["total"] == count
    assert stats["sessions"]["active"] == count


async def test_health_and_stats(tmp_path: Path) -> None:
    async with serving(tmp_path) as worker:
        health = await worker.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        stats = (await worker.get("/stats")).json()
        assert set(stats) >= {"sessions", "turns", "connections", "uptime"}
        assert set(stats["sessions"]) == {"active", "in_use", "total", "completed"}
        assert set(stats["turns"]) >= {"total", "running", "errors", "avg_duration"}
        assert (await worker.get("/nope")).status_code == 404
        with pytest.raises(InvalidStatus) as refused:
            await Client.connect(worker.url + "elsewhere")
        assert refused.value.response.status_code == 404
