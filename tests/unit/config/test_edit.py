"""Edits of agentvisor.toml text: exactly the intended bytes change, and the result loads.

Most asserts state the whole result as ``SAMPLE.replace(old, new)``: the one
fragment changed, every other byte of the file as it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agentvisor.config import edit
from agentvisor.config.load import parse_config
from agentvisor.config.model import AgentConfig, Condition, Config, HealthConfig, RouteConfig
from agentvisor.config.validate import validate_config
from agentvisor.errors import (
    ConfigInvalid,
    InvalidRequest,
    RuleAlreadyExists,
    RuleNotFound,
    ServiceAlreadyExists,
    ServiceNotFound,
)
from tests.strategies import agent_configs, config_edits, route_configs

ENV = {"SECRET": "s3cret"}

SAMPLE = """\
# agentvisor.toml for the edit tests.
# Laid out by hand: comments, blank lines, every way to write a sub-table.

[supervisor]
state_dir = ".agentvisor"          # trailing comment
log_level = "${LOG_LEVEL:-info}"

[router]
bind = ["127.0.0.1:9090"]

# The echo agent: an inline health table.
[agents.echo]
command = "python3 echo.py --port {port}"   # the command
description = "Echo for ${USER:-nobody}"
# checked often
health = { interval = 3, timeout = 2 }
environment = { TOKEN = "${SECRET}", MODE = "fast" }

[agents.dotted]
agent = "agents/dotted.py"
health.interval = 4                 # dotted keys
health.timeout = 1

# Fixed port, health as its own table.
[agents.shouter]
command = ["python3", "echo.py", "--port", "{port}"]
port = 8765
depends_on = ["echo"]

[agents.shouter.health]
mode = "http"   # GET /health
interval = 5

# ---- routing -------------------------------------------------------------

# VIP users go to the echo agent.
[[routes]]
name = "vip"
priority = 10
match = [{ field = "header.x-user-tier", op = "equals", value = "${TIER:-vip}" }]
target_agents = ["echo"]

