"""The log index in generations: searches stay exact while old lines go, and it stays small."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agentvisor.store import log_index, queries
from agentvisor.store.inserts import LogBatch, ServiceKeys, transaction, write_batch
from agentvisor.store.schema import MIGRATIONS, open_writer
from tests.integration.store.harness import NOW, count, lines, raw, running_store


def index_entries(conn: sqlite3.Connection, term: str) -> int:
    """Entries of the index matching ``term``, dead or alive (no join with ``logs``)."""
    return sum(
        conn.execute(f"SELECT count(*) FROM {table} WHERE {table} MATCH ?", (term,)).fetchone()[0]
        for table in log_index.TABLES
    )


def live_ids(conn: sqlite3.Connection, needle: str) -> list[int]:
    rows = conn.execute("SELECT id FROM logs WHERE instr(text, ?) ORDER BY id DESC", (needle,))
    return [int(row[0]) for row in rows]


async def test_searches_span_generations_newest_first_and_forget_deleted_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    async with running_store(path, max_log_rows=3000) as store:  # generations of 1000 lines
        for batch in range(12):
            texts = [f"batch {batch} line {index} tick" for index in range(500)]
            store.record_log_lines(lines(texts, first_seq=batch * 500 + 1))
            await store.flush()
        newest = await store.search_logs("tick", limit=1500)
        gone = await store.search_logs('"batch 3 line"')
        kept = await store.search_logs('"batch 9 line 7 tick"')
        with raw(path) as conn:
            generations = log_index.generations(conn)
            entries = index_entries(conn, '"tick"')

    assert count(path, "logs") == 3000
    assert [line.seq for line in newest] == list(range(6000, 4500, -1))  # across generations
    assert gone == []
    assert [line.text for line in kept] == ["batch 9 line 7 tick"]
    assert 2 <= len(generations) <= log_index.SLOTS
    assert entries <= 3000 + 1000  # the live lines and at most one generation of dead ones


async def test_a_store_of_schema_1_keeps_its_lines_searchable(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with raw(path) as conn:
        conn.executescript(f"BEGIN; {MIGRATIONS[0]} PRAGMA user_version = 1; COMMIT;")
        conn.execute("INSERT INTO services(name, id, created_at) VALUES ('web', 'x', 0)")
        conn.execute(
            "INSERT INTO logs(at, service, replica, stream, seq, text) "
            "VALUES (?, 1, 0, 'stdout', 1, 'ConnectionError before the upgrade')",
            (NOW,),
        )
        conn.commit()
    async with running_store(path) as store:
        store.record_log_lines(lines(["ConnectionError after the upgrade"], first_seq=2))
        await store.flush()
        found = await store.search_logs("connectionerror")

    assert [line.text for line in found] == [
        "ConnectionError after the upgrade",
        "ConnectionError before the upgrade",
    ]


_OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(1, 400)),
        st.tuples(st.just("expire"), st.integers(1, 600)),  # age or a row cap: oldest lines
        st.tuples(st.just("shrink"), st.integers(1, 600)),  # the file over its size
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(_OPERATIONS)
def test_whatever_goes_a_search_finds_exactly_the_live_lines(
    operations: list[tuple[str, int]],
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        conn = open_writer(str(Path(directory) / "state.db"))
        try:
            services = ServiceKeys()
            written = 0
            for kind, amount in operations:
                if kind == "write":
                    texts = [f"n{written + i} {'odd' if i % 2 else 'even'}" for i in range(amount)]
                    written += amount
                    write_batch(conn, services, [LogBatch(lines(texts))], NOW)
                    with transaction(conn):
                        log_index.rotate_if_full(conn, 500)
                elif kind == "expire":
                    with transaction(conn):
                        conn.execute(
                            "DELETE FROM logs WHERE id < (SELECT min(id) FROM logs) + ?", (amount,)
                        )
                        log_index.drop_dead(conn)
                else:
                    with transaction(conn):
                        log_index.delete_oldest_generation(conn, amount)
                found = queries.search_logs(conn, "odd", None, 100_000)
                assert [line.id for line in found] == live_ids(conn, "odd")
                generations = log_index.generations(conn)
                assert len(generations) <= log_index.SLOTS
                entries = index_entries(conn, "even") + index_entries(conn, "odd")
                oldest = generations[-1]
                end = written + 1 if oldest.end_id is None else oldest.end_id
                assert entries <= count_logs(conn) + (end - oldest.first_id)  # one generation
        finally:
            conn.close()


def count_logs(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM logs").fetchone()[0])
