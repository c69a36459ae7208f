"""The cluster's config edit lock on a real redis-server: exclusion, waiting, fencing."""

from __future__ import annotations

import attrs
import pytest
import trio

from agentvisor.cluster.lock import ConfigLock, lock_keys
from agentvisor.config.redis_target import parse_redis_target
from agentvisor.errors import ConfigLocked
from agentvisor.worker.redis_client import open_redis
from tests.redis_server import RedisServer


def node_lock(server: RedisServer, node: str, lease: float = 5.0) -> ConfigLock:
    return ConfigLock(open_redis(parse_redis_target(server.url)), "agentvisor", node, lease)


async def test_a_storm_of_edits_from_three_nodes_never_overlaps(redis_server: RedisServer) -> None:
    """60 edits from three nodes at once: each holds the lock alone, fences only go up."""
    locks = [node_lock(redis_server, name) for name in ("a", "b", "c")]
    inside: list[str] = []
    overlaps = 0
    fences: list[int] = []

    async def edit(lock: ConfigLock) -> None:
        nonlocal overlaps
        async with lock.hold(None) as fenced:
            inside.append(lock.node)
            overlaps += len(inside) > 1
            await trio.sleep(0.002)  # the edit's work, with other tasks running
            await fenced.before_write("agentvisor.toml", b"", b"")  # the fencing check
            fences.append(fenced.grant.value.fence)
            inside.remove(lock.node)

    async with trio.open_nursery() as nursery:
        for index in range(60):
            nursery.start_soon(edit, locks[index % 3])
    assert overlaps == 0
    assert fences == sorted(fences)
    assert len(set(fences)) == 60
    assert redis_server.client().get(lock_keys("agentvisor")[0]) is None  # released


async def test_a_busy_lock_is_refused_after_one_lease_naming_the_holder(
    redis_server: RedisServer,
) -> None:
    holder, waiter = node_lock(redis_server, "a"), node_lock(redis_server, "b", lease=0.3)
    async with holder.hold(None):
        with pytest.raises(ConfigLocked, match=r"node a holds the cluster's config edit lock"):
            await waiter.acquire()


async def test_an_edit_past_its_lease_is_fenced_off(redis_server: RedisServer) -> None:
    """A's lease runs out mid-edit and B takes the lock and writes: A's write is refused,
    and so is any later write under A's old grant; B's goes through."""
    slow, fast = node_lock(redis_server, "a", lease=0.2), node_lock(redis_server, "b")
    client = redis_server.client()
    grant = await slow.acquire()
    with trio.fail_after(5):
        while client.get(lock_keys("agentvisor")[0]) is not None:  # the lease expires
            await trio.sleep(0.02)
    async with fast.hold(None) as fenced:
        await fenced.before_write("agentvisor.toml", b"", b"")
        with pytest.raises(ConfigLocked, match=r"node b took it \(fence 2\)"):
            # the same grant as a paused node would still believe in (its clock lagging)
            await slow.check(attrs.evolve(grant, expires_at=grant.expires_at + 3600))
    with pytest.raises(ConfigLocked, match="ran out before the file was written"):
        await slow.check(grant)
    assert client.get(lock_keys("agentvisor")[2]) == "2"


async def test_redis_gone_refuses_the_edit_with_a_clear_error(redis_server: RedisServer) -> None:
    lock = node_lock(redis_server, "a")
    redis_server.stop()
    with pytest.raises(ConfigLocked, match="in Redis, which cannot be reached"):
        await lock.acquire()
