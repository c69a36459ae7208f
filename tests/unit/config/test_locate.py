"""The locator: key path → line and column in the TOML text."""

from __future__ import annotations

import pytest

from agentvisor.config.load import locate, parse_key_path, scan_locations

TEXT = """\
# agentvisor
[supervisor]
log_level = "info"   # comment with = and [brackets]

[agents.weather]
command = "python weather.py --port {port}"
replicas = 2
health.interval = 3
"quoted key" = 1
environment = { API_KEY = "x", 'lit key' = "y" }

[agents.weather.autoscale]
min = 1

[agents.search]
description = '''
multi [line] = "text"
'''
tags = [
  "a",  # first
  "b",
]

[[routes]]
name = "first"

[[routes]]
name = "second"
strategy = "fastest"
match = [
  { field = "path", op = "regex", value = "^/a$" },
  { field = "client_ip", op = "cidr", value = ["10.0.0.0/8", "x"] },
]
"""


@pytest.mark.parametrize(
    ("path", "position"),
    [
        ("supervisor", (2, 1)),
        ("supervisor.log_level", (3, 13)),
        ("agents.weather", (5, 1)),
        ("agents.weather.command", (6, 11)),
        ("agents.weather.replicas", (7, 12)),
        ("agents.weather.health.interval", (8, 19)),
        ('agents.weather."quoted key"', (9, 16)),
        ("agents.weather.environment.API_KEY", (10, 27)),
        ('agents.weather.environment."lit key"', (10, 44)),
        ("agents.weather.autoscale", (12, 1)),
        ("agents.weather.autoscale.min", (13, 7)),
        ("agents.search.description", (16, 15)),
        ("agents.search.tags[1]", (21, 3)),
        ("routes[0].name", (25, 8)),
        ("routes[1]", (27, 1)),
        ("routes[1].strategy", (29, 12)),
        ("routes[1].match[0].value", (31, 43)),
        ("routes[1].match[1].value[1]", (32, 62)),
    ],
)
def test_value_positions(path: str, position: tuple[int, int]) -> None:
    assert locate(TEXT, path) == position


def test_key_position_of_a_key_value() -> None:
    assert locate(TEXT, "agents.weather.replicas", at="key") == (7, 1)


def test_key_position_of_a_dotted_key_is_its_last_part() -> None:
    assert locate(TEXT, "agents.weather.health.interval", at="key") == (8, 8)


def test_key_position_inside_an_inline_table() -> None:
    assert locate(TEXT, "routes[1].match[0].op", at="key") == (31, 21)


def test_table_made_by_a_dotted_key_is_at_that_key() -> None:
    assert locate(TEXT, "agents.weather.health") == (8, 1)


def test_implicit_parent_table_is_at_its_first_header() -> None:
    assert locate(TEXT, "agents") == (5, 1)


def test_missing_key_falls_back_to_its_table() -> None:
    assert locate(TEXT, "routes[0].strategy") == (24, 1)


def test_missing_key_in_an_inline_table_falls_back_to_the_table() -> None:
    assert locate(TEXT, "routes[1].match[1].case_sensitive") == (32, 3)


def test_missing_table_falls_back_to_the_nearest_parent() -> None:
    assert locate(TEXT, "agents.weather.health.timeout") == (8, 1)


def test_path_not_in_the_text_at_all() -> None:
    assert locate(TEXT, "router.bind") == (0, 0)


def test_explicit_table_after_its_subtable_wins() -> None:
    text = "[agents.a.health]\ninterval = 1\n\n[agents.a]\ncommand = 'x'\n"
    assert locate(text, "agents.a") == (4, 1)


def test_nested_array_of_tables() -> None:
    text = (
        "[[routes]]\nname = 'a'\n[[routes.match]]\nfield = 'path'\n"
        "[[routes]]\nname = 'b'\n[[routes.match]]\nfield = 'x'\n[[routes.match]]\nfield = 'y'\n"
    )
    assert locate(text, "routes[1].match[1].field") == (10, 9)


def test_table_header_under_an_array_of_tables() -> None:
    text = "[[routes]]\nname = 'a'\n[[routes]]\nname = 'b'\n[routes.extra]\nx = 1\n"
    assert locate(text, "routes[1].extra.x") == (6, 5)


def test_multiline_basic_string_with_quotes_inside() -> None:
    text = 'a = """one "two" ""three"" \\""""\nb = 1\n'
    assert locate(text, "b") == (2, 5)


def test_multiline_string_ending_in_quotes() -> None:
    text = "a = '''x'''''\nb = 2\n"
    assert locate(text, "b") == (2, 5)


def test_basic_string_with_an_escaped_quote() -> None:
    text = 'a = "say \\"b = 1\\""\nb = 2\n'
    assert locate(text, "b") == (2, 5)


def test_quoted_key_with_escapes() -> None:
    text = '"a\\u0062c" = 1\n'
    assert scan_locations(text)[("abc",)].key_col == 1


def test_dates_and_numbers_as_values() -> None:
    text = "a = 1979-05-27 07:32:00Z\nb = [1_000, +inf, 0x1f]\nc = true\n"
    assert locate(text, "b[2]") == (2, 19)
    assert locate(text, "c") == (3, 5)


def test_windows_line_endings() -> None:
    assert locate("a = 1\r\nb = 2\r\n", "b") == (2, 5)


def test_columns_count_characters_not_bytes() -> None:
    assert locate('a = "é"\nb = { c = "ü", d = 1 }\n', "b.d") == (2, 20)


def test_invalid_text_keeps_what_was_found() -> None:
    assert locate("a = 1\nb = = 2\n", "a") == (1, 5)


def test_parse_key_path_with_indexes_and_quotes() -> None:
    assert parse_key_path('routes[1].match[0]."x.y"') == ("routes", 1, "match", 0, "x.y")


def test_parse_key_path_of_nothing() -> None:
    assert parse_key_path("") == ()
