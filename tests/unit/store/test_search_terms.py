"""Turning a user's search into FTS5 terms that can never be a syntax error."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agentvisor.store.queries import (
    MAX_TERMS,
    fts_phrase,
    highlight_spans,
    like_pattern,
    search_terms,
)


def test_words_split_on_white_space() -> None:
    assert search_terms("  connection\trefused\n") == ["connection", "refused"]


def test_quoted_phrases_stay_together_and_an_open_quote_runs_to_the_end() -> None:
    assert search_terms('"connection refused" by "10.0.0.7 port') == [
        "connection refused",
        "by",
        "10.0.0.7 port",
    ]


def test_operators_are_plain_words() -> None:
    assert search_terms("a OR b NOT c*") == ["a", "OR", "b", "NOT", "c*"]


def test_duplicates_and_empty_phrases_are_dropped() -> None:
    assert search_terms('x "" x " " y') == ["x", "y"]


def test_terms_are_bounded() -> None:
    assert len(search_terms(" ".join(f"w{index}" for index in range(100)))) == MAX_TERMS


def test_unencodable_text_is_replaced_not_an_error() -> None:
    assert search_terms("a\ud800b\0c") == ["a?b", "c"]


def test_phrases_double_their_quotes() -> None:
    assert fts_phrase('say "hi"') == '"say ""hi"""'


def test_like_wildcards_are_escaped() -> None:
    assert like_pattern("50%_\\") == "%50\\%\\_\\\\%"


def test_highlights_are_case_insensitive_and_merged() -> None:
    assert highlight_spans("Error: error", ["ERROR"]) == ((0, 5), (7, 12))
    assert highlight_spans("abcdef", ["abc", "cde"]) == ((0, 5),)
    assert highlight_spans("abc", ["x"]) == ()


@given(st.text())
def test_every_term_quotes_into_one_balanced_fts_string(query: str) -> None:
    for term in search_terms(query):
        assert term
        assert term == term.strip()
        phrase = fts_phrase(term)
        inner = phrase[1:-1]
        assert phrase[0] == phrase[-1] == '"'
        assert inner.replace('""', "").count('"') == 0
