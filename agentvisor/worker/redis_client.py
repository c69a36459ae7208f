"""A redis-py client for a ``RedisTarget``: one server, Sentinel, or a Redis Cluster.

The client is redis-py's synchronous one: its async API is asyncio-only,
while agentvisor runs on trio and agent workers on asyncio or trio. Callers
run its commands in a worker thread (``trio.to_thread`` / ``anyio.to_thread``,
as the SQLite stores do), so every command has a socket timeout and no call
blocks an event loop. redis-py is imported here, on first use, so an
agentvisor without ``[cluster]`` never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from agentvisor.config.redis_target import RedisKind, RedisTarget

if TYPE_CHECKING:
    import redis

#: Every command's bound, connecting included: a Redis that stops answering is an error
#: within this, never a hung thread.
SOCKET_TIMEOUT = 2.0


def open_redis(target: RedisTarget, *, timeout: float = SOCKET_TIMEOUT) -> redis.Redis:
    """A client for ``target`` (no connection is made until its first command).

    Replies are decoded as UTF-8 text. A Redis Cluster client has the same
    command methods (``RedisCluster``); the type says ``Redis`` for both.
    """
    import redis
    import redis.cluster
    import redis.sentinel

    common: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }
    if target.kind is RedisKind.SERVER:
        return redis.Redis.from_url(target.urls[0], **common)
    if target.kind is RedisKind.SENTINEL:
        parts = urlsplit(target.urls[0])
        password = unquote(parts.password) if parts.password else None
        sentinel = redis.sentinel.Sentinel(
            list(target.sentinels),
            sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
            **common,
        )
        assert target.master is not None  # parse_redis_target names it
        master: redis.Redis = sentinel.master_for(target.master, db=target.db, password=password)
        return master
    first = urlsplit(target.urls[0])
    node: Any = redis.cluster.ClusterNode  # untyped in redis-py
    nodes = []
    for url in target.urls:
        parts = urlsplit(url)
        nodes.append(node(parts.hostname or "", parts.port or 6379))
    cluster: Any = redis.cluster.RedisCluster  # same command methods as Redis
    client: redis.Redis = cluster(
        startup_nodes=nodes,
        password=unquote(first.password) if first.password else None,
        username=unquote(first.username) if first.username else None,
        ssl=first.scheme == "rediss",
        **common,
    )
    return client


def redis_errors() -> tuple[type[Exception], ...]:
    """What a Redis command raises when the server is down, slow or refuses it."""
    import redis

    return (redis.RedisError, OSError)
