"""The ``SessionStore`` in Redis, for agents of a cluster (``[cluster]`` in the config).

The same interface and semantics as ``SqliteSessionStore``, so a replica on
another host resumes a session whose host died, with its history, metadata,
seq, replay buffer, ``open_turn`` and remembered ``message_id``s. Keys (``N``
is the agent's namespace, ``<key_prefix>:sessions:<agent>``):

- ``{N:ID}:meta`` (hash: metadata, seq, open_turn, updated_at, message_ids),
  ``{N:ID}:history`` (list of messages), ``{N:ID}:events`` (hash seq → event)
  and ``{N:ID}:seqs`` (sorted set of the buffered seqs). The braces are a
  Redis Cluster hash tag: one session's keys live in one slot, so a save or a
  load is one Lua script, atomic as the SQLite transaction is;
- ``{N}:index``: every session by ``updated_at`` (for ``expire``);
- ``{N}:turns:WORKER``: the turns in flight of one worker process
  (``NODE/PID``), hash session id → ``{"message_id", "deaths"}``; the
  supervisor of that node takes them after the worker's death.

The index and the turns are other slots, written right after the session's
script (not in its transaction): a worker killed between the two leaves a
session saved but not indexed (``expire`` misses it until its next save) or a
turn not recorded for the supervisor (the death counts as a plain crash).
Commands run in a worker thread, one at a time, so saves reach Redis in the
order they were made.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from agentvisor.config.redis_target import RedisTarget
from agentvisor.worker.protocol import encode_event
from agentvisor.worker.redis_client import open_redis, redis_errors
from agentvisor.worker.store import OpenTurn, SessionDelta, StoredSession, StoreError

if TYPE_CHECKING:
    import redis

log = logging.getLogger("agentvisor.worker.store")

T = TypeVar("T")

#: Sessions removed by one ``expire`` call at most (the next call takes the rest).
EXPIRE_BATCH = 1000

_SAVE = """
local meta, hist, ev, seqs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('EXISTS', meta) == 0 then
  redis.call('HSET', meta, 'metadata', ARGV[1], 'created_at', ARGV[4])
end
local current = redis.call('HGET', meta, 'seq')
if (not current) or tonumber(current) < tonumber(ARGV[2]) then
  redis.call('HSET', meta, 'seq', ARGV[2])
end
redis.call('HSET', meta, 'open_turn', ARGV[3], 'updated_at', ARGV[4], 'message_ids', ARGV[5])
local start, count = tonumber(ARGV[6]), tonumber(ARGV[8])
if start == 0 then redis.call('DEL', hist) else redis.call('LTRIM', hist, 0, start - 1) end
for i = 1, count do redis.call('RPUSH', hist, ARGV[8 + i]) end
local j, added = 9 + count, 0
while j < #ARGV do
  redis.call('HSET', ev, ARGV[j], ARGV[j + 1])
  redis.call('ZADD', seqs, ARGV[j], ARGV[j])
  j, added = j + 2, added + 1
end
local keep_after = tonumber(ARGV[7])
if added > 0 and keep_after > 0 then
  for _, seq in ipairs(redis.call('ZRANGEBYSCORE', seqs, '-inf', keep_after)) do
    redis.call('HDEL', ev, seq)
  end
  redis.call('ZREMRANGEBYSCORE', seqs, '-inf', keep_after)
end
return added
"""

_LOAD = """
local meta = redis.call('HGETALL', KEYS[1])
if #meta == 0 then return false end
local seqs = redis.call('ZRANGE', KEYS[4], 0, -1)
local bodies = {}
for i, seq in ipairs(seqs) do bodies[i] = redis.call('HGET', KEYS[3], seq) or '' end
return {meta, redis.call('LRANGE', KEYS[2], 0, -1), seqs, bodies}
"""

_TAKE = """
local rows = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return rows
"""


def session_namespace(key_prefix: str, agent: str) -> str:
    """The keys of agent ``agent``'s sessions start with this."""
    return f"{key_prefix}:sessions:{agent}"


def _session_keys(namespace: str, session_id: str) -> list[str]:
    tag = "{" + f"{namespace}:{session_id}" + "}"
    return [f"{tag}:meta", f"{tag}:history", f"{tag}:events", f"{tag}:seqs"]


def _turns_key(namespace: str, worker: str) -> str:
    return "{" + namespace + "}:turns:" + worker


def _index_key(namespace: str) -> str:
    return "{" + namespace + "}:index"


def _open_turn_text(open_turn: OpenTurn | None) -> str:
    if open_turn is None:
        return ""
    return json.dumps({"message_id": open_turn.message_id, "deaths": open_turn.deaths})


def _open_turn(text: str) -> OpenTurn | None:
    if not text:
        return None
    value = json.loads(text)
    deaths = value.get("deaths")
    return OpenTurn(value.get("message_id"), deaths if isinstance(deaths, int) else 0)


