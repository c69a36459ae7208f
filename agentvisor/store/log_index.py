"""The full-text index of worker lines, in generations that are dropped whole.

Deleting a line from an FTS5 index does not free its space: it adds a delete
marker, and both go only when the segments holding them merge. With lines
deleted oldest-first as fast as new ones come (a flood at the size cap) the
markers pile up in the small new segments while the lines they cancel sit in
the oldest, largest one, which rarely merges. Measured on SQLite 3.40 with a
ring of 100,000 lines: the index grew to four times its live size, and its
automerges wrote 20 MiB transactions; forcing merges (``'merge'`` with a
negative page count) kept it compact but wrote 26 MiB of WAL and took 440 ms
per batch. (``secure-delete`` and ``contentless_delete``, which fix this in
FTS5 itself, need SQLite 3.42 / 3.43.)

So the index is ``SLOTS`` external-content FTS5 tables, ``logs_fts_0`` …,
each holding one *generation*: the lines from its ``first_id`` (in
``log_index``) to the next generation's. New lines go to the newest
generation (triggers on ``logs``). Deleting lines touches only ``logs``; a
search joins the index to ``logs``, so an entry whose line is gone matches
nothing. Once every line of the oldest generation is gone, its table is
emptied with ``'delete-all'``, which frees its pages without a delete marker
(a table truncation), and the slot is free for a later generation. Only the
oldest generation can hold entries of deleted lines (lines go oldest first),
so the index is never larger than the live lines plus one generation.

A generation is closed once it holds ``generation_lines`` lines (a third of
the lines that fit the store's size, estimated from the file, and of the row
cap), if a slot is free. When none is, the oldest generation's lines are
deleted (in steps, see retention.py) to make room: the index then holds at
most ``SLOTS`` generations.

Everything here runs on the writer's connection inside its transactions.
"""

from __future__ import annotations

import sqlite3

import attrs

#: Index tables; a generation's lines are at most a third of what the store holds.
SLOTS = 4
#: The smallest generation worth closing (a tiny store would otherwise rotate every batch).
MIN_GENERATION_LINES = 1000

#: The tables' names, from this constant list only.
TABLES = tuple(f"logs_fts_{slot}" for slot in range(SLOTS))


@attrs.frozen
class Generation:
    slot: int
    first_id: int
    end_id: int | None  # the next generation's first id; None for the newest

    @property
    def table(self) -> str:
        return TABLES[self.slot]


def schema() -> str:
    """The DDL of the generations (migration 2), indexing the lines already stored."""
    tables = "\n".join(
        f"CREATE VIRTUAL TABLE {table} USING fts5(text, content='logs', content_rowid='id', "
        "tokenize='trigram', columnsize=0);"
        for table in TABLES
    )
    triggers = "\n".join(
        f"CREATE TRIGGER {table}_insert AFTER INSERT ON logs WHEN "
        f"(SELECT slot FROM log_index WHERE first_id IS NOT NULL ORDER BY first_id DESC LIMIT 1)"
        f" = {slot} BEGIN INSERT INTO {table}(rowid, text) VALUES (new.id, new.text); END;"
        for slot, table in enumerate(TABLES)
    )
    slots = ", ".join(f"({slot}, NULL)" for slot in range(1, SLOTS))
    return f"""
    DROP TRIGGER logs_fts_insert;
    DROP TRIGGER logs_fts_delete;
    DROP TABLE logs_fts;
    CREATE TABLE log_index (slot INTEGER PRIMARY KEY, first_id INTEGER);
    INSERT INTO log_index VALUES (0, 0), {slots};
    {tables}
    INSERT INTO {TABLES[0]}(rowid, text) SELECT id, text FROM logs;
    {triggers}
    """


def generations(conn: sqlite3.Connection) -> list[Generation]:
    """The generations in use, newest first (also on a reader's connection)."""
    rows = conn.execute(
        "SELECT slot, first_id FROM log_index WHERE first_id IS NOT NULL ORDER BY first_id DESC"
    ).fetchall()
    found: list[Generation] = []
    end: int | None = None
    for slot, first_id in rows:
        found.append(Generation(int(slot), int(first_id), end))
        end = int(first_id)
    return found


def _id_range(conn: sqlite3.Connection) -> tuple[int, int] | None:
    # Two subqueries: SQLite answers a lone min() or max() from the key's b-tree, but
    # "SELECT min(id), max(id)" scans the table (a third of agentvisor's CPU in a flood).
    low, high = conn.execute(
        "SELECT (SELECT min(id) FROM logs), (SELECT max(id) FROM logs)"
    ).fetchone()
    return None if low is None else (int(low), int(high))


def drop_dead(conn: sqlite3.Connection) -> int:
    """Empty the index tables of generations none of whose lines are left; how many."""
    span = _id_range(conn)
    gens = generations(conn)
    if span is None:  # no line left: start over (ids may start again at 1)
        for table in TABLES:
            conn.execute(f"INSERT INTO {table}({table}) VALUES ('delete-all')")
        conn.execute("UPDATE log_index SET first_id = CASE slot WHEN 0 THEN 0 ELSE NULL END")
        return len(gens)
    dropped = 0
    for gen in reversed(gens):  # oldest first
        if gen.end_id is None or gen.end_id > span[0]:
            break
        conn.execute(f"INSERT INTO {gen.table}({gen.table}) VALUES ('delete-all')")
        conn.execute("UPDATE log_index SET first_id = NULL WHERE slot = ?", (gen.slot,))
        dropped += 1
    return dropped


def generation_lines(conn: sqlite3.Connection, used: int, max_bytes: int, max_rows: int) -> int:
    """Lines a generation takes before the next one starts: a third of what fits."""
    span = _id_range(conn)
    lines = 0 if span is None else span[1] - span[0] + 1
    fit = max_rows if lines == 0 or used <= 0 else min(max_rows, lines * max_bytes // used)
    return max(MIN_GENERATION_LINES, fit // (SLOTS - 1))


def rotate_if_full(conn: sqlite3.Connection, lines_per_generation: int) -> bool:
    """Start a new generation after the newest line if the newest holds enough and a slot
    is free. False when the newest is full and no slot is: the oldest must go first."""
    span = _id_range(conn)
    gens = generations(conn)
    if span is None or not gens or span[1] - gens[0].first_id + 1 < lines_per_generation:
        return True
    return _rotate(conn, span[1] + 1, gens)


def _rotate(conn: sqlite3.Connection, first_id: int, gens: list[Generation]) -> bool:
    used = {gen.slot for gen in gens}
    free = [slot for slot in range(SLOTS) if slot not in used]
    if not free:
        return False
    newest = gens[0].slot if gens else -1
    slot = min(free, key=lambda candidate: (candidate - newest) % SLOTS)
    conn.execute("UPDATE log_index SET first_id = ? WHERE slot = ?", (first_id, slot))
    return True


def delete_oldest_generation(conn: sqlite3.Connection, chunk: int) -> int:
    """Delete up to ``chunk`` lines of the oldest generation, emptying its index once all
    are gone; the lines deleted. With a single generation, a new one starts first."""
    span = _id_range(conn)
    if span is None:
        return 0
    gens = generations(conn)
    if len(gens) == 1:
        _rotate(conn, span[1] + 1, gens)
        gens = generations(conn)
    oldest = gens[-1]
    end = span[1] + 1 if oldest.end_id is None else oldest.end_id
    deleted = conn.execute(
        "DELETE FROM logs WHERE id < min(?, (SELECT min(id) FROM logs) + ?)", (end, chunk)
    ).rowcount
    drop_dead(conn)
    return int(deleted)
