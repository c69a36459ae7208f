"""Loading agentvisor.toml: every stage's issues, located at file:line:col."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentvisor.config.load import load_config, parse_config
from agentvisor.config.model import Config
from agentvisor.errors import ConfigInvalid


def _errors(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigInvalid) as caught:
        parse_config(text, "agentvisor.toml", env or {})
    return [str(issue) for issue in caught.value.issues]


def test_empty_file_is_the_default_config() -> None:
    assert parse_config("", "agentvisor.toml", {}) == Config()


def test_parsed_config_knows_its_source_and_base_dir() -> None:
    config = parse_config("", "conf/agentvisor.toml", {}, base_dir="/srv/conf")
    assert (config.source, config.base_dir) == ("conf/agentvisor.toml", "/srv/conf")


def test_base_dir_defaults_to_the_directory_of_the_source() -> None:
    config = parse_config("", "conf/agentvisor.toml", {})
    assert config.base_dir == os.path.abspath("conf")


def test_type_error_is_located_at_the_value() -> None:
    text = '[agents.weather]\ncommand = "w"\nreplicas = "two"\n'
    assert _errors(text) == [
        'agentvisor.toml:3:12 agents.weather.replicas: must be an integer, got "two"'
    ]


def test_table_error_is_located_at_its_header() -> None:
    text = '[agents.weather]\ncommand = "w"\n\n[agents.search]\ndescription = "s"\n'
    assert _errors(text) == [
        "agentvisor.toml:4:1 agents.search: needs exactly one of `agent` or `command`"
    ]


def test_unknown_key_is_located_at_the_key() -> None:
    text = '[agents.weather]\ncommand = "w"\n  replica = 2\n'
    assert _errors(text) == [
        'agentvisor.toml:3:3 agents.weather.replica: unknown key "replica" '
        '(did you mean "replicas"?)'
    ]


def test_route_strategy_is_located_in_the_right_array_element() -> None:
    text = '[[routes]]\nname = "a"\n\n[[routes]]\nname = "b"\nstrategy = "fastest"\n'
    assert _errors(text) == [
        'agentvisor.toml:6:12 routes[1].strategy: unknown strategy "fastest" '
        '(did you mean "least_connections"?)'
    ]


def test_missing_key_is_located_at_its_table() -> None:
    text = "[[routes]]\npriority = 3\n"
    assert _errors(text) == ["agentvisor.toml:1:1 routes[0].name: is required"]


def test_several_errors_in_one_file_are_all_reported_in_file_order() -> None:
    text = """\
[supervisor]
log_level = "verbose"

[router]
default_strategy = "fastest"

[agents.weather]
command = "python weather.py"
replicas = "two"
port = 8200

[agents.search]
agent = "search.py"
depends_on = ["wether"]
"""
    assert _errors(text) == [
        'agentvisor.toml:2:13 supervisor.log_level: unknown value "verbose" '
        "(expected one of: debug, info, warning, error)",
        "agentvisor.toml:5:20 router.default_strategy: unknown strategy "
        '"fastest" (did you mean "least_connections"?)',
        'agentvisor.toml:9:12 agents.weather.replicas: must be an integer, got "two"',
        "agentvisor.toml:14:15 agents.search.depends_on[0]: unknown agent "
        '"wether" (did you mean "weather"?)',
    ]


def test_validation_errors_are_all_reported_in_file_order() -> None:
    text = """\
[router]
default_strategy = "fastest"

[agents.weather]
command = "python weather.py"
port = 8200

[agents.search]
agent = "search.py"
port = 8200
depends_on = ["wether"]

