"""Full-text search over stored log lines: what it finds, and that no input breaks it."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentvisor.store import queries
from agentvisor.store.inserts import LogBatch, ServiceKeys, write_batch
from agentvisor.store.schema import open_reader, open_writer
from agentvisor.store.writer import StateStore
from tests.integration.store.harness import NOW, lines, running_store

TEXTS = [
    "GET /health 200 in 3ms",
    "ConnectionError: connection refused by 10.0.0.7:8081",
    "数据库连接失败，正在重试",  # noqa: RUF001 - a real Chinese comma
    'tool "search" returned 50% of results',
    "WARN retry 2/5 in 1.5s",
    "user_id=42 logged in",
    "Ünïcödé façade naïve",
]


async def search(store: StateStore, query: str, **kwargs: Any) -> list[str]:
    return [line.text for line in await store.search_logs(query, **kwargs)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    async with running_store(tmp_path / "state.db") as store:
        store.record_log_lines(lines(TEXTS))
        store.record_log_lines(lines(["ConnectionError on the api side"], service="api"))
        await store.flush()
        yield store


async def test_finds_a_word_inside_longer_words_case_insensitively(store: StateStore) -> None:
    assert await search(store, "error") == [
        "ConnectionError on the api side",
        "ConnectionError: connection refused by 10.0.0.7:8081",
    ]
    assert await search(store, "REFUSED") == [TEXTS[1]]


async def test_every_term_must_match(store: StateStore) -> None:
    assert await search(store, "connection 8081") == [TEXTS[1]]
    assert await search(store, "connection health") == []


async def test_quoted_phrases_match_as_written(store: StateStore) -> None:
    assert await search(store, '"refused by"') == [TEXTS[1]]
    assert await search(store, '"by refused"') == []


async def test_text_without_spaces_and_accents(store: StateStore) -> None:
    assert await search(store, "连接失败") == [TEXTS[2]]
    assert await search(store, "façade") == [TEXTS[6]]


async def test_short_terms_fall_back_to_substring_matching(store: StateStore) -> None:
    assert await search(store, "3ms") == [TEXTS[0]]
    assert await search(store, "2/") == [TEXTS[4]]
    assert await search(store, "_i") == [TEXTS[5]]  # LIKE's wildcard is literal here
    assert await search(store, "% retry") == []  # and so is %
    assert await search(store, "50%") == [TEXTS[3]]


async def test_search_within_one_service_and_limited(store: StateStore) -> None:
    assert await search(store, "error", service="api") == ["ConnectionError on the api side"]
    assert await search(store, "error", limit=1) == ["ConnectionError on the api side"]
    assert await search(store, "error", service="nope") == []


async def test_results_carry_the_spans_that_matched(store: StateStore) -> None:
    (found,) = await store.search_logs("connection REFUSED", service="web")
    marked = [found.text[start:end] for start, end in found.highlights]
    assert marked == ["Connection", "connection", "refused"]
    assert (found.service, found.replica, found.stream, found.at) == ("web", 0, "stdout", NOW)


HOSTILE = [
    "",
    "   ",
    '"',
    '""',
    '"""',
    "*",
    "a*",
    "AND OR",
    "OR",
    "NOT error",
    "-",
    "-error",
    "error -",
    "(",
    ")",
    "NEAR(a b)",
    "text:error",
    "^error",
    "'; DROP TABLE logs; --",
    "\\",
    "%",
    "_",
    "\0",
    "\ud800",
    "🙂",
    "x" * 5000,
    " ".join(["word"] * 100),
]


@pytest.mark.parametrize("query", HOSTILE)
async def test_hostile_queries_are_searched_for_never_an_error(
    store: StateStore, query: str
) -> None:
    await store.search_logs(query)  # no exception is the assertion
    assert len(await store.search_logs("error")) == 2  # and nothing was dropped


async def test_an_operator_is_searched_for_as_text(store: StateStore) -> None:
    store.record_log_lines(lines(["cache MISS OR HIT", "NOT found"]))
    await store.flush()
    assert await search(store, "OR") == [
        "cache MISS OR HIT",
        "ConnectionError on the api side",
        "ConnectionError: connection refused by 10.0.0.7:8081",
    ]
    assert await search(store, '"MISS OR"') == ["cache MISS OR HIT"]
    assert await search(store, "NOT") == ["NOT found"]


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    path = str(tmp_path_factory.mktemp("search") / "state.db")
    writer = open_writer(path)
    write_batch(writer, ServiceKeys(), [LogBatch(lines(TEXTS))], NOW)
    conn = open_reader(path)
    yield conn
    conn.close()
    writer.close()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text())
def test_no_text_is_a_syntax_error(reader: sqlite3.Connection, query: str) -> None:
    found = queries.snapshot(reader, queries.search_logs, query, None, 10)
    for line in found:
        for start, end in line.highlights:
            assert 0 <= start < end <= len(line.text)