[[routes]]
name = "rest"   # everything else
target_tags = []
"""


def load(text: str) -> Config:
    return parse_config(text, "agentvisor.toml", ENV)


def test_the_sample_is_a_valid_config() -> None:
    config = load(SAMPLE)
    assert sorted(config.agents) == ["dotted", "echo", "shouter"]
    assert config.agents["echo"].environment == {"TOKEN": "s3cret", "MODE": "fast"}


# --- agents --------------------------------------------------------------------------


def test_a_new_agent_goes_after_the_last_agent_table_with_its_health_table() -> None:
    settings = {
        "agent": "agents/weather.py",
        "tags": ["weather", "information"],
        "port": 8081,
        "environment": {"API_KEY": "${WEATHER_KEY:-none}"},
        "health": {"enabled": False},
    }
    new = edit.add_agent(SAMPLE, "weather", settings)
    assert new == SAMPLE.replace(
        "interval = 5\n\n# ---- routing",
        "interval = 5\n"
        "\n"
        "[agents.weather]\n"
        'agent = "agents/weather.py"\n'
        'tags = ["weather", "information"]\n'
        "port = 8081\n"
        'environment = { API_KEY = "${WEATHER_KEY:-none}" }\n'
        "\n"
        "[agents.weather.health]\n"
        "enabled = false\n"
        "\n"
        "# ---- routing",
    )
    weather = load(new).agents["weather"]
    assert weather.environment == {"API_KEY": "none"}  # a reference, expanded when loaded
    assert weather.health == HealthConfig(enabled=False)


def test_a_new_agent_in_a_file_without_agents_goes_before_the_routes() -> None:
    text = '[router]\npath = "/ws"\n\n# Routes.\n[[routes]]\nname = "all"\n'
    new = edit.add_agent(text, "a", {"command": "run"})
    assert new == '[router]\npath = "/ws"\n\n[agents.a]\ncommand = "run"\n\n# Routes.\n' + (
        '[[routes]]\nname = "all"\n'
    )


def test_adding_an_existing_agent_is_refused() -> None:
    with pytest.raises(ServiceAlreadyExists, match="'echo' already exists"):
        edit.add_agent(SAMPLE, "echo", {"command": "x"})


def test_changing_a_value_keeps_its_key_spacing_and_trailing_comment() -> None:
    new = edit.update_agent(SAMPLE, "echo", {"command": "node echo.js {port}"})
    assert new == SAMPLE.replace(
        '"python3 echo.py --port {port}"   # the command', '"node echo.js {port}"   # the command'
    )


def test_a_new_key_goes_after_the_last_key_of_its_table_not_under_the_next_comment() -> None:
    new = edit.update_agent(SAMPLE, "shouter", {"max_sessions": 200})
    assert new == SAMPLE.replace(
        'depends_on = ["echo"]\n', 'depends_on = ["echo"]\nmax_sessions = 200\n'
    )


def test_nested_keys_are_changed_inside_an_inline_table() -> None:
    new = edit.update_agent(SAMPLE, "echo", {"health": {"interval": 9, "mode": "http"}})
    assert new == SAMPLE.replace(
        "health = { interval = 3, timeout = 2 }",
        'health = { interval = 9, timeout = 2, mode = "http" }',
    )


def test_nested_keys_are_changed_as_dotted_keys_where_written_so() -> None:
    new = edit.update_agent(SAMPLE, "dotted", {"health": {"interval": 6, "mode": "http"}})
    assert new == SAMPLE.replace(
        "health.interval = 4                 # dotted keys\nhealth.timeout = 1\n",
        "health.interval = 6                 # dotted keys\n"
        "health.timeout = 1\n"
        'health.mode = "http"\n',
    )


def test_nested_keys_are_changed_inside_their_own_table() -> None:
    new = edit.update_agent(SAMPLE, "shouter", {"health": {"mode": None, "timeout": 1.5}})
    assert new == SAMPLE.replace(
        'mode = "http"   # GET /health\ninterval = 5\n', "interval = 5\ntimeout = 1.5\n"
    )
    assert load(new).agents["shouter"].health == HealthConfig(interval=5, timeout=1.5)


def test_a_new_sub_table_goes_after_the_agents_last_table() -> None:
    new = edit.update_agent(SAMPLE, "echo", {"autoscale": {"max": 3}})
    assert new == SAMPLE.replace(
        '"fast" }\n\n[agents.dotted]',
        '"fast" }\n\n[agents.echo.autoscale]\nmax = 3\n\n[agents.dotted]',
    )


def test_none_removes_a_key_with_the_comment_directly_above_it() -> None:
    new = edit.update_agent(SAMPLE, "echo", {"health": None, "environment": {"MODE": None}})
    assert new == SAMPLE.replace(
        "# checked often\n"
        "health = { interval = 3, timeout = 2 }\n"
        'environment = { TOKEN = "${SECRET}", MODE = "fast" }',
        'environment = { TOKEN = "${SECRET}" }',
    )
    assert load(new).agents["echo"].health == HealthConfig()


def test_removing_every_dotted_key_removes_the_sub_table() -> None:
    new = edit.update_agent(SAMPLE, "dotted", {"health": None})
    assert new == SAMPLE.replace(
        "health.interval = 4                 # dotted keys\nhealth.timeout = 1\n", ""
    )


def test_updating_a_missing_agent_says_so() -> None:
    with pytest.raises(ServiceNotFound, match="'nope' not found"):
        edit.update_agent(SAMPLE, "nope", {"port": 1})


def test_an_agent_is_removed_with_its_sub_tables_and_the_comments_above_them() -> None:
    new = edit.remove_agent(SAMPLE, "shouter")
    start = SAMPLE.index("# Fixed port")
    assert new == SAMPLE[:start] + SAMPLE[SAMPLE.index("# ---- routing") :]


def test_a_comment_above_the_next_table_stays_when_a_table_is_removed() -> None:
    new = edit.remove_agent(SAMPLE, "dotted")
    assert new == SAMPLE.replace('[agents.dotted]\nagent = "agents/dotted.py"\n', "").replace(
        "health.interval = 4                 # dotted keys\nhealth.timeout = 1\n\n", ""
    )
    assert "# Fixed port, health as its own table.\n[agents.shouter]" in new


def test_removing_a_missing_agent_says_so() -> None:
    with pytest.raises(ServiceNotFound):
        edit.remove_agent(SAMPLE, "nope")


# --- routes --------------------------------------------------------------------------


def test_a_new_route_goes_after_the_last_one_with_its_conditions_inline() -> None:
    settings = {
        "name": "bots",
        "action": "reject",
        "match": [
            {"field": "header.user-agent", "op": "contains", "value": "bot"},
            {"field": "client_ip", "op": "cidr", "value": "10.0.0.0/8"},
        ],
    }
    new = edit.add_route(SAMPLE, settings)
    assert new == SAMPLE + (
        "\n"
        "[[routes]]\n"
        'name = "bots"\n'
        'action = "reject"\n'
        "match = [\n"
        '    { field = "header.user-agent", op = "contains", value = "bot" },\n'
        '    { field = "client_ip", op = "cidr", value = "10.0.0.0/8" },\n'
        "]\n"
    )
    assert load(new).routes[-1].match[0] == Condition("header.user-agent", "contains", "bot")


def test_a_route_is_updated_in_place_by_name() -> None:
    changes = {"priority": 20, "match": [{"field": "query.tier", "op": "equals", "value": "vip"}]}
    new = edit.update_route(SAMPLE, "vip", changes)
    assert new == SAMPLE.replace(
        "priority = 10\n"
        'match = [{ field = "header.x-user-tier", op = "equals", value = "${TIER:-vip}" }]',
        'priority = 20\nmatch = [{ field = "query.tier", op = "equals", value = "vip" }]',
    )


def test_a_route_is_removed_with_the_comment_above_it() -> None:
    new = edit.remove_route(SAMPLE, "vip")
    start = SAMPLE.index("# VIP users")
    assert new == SAMPLE[:start] + SAMPLE[SAMPLE.index('[[routes]]\nname = "rest"') :]


def test_removing_the_last_route_leaves_no_blank_lines_at_the_end() -> None:
    new = edit.remove_route(SAMPLE, "rest")
    last_key = 'target_agents = ["echo"]\n'
    assert new == SAMPLE[: SAMPLE.index(last_key) + len(last_key)]


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda t: edit.update_route(t, "nope", {}), RuleNotFound, "'nope' not found"),
        (lambda t: edit.remove_route(t, "nope"), RuleNotFound, "'nope' not found"),
        (lambda t: edit.add_route(t, {"name": "vip"}), RuleAlreadyExists, "already exists"),
        (lambda t: edit.add_route(t, {"priority": 1}), InvalidRequest, "needs a name"),
        (lambda t: edit.update_agent(t, "echo", {"port": object()}), InvalidRequest, "Cannot"),
        (lambda t: edit.update_agent(t + "x = [", "echo", {}), ConfigInvalid, "invalid TOML"),
    ],
)
def test_impossible_edits_are_refused(
    change: Callable[[str], str], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        change(SAMPLE)


# --- other layouts -------------------------------------------------------------------


def test_windows_line_endings_are_kept() -> None:
    text = '[agents.a]\r\ncommand = "x"\r\n'
    new = edit.add_agent(edit.update_agent(text, "a", {"port": 9000}), "b", {"command": "y"})
    assert (
        new == '[agents.a]\r\ncommand = "x"\r\nport = 9000\r\n\r\n[agents.b]\r\ncommand = "y"\r\n'
    )


def test_agents_and_routes_written_inline_are_edited_inline() -> None:
    text = 'agents = { a = { command = "x" } }\nroutes = [{ name = "r" }]\n'
    new = edit.update_agent(text, "a", {"health": {"interval": 2}})
    new = edit.add_route(edit.add_agent(new, "b", {"command": "y"}), {"name": "s"})
    assert new == (
        'agents = { a = { command = "x", health = { interval = 2 } }, b = { command = "y" } }\n'
        'routes = [{ name = "r" }, { name = "s" }]\n'
    )
    assert edit.remove_route(edit.remove_agent(new, "a"), "r") == (
        'agents = { b = { command = "y" } }\nroutes = [{ name = "s" }]\n'
    )


def test_conditions_written_as_an_array_of_tables_are_replaced_by_an_inline_array() -> None:
    text = '[[routes]]\nname = "a"\n\n[[routes.match]]\nfield = "path"\nop = "exists"\n'
    new = edit.update_route(text, "a", {"match": [{"field": "origin", "op": "exists"}]})
    assert new == '[[routes]]\nname = "a"\nmatch = [{ field = "origin", op = "exists" }]\n'


# --- ${VAR} ----------------------------------------------------------------------------


def test_edits_leave_references_in_the_file_unexpanded() -> None:
    new = edit.update_agent(SAMPLE, "echo", {"environment": {"MODE": "slow"}, "port": 9100})
    assert 'TOKEN = "${SECRET}"' in new
    assert 'description = "Echo for ${USER:-nobody}"' in new
    assert 'log_level = "${LOG_LEVEL:-info}"' in new


def test_strings_are_written_as_given_and_as_literal_doubles_the_dollar() -> None:
    reference = {"description": "${SECRET}", "command": "echo"}
    literal = {"description": edit.as_literal("costs $5 ${not_a_var}"), "command": "echo"}
    assert literal["description"] == "costs $$5 $${not_a_var}"
    config = load(edit.add_agent(edit.add_agent(SAMPLE, "a", reference), "b", literal))
    assert config.agents["a"].description == "s3cret"
    assert config.agents["b"].description == "costs $5 ${not_a_var}"


# --- properties ----------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(agent_configs(port=9500), route_configs(name="r", agents=("echo",)))
def test_settings_of_a_model_load_back_to_the_model(agent: AgentConfig, route: RouteConfig) -> None:
    text = edit.add_route(
        edit.add_agent(SAMPLE, "new", edit.agent_settings(agent)), edit.route_settings(route)
    )
    config = load(text)
    assert config.agents["new"] == agent
    assert config.routes[-1] == route


def _tables(lines: list[str]) -> list[tuple[str, range]]:
    """Each table's header and lines: the comment lines directly above it, the header,
    and its lines up to its last key line (the blank and loose comment lines after
    that separate tables and belong to none)."""
    heads = [i for i, line in enumerate(lines) if line.startswith("[")]
    found = []
    for n, head in enumerate(heads):
        first = head
        while first > 0 and lines[first - 1].startswith("#"):
            first -= 1
        stop = heads[n + 1] if n + 1 < len(heads) else len(lines)
        last = max(i for i in range(head, stop) if lines[i].strip() and lines[i][0] != "#")
        found.append((lines[head], range(first, last + 1)))
    return found


def _touched(header: str, body: str, agents: set[str], routes: set[str]) -> bool:
    agent = re.match(r"\[agents\.([^].]+)", header)
    route = re.search(r'^name = "([^"]*)"', body, re.MULTILINE)
    if agent is not None:
        return agent[1] in agents
    return header.startswith("[[routes]]") and route is not None and route[1] in routes


def _in_order(parts: list[str], text: str) -> bool:
    at = 0
    for part in parts:
        at = text.find(part, at)
        if at < 0:
            return False
        at += len(part)
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_edits_keep_the_rest_of_the_file_and_load_as_expected(data: st.DataObject) -> None:
    """(a) the text of every table the edits did not touch is still there, byte for
    byte and in order, and so is every other line outside the touched tables;
    (b) each result loads, or was rejected because its config is invalid;
    (c) what loads is the config the edits should make."""
    text, config = SAMPLE, load(SAMPLE)
    touched_agents: set[str] = set()
    touched_routes: set[str] = set()
    for _ in range(data.draw(st.integers(1, 8), label="edits")):
        change = data.draw(config_edits(config))
        function = getattr(edit, change.kind)
        args = () if change.kind.startswith("remove") else (change.payload,)
        try:
            if change.kind == "add_route":
                new_text = function(text, *args)
            else:
                new_text = function(text, change.name, *args)
        except (ServiceAlreadyExists, RuleAlreadyExists, InvalidRequest):
            assert change.kind.startswith("add")  # the drawn name was taken
            event(f"{change.kind}: name taken")
            continue
        try:
            new_config = load(new_text)
        except ConfigInvalid as exc:
            if not validate_config(change.expected):  # (b) rejected only when invalid
                pytest.fail(f"an edit that makes a valid config was rejected: {exc}")
            event(f"{change.kind}: invalid config, rejected")
            continue
        event(f"{change.kind}: applied")
        assert new_config == change.expected  # (c)
        text, config = new_text, new_config
        if change.kind in ("update_agent", "remove_agent"):
            touched_agents.add(change.name)
        elif change.kind in ("update_route", "remove_route"):
            touched_routes.add(change.name)
    lines = SAMPLE.splitlines(keepends=True)
    kept, touched = [], set()
    for header, numbers in _tables(lines):
        body = "".join(lines[i] for i in numbers)
        if _touched(header, body, touched_agents, touched_routes):
            touched.update(numbers)
        else:
            kept.append(body)
    assert _in_order(kept, text)  # (a): untouched tables, whole
    outside = [line for i, line in enumerate(lines) if line.strip() and i not in touched]
    assert _in_order(outside, text)  # (a): and every other line that is not blank
