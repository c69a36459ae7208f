"""Which turns a dead worker had in flight, read from its agent's session store, and the
verdict on its death written back.

An agent worker records each turn it runs in the session store's
``turns_in_flight`` table (keyed by its pid) before the agent runs, and
removes it when the turn ends. After the worker exits, ``take_lost_turns``
reads and deletes that worker's rows and, when the death counts against the
messages (``agentvisor.supervise.machine.death_counts``: the worker caused
it), adds it to each session's ``open_turn``, in the same transaction. The
replica resuming such a session waits for those rows to go
(``SessionStore.judged``) and then runs the turn once more or answers
``MESSAGE_POISONED`` (``agentvisor.worker.poison``). The death counts
against the message, not against the agent's health. ``RedisTurns`` does the
same for the agents of a cluster.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from typing import TYPE_CHECKING

import attrs
import trio
from attrs import frozen

from agentvisor.config.model import ClusterConfig
from agentvisor.config.redis_target import parse_redis_target
from agentvisor.supervise.spec import node_name
from agentvisor.worker.poison import NO_DEATHS, Deaths, judge
from agentvisor.worker.redis_client import open_redis, redis_errors

if TYPE_CHECKING:
    import redis

log = logging.getLogger("agentvisor.lostturns")

#: Bound on the read after a death: the replacement is not held up longer than this.
READ_TIMEOUT = 2.0
_BUSY_TIMEOUT_MS = 1000


@frozen
class LostTurn:
    session_id: str
    message_id: str | None
    deaths: Deaths  # the counted deaths this turn was in flight at, this one included
    counted: bool = True  # this death counts against it

    @property
    def poisoned(self) -> bool:
        """This death poisoned it: the resuming worker will not run it again."""
        return self.counted and self.message_id is not None and self.deaths.poisoned


def _lost(session_id: str, message_id: str | None, deaths: Deaths | None, counts: bool) -> LostTurn:
    if deaths is None:  # the session went on elsewhere meanwhile: nothing of it judged
        return LostTurn(session_id, message_id, NO_DEATHS, counted=False)
    return LostTurn(session_id, message_id, deaths, counts)


def _judge(connection: sqlite3.Connection, worker: int, counts: bool) -> list[LostTurn]:
    # Here, not at the top, for the same reason as in ``RedisTurns._take``: called after a
    # worker's death, never before the first worker.
    from agentvisor.worker.store import open_turn_text, parse_open_turn

    rows = connection.execute(
        "SELECT session_id, message_id FROM turns_in_flight WHERE worker = ?", (worker,)
    ).fetchall()
    connection.execute("DELETE FROM turns_in_flight WHERE worker = ?", (worker,))
    lost = []
    for session_id, raw_id in rows:
        message_id = None if raw_id is None else str(raw_id)
        row = connection.execute(
            "SELECT open_turn FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        open_turn = parse_open_turn(row[0]) if row is not None else None
        deaths = None
        if open_turn is not None:
            deaths = judge(
                open_turn.message_id,
                open_turn.deaths,
                message_id,
                counts=counts,
                alone=len(rows) == 1,
            )
        if open_turn is not None and deaths is not None and deaths != open_turn.deaths:
            connection.execute(
                "UPDATE sessions SET open_turn = ? WHERE id = ?",
                (open_turn_text(attrs.evolve(open_turn, deaths=deaths)), session_id),
            )
        lost.append(_lost(session_id, message_id, deaths, counts))
    return lost


def _take(path: str, worker: int, counts: bool) -> list[LostTurn]:
    if not os.path.exists(path):
        return []
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        connection.execute("BEGIN IMMEDIATE")
        try:
            lost = _judge(connection, worker, counts)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
    finally:
        connection.close()
    return lost


async def take_lost_turns(path: str, worker: int, counts: bool = True) -> list[LostTurn]:
    """The turns worker ``worker`` (a pid) had in flight when it died; removes them, and adds
    the death to their counts when ``counts``.

    Empty when the store has no such table or rows, cannot be read within
    ``READ_TIMEOUT`` (logged: then the resuming worker counts the death as
    the worker's own), or is missing.
    """
    with trio.move_on_after(READ_TIMEOUT):
        try:
            return await trio.to_thread.run_sync(
                _take, path, worker, counts, abandon_on_cancel=True
            )
        except sqlite3.Error as error:
            log.warning("%s: the turns in flight of worker %d not read: %s", path, worker, error)
            return []
    log.warning(
        "%s: the turns in flight of worker %d not read within %gs", path, worker, READ_TIMEOUT
    )
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

    def _take(self, namespace: str, worker: int, counts: bool) -> list[LostTurn]:
        if self._client is None:
            self._client = open_redis(self._target)
        # Here, not at the top: the store module brings the worker's protocol and the agent
        # SDK, which a daemon without [cluster] must not import before its first worker.
        from agentvisor.worker.redis_store import judge_lost_turns_sync

        rows = judge_lost_turns_sync(
            self._client, namespace, f"{self._node}/{worker}", counts=counts
        )
        return [_lost(session, message_id, deaths, counts) for session, message_id, deaths in rows]

    async def take(self, namespace: str, worker: int, counts: bool = True) -> list[LostTurn]:
        with trio.move_on_after(READ_TIMEOUT):
            try:
                return await trio.to_thread.run_sync(
                    self._take, namespace, worker, counts, abandon_on_cancel=True
                )
            except redis_errors() as error:
                log.warning(
                    "%s: the turns in flight of worker %d not read: %s", namespace, worker, error
                )
                return []
        log.warning(
            "%s: the turns in flight of worker %d not read within %gs",
            namespace,
            worker,
            READ_TIMEOUT,
        )
        return []
