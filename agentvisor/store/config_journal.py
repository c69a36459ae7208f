"""Intent records of config writes, and their recovery at start-up (intents.py says why).

Runs on the writer's connection: :func:`insert_intent` commits before the
config file is renamed into place; the audit entry that completes an intent
deletes it in the batch that writes the entry (inserts.py); :func:`recover`
turns what is left into audit entries or drops it, in one transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from agentvisor.store.inserts import EventRow, ServiceKeys, transaction, write_batch
from agentvisor.store.intents import Intent, digest, landed

SCHEMA = """
CREATE TABLE config_intents (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    path TEXT NOT NULL,
    old_digest TEXT,
    new_digest TEXT NOT NULL,
    entry TEXT NOT NULL
);
"""

RECOVERED = " (recovered at start-up: agentvisor stopped before recording it)"


def insert_intent(
    conn: sqlite3.Connection, path: str, old: bytes | None, new: bytes, entry: EventRow
) -> int:
    """Record that ``path`` is about to become ``new``, and the audit entry it will make."""
    fields = {
        "kind": entry.kind,
        "service": entry.service,
        "action": entry.action,
        "source": entry.source,
        "outcome": entry.outcome,
        "message": entry.message,
    }
    with transaction(conn):
        cursor = conn.execute(
            "INSERT INTO config_intents(at, path, old_digest, new_digest, entry) "
            "VALUES (?, ?, ?, ?, ?)",
            (entry.at, path, None if old is None else digest(old), digest(new), json.dumps(fields)),
        )
    return int(cursor.lastrowid or 0)


def read_digest(path: str) -> str | None:
    try:
        with open(path, "rb") as file:
            return digest(file.read())
    except OSError:
        return None


def recover(
    conn: sqlite3.Connection,
    services: ServiceKeys,
    now: float,
    read: Callable[[str], str | None] = read_digest,
) -> int:
    """Write the audit entries of pending intents whose change is in their file, drop the
    others; how many were recovered. Blocking (reads the files): call it in a thread."""
    rows = conn.execute(
        "SELECT id, at, path, old_digest, new_digest, entry FROM config_intents ORDER BY id"
    ).fetchall()
    if not rows:
        return 0
    pending = [Intent(int(row[0]), row[2], row[3], row[4]) for row in rows]
    current = {intent.path: read(intent.path) for intent in pending}
    done = landed(pending, current)
    entries: list[EventRow] = []
    for row in rows:
        if int(row[0]) not in done:
            continue
        fields = json.loads(row[5])
        entries.append(
            EventRow(
                at=float(row[1]),
                kind=fields["kind"],
                service=fields["service"],
                action=fields["action"],
                source=fields["source"],
                outcome=fields["outcome"],
                message=fields["message"] + RECOVERED,
                details={"recovered": True, "file": row[2]},
            )
        )
    write_batch(conn, services, entries, now, after=_forget_all)
    return len(entries)


def _forget_all(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM config_intents")
