"""Which turns a dead worker had in flight, read from its agent's session store.

An agent worker records each turn it runs in the session store's
``turns_in_flight`` table (keyed by its pid) before the agent runs, and
removes it when the turn ends. After the worker exits, ``take_lost_turns``
reads and deletes that worker's rows: a death with a turn in flight counts
against the message (the resuming replica runs it once more, then answers
``MESSAGE_POISONED``), not against the agent's health.
"""

from __future__ import annotations

import os
import sqlite3
from typing import TYPE_CHECKING, Any

import trio
from attrs import frozen

from agentvisor.config.model import ClusterConfig
from agentvisor.config.redis_target import parse_redis_target
from agentvisor.supervise.spec import node_name
from agentvisor.worker.limits import POISON_DEATHS
from agentvisor.worker.redis_client import open_redis, redis_errors

if TYPE_CHECKING:
    import redis

#: Bound on the read after a death: the replacement is not held up longer than this.
READ_TIMEOUT = 2.0
_BUSY_TIMEOUT_MS = 1000


@frozen
class LostTurn:
    session_id: str
    message_id: str | None
    deaths: int  # worker deaths this turn was in flight at, this one included

    @property
    def poisoned(self) -> bool:
        """The resuming worker will not run it again (``MESSAGE_POISONED``)."""
        return self.message_id is not None and self.deaths >= POISON_DEATHS


def _take(path: str, worker: int) -> list[LostTurn]:
    if not os.path.exists(path):
        return []
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        connection.execute("BEGIN IMMEDIATE")
        try:
            rows = connection.execute(
                "SELECT session_id, message_id, deaths FROM turns_in_flight WHERE worker = ?",
                (worker,),
            ).fetchall()
            connection.execute("DELETE FROM turns_in_flight WHERE worker = ?", (worker,))
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
    finally:
        connection.close()
    return [
        LostTurn(session_id, None if message_id is None else str(message_id), deaths + 1)
        for session_id, message_id, deaths in rows
    ]


async def take_lost_turns(path: str, worker: int) -> list[LostTurn]:
    """The turns worker ``worker`` (a pid) had in flight when it died; removes them.

    Empty when the store has no such table or rows, cannot be read within
    ``READ_TIMEOUT`` (logged by the caller as an ordinary crash), or is missing.
    """
    with trio.move_on_after(READ_TIMEOUT):
        try:
            return await trio.to_thread.run_sync(_take, path, worker, abandon_on_cancel=True)
        except sqlite3.Error:
            return []
    return []


class RedisTurns:
    """The same, from the cluster's Redis (``RedisSessionStore``'s turns, by ``NODE/PID``).

    One client for the node's supervisor, made on first use. A Redis that does
    not answer within ``READ_TIMEOUT`` gives no turns, as a locked SQLite file does.
    """

    def __init__(self, cluster: ClusterConfig) -> None:
        self._target = parse_redis_target(cluster.redis_url)
        self._node = node_name(cluster)
        self._client: redis.Redis | None = None

    def _take(self, namespace: str, worker: int) -> list[LostTurn]:
        if self._client is None:
            self._client = open_redis(self._target)
        # Here, not at the top: the store module brings the worker's protocol and the agent
        # SDK, which a daemon without [cluster] must not import before its first worker.
        from agentvisor.worker.redis_store import take_lost_turns_sync

        rows: list[Any] = take_lost_turns_sync(self._client, namespace, f"{self._node}/{worker}")
        return [LostTurn(session, message_id, deaths + 1) for session, message_id, deaths in rows]

    async def take(self, namespace: str, worker: int) -> list[LostTurn]:
        with trio.move_on_after(READ_TIMEOUT):
            try:
                return await trio.to_thread.run_sync(
                    self._take, namespace, worker, abandon_on_cancel=True
                )
            except redis_errors():
                return []
        return []
