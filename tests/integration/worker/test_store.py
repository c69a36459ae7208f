"""The SQLite session store on a real file: round trips, sharing, pruning, expiry, batching."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio

from agentvisor.supervise.lostturns import LostTurn, take_lost_turns
from agentvisor.worker.poison import Deaths
from agentvisor.worker.store import (
    JUDGEMENT_TIMEOUT,
    MemorySessionStore,
    OpenTurn,
    SessionDelta,
    SessionStore,
    StoreError,
    open_sqlite_store,
)


def delta(
    session_id: str = "s1",
    *,
    seq: int = 1,
    start: int = 0,
    messages: tuple[dict[str, object], ...] = (),
    events: tuple[tuple[int, str], ...] = (),
    open_turn: OpenTurn | None = None,
    at: float = 1000.0,
) -> SessionDelta:
    return SessionDelta(session_id, {"user": "ada"}, seq, start, messages, events, open_turn, at)


async def round_trip(store: SessionStore) -> None:
    await store.save(delta(events=((1, '{"event":"agent.session_created"}'),)))
    await store.save(
        delta(
            seq=2,
            messages=({"role": "user", "content": "天气 \ud800"},),
            open_turn=OpenTurn("m1"),
            at=1001.0,
        )
    )
    await store.save(
        delta(
            seq=3,
            start=1,
            messages=({"role": "assistant", "content": "sunny"},),
            events=((2, '{"a":1}'), (3, '{"b":2}')),
            at=1002.0,
        )
    )
    stored = await store.load("s1")
    assert stored is not None
    assert stored.metadata == {"user": "ada"}
    assert stored.seq == 3
    assert [m["content"] for m in stored.history] == ["天气 \ud800", "sunny"]
    assert [seq for seq, _ in stored.events] == [1, 2, 3]
    assert stored.open_turn is None
    assert stored.updated_at == 1002.0
    assert await store.load("nope") is None


async def test_sqlite_round_trip(tmp_path: Path) -> None:
    async with open_sqlite_store(str(tmp_path / "deep" / "dir" / "s.sqlite3")) as store:
        await round_trip(store)
    with sqlite3.connect(tmp_path / "deep" / "dir" / "s.sqlite3") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_memory_round_trip() -> None:
    await round_trip(MemorySessionStore())


async def test_an_open_turn_is_kept_until_the_turn_ends(tmp_path: Path) -> None:
    async with open_sqlite_store(str(tmp_path / "s.sqlite3")) as store:
        await store.save(delta(open_turn=OpenTurn(7)))
        stored = await store.load("s1")
        assert stored is not None
        assert stored.open_turn == OpenTurn(7)
        await store.save(delta(open_turn=OpenTurn(None)))
        stored = await store.load("s1")
        assert stored is not None
        assert stored.open_turn == OpenTurn(None)


async def test_two_stores_on_one_file_see_each_others_sessions(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite3")
    async with open_sqlite_store(path) as first, open_sqlite_store(path) as second:
        await first.save(delta("from-first", messages=({"role": "user", "content": "hi"},)))
        stored = await second.load("from-first")
        assert stored is not None
        assert stored.history == [{"role": "user", "content": "hi"}]
        await second.delete("from-first")
        assert await first.load("from-first") is None


async def test_only_the_last_events_are_kept(tmp_path: Path) -> None:
    async with open_sqlite_store(str(tmp_path / "s.sqlite3"), replay_limit=3) as store:
        for seq in range(1, 11):
            await store.save(delta(seq=seq, events=((seq, f'{{"n":{seq}}}'),)))
        stored = await store.load("s1")
        assert stored is not None
        assert [seq for seq, _ in stored.events] == [8, 9, 10]


async def test_expire_drops_sessions_not_saved_since(tmp_path: Path) -> None:
    async with open_sqlite_store(str(tmp_path / "s.sqlite3")) as store:
        await store.save(delta("old", at=10.0, messages=({"role": "user", "content": "x"},)))
        await store.save(delta("new", at=20.0))
        assert await store.expire(idle_before=15.0) == 1
        assert await store.load("old") is None
        assert await store.load("new") is not None


async def test_concurrent_saves_are_batched_and_all_kept(tmp_path: Path) -> None:
    async with (
        open_sqlite_store(str(tmp_path / "s.sqlite3")) as store,
        trio.open_nursery() as nursery,
    ):
        for index in range(200):
            nursery.start_soon(store.save, delta(f"s{index}"))
    async with open_sqlite_store(str(tmp_path / "s.sqlite3")) as store:
        for index in (0, 99, 199):
            assert await store.load(f"s{index}") is not None


async def test_writes_after_close_and_unopenable_files_are_store_errors(tmp_path: Path) -> None:
    async with open_sqlite_store(str(tmp_path / "s.sqlite3")) as store:
        pass
    with pytest.raises(StoreError, match="is closed"):
        await store.save(delta())
    (tmp_path / "a-directory.sqlite3").mkdir()
    with pytest.raises(StoreError, match="cannot open session store"):
        async with open_sqlite_store(str(tmp_path / "a-directory.sqlite3")):
            pass


async def test_issue_9_the_turns_a_worker_runs_are_readable_after_its_death(
    tmp_path: Path,
) -> None:
    """Each worker's turns in flight are its own rows; ``take_lost_turns`` reads and removes
    the dead one's and, for a death of the worker's own, counts it in each open turn."""
    path = str(tmp_path / "s.sqlite3")
    async with (
        open_sqlite_store(path, worker=11) as dead,
        open_sqlite_store(path, worker=12) as live,
    ):
        await dead.save(delta("a", open_turn=OpenTurn("m1", Deaths(1, 1))))
        await dead.save(delta("b", open_turn=OpenTurn(7)))
        await dead.save(delta("c", open_turn=OpenTurn("m3")))
        await dead.save(delta("c", seq=2))  # its turn ended
        await live.save(delta("d", open_turn=OpenTurn("m4")))
        await live.save(delta("e", open_turn=OpenTurn("m5", Deaths(1, 1))))

    lost = sorted(await take_lost_turns(path, 11), key=lambda turn: turn.session_id)

    # Two turns in flight: the death is shared, neither was alone in its worker.
    assert lost == [LostTurn("a", "m1", Deaths(2, 1)), LostTurn("b", "7", Deaths(1, 0))]
    assert [turn.poisoned for turn in lost] == [True, False]
    assert await take_lost_turns(path, 11) == []  # taken once
    async with open_sqlite_store(path, worker=13) as resuming:
        assert await resuming.judged("a")  # no row of another worker left
        stored = await resuming.load("a")
        assert stored is not None
        assert stored.open_turn == OpenTurn("m1", Deaths(2, 1))
    # An external kill of worker 12: its rows go, nothing is counted.
    assert sorted(await take_lost_turns(path, 12, counts=False), key=lambda t: t.session_id) == [
        LostTurn("d", "m4", Deaths(), counted=False),
        LostTurn("e", "m5", Deaths(1, 1), counted=False),
    ]
    async with open_sqlite_store(path, worker=13) as resuming:
        stored = await resuming.load("e")
        assert stored is not None
        assert stored.open_turn == OpenTurn("m5", Deaths(1, 1))
    assert await take_lost_turns(str(tmp_path / "none.sqlite3"), 11) == []


async def test_issue_9_a_session_that_went_on_elsewhere_is_not_judged(tmp_path: Path) -> None:
    """The dead worker's row names a turn the session no longer has open: nothing counted."""
    path = str(tmp_path / "s.sqlite3")
    async with open_sqlite_store(path, worker=31) as dead:
        await dead.save(delta("a", open_turn=OpenTurn("m1")))
    async with open_sqlite_store(path, worker=32) as other:
        await other.save(delta("a", seq=2, open_turn=OpenTurn("m2", Deaths(1, 1))))
        await other.save(delta("a", seq=3))  # that turn ended too

    assert await take_lost_turns(path, 31) == [LostTurn("a", "m1", Deaths(), counted=False)]
    async with open_sqlite_store(path, worker=33) as resuming:
        stored = await resuming.load("a")
        assert stored is not None
        assert stored.open_turn is None