[[routes]]
name = "r"
target_agents = ["serch"]
"""
    assert _errors(text) == [
        'agentvisor.toml:2:20 router.default_strategy: unknown strategy "fastest" '
        '(did you mean "least_connections"?)',
        'agentvisor.toml:10:8 agents.search.port: port 8200 is also used by agent "weather"',
        'agentvisor.toml:11:15 agents.search.depends_on[0]: unknown agent "wether" '
        '(did you mean "weather"?)',
        'agentvisor.toml:15:18 routes[0].target_agents[0]: unknown agent "serch" '
        '(did you mean "search"?)',
    ]


def test_syntax_error_is_one_issue_at_its_position() -> None:
    (error,) = _errors("[router]\npath = /ws\nmax_connections = 'x'\n")
    assert error == "agentvisor.toml:2:8: invalid TOML: invalid value"


def test_syntax_error_at_the_end_of_the_document() -> None:
    (error,) = _errors("[router]\nbind = [1,")
    assert error.startswith("agentvisor.toml:2:11: invalid TOML: ")


def test_environment_values_are_interpolated() -> None:
    text = '[admin]\ntoken = "${TOKEN}"\n'
    config = parse_config(text, "agentvisor.toml", {"TOKEN": "s3cret"})
    assert config.admin.token == "s3cret"


def test_interpolated_port_becomes_an_integer() -> None:
    text = '[agents.a]\ncommand = "x"\nport = "${PORT:-8200}"\n'
    assert parse_config(text, "agentvisor.toml", {}).agents["a"].port == 8200


def test_missing_environment_variable_is_located() -> None:
    text = '[admin]\ntoken = "${TOKEN}"\n'
    assert _errors(text) == [
        'agentvisor.toml:2:9 admin.token: environment variable "TOKEN" is not set '
        "(use ${TOKEN:-default} for a default)"
    ]


def test_missing_variable_is_not_reported_again_as_a_type_error() -> None:
    text = '[agents.a]\ncommand = "x"\nport = "${PORT}"\n'
    assert _errors(text) == [
        'agentvisor.toml:3:8 agents.a.port: environment variable "PORT" is not set '
        "(use ${PORT:-default} for a default)"
    ]


def test_interpolation_and_structure_issues_together() -> None:
    text = '[admin]\ntoken = "${TOKEN}"\n\n[router]\nmax_connections = "many"\n'
    assert len(_errors(text)) == 2


def test_interpolation_and_validation_issues_together() -> None:
    text = '[admin]\ntoken = "${TOKEN}"\n\n[router]\ndefault_strategy = "x"\n'
    assert len(_errors(text)) == 2


def test_issues_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agentvisor.toml"
    path.write_text('[router]\npath = "ws"\n')
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path, {})
    assert [str(i) for i in caught.value.issues] == [
        f'{path}:2:8 router.path: must start with "/" (or be "*"), got "ws"'
    ]


def test_loaded_config_has_absolute_source_and_base_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "agentvisor.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    config = load_config("agentvisor.toml", {})
    assert (config.source, config.base_dir) == (str(tmp_path / "agentvisor.toml"), str(tmp_path))


def test_load_reads_the_process_environment_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "agentvisor.toml"
    path.write_text('[admin]\ntoken = "${AGENTVISOR_TEST_TOKEN}"\n')
    monkeypatch.setenv("AGENTVISOR_TEST_TOKEN", "t")
    assert load_config(path).admin.token == "t"


def test_missing_file_is_one_issue(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path)
    assert [str(i) for i in caught.value.issues] == [f"{path}: config file not found"]


def test_unreadable_file_is_one_issue(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        load_config(tmp_path)  # a directory
    (issue,) = caught.value.issues
    assert issue.message.startswith("cannot read the config file (")


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "agentvisor.toml"
    path.write_bytes(b'# ok\n[router]\npath = "\xff"\n')
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path)
    assert [str(i) for i in caught.value.issues] == [f"{path}:3:1: is not valid UTF-8"]


def test_config_invalid_summarises_the_count() -> None:
    with pytest.raises(ConfigInvalid, match=r"^invalid config: 2 problems, the first: "):
        parse_config('[router]\npath = 1\nbind = "x"\n', "agentvisor.toml", {})


def test_cross_field_errors_are_reported_beside_type_errors() -> None:
    text = '[agents.broken]\nreplicas = "two"\n'
    assert _errors(text) == [
        "agentvisor.toml:1:1 agents.broken: needs exactly one of `agent` or `command`",
        'agentvisor.toml:2:12 agents.broken.replicas: must be an integer, got "two"',
    ]


def test_a_bad_value_set_aside_causes_no_second_error() -> None:
    assert _errors("[agents.x]\ncommand = 5\n") == [
        "agentvisor.toml:2:11 agents.x.command: must be a string or an array of strings, got 5"
    ]


@pytest.mark.parametrize("text", ["a = [1,\n", "a = [1,\n\n\n", "a = [1,"])
def test_an_error_at_the_end_of_the_file_points_at_its_last_line(text: str) -> None:
    assert _errors(text) == [
        "agentvisor.toml:1:8: invalid TOML: invalid value at the end of the file"
    ]
