"""The session manager on trio's MockClock: turns, on_busy, cancel, resume, expiry, shutdown.

No sockets: a fake connection collects the frames, the store is in memory,
and the agent sleeps in virtual time, so ordering and timeouts are exact.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import trio

from agentvisor.agent.types import AgentEvent, FinalAnswer, PartialAnswer, Session
from agentvisor.config.model import OnBusy
from agentvisor.worker.protocol import (
    Cancel,
    CloseSession,
    CreateSession,
    Ping,
    Request,
    ResumeSession,
    UserMessage,
)
from agentvisor.worker.sessions import SessionManager, SessionSettings, idle_expired, sweep_interval
from agentvisor.worker.store import MemorySessionStore


class SleepyAgent:
    """``sleep N``: a partial answer, N virtual seconds, then the answer; ``boom``: raises."""

    async def stream(self, message: str, session: Session) -> AsyncIterator[AgentEvent]:
        if message == "boom":
            raise RuntimeError("kaput")
        yield PartialAnswer(f"start {message}")
        verb, _, seconds = message.partition(" ")
        if verb == "sleep":
            await anyio.sleep(float(seconds))
        yield FinalAnswer(f"done {message} after {len(session.history)}")


class FakeConnection:
    def __init__(self) -> None:
        self.attached: set[str] = set()
        self.frames: list[dict[str, Any]] = []
        self.stored_when_sent: list[bool] = []

    def push(self, text: str) -> bool:
        frame = json.loads(text)
        self.frames.append(frame)
        return True

    def events(self, *names: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if not names or f["event"] in names]

    def ends(self) -> list[dict[str, Any]]:
        """The events that ended turns, in order."""
        return self.events("agent.final_answer", "agent.cancelled", "agent.error")


async def start(
    nursery: trio.Nursery, store: MemorySessionStore | None = None, **settings: Any
) -> SessionManager:
    manager = SessionManager(
        SleepyAgent(), store or MemorySessionStore(), SessionSettings(**settings)
    )
    await nursery.start(manager.run)
    return manager


async def new_session(manager: SessionManager, connection: FakeConnection) -> str:
    await manager.handle(CreateSession({"k": "v"}), connection)
    session_id: str = connection.events("agent.session_created")[-1]["session_id"]
    return session_id


async def say(manager: SessionManager, connection: Any, request: Request) -> None:
    await manager.handle(request, connection)


async def test_a_turn_numbers_its_events_and_ends_with_the_answer(autojump_clock: Any) -> None:
    async with trio.open_nursery() as nursery:
        manager = await start(nursery)
        connection = FakeConnection()
        session_id = await new_session(manager, connection)
        await say(manager, connection, UserMessage("sleep 1", session_id, "m1"))
        await trio.sleep(5)
        frames = connection.frames
        assert [f["event"] for f in frames] == [
            "agent.session_created",
            "agent.partial_answer",
            "agent.final_answer",
        ]
        assert [f["seq"] for f in frames] == [1, 2, 3]
        assert frames[2]["content"] == "done sleep 1 after 0"
        assert frames[2]["message_id"] == "m1"
        stats = manager.statistics()
        assert stats["turns"]["total"] == 1
        assert stats["turns"]["avg_duration"] == pytest.approx(1.0)
        nursery.cancel_scope.cancel()


async def test_the_answer_is_stored_before_the_client_sees_it(autojump_clock: Any) -> None:
    store = MemorySessionStore()

    class Checking(FakeConnection):
        def push(self, text: str) -> bool:
            frame = json.loads(text)
            if frame["event"] in ("agent.final_answer", "agent.session_created"):
                record = store._records[frame["session_id"]]
                self.stored_when_sent.append(record.seq >= frame["seq"])
            return super().push(text)

    async with trio.open_nursery() as nursery:
        manager = await start(nursery, store)
        connection = Checking()
        await say(manager, connection, UserMessage("hi"))
        await trio.sleep(1)
        assert connection.stored_when_sent == [True, True]
        stored = await store.load(connection.frames[0]["session_id"])
        assert stored is not None
        assert [m["role"] for m in stored.history] == ["user", "assistant"]
        assert stored.open_turn is None
        nursery.cancel_scope.cancel()


async def test_queue_runs_messages_one_after_another(autojump_clock: Any) -> None:
    async with trio.open_nursery() as nursery:
        manager = await start(nursery, on_busy=OnBusy.QUEUE)
        connection = FakeConnection()
        session_id = await new_session(manager, connection)
        for index in (1, 2, 3):
            await say(manager, connection, UserMessage(f"sleep {index}", session_id, index))
        await trio.sleep(10)
        ends = connection.ends()
        assert [e["message_id"] for e in ends] == [1, 2, 3]
        assert [e["content"] for e in ends] == [
            "done sleep 1 after 0",
            "done sleep 2 after 2",
            "done sleep 3 after 4",
        ]
        nursery.cancel_scope.cancel()


async def test_reject_answers_session_busy(autojump_clock: Any) -> None:
    async with trio.open_nursery() as nursery:
        manager = await start(nursery, on_busy=OnBusy.REJECT)
        connection = FakeConnection()
        session_id = await new_session(manager, connection)
        await say(manager, connection, UserMessage("sleep 1", session_id, "a"))
        await say(manager, connection, UserMessage("sleep 1", session_id, "b"))
        [busy] = connection.events("agent.error")
        assert busy["code"] == "SESSION_BUSY"
        assert busy["message_id"] == "b"
        assert "seq" not in busy  # a reply to the request, not part of the session's stream
        await trio.sleep(5)
        assert [e["message_id"] for e in connection.ends()[1:]] == ["a"]
        nursery.cancel_scope.cancel()


async def test_interrupt_cancels_the_running_turn_and_starts_the_new_one(
    autojump_clock: Any,
) -> None:
    async with trio.open_nursery() as nursery:
        manager = await start(nursery, on_busy=OnBusy.INTERRUPT)
        connection = FakeConnection()
        session_id = await new_session(manager, connection)
        await say(manager, connection, UserMessage("sleep 100", session_id, "a"))
        await trio.sleep(1)
        await say(manager, connection, UserMessage("sleep 1", session_id, "b"))
        await trio.sleep(5)
        ends = connection.ends()
        assert [(e["event"], e["message_id"]) for e in ends] == [
            ("agent.cancelled", "a"),
            ("agent.final_answer", "b"),
        ]
        assert ends[0]["reason"] == "interrupt"
        # the interrupted turn stays in the history: user "a", its partial answer, then "b"
        assert ends[1]["content"] == "done sleep 1 after 2"
        assert trio.current_time() < 10  # the first turn did not run its 100 s
        nursery.cancel_scope.cancel()


async def test_cancel_stops_the_running_turn_only(autojump_clock: Any) -> None:
    async with trio.open_nursery() as nursery:
        manager = await start(nursery)
        connection = FakeConnection()
        session_id = await new_session(manager, connection)
        await say(manager, connection, UserMessage("sleep 100", session_id, "a"))
        await say(manager, connection, UserMessage("sleep 1", session_id, "b"))
        await trio.sleep(1)
        await say(manager, connection, Cancel(session_id))
        await trio.sleep(5)
        ends = connection.ends()
        assert [(e["event"], e["message_id"]) for e in ends] == [
            ("agent.cancelled", "a"),
            ("agent.final_answer", "b"),
        ]
        assert trio.current_time() < 10
        assert manager.statistics()["turns"]["cancelled"] == 1
        nursery.cancel_scope.cancel()


async def test_agent_errors_end_the_turn_and_the_session_survives(autojump_clock: Any) -> None:
    async with trio.open_nursery() as nursery:
        manager = await start(nursery)
        connection = FakeConnection()
        session_id = await new_session(manager, connection)
        await say(manager, connection, UserMessage("boom", session_id))
        await say(manager, connection, UserMessage("after", session_id))
        await trio.sleep(1)
        error, answer = connection.ends()
        assert error["code"] == "AGENT_ERROR"
        assert error["message"] == "RuntimeError: kaput"
        assert error["recoverable"] is True
        assert answer["content"] == "done after after 1"
        assert manager.statistics()["turns"]["errors"] == 1
        nursery.cancel_scope.cancel()


async def test_session_limit(autojump_clock: Any) -> None:
    async with trio.open_nursery() as nursery:
        manager = await start(nursery, max_sessions=2)
        connection = FakeConnection()
        await new_session(manager, connection)
        await new_session(manager, connection)
        await say(manager, connection, CreateSession())
        await say(manager, connection, UserMessage("implicit", message_id="m"))
        errors = connection.events("agent.error")
        assert [e["code"] for e in errors] == ["SESSION_LIMIT", "SESSION_LIMIT"]
        assert errors[1]["message_id"] == "m"
        nursery.cancel_scope.cancel()


async def test_at_the_limit_a_session_whose_client_left_makes_room_and_resumes_later(
    autojump_clock: Any,
) -> None:
    """Issue 10: a scale-down moves sessions onto a replica full of sessions whose clients
    left; those are only a cache of the store, so the idlest goes, not the newcomer."""
    store = MemorySessionStore()
    async with trio.open_nursery() as nursery:
        manager = await start(nursery, store, max_sessions=2)
        gone, busy, staying = FakeConnection(), FakeConnection(), FakeConnection()
        left = await new_session(manager, gone)
        await say(manager, gone, UserMessage("first", left, "m1"))
        await trio.sleep(1)
        manager.disconnect(gone)
        running = await new_session(manager, busy)
        await say(manager, busy, UserMessage("sleep 100", running, "m2"))
        await trio.sleep(1)
        manager.disconnect(busy)  # its turn still runs: it is in use
        newcomer = await new_session(manager, staying)
        assert set(manager.sessions) == {running, newcomer}
        assert (await store.load(left)) is not None

        await say(manager, FakeConnection(), CreateSession())  # nothing idle left: refused
        back = FakeConnection()
        await say(manager, back, ResumeSession(left))
        [error] = back.events("agent.error")
        assert error["code"] == "SESSION_LIMIT"
        manager.disconnect(staying)
        await say(manager, back, ResumeSession(left))  # newcomer is idle now: it makes room
        await say(manager, back, UserMessage("second", left, "m3"))
        await trio.sleep(1)
        assert back.events("agent.final_answer")[-1]["content"] == "done second after 2"
        assert set(manager.sessions) == {running, left}
        nursery.cancel_scope.cancel()


async def test_idle_sessions_time_out_and_leave_the_store(autojump_clock: Any) -> None:
    store = MemorySessionStore()
    async with trio.open_nursery() as nursery:
        manager = await start(nursery, store, session_timeout=60)
        connection = FakeConnection()
        idle = await new_session(manager, connection)
        busy = await new_session(manager, connection)
        await say(manager, connection, UserMessage("sleep 100", busy))
        await trio.sleep(59)
        assert not connection.events("agent.session_closed")
        await trio.sleep(60 / 10 + 1)
        [closed] = connection.events("agent.session_closed")
        assert (closed["session_id"], closed["reason"]) == (idle, "timeout")
        assert await store.load(idle) is None
        assert busy in manager.sessions  # a running turn is activity
        await trio.sleep(100 + 61)
        assert busy not in manager.sessions
        assert manager.statistics()["sessions"] == {
            "active": 0,
            "in_use": 0,
            "total": 2,
            "completed": 2,
        }
        nursery.cancel_scope.cancel()


async def test_close_session_cancels_its_turn_then_closes(autojump_clock: Any) -> None:
    store = MemorySessionStore()
    async with trio.open_nursery() as nursery:
        manager = await start(nursery, store)
        connection = FakeConnection()
        session_id = await new_session(manager, connection)
        await say(manager, connection, UserMessage("sleep 100", session_id))
        await trio.sleep(1)
        await say(manager, connection, CloseSession(session_id))
        await trio.sleep(1)
        assert [f["event"] for f in connection.frames[-2:]] == [
            "agent.cancelled",
            "agent.session_closed",
        ]
        assert connection.frames[-1]["reason"] == "client"
        assert await store.load(session_id) is None
        await say(manager, connection, UserMessage("again", session_id))
        assert connection.frames[-1]["code"] == "SESSION_NOT_FOUND"
        nursery.cancel_scope.cancel()


async def test_resume_replays_what_a_new_connection_missed(autojump_clock: Any) -> None:
    async with trio.open_nursery() as nursery:
        manager = await start(nursery)
        first = FakeConnection()
        session_id = await new_session(manager, first)
        await say(manager, first, UserMessage("sleep 10", session_id))
        await trio.sleep(1)
        manager.disconnect(first)  # the client went away mid-turn
        await trio.sleep(20)
        assert first.events()[-1]["event"] == "agent.partial_answer"
        second = FakeConnection()
        await say(manager, second, ResumeSession(session_id, last_seq=2))
        replayed, resumed = second.frames
        assert (replayed["event"], replayed["seq"]) == ("agent.final_answer", 3)
        assert resumed == resumed | {
            "event": "agent.session_resumed",
            "replayed": 1,
            "history_length": 2,
            "last_seq": 3,
        }
        nursery.cancel_scope.cancel()


async def test_another_manager_resumes_from_the_shared_store(autojump_clock: Any) -> None:
    store = MemorySessionStore()
    async with trio.open_nursery() as nursery:
        first = await start(nursery, store)
        connection = FakeConnection()
        session_id = await new_session(first, connection)
        await say(first, connection, UserMessage("one", session_id))
        await say(first, connection, UserMessage("sleep 50", session_id, "lost"))
        await trio.sleep(10)
        # the first worker "dies" mid-turn: a second one, on the same store, resumes
        second = await start(nursery, store)
        other = FakeConnection()
        await say(second, other, ResumeSession(session_id, last_seq=5))
        events = other.events()
        assert events[-1]["event"] == "agent.session_resumed"
        assert events[-1]["history_length"] == 2  # one and its answer; the lost turn runs again
        assert events[-1]["replayed"] == 0
        await say(second, other, UserMessage("sleep 50", session_id, "lost"))  # sent again
        await trio.sleep(60)
        ends = other.ends()
        assert [(e["event"], e.get("message_id")) for e in ends] == [("agent.final_answer", "lost")]
        await say(second, other, UserMessage("two", session_id))
        await trio.sleep(1)
        assert other.ends()[-1]["content"] == "done two after 4"
        stored = await store.load(session_id)
        assert stored is not None
        assert [m["content"] for m in stored.history if m["role"] == "user"] == [
            "one",
            "sleep 50",
            "two",
        ]
        assert (await store.load(session_id)).metadata == {"k": "v"}  # type: ignore[union-attr]
        nursery.cancel_scope.cancel()


async def test_shutdown_drains_then_cancels_and_keeps_sessions_stored(
    autojump_clock: Any,
) -> None:
    store = MemorySessionStore()
    async with trio.open_nursery() as nursery:
        manager = await start(nursery, store)
        connection = FakeConnection()
        quick, slow = await new_session(manager, connection), await new_session(manager, connection)
        await say(manager, connection, UserMessage("sleep 2", quick, "q"))
        await say(manager, connection, UserMessage("sleep 100", slow, "s"))
        await say(manager, connection, UserMessage("queued", slow, "w"))
        await manager.shutdown(drain_timeout=5)
        assert trio.current_time() == pytest.approx(5, abs=0.1)
        ends = {e["message_id"]: e for e in connection.ends()}
        assert ends["q"]["event"] == "agent.final_answer"
        assert ends["w"]["code"] == "SHUTTING_DOWN"
        assert (ends["s"]["event"], ends["s"]["reason"]) == ("agent.cancelled", "shutdown")
        # issue 15: the sessions are not over, so no session_closed; they stay resumable
        assert connection.events("agent.session_closed") == []
        stored = await store.load(slow)
        assert stored is not None
        assert stored.events[-1][1].startswith('{"event":"agent.cancelled"')
        await say(manager, connection, CreateSession())
        assert connection.frames[-1]["code"] == "SHUTTING_DOWN"


async def test_ping(autojump_clock: Any) -> None:
    async with trio.open_nursery() as nursery:
        manager = await start(nursery)
        connection = FakeConnection()
        await say(manager, connection, Ping())
        assert connection.frames[0]["event"] == "pong"
        nursery.cancel_scope.cancel()


def test_sweep_interval_and_idle_selection() -> None:
    assert sweep_interval(1800) == 5.0
    assert sweep_interval(0.1) == 0.02
    assert idle_expired([], 100.0, 10.0) == []


async def dies_in_a_turn(
    store: MemorySessionStore, session_id: str | None, content: str, message_id: str | None
) -> str:
    """A manager that takes the session, starts ``content`` and dies (cancelled, nothing saved
    after the turn's start); the session's id."""
    async with trio.open_nursery() as nursery:
        manager = await start(nursery, store)
        connection = FakeConnection()
        if session_id is None:
            session_id = await new_session(manager, connection)
        else:
            await say(manager, connection, ResumeSession(session_id))
        await say(manager, connection, UserMessage(content, session_id, message_id))
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    return session_id


async def test_a_message_sent_again_is_answered_once_and_stored_once(autojump_clock: Any) -> None:
    store = MemorySessionStore()
    async with trio.open_nursery() as nursery:
        manager = await start(nursery, store)
        connection = FakeConnection()
        session_id = await new_session(manager, connection)
        for _ in range(3):
            await say(manager, connection, UserMessage("sleep 1", session_id, "m1"))
        await trio.sleep(5)
        assert [e["message_id"] for e in connection.ends()] == ["m1"]
        stored = await store.load(session_id)
        assert stored is not None
        assert [m["role"] for m in stored.history] == ["user", "assistant"]
        assert list(stored.message_ids) == ["m1"]
        nursery.cancel_scope.cancel()


async def test_a_message_in_flight_at_two_worker_deaths_is_poisoned(autojump_clock: Any) -> None:
    store = MemorySessionStore()
    session_id = await dies_in_a_turn(store, None, "sleep 50", "bad")
    async with trio.open_nursery() as nursery:  # the second worker resumes the turn, and dies
        manager = await start(nursery, store)
        connection = FakeConnection()
        await say(manager, connection, ResumeSession(session_id))
        await say(manager, connection, UserMessage("sleep 50", session_id, "bad"))  # sent again
        await trio.sleep(1)
        assert connection.events("agent.partial_answer")  # it runs again, once
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:
        manager = await start(nursery, store)
        connection = FakeConnection()
        await say(manager, connection, ResumeSession(session_id))
        await say(manager, connection, UserMessage("sleep 50", session_id, "bad"))
        await trio.sleep(60)
        error = connection.ends()
        assert [(e["event"], e.get("code"), e.get("message_id")) for e in error] == [
            ("agent.error", "MESSAGE_POISONED", "bad")
        ]
        assert error[0]["recoverable"] is False
        await say(manager, connection, UserMessage("fine", session_id, "ok"))
        await trio.sleep(1)
        assert connection.ends()[-1]["content"] == "done fine after 0"
        stored = await store.load(session_id)
        assert stored is not None
        assert [m["content"] for m in stored.history] == ["fine", "done fine after 0"]
        assert stored.open_turn is None
        nursery.cancel_scope.cancel()


async def test_a_turn_without_message_id_lost_with_its_worker_is_worker_lost(
    autojump_clock: Any,
) -> None:
    store = MemorySessionStore()
    session_id = await dies_in_a_turn(store, None, "sleep 50", None)
    async with trio.open_nursery() as nursery:
        manager = await start(nursery, store)
        connection = FakeConnection()
        await say(manager, connection, ResumeSession(session_id))
        events = connection.events()
        assert [e["event"] for e in events][-2:] == ["agent.session_resumed", "agent.error"]
        assert (events[-1]["code"], events[-1]["recoverable"]) == ("WORKER_LOST", True)
        stored = await store.load(session_id)
        assert stored is not None
        assert stored.history == []
        assert stored.open_turn is None
        nursery.cancel_scope.cancel()


async def test_issue_15_shutdown_does_not_write_back_a_session_it_did_not_change(
    autojump_clock: Any,
) -> None:
    """A session moved to another replica is that replica's: an unchanged copy is not saved."""
    store = MemorySessionStore()
    async with trio.open_nursery() as nursery:
        manager = await start(nursery, store)
        connection = FakeConnection()
        session = await new_session(manager, connection)
        await say(manager, connection, UserMessage("hi", session, "m1"))
        await trio.sleep(5)
        before = await store.load(session)
        assert before is not None
        await manager.shutdown(drain_timeout=1)
        after = await store.load(session)
    assert after == before