async def test_issue_9_a_resuming_worker_waits_for_the_verdict_on_a_death(
    tmp_path: Path,
) -> None:
    """While the dead worker's row is there, ``judged`` waits; it answers True as soon as
    the supervisor has taken the row, and False after its bound when nobody does."""
    path = str(tmp_path / "s.sqlite3")
    async with open_sqlite_store(path, worker=21) as dead:
        await dead.save(delta("a", open_turn=OpenTurn("m1")))
    async with open_sqlite_store(path, worker=22) as resuming:
        answers: list[bool] = []

        async def ask() -> None:
            answers.append(await resuming.judged("a"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            await take_lost_turns(path, 21)
        assert answers == [True]
        async with open_sqlite_store(path, worker=23) as dead:
            await dead.save(delta("b", open_turn=OpenTurn("m")))
        with trio.fail_after(JUDGEMENT_TIMEOUT + 2):
            assert not await resuming.judged("b")


async def test_a_store_of_one_process_judges_no_death() -> None:
    assert not await MemorySessionStore().judged("a")  # the worker counts it as its own


async def test_issue_9_open_turns_written_before_deaths_were_told_apart_count_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite3"
    async with open_sqlite_store(str(path)) as store:
        await store.save(delta(open_turn=OpenTurn("m1")))
    with sqlite3.connect(path) as connection:
        connection.execute(
            "UPDATE sessions SET open_turn = ?", ('{"message_id": "m1", "deaths": 1}',)
        )
    async with open_sqlite_store(str(path)) as store:
        stored = await store.load("s1")
    assert stored is not None
    assert stored.open_turn == OpenTurn("m1", Deaths(1, 1))
