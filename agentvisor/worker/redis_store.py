"""The ``SessionStore`` in Redis, for agents of a cluster (``[cluster]`` in the config).

The same interface and semantics as ``SqliteSessionStore``, so a replica on
another host resumes a session whose host died, with its history, metadata,
seq, replay buffer, ``open_turn`` and remembered ``message_id``s. Keys (``N``
is the agent's namespace, ``<key_prefix>:sessions:<agent>``):

- ``{N:ID}:meta`` (hash: metadata, seq, open_turn, turn_worker (the worker that
  saved it last), updated_at, message_ids),
  ``{N:ID}:history`` (list of messages), ``{N:ID}:events`` (hash seq → event)
  and ``{N:ID}:seqs`` (sorted set of the buffered seqs). The braces are a
  Redis Cluster hash tag: one session's keys live in one slot, so a save or a
  load is one Lua script, atomic as the SQLite transaction is;
- ``{N}:index``: every session by ``updated_at`` (for ``expire``);
- ``{N}:turns:WORKER``: the turns in flight of one worker process
  (``NODE/PID``), hash session id → ``{"message_id", "deaths"}``; the
  supervisor of that node judges them after the worker's death (its verdict
  written into each session's ``open_turn`` first, ``judge_lost_turns_sync``)
  and then removes them; a replica resuming the session waits for that
  (``judged``), as with SQLite.

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
import attrs

from agentvisor.config.redis_target import RedisTarget
from agentvisor.worker.poison import Deaths, judge
from agentvisor.worker.protocol import encode_event
from agentvisor.worker.redis_client import open_redis, redis_errors
from agentvisor.worker.store import (
    JUDGEMENT_POLL_INTERVAL,
    JUDGEMENT_TIMEOUT,
    SessionDelta,
    StoredSession,
    StoreError,
    open_turn_text,
    parse_open_turn,
)

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
redis.call('HSET', meta, 'open_turn', ARGV[3], 'updated_at', ARGV[4], 'message_ids', ARGV[5],
  'turn_worker', ARGV[9])
local start, count = tonumber(ARGV[6]), tonumber(ARGV[8])
if start == 0 then redis.call('DEL', hist) else redis.call('LTRIM', hist, 0, start - 1) end
for i = 1, count do redis.call('RPUSH', hist, ARGV[9 + i]) end
local j, added = 10 + count, 0
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

# Compare and set: a session's open turn, unless a replica rewrote it meanwhile.
_SET_OPEN_TURN = """
if redis.call('HGET', KEYS[1], 'open_turn') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'open_turn', ARGV[2])
  return 1
end
return 0
"""
#: Attempts of a verdict's compare-and-set against replicas rewriting the open turn.
_JUDGE_ATTEMPTS = 5


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
            open_turn_text(delta.open_turn) or "",
            repr(delta.updated_at),
            json.dumps(list(delta.message_ids)),
            delta.history_start,
            delta.seq - self._replay_limit,
            len(delta.new_messages),
            self.worker,
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
                row = {"message_id": open_turn.message_id, "deaths": open_turn.deaths.counted}
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
            parse_open_turn(meta.get("open_turn")),
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

    async def judged(self, session_id: str) -> bool:
        """Wait until the worker that saved the session's open turn last (``turn_worker``)
        has no row of it left: its node's supervisor removes them once it has judged it."""
        client = self.client
        meta = _session_keys(self.namespace, session_id)[0]

        def settled() -> bool:
            owner = client.hget(meta, "turn_worker")
            if not owner or owner == self.worker:
                return True
            return not client.hexists(_turns_key(self.namespace, str(owner)), session_id)

        with anyio.move_on_after(JUDGEMENT_TIMEOUT):
            while True:
                try:
                    if await self._run("read", settled):
                        return True
                except StoreError as error:
                    log.warning("%s", error)
                    return False
                await anyio.sleep(JUDGEMENT_POLL_INTERVAL)  # a supervisor, maybe on another host
        log.warning(
            "session %s: no verdict on the death of its last worker within %gs",
            session_id,
            JUDGEMENT_TIMEOUT,
        )
        return False


def _judge_one(
    client: redis.Redis, meta: str, message_id: str | None, *, counts: bool, alone: bool
) -> Deaths | None:
    """One session's verdict, written by compare-and-set; None: it went on elsewhere."""
    for _ in range(_JUDGE_ATTEMPTS):
        text = client.hget(meta, "open_turn")
        open_turn = parse_open_turn(str(text) if text else None)
        if open_turn is None:
            return None
        deaths = judge(
            open_turn.message_id, open_turn.deaths, message_id, counts=counts, alone=alone
        )
        if deaths is None or deaths == open_turn.deaths:
            return deaths
        new = open_turn_text(attrs.evolve(open_turn, deaths=deaths))
        if client.eval(_SET_OPEN_TURN, 1, meta, str(text), new or ""):
            return deaths
    return None  # rewritten under us each time: a replica took the session on


def judge_lost_turns_sync(
    client: redis.Redis, namespace: str, worker: str, *, counts: bool
) -> list[tuple[str, str | None, Deaths | None]]:
    """The turns ``worker`` had in flight, judged: ``[(session, message_id, deaths)]``.

    When the death ``counts`` it is added to each session's open turn first
    (``poison.judge``; ``deaths`` None where the session went on elsewhere);
    then the rows are removed, which tells a resuming replica the verdict is in.
    """
    turns = _turns_key(namespace, worker)
    rows: dict[str, str] = client.hgetall(turns)  # type: ignore[assignment]
    lost: list[tuple[str, str | None]] = []
    for session_id, text in rows.items():
        try:
            value = json.loads(text)["message_id"]
        except (ValueError, TypeError, KeyError):
            continue
        lost.append((session_id, None if value is None else str(value)))
    judged = [
        (
            session_id,
            message_id,
            _judge_one(
                client,
                _session_keys(namespace, session_id)[0],
                message_id,
                counts=counts,
                alone=len(lost) == 1,
            ),
        )
        for session_id, message_id in lost
    ]
    client.delete(turns)
    return judged


def open_redis_store(
    target: RedisTarget, namespace: str, worker: str, replay_limit: int = 500
) -> RedisSessionStore:
    """A store on ``target`` (connections are made on first use: a Redis down at start makes
    the first operations fail with ``StoreError``, which the runtime logs, not a dead worker)."""
    return RedisSessionStore(
        open_redis(target), namespace, worker, replay_limit, description=target.describe()
    )
