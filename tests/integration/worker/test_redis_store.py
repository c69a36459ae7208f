"""The Redis session store against a real redis-server: the SQLite store's semantics."""

from __future__ import annotations

import pytest
import trio

from agentvisor.config.model import ClusterConfig
from agentvisor.config.redis_target import parse_redis_target
from agentvisor.supervise.lostturns import LostTurn, RedisTurns
from agentvisor.worker.poison import Deaths
from agentvisor.worker.redis_store import RedisSessionStore, open_redis_store
from agentvisor.worker.store import JUDGEMENT_TIMEOUT, OpenTurn, SessionDelta, StoreError
from tests.integration.worker.test_store import delta, round_trip
from tests.redis_server import RedisServer

NAMESPACE = "agentvisor:sessions:chat"


def store(server: RedisServer, worker: str = "n1/11", replay_limit: int = 500) -> RedisSessionStore:
    return open_redis_store(parse_redis_target(server.url), NAMESPACE, worker, replay_limit)


async def test_redis_round_trip(redis_server: RedisServer) -> None:
    await round_trip(store(redis_server))


async def test_two_nodes_see_each_others_sessions(redis_server: RedisServer) -> None:
    first, second = store(redis_server, "a/1"), store(redis_server, "b/1")
    await first.save(delta("s", messages=({"role": "user", "content": "hi"},)))
    stored = await second.load("s")
    assert stored is not None
    assert stored.history == [{"role": "user", "content": "hi"}]
    await second.delete("s")
    assert await first.load("s") is None
    assert redis_server.client().keys("*") == []  # nothing left behind


async def test_a_turn_taken_back_shortens_the_history(redis_server: RedisServer) -> None:
    sessions = store(redis_server)
    messages = tuple({"role": "user", "content": str(n)} for n in range(3))
    await sessions.save(delta(messages=messages))
    await sessions.save(delta(seq=2, start=1, messages=({"role": "user", "content": "x"},)))
    stored = await sessions.load("s1")
    assert stored is not None
    assert [m["content"] for m in stored.history] == ["0", "x"]
    assert stored.seq == 2
    await sessions.save(delta(seq=1))  # an older seq never goes back
    stored = await sessions.load("s1")
    assert stored is not None
    assert stored.seq == 2


async def test_only_the_last_events_are_kept(redis_server: RedisServer) -> None:
    sessions = store(redis_server, replay_limit=3)
    for seq in range(1, 11):
        await sessions.save(delta(seq=seq, events=((seq, f'{{"n":{seq}}}'),)))
    stored = await sessions.load("s1")
    assert stored is not None
    assert stored.events == [(8, '{"n":8}'), (9, '{"n":9}'), (10, '{"n":10}')]


async def test_message_ids_and_open_turns_round_trip(redis_server: RedisServer) -> None:
    sessions = store(redis_server)
    await sessions.save(
        SessionDelta("s1", {}, 1, 0, (), (), OpenTurn("m2", Deaths(1, 1)), 5.0, ("m1", "m2"))
    )
    stored = await sessions.load("s1")
    assert stored is not None
    assert stored.open_turn == OpenTurn("m2", Deaths(1, 1))
    assert stored.message_ids == ("m1", "m2")


async def test_expire_drops_sessions_not_saved_since(redis_server: RedisServer) -> None:
    sessions = store(redis_server)
    await sessions.save(delta("old", at=10.0, messages=({"role": "user", "content": "x"},)))
    await sessions.save(delta("new", at=20.0))
    assert await sessions.expire(idle_before=15.0) == 1
    assert await sessions.load("old") is None
    assert await sessions.load("new") is not None


async def test_concurrent_saves_are_all_kept(redis_server: RedisServer) -> None:
    sessions = store(redis_server)
    async with trio.open_nursery() as nursery:
        for index in range(100):
            nursery.start_soon(sessions.save, delta(f"s{index}"))
    for index in (0, 50, 99):
        assert await sessions.load(f"s{index}") is not None