class RedisSessionStore:
    """A ``SessionStore`` shared by every replica of an agent on every node of the cluster.

    Open it with ``open_redis_store``. ``worker`` names this process in the
    turns it records (``NODE/PID``).
    """

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        worker: str,
        replay_limit: int = 500,
        *,
        description: str = "Redis",
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.worker = worker
        self.description = description
        self._replay_limit = replay_limit
        self._limiter = anyio.CapacityLimiter(1)  # saves reach Redis in the order they are made
        self._errors = redis_errors()
        self._save_script = client.register_script(_SAVE)
        self._load_script = client.register_script(_LOAD)

    async def _run(self, what: str, function: Callable[[], T]) -> T:
        try:
            return await anyio.to_thread.run_sync(function, limiter=self._limiter)
        except self._errors as error:
            raise StoreError(f"session store {self.description}: {what} failed: {error}") from None

    async def save(self, delta: SessionDelta) -> None:
        keys = _session_keys(self.namespace, delta.session_id)
        args: list[Any] = [
            encode_event(delta.metadata),
            delta.seq,
            _open_turn_text(delta.open_turn),
            repr(delta.updated_at),
            json.dumps(list(delta.message_ids)),
            delta.history_start,
            delta.seq - self._replay_limit,
            len(delta.new_messages),
            *(encode_event(message) for message in delta.new_messages),
        ]
        for seq, text in delta.new_events:
            args += [seq, text]
        turns = _turns_key(self.namespace, self.worker)
        open_turn = delta.open_turn
        client = self.client

        def write() -> None:
            self._save_script(keys=keys, args=args)
            client.zadd(_index_key(self.namespace), {delta.session_id: delta.updated_at})
            if open_turn is None:
                client.hdel(turns, delta.session_id)
            else:
                row = {"message_id": open_turn.message_id, "deaths": open_turn.deaths}
                client.hset(turns, delta.session_id, json.dumps(row))

        await self._run("write", write)

    async def load(self, session_id: str) -> StoredSession | None:
        keys = _session_keys(self.namespace, session_id)
        reply = await self._run("read", lambda: self._load_script(keys=keys, args=[]))
        if not reply:
            return None
        flat, history, seqs, bodies = reply
        meta = dict(zip(flat[::2], flat[1::2], strict=True))
        return StoredSession(
            session_id,
            json.loads(meta.get("metadata") or "{}"),
            int(meta.get("seq") or 0),
            [json.loads(body) for body in history],
            [(int(seq), body) for seq, body in zip(seqs, bodies, strict=True) if body],
            _open_turn(meta.get("open_turn", "")),
            float(meta.get("updated_at") or 0.0),
            tuple(json.loads(meta["message_ids"])) if meta.get("message_ids") else (),
        )

    async def delete(self, session_id: str) -> None:
        client = self.client

        def write() -> None:
            client.delete(*_session_keys(self.namespace, session_id))
            client.zrem(_index_key(self.namespace), session_id)
            client.hdel(_turns_key(self.namespace, self.worker), session_id)

        await self._run("write", write)

    async def expire(self, idle_before: float) -> int:
        client = self.client
        index = _index_key(self.namespace)

        def write() -> int:
            old: Sequence[str] = client.zrangebyscore(
                index, "-inf", f"({idle_before!r}", start=0, num=EXPIRE_BATCH
            )  # type: ignore[assignment]
            for session_id in old:
                client.delete(*_session_keys(self.namespace, session_id))
                client.zrem(index, session_id)
            return len(old)

        return await self._run("expire", write)

    async def ping(self) -> None:
        await self._run("ping", self.client.ping)


def take_lost_turns_sync(client: redis.Redis, namespace: str, worker: str) -> list[Any]:
    """The rows of ``worker``'s turns in flight, removed: ``[(session, message_id, deaths)]``."""
    rows: list[str] = client.eval(_TAKE, 1, _turns_key(namespace, worker))
    taken = []
    for session_id, text in zip(rows[::2], rows[1::2], strict=True):
        try:
            row = json.loads(text)
            deaths = int(row.get("deaths", 0))
        except (ValueError, TypeError, AttributeError):
            continue
        message_id = row.get("message_id")
        taken.append((session_id, None if message_id is None else str(message_id), deaths))
    return taken


def open_redis_store(
    target: RedisTarget, namespace: str, worker: str, replay_limit: int = 500
) -> RedisSessionStore:
    """A store on ``target`` (connections are made on first use: a Redis down at start makes
    the first operations fail with ``StoreError``, which the runtime logs, not a dead worker)."""
    return RedisSessionStore(
        open_redis(target), namespace, worker, replay_limit, description=target.describe()
    )
