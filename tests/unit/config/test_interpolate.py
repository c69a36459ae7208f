"""``${VAR}`` / ``${VAR:-default}`` / ``$$`` in string values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agentvisor.config.convert import FromEnvironment
from agentvisor.config.interpolate import EnvironmentUse, environment_use, expand, interpolate
from tests.strategies import interpolated_texts


def test_variable_is_replaced() -> None:
    assert expand("key-${API_KEY}", {"API_KEY": "s3cret"}) == ("key-s3cret", [])


def test_default_is_used_when_the_variable_is_missing() -> None:
    assert expand("${PORT:-8100}", {}) == ("8100", [])


def test_default_is_used_when_the_variable_is_empty() -> None:
    assert expand("${PORT:-8100}", {"PORT": ""}) == ("8100", [])


def test_set_variable_wins_over_the_default() -> None:
    assert expand("${PORT:-8100}", {"PORT": "9000"}) == ("9000", [])


def test_empty_default() -> None:
    assert expand("a${X:-}b", {}) == ("ab", [])


def test_empty_variable_without_default_is_empty() -> None:
    assert expand("a${X}b", {"X": ""}) == ("ab", [])


def test_double_dollar_is_a_literal_dollar() -> None:
    assert expand("cost: $$5 and $${HOME}", {"HOME": "/root"}) == ("cost: $5 and ${HOME}", [])


def test_lone_dollar_stays() -> None:
    assert expand("^/ws$", {}) == ("^/ws$", [])


def test_missing_variable_is_a_problem() -> None:
    assert expand("${API_KEY}", {}) == (
        "${API_KEY}",
        ['environment variable "API_KEY" is not set (use ${API_KEY:-default} for a default)'],
    )


def test_every_missing_variable_in_a_string_is_reported() -> None:
    _, problems = expand("${A}-${B}", {})
    assert len(problems) == 2


def test_unterminated_reference() -> None:
    assert expand("${HOME", {"HOME": "/"})[1] == [
        'unterminated "${" (write "$$" for a literal "$")'
    ]


def test_invalid_reference() -> None:
    assert expand("${1X}", {})[1] == [
        'invalid reference "${1X}" (expected ${NAME} or ${NAME:-default})'
    ]


def test_expanded_value_is_marked_as_from_the_environment() -> None:
    value, _ = expand("${PORT}", {"PORT": "1"})
    assert isinstance(value, FromEnvironment)


def test_string_without_references_is_a_plain_string() -> None:
    value, _ = expand("a $$ b", {})
    assert type(value) is str


def test_values_in_tables_and_arrays_are_expanded() -> None:
    raw = {"agents": {"a": {"command": ["run", "${X}"], "environment": {"K": "${X}"}}}}
    expanded, issues = interpolate(raw, {"X": "1"})
    assert issues == []
    assert expanded == {"agents": {"a": {"command": ["run", "1"], "environment": {"K": "1"}}}}


def test_keys_are_not_expanded() -> None:
    expanded, _ = interpolate({"agents": {"${X}": {}}}, {"X": "a"})
    assert expanded == {"agents": {"${X}": {}}}


def test_non_strings_are_left_alone() -> None:
    raw = {"supervisor": {"sample_interval": 5, "forward_worker_output": True}}
    assert interpolate(raw, {}) == (raw, [])


def test_missing_variable_issue_names_the_key_path() -> None:
    raw = {"routes": [{"name": "r"}, {"match": [{"value": "${ORIGIN}"}]}]}
    _, issues = interpolate(raw, {}, "agentvisor.toml")
    assert [(i.file, i.path) for i in issues] == [("agentvisor.toml", "routes[1].match[0].value")]


def test_value_with_a_problem_is_left_as_written() -> None:
    expanded, _ = interpolate({"admin": {"token": "${TOKEN}"}}, {})
    assert expanded == {"admin": {"token": "${TOKEN}"}}


def test_input_is_not_modified() -> None:
    raw = {"admin": {"token": "${TOKEN}"}}
    interpolate(raw, {"TOKEN": "t"})
    assert raw == {"admin": {"token": "${TOKEN}"}}


def test_environment_use_names_each_variable_once_in_order_of_use() -> None:
    raw = {"a": "${X} $${LITERAL} ${Z:-d}", "b": ["${X}", {"c": "${W}"}], "${KEY}": 1}
    assert environment_use(raw, {"X": "1", "W": ""}) == EnvironmentUse(("X", "W"), ("Z",))


@given(interpolated_texts(), st.sets(st.sampled_from(["A", "B", "C"])))
def test_environment_use_agrees_with_interpolate(
    text_and_names: tuple[str, set[str]], present: set[str]
) -> None:
    text, names = text_and_names
    env = dict.fromkeys(present, "v")
    use = environment_use({"key": text}, env)
    assert set(use.set) | set(use.unset) == names
    assert set(use.set) == names & present
    # Every variable interpolate reports as not set is among the unset ones.
    _, issues = interpolate({"key": text}, env)
    missing = {name for name in "ABC" if any(f'"{name}" is not set' in i.message for i in issues)}
    assert missing <= set(use.unset)
