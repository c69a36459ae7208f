"""Where sessions outlive their worker: the ``SessionStore`` interface and its SQLite form.

All replicas of one agent share one store, so a replica can resume a session
whose worker died, with its whole history, metadata, seq and the last events
of its replay buffer. The runtime saves a session at its turn boundaries (the
user's message appended; the turn finished), when it is created or resumed,
and at shutdown; it deletes a session when the client closes it or it times
out.

Beside each session's ``open_turn`` (which the replica resuming it rewrites),
``turns_in_flight`` holds the turns each worker process (by pid) is running;
only that worker writes its rows. After a worker's death the supervisor reads
and removes its rows (``agentvisor.supervise.lostturns``) and, when the worker
caused its death, counts it in each session's ``open_turn`` (``poison.py``), in
the same transaction: against the message in flight, not the agent's health.
A replica resuming such a session waits for that verdict (``judged``).

``SqliteSessionStore`` keeps one connection in WAL mode with a busy timeout,
used by one thread at a time: a writer task batches the saves that arrive
together into one transaction, and every call runs off the event loop via
``anyio.to_thread``. ``RedisSessionStore`` (``redis_store``) stands beside it
for the agents of a cluster; ``open_session_store`` picks one by the worker's
options.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import anyio
import anyio.lowlevel
import anyio.to_thread
from attrs import define, field, frozen

from agentvisor.config.redis_target import decode_target, is_redis_url
from agentvisor.worker.options import WorkerOptions
from agentvisor.worker.poison import NO_DEATHS, Deaths
from agentvisor.worker.protocol import MessageId, encode_event

log = logging.getLogger("agentvisor.worker.store")

Message = dict[str, Any]
BufferedEvent = tuple[int, str]  # (seq, the event's JSON text as sent)


@frozen
class OpenTurn:
    """A turn that started (its user message is saved) and has not finished."""

    message_id: MessageId | None = None
    deaths: Deaths = NO_DEATHS  # the deaths of its workers counted against it (``poison``)


#: Message ids remembered per session for de-duplication (the most recent).
MAX_MESSAGE_IDS = 1000
#: How long a worker resuming a session waits for the supervisor's verdict on the death
#: of the worker that ran its open turn (the supervisor's read is bounded to 2 s).
JUDGEMENT_TIMEOUT = 3.0
JUDGEMENT_POLL_INTERVAL = 0.02


@frozen
class StoredSession:
    session_id: str
    metadata: Mapping[str, Any]
    seq: int
    history: Sequence[Message]
    events: Sequence[BufferedEvent]  # the last events, oldest first
    open_turn: OpenTurn | None
    updated_at: float  # wall-clock seconds of the last save
    message_ids: Sequence[MessageId] = ()  # of the user messages stored, oldest first


@frozen
class SessionDelta:
    """What changed in a session since its last save (saving it twice is harmless)."""

    session_id: str
    metadata: Mapping[str, Any]
    seq: int
    history_start: int  # history index of new_messages[0]
    new_messages: Sequence[Message]
    new_events: Sequence[BufferedEvent]
    open_turn: OpenTurn | None
    updated_at: float
    message_ids: Sequence[MessageId] = ()  # all remembered (not only the new ones)


class SessionStore(Protocol):
    async def load(self, session_id: str) -> StoredSession | None: ...

    async def save(self, delta: SessionDelta) -> None: ...

    async def delete(self, session_id: str) -> None: ...

    async def expire(self, idle_before: float) -> int:
        """Delete the sessions last saved before ``idle_before``; return how many."""
        ...

    async def judged(self, session_id: str) -> bool:
        """Wait (bounded) until the death of the worker that ran the session's open turn is
        judged: True once its counts in ``open_turn`` are final, False if nobody judged it
        in time (the caller counts the death as the worker's own, alone)."""
        ...


class StoreError(Exception):
    """The store could not be opened or written."""


# ---------------------------------------------------------------- in memory


@define
class _MemoryRecord:
    metadata: Mapping[str, Any]
    seq: int
    open_turn: OpenTurn | None
    updated_at: float
    message_ids: Sequence[MessageId] = ()
    history: dict[int, Message] = field(factory=dict)
    events: dict[int, str] = field(factory=dict)


class MemorySessionStore:
    """A ``SessionStore`` in this process's memory (tests, and runs that need no failover)."""

    def __init__(self, replay_limit: int = 500) -> None:
        self._records: dict[str, _MemoryRecord] = {}
        self._replay_limit = replay_limit

    async def load(self, session_id: str) -> StoredSession | None:
        await anyio.lowlevel.checkpoint()
        record = self._records.get(session_id)
        if record is None:
            return None
        return StoredSession(
            session_id,
            dict(record.metadata),
            record.seq,
            [record.history[index] for index in sorted(record.history)],
            [(seq, record.events[seq]) for seq in sorted(record.events)],
            record.open_turn,
            record.updated_at,
            tuple(record.message_ids),
        )

    async def save(self, delta: SessionDelta) -> None:
        await anyio.lowlevel.checkpoint()
        record = self._records.get(delta.session_id)
        if record is None:
            record = _MemoryRecord(delta.metadata, delta.seq, delta.open_turn, delta.updated_at)
            self._records[delta.session_id] = record
        record.seq = max(record.seq, delta.seq)
        record.open_turn = delta.open_turn
        record.updated_at = delta.updated_at
        record.message_ids = tuple(delta.message_ids)
        end = delta.history_start + len(delta.new_messages)
        for index in [index for index in record.history if index >= end]:
            del record.history[index]  # a turn taken back shortens the history
        for offset, message in enumerate(delta.new_messages):
            record.history[delta.history_start + offset] = message
        record.events.update(delta.new_events)
        for seq in [seq for seq in record.events if seq <= record.seq - self._replay_limit]:
            del record.events[seq]

    async def delete(self, session_id: str) -> None:
        await anyio.lowlevel.checkpoint()
        self._records.pop(session_id, None)

    async def judged(self, session_id: str) -> bool:
        await anyio.lowlevel.checkpoint()
        return False  # one process, no supervisor: a death is the worker's own

    async def expire(self, idle_before: float) -> int:
        await anyio.lowlevel.checkpoint()
        old = [key for key, record in self._records.items() if record.updated_at < idle_before]
        for key in old:
            del self._records[key]
        return len(old)


# ---------------------------------------------------------------- SQLite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    metadata TEXT NOT NULL,
    seq INTEGER NOT NULL,
    open_turn TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    message_ids TEXT
);
CREATE INDEX IF NOT EXISTS sessions_by_update ON sessions (updated_at);
CREATE TABLE IF NOT EXISTS messages (
    session_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS turns_in_flight (
    worker INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    message_id TEXT,
    deaths INTEGER NOT NULL,
    PRIMARY KEY (worker, session_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
"""

_UPSERT_SESSION = """
INSERT INTO sessions (id, metadata, seq, open_turn, created_at, updated_at, message_ids)
VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
ON CONFLICT (id) DO UPDATE SET
    seq = max(seq, excluded.seq),
    open_turn = excluded.open_turn,
    updated_at = excluded.updated_at,
    message_ids = excluded.message_ids
"""

_BUSY_TIMEOUT_MS = 10_000
_MAX_BATCH = 512
_CLOSE_TIMEOUT = 5.0

Write = Callable[[sqlite3.Connection], None]


@define
class _Pending:
    write: Write
    done: anyio.Event = field(factory=anyio.Event)
    error: BaseException | None = None


def open_turn_text(open_turn: OpenTurn | None) -> str | None:
    """An open turn as the stores keep it (SQLite's column, Redis's hash field)."""
    if open_turn is None:
        return None
    return json.dumps({"message_id": open_turn.message_id, **open_turn.deaths.fields()})


def parse_open_turn(text: str | None) -> OpenTurn | None:
    """What ``open_turn_text`` wrote, or (files written before 0.x) the bare message id."""
    if not text:
        return None
    value = json.loads(text)
    if isinstance(value, dict):
        return OpenTurn(value.get("message_id"), Deaths.from_fields(value))
    return OpenTurn(value)


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    """Files made before ``message_ids`` existed get the column (NULL: no ids remembered)."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(sessions)")}
    if "message_ids" not in columns:
        connection.execute("ALTER TABLE sessions ADD COLUMN message_ids TEXT")


def _connect(path: str) -> sqlite3.Connection:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.executescript(_SCHEMA)
        _add_missing_columns(connection)
    except BaseException:
        connection.close()
        raise
    return connection


class SqliteSessionStore:
    """A ``SessionStore`` in one SQLite file shared by the replicas of an agent.

    Open it with ``open_sqlite_store``, which runs its writer task.
    """

    def __init__(self, path: str, replay_limit: int = 500, worker: int | None = None) -> None:
        self.path = path
        self.worker = os.getpid() if worker is None else worker  # owner of turns_in_flight rows
        self._replay_limit = replay_limit
        self._connection: sqlite3.Connection | None = None
        self._limiter = anyio.CapacityLimiter(1)  # one thread at a time on the connection
        self._send, self._receive = anyio.create_memory_object_stream[_Pending](float("inf"))

    async def _run_sync(self, function: Callable[[sqlite3.Connection], Any]) -> Any:
        connection = self._connection
        if connection is None:
            raise StoreError(f"session store {self.path} is not open")
        return await anyio.to_thread.run_sync(function, connection, limiter=self._limiter)

    async def open(self) -> None:
        """Open the file (creating its directory and tables)."""
        try:
            self._connection = await anyio.to_thread.run_sync(
                _connect, self.path, limiter=self._limiter
            )
        except (sqlite3.Error, OSError) as error:
            self.discard()
            raise StoreError(f"cannot open session store {self.path}: {error}") from error

    def discard(self) -> None:
        """Drop the write queue without running it (the store was never opened)."""
        self._send.close()
        self._receive.close()

    async def run_writer(self) -> None:
        """Write batches until ``close`` and the queue is drained, then close the file."""
        try:
            async with self._receive:
                async for first in self._receive:
                    batch = [first]
                    while len(batch) < _MAX_BATCH:
                        try:
                            batch.append(self._receive.receive_nowait())
                        except anyio.WouldBlock:
                            break
                    await self._write_batch(batch)
        finally:
            connection, self._connection = self._connection, None
            if connection is not None:
                with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                    await anyio.to_thread.run_sync(connection.close, limiter=self._limiter)

    async def _write_batch(self, batch: list[_Pending]) -> None:
        def apply(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                for pending in batch:
                    pending.write(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

        try:
            await self._run_sync(apply)
        except (sqlite3.Error, StoreError) as error:
            log.error("session store %s: write failed: %s", self.path, error)
            for pending in batch:
                pending.error = StoreError(f"session store write failed: {error}")
        for pending in batch:
            pending.done.set()

    def close(self) -> None:
        """Stop taking writes; the writer finishes the queued ones, then closes the file."""
        self._send.close()

    async def _write(self, write: Write) -> None:
        pending = _Pending(write)
        try:
            self._send.send_nowait(pending)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise StoreError(f"session store {self.path} is closed") from None
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error

    async def save(self, delta: SessionDelta) -> None:
        metadata = encode_event(delta.metadata)
        messages = [
            (delta.session_id, delta.history_start + offset, encode_event(message))
            for offset, message in enumerate(delta.new_messages)
        ]
        events = [(delta.session_id, seq, text) for seq, text in delta.new_events]
        keep_after = delta.seq - self._replay_limit
        open_turn = delta.open_turn
        history_end = delta.history_start + len(delta.new_messages)

        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                _UPSERT_SESSION,
                (
                    delta.session_id,
                    metadata,
                    delta.seq,
                    open_turn_text(delta.open_turn),
                    delta.updated_at,
                    json.dumps(list(delta.message_ids)),
                ),
            )
            connection.execute(  # a turn taken back shortens the history
                "DELETE FROM messages WHERE session_id = ? AND idx >= ?",
                (delta.session_id, history_end),
            )
            connection.executemany("INSERT OR REPLACE INTO messages VALUES (?, ?, ?)", messages)
            connection.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?)", events)
            if open_turn is None:
                connection.execute(
                    "DELETE FROM turns_in_flight WHERE worker = ? AND session_id = ?",
                    (self.worker, delta.session_id),
                )
            else:
                connection.execute(
                    "INSERT OR REPLACE INTO turns_in_flight VALUES (?, ?, ?, ?)",
                    (self.worker, delta.session_id, open_turn.message_id, open_turn.deaths.counted),
                )
            if events and keep_after > 0:
                connection.execute(
                    "DELETE FROM events WHERE session_id = ? AND seq <= ?",
                    (delta.session_id, keep_after),
                )

        await self._write(write)

    async def delete(self, session_id: str) -> None:
        def write(connection: sqlite3.Connection) -> None:
            for table, column in (
                ("messages", "session_id"),
                ("events", "session_id"),
                ("turns_in_flight", "session_id"),
            ):
                connection.execute(f"DELETE FROM {table} WHERE {column} = ?", (session_id,))
            connection.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

        await self._write(write)

    async def expire(self, idle_before: float) -> int:
        count = 0

        def write(connection: sqlite3.Connection) -> None:
            nonlocal count
            old = "SELECT id FROM sessions WHERE updated_at < ?"
            for table in ("messages", "events", "turns_in_flight"):
                connection.execute(
                    f"DELETE FROM {table} WHERE session_id IN ({old})", (idle_before,)
                )
            count = connection.execute(
                "DELETE FROM sessions WHERE updated_at < ?", (idle_before,)
            ).rowcount

        await self._write(write)
        return count

    async def judged(self, session_id: str) -> bool:
        """Wait until no other worker has a turn of the session in flight: the supervisor
        removes a dead worker's rows once it has judged its death (``lostturns``)."""

        def others(connection: sqlite3.Connection) -> int:
            row = connection.execute(
                "SELECT count(*) FROM turns_in_flight WHERE session_id = ? AND worker != ?",
                (session_id, self.worker),
            ).fetchone()
            return int(row[0])

        with anyio.move_on_after(JUDGEMENT_TIMEOUT):
            while True:
                try:
                    if not await self._run_sync(others):
                        return True
                except sqlite3.Error as error:
                    log.warning("session store %s: turns in flight not read: %s", self.path, error)
                    return False
                await anyio.sleep(JUDGEMENT_POLL_INTERVAL)  # the supervisor is another process
        log.warning(
            "session %s: no verdict on the death of its last worker within %gs",
            session_id,
            JUDGEMENT_TIMEOUT,
        )
        return False

    async def load(self, session_id: str) -> StoredSession | None:
        def read(connection: sqlite3.Connection) -> StoredSession | None:
            connection.execute("BEGIN")
            try:
                row = connection.execute(
                    "SELECT metadata, seq, open_turn, updated_at, message_ids"
                    " FROM sessions WHERE id = ?",
                    (session_id,),
                ).fetchone()
                if row is None:
                    return None
                messages = connection.execute(
                    "SELECT body FROM messages WHERE session_id = ? ORDER BY idx", (session_id,)
                ).fetchall()
                events = connection.execute(
                    "SELECT seq, body FROM events WHERE session_id = ? ORDER BY seq",
                    (session_id,),
                ).fetchall()
            finally:
                connection.execute("COMMIT")
            metadata, seq, open_turn, updated_at, message_ids = row
            return StoredSession(
                session_id,
                json.loads(metadata),
                seq,
                [json.loads(body) for (body,) in messages],
                [(event_seq, body) for event_seq, body in events],
                parse_open_turn(open_turn),
                updated_at,
                tuple(json.loads(message_ids)) if message_ids else (),
            )

        try:
            result: StoredSession | None = await self._run_sync(read)
        except sqlite3.Error as error:
            raise StoreError(f"cannot read session store {self.path}: {error}") from error
        return result


@asynccontextmanager
async def open_sqlite_store(
    path: str, replay_limit: int = 500, worker: int | None = None
) -> AsyncIterator[SqliteSessionStore]:
    """Open ``path`` (creating its directory and tables) and run its writer until exit.

    ``StoreError`` if it cannot be opened. On exit the queued writes are
    committed before the file is closed.
    """
    store = SqliteSessionStore(path, replay_limit, worker)
    await store.open()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(store.run_writer)
        try:
            yield store
        finally:
            store.close()


@asynccontextmanager
async def open_session_store(options: WorkerOptions) -> AsyncIterator[SessionStore]:
    """The store ``options`` name: Redis URLs (a cluster's agents), else a SQLite file."""
    if not is_redis_url(options.session_store):
        async with open_sqlite_store(options.session_store, options.replay_limit) as store:
            yield store
        return
    from agentvisor.worker.redis_store import open_redis_store  # redis-py only when used

    try:
        target = decode_target(options.session_store)
    except ValueError as error:
        raise StoreError(f"session store {options.session_store!r}: {error}") from None
    worker = f"{options.node or 'local'}/{os.getpid()}"
    redis_store = open_redis_store(target, options.session_namespace, worker, options.replay_limit)
    try:
        await redis_store.ping()
    except StoreError as error:  # sessions fail until it is back; the worker still serves
        log.warning("%s", error)
    try:
        yield redis_store
    finally:
        redis_store.client.close()
