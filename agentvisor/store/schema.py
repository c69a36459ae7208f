"""The state store's SQLite schema, its migrations, and how connections are opened.

One file, ``{state_dir}/state.db``, in WAL mode: the one writer connection
appends while any number of read-only connections query a consistent
snapshot, neither blocking the other. ``synchronous=NORMAL`` (a power cut may
lose the last transactions, never corrupt the file) suits history that
agentvisor does not need to reconstruct its desired state.

The schema is versioned with ``PRAGMA user_version``: ``MIGRATIONS[i]`` takes
version ``i`` to ``i + 1``. Append to the list, never edit an entry that has
shipped. A database newer than this code is refused rather than guessed at.

Tables, and why they look the way they do:

- ``services``: name → stable UUID (the API's ``service_id``) and a small
  integer ``key`` that every other table stores instead of the name, so a
  million log lines do not repeat it.
- ``events``: the audit log (transitions, exits, health changes, operator
  actions, reloads, failovers), with a JSON ``details`` column for what does not fit.
- ``health_checks``: every check, not only the changes.
- ``metrics``: raw samples per instance, kept ``raw_metrics_seconds`` (hours);
  ``metrics_minute``: per instance and minute the sum, count, min and max of
  the samples, updated as each sample is written (no batch job, no gap
  between the two), kept ``retention_days``. Charts with buckets of a minute
  or more read the minute table; finer ones read the raw samples.
- ``logs``: worker lines; ``logs_fts_0`` … ``logs_fts_3``: FTS5 indexes of
  their text, external-content (the text is stored once, in ``logs``), filled
  by triggers, one *generation* of lines each (``log_index``; since schema
  2: log_index.py says why a retention ``DELETE`` on ``logs`` does not touch
  them and how they are emptied instead). Tokenizer ``trigram``: a search
  matches any substring of three characters or more, case-insensitively,
  as grep would (``error`` finds ``ConnectionError``), and works for text
  without spaces (Chinese, identifiers, paths). Shorter terms fall back to ``LIKE`` (queries.py).
  The price, measured by ``bench/store_flood.py``: about twice the index
  size of ``unicode61`` and under half its write rate (thousands of lines
  per second rather than tens of thousands); a worker's log files keep
  every line anyway, the store keeps what it can and counts the rest.
  ``columnsize=0``: we never rank by bm25, so the per-row sizes are not kept.
- ``connections``: closed router connections.
- ``config_intents``: API edits of agentvisor.toml between the file's rename
  and their audit entry (intents.py), so a kill -9 in between loses no entry.

Rows are appended in time order, so the integer primary key doubles as a time
index: retention deletes old rows by key range from the oldest end
(retention.py), without an index on ``at`` for the big tables.
"""

from __future__ import annotations

import pathlib
import sqlite3

from agentvisor.errors import AgentvisorError
from agentvisor.store import config_journal, log_index

#: How long a connection waits for a lock (the WAL checkpoint, a second daemon) before failing.
BUSY_TIMEOUT_MS = 5000
#: After a checkpoint the WAL file is truncated to at most this many bytes.
JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024


class StoreUnavailable(AgentvisorError):
    """The state store cannot be opened or used (newer schema, unreadable file, not started)."""

    code = "STORE_UNAVAILABLE"


MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE services (
        key INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        id TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL
    );

    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        service INTEGER REFERENCES services(key),
        replica INTEGER,
        action TEXT,
        old TEXT,
        new TEXT,
        source TEXT,
        outcome TEXT,
        message TEXT NOT NULL DEFAULT '',
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_by_service ON events(service, id);

    CREATE TABLE health_checks (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        service INTEGER NOT NULL REFERENCES services(key),
        replica INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        status TEXT NOT NULL,
        response_time REAL,
        message TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX health_checks_by_service ON health_checks(service, id);

    CREATE TABLE metrics (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        service INTEGER NOT NULL REFERENCES services(key),
        replica INTEGER NOT NULL,
        metric TEXT NOT NULL,
        value REAL NOT NULL
    );
    CREATE INDEX metrics_by_metric ON metrics(metric, at);

    CREATE TABLE metrics_minute (
        metric TEXT NOT NULL,
        minute INTEGER NOT NULL,
        service INTEGER NOT NULL REFERENCES services(key),
        replica INTEGER NOT NULL,
        total REAL NOT NULL,
        samples INTEGER NOT NULL,
        low REAL NOT NULL,
        high REAL NOT NULL,
        PRIMARY KEY (metric, minute, service, replica)
    ) WITHOUT ROWID;
    CREATE INDEX metrics_minute_by_minute ON metrics_minute(minute);

    CREATE TABLE logs (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        service INTEGER NOT NULL REFERENCES services(key),
        replica INTEGER NOT NULL,
        stream TEXT NOT NULL,
        seq INTEGER,
        text TEXT NOT NULL
    );
    CREATE INDEX logs_by_service ON logs(service, id);

    CREATE VIRTUAL TABLE logs_fts USING fts5(
        text, content='logs', content_rowid='id', tokenize='trigram', columnsize=0
    );
    CREATE TRIGGER logs_fts_insert AFTER INSERT ON logs BEGIN
        INSERT INTO logs_fts(rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER logs_fts_delete AFTER DELETE ON logs BEGIN
        INSERT INTO logs_fts(logs_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;

    CREATE TABLE connections (
        key INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        client_ip TEXT NOT NULL,
        service INTEGER REFERENCES services(key),
        instance TEXT,
        session_ids TEXT NOT NULL DEFAULT '[]',
        opened_at REAL NOT NULL,
        closed_at REAL NOT NULL,
        messages_in INTEGER NOT NULL DEFAULT 0,
        messages_out INTEGER NOT NULL DEFAULT 0,
        bytes_in INTEGER NOT NULL DEFAULT 0,
        bytes_out INTEGER NOT NULL DEFAULT 0,
        close_code INTEGER,
        close_reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX connections_by_id ON connections(id);
    CREATE INDEX connections_by_service ON connections(service, key);
    """,
    # 2: the log index in generations, emptied whole (log_index.py).
    log_index.schema(),
    # 3: intent records of config writes (config_journal.py, intents.py).
    config_journal.SCHEMA,
]

#: The version this code writes and reads.
SCHEMA_VERSION = len(MIGRATIONS)


def open_writer(path: str, *, wal_max_bytes: int = JOURNAL_SIZE_LIMIT_BYTES) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the database; the one connection that writes.

    Blocking: call it in a thread. ``check_same_thread=False`` because the
    writer's calls run on trio's worker threads one at a time (a
    ``CapacityLimiter(1)`` serializes them), not always on the same thread.
    Autocommit mode (``isolation_level=None``): every transaction is an
    explicit ``BEGIN IMMEDIATE`` … ``COMMIT`` of the writer. ``wal_max_bytes``
    bounds the WAL file: SQLite checkpoints once it holds that much and
    truncates it to that size after a checkpoint.
    """
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as error:
        raise StoreUnavailable(f"cannot open the state store {path}: {error}") from error
    try:
        _configure_writer(conn, wal_max_bytes)
        migrate(conn, path)
    except sqlite3.Error as error:
        conn.close()
        raise StoreUnavailable(f"cannot open the state store {path}: {error}") from error
    except BaseException:
        conn.close()
        raise
    return conn


def _configure_writer(conn: sqlite3.Connection, wal_max_bytes: int) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # Only effective before the first table exists: a new file gets incremental
    # auto-vacuum, so retention can hand freed pages back to the file system.
    if _user_version(conn) == 0:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreUnavailable(f"the state store needs WAL mode, SQLite gave {mode!r}")
    conn.execute("PRAGMA synchronous = NORMAL")
    # Debian builds SQLite with secure_delete on: every freed page would be zeroed, i.e.
    # written to the WAL again (half of the WAL a deletion of old lines wrote, measured).
    conn.execute("PRAGMA secure_delete = FAST")
    conn.execute(f"PRAGMA journal_size_limit = {int(wal_max_bytes)}")
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    pages = min(1000, max(100, int(wal_max_bytes) // page_size))  # SQLite's default: 1000
    conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")
    conn.execute("PRAGMA temp_store = MEMORY")


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, path: str = "") -> None:
    """Bring the schema to ``SCHEMA_VERSION``, one migration per transaction."""
    version = _user_version(conn)
    if version > SCHEMA_VERSION:
        raise StoreUnavailable(
            f"the state store {path} has schema version {version}, newer than this "
            f"agentvisor's {SCHEMA_VERSION}; upgrade agentvisor or move the file away"
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        # executescript runs our own DDL; user_version takes no parameters and
        # ``target`` is an int we computed, never outside input.
        script = (
            f"BEGIN IMMEDIATE;\n{MIGRATIONS[target - 1]}\nPRAGMA user_version = {target};\nCOMMIT;"
        )
        try:
            conn.executescript(script)
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise


def open_reader(path: str) -> sqlite3.Connection:
    """A read-only connection for queries, used by one thread at a time.

    Read-only at two levels (``mode=ro`` and ``query_only``) so that a bug in
    a query can never become a second writer competing for the lock.
    Autocommit mode: ``queries.snapshot`` wraps each read in ``BEGIN`` …
    ``COMMIT`` so that its statements see one state of the database.
    """
    uri = pathlib.Path(path).absolute().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only = ON")
    except sqlite3.Error as error:
        raise StoreUnavailable(f"cannot read the state store {path}: {error}") from error
    return conn