async def test_a_redis_that_is_gone_is_a_store_error(redis_server: RedisServer) -> None:
    sessions = store(redis_server)
    await sessions.save(delta())
    redis_server.stop()
    refused = r"session store redis://127\.0\.0\.1:\d+/0: write failed: .*refused"
    with pytest.raises(StoreError, match=refused):
        await sessions.save(delta(seq=2))
    with pytest.raises(StoreError, match="read failed"):
        await sessions.load("s1")


async def test_issue_9_the_turns_of_a_dead_worker_are_taken_by_its_node(
    redis_server: RedisServer,
) -> None:
    """Turns are kept per NODE/PID; the node's supervisor judges its dead worker's turns
    (the SQLite store's semantics: a death of its own counted in each open turn, shared
    when the worker had several) and removes them."""
    dead, live = store(redis_server, "n1/11"), store(redis_server, "n1/12")
    other_node = store(redis_server, "n2/11")
    await dead.save(delta("a", open_turn=OpenTurn("m1", Deaths(1, 1))))
    await dead.save(delta("b", open_turn=OpenTurn(7)))
    await dead.save(delta("c", open_turn=OpenTurn("m3")))
    await dead.save(delta("c", seq=2))  # its turn ended
    await live.save(delta("d", open_turn=OpenTurn("m4")))
    await live.save(delta("f", open_turn=OpenTurn("m6", Deaths(1, 1))))
    await other_node.save(delta("e", open_turn=OpenTurn("m5")))
    turns = RedisTurns(ClusterConfig(redis_url=redis_server.url, node_name="n1"))

    lost = sorted(await turns.take(NAMESPACE, 11), key=lambda turn: turn.session_id)

    assert lost == [LostTurn("a", "m1", Deaths(2, 1)), LostTurn("b", "7", Deaths(1, 0))]
    assert [turn.poisoned for turn in lost] == [True, False]
    assert await turns.take(NAMESPACE, 11) == []  # taken once
    resuming = store(redis_server, "n3/1")
    assert await resuming.judged("a")
    stored = await resuming.load("a")
    assert stored is not None
    assert stored.open_turn == OpenTurn("m1", Deaths(2, 1))
    # An external kill of n1/12: its rows go, nothing is counted.
    assert sorted(await turns.take(NAMESPACE, 12, counts=False), key=lambda t: t.session_id) == [
        LostTurn("d", "m4", Deaths(), counted=False),
        LostTurn("f", "m6", Deaths(1, 1), counted=False),
    ]
    stored = await resuming.load("f")
    assert stored is not None
    assert stored.open_turn == OpenTurn("m6", Deaths(1, 1))
    other = RedisTurns(ClusterConfig(redis_url=redis_server.url, node_name="n2"))
    assert await other.take(NAMESPACE, 11) == [LostTurn("e", "m5", Deaths(1, 1))]


async def test_issue_9_a_replica_resuming_on_redis_waits_for_the_verdict(
    redis_server: RedisServer,
) -> None:
    """As with SQLite: ``judged`` waits while the dead worker's row is there, True once its
    node's supervisor has taken it, False after its bound when nobody does (a lost host)."""
    dead = store(redis_server, "n1/21")
    await dead.save(delta("a", open_turn=OpenTurn("m1")))
    await dead.save(delta("b", open_turn=OpenTurn("m2")))
    resuming = store(redis_server, "n2/22")
    turns = RedisTurns(ClusterConfig(redis_url=redis_server.url, node_name="n1"))
    answers: list[bool] = []

    async def ask() -> None:
        answers.append(await resuming.judged("a"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask)
        lost = await turns.take(NAMESPACE, 21)
    assert answers == [True]
    assert [turn.deaths for turn in lost] == [Deaths(1, 0), Deaths(1, 0)]  # a shared death
    await dead.save(delta("c", open_turn=OpenTurn("m3")))
    with trio.fail_after(JUDGEMENT_TIMEOUT + 2):
        assert not await resuming.judged("c")
    assert await dead.judged("c")  # its own turn: nothing to wait for
