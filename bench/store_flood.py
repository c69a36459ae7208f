"""State store under a log flood: lines/s the writer sustains, DB size, RSS; with and without FTS.

Run: ``.venv/bin/python bench/store_flood.py [--lines 200000] [--rounds 3] [--cap 100000]``.

How it measures. One *session* is a fresh process (so RSS is its own) that
starts a real ``StateStore`` on a new file and pushes ``--lines`` worker lines
in chunks of 200 (what one pipe read of a chatty worker delivers), yielding to
trio after each chunk, and waiting while more than a quarter of the queue's
byte budget is in use, so the writer, not the producer, sets the pace and no
line is dropped ("lost" counts dropped and failed rows: it should read 0).
The clock runs from the first chunk until ``flush()`` returns
(everything committed). Then it measures the file (database + WAL), the RSS
of the process, and the median time of 20 searches.

Variants, one session each per round, alternating (A B C A B C …) so drift and
other load on the machine fall on all alike:

- ``trigram``: the shipped schema (FTS5, trigram tokenizer);
- ``unicode61``: the same index with the unicode61 (word) tokenizer;
- ``none``: no full-text indexing (the triggers dropped, ``logs_fts_*`` left empty).

A second table does the same with ``--cap`` as ``max_log_rows``, so the
writer deletes (and un-indexes) as many lines as it adds: the steady state of
a flood that lasts.

Lines look like a web worker's log: a timestamp, a level, a random request id,
eight words from a small vocabulary and a counter (about 100 characters).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
CHUNK = 200
VARIANTS = ("trigram", "unicode61", "none")
WORDS = [
    "error",
    "connection",
    "refused",
    "GET",
    "/api/v1/items",
    "200",
    "latency",
    "user",
    "session",
    "tool",
    "call",
    "retry",
    "timeout",
    "worker",
    "started",
    "数据库",
    "连接",
]


def _prepare(path: str, variant: str) -> None:
    """Create the schema, then swap or drop the full-text index for the variant."""
    from agentvisor.store.log_index import TABLES
    from agentvisor.store.schema import open_writer

    conn = open_writer(path)
    for table in TABLES:
        if variant != "trigram":  # the (then empty) tables stay: retention empties them
            conn.execute(f"DROP TRIGGER {table}_insert")
        if variant == "unicode61":
            conn.executescript(
                f"""
                DROP TABLE {table};
                CREATE VIRTUAL TABLE {table} USING fts5(
                    text, content='logs', content_rowid='id', tokenize='unicode61',
                    columnsize=0);
                """
            )
    if variant == "unicode61":  # one generation is enough for the comparison
        conn.execute(
            f"CREATE TRIGGER unicode61_insert AFTER INSERT ON logs BEGIN "
            f"INSERT INTO {TABLES[0]}(rowid, text) VALUES (new.id, new.text); END"
        )
    conn.close()


def _session(variant: str, lines: int, cap: int) -> dict[str, Any]:
    import psutil
    import trio

    from agentvisor.store.writer import StateStore
    from agentvisor.supervise.logs import LogLine

    rng = random.Random(7)
    directory = tempfile.mkdtemp(prefix="store-flood-")
    path = os.path.join(directory, "state.db")
    _prepare(path, variant)
    process = psutil.Process()
    result: dict[str, Any] = {"variant": variant}

    async def main() -> None:
        store = StateStore(path, retention_days=7, max_log_rows=cap)
        budget = store._backlog.max_bytes
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            rss_before = process.memory_info().rss
            started = time.perf_counter()
            now = time.time()
            for first in range(0, lines, CHUNK):
                batch = [
                    LogLine(
                        seq,
                        now,
                        "web",
                        seq % 4,
                        "stdout",
                        f"2025-06-15T10:00:00 INFO req={rng.getrandbits(40):x} "
                        + " ".join(rng.choice(WORDS) for _ in range(8))
                        + f" n={seq}",
                    )
                    for seq in range(first + 1, first + CHUNK + 1)
                ]
                store.record_log_lines(batch)
                await trio.lowlevel.checkpoint()
                while store.statistics().queued_bytes > budget / 4:
                    await trio.sleep(0.001)
            await store.flush()
            elapsed = time.perf_counter() - started
            stats = store.statistics()
            timings = []
            if variant != "none":
                for word in ("refused", "timeout worker", "数据库连接", "n=123"):
                    for _ in range(5):
                        began = time.perf_counter()
                        await store.search_logs(word, limit=50)
                        timings.append(time.perf_counter() - began)
            result.update(
                lines_per_s=lines / elapsed,
                dropped=stats.dropped + stats.failed,
                rss_mib=process.memory_info().rss / MiB,
                rss_growth_mib=(process.memory_info().rss - rss_before) / MiB,
                search_ms=statistics.median(timings) * 1000 if timings else None,
            )
            nursery.cancel_scope.cancel()
        files = [path, path + "-wal"]
        result["db_mib"] = sum(os.path.getsize(f) for f in files if os.path.exists(f)) / MiB
        with sqlite3.connect(path) as conn:
            result["rows"] = conn.execute("SELECT count(*) FROM logs").fetchone()[0]
        for name in os.listdir(directory):
            os.remove(os.path.join(directory, name))
        os.rmdir(directory)

    trio.run(main)
    return result


def _run(variant: str, lines: int, cap: int) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, __file__, "--session", variant, "--lines", str(lines), "--cap", str(cap)],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    return dict(json.loads(out.stdout))


def _table(title: str, sessions: list[dict[str, Any]]) -> str:
    rows = [
        f"### {title}",
        "",
        "| FTS | lines/s | DB MiB | rows | RSS MiB | RSS growth MiB | search ms | lost |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for variant in VARIANTS:
        mine = [s for s in sessions if s["variant"] == variant]

        def med(key: str, mine: list[dict[str, Any]] = mine) -> float | None:
            values = [s[key] for s in mine if s[key] is not None]
            return statistics.median(values) if values else None

        search = med("search_ms")
        rows.append(
            f"| {variant} | {med('lines_per_s'):,.0f} | {med('db_mib'):.1f} | "
            f"{med('rows'):,.0f} | {med('rss_mib'):.0f} | {med('rss_growth_mib'):.1f} | "
            f"{'-' if search is None else f'{search:.1f}'} | {med('dropped'):,.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cap", type=int, default=50_000, help="max_log_rows of the capped run")
    parser.add_argument("--session", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.session:
        print(json.dumps(_session(args.session, args.lines, args.cap)))
        return
    uncapped: list[dict[str, Any]] = []
    capped: list[dict[str, Any]] = []
    for _ in range(args.rounds):
        for variant in VARIANTS:
            uncapped.append(_run(variant, args.lines, 10 * args.lines))
            capped.append(_run(variant, args.lines, args.cap))
    print(
        f"SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, {args.lines:,} lines per session, "
        f"medians of {args.rounds} rounds\n"
    )
    print(_table(f"{args.lines:,} lines, no cap", uncapped))
    print()
    print(_table(f"{args.lines:,} lines, max_log_rows = {args.cap:,}", capped))


if __name__ == "__main__":
    main()
