"""Cross-field rules: each problem with its key path and exact message."""

from __future__ import annotations

from typing import Any

import pytest

from agentvisor.config.model import (
    AdminConfig,
    AgentConfig,
    AutoscaleConfig,
    Condition,
    ConditionOp,
    Config,
    HealthConfig,
    RouteConfig,
    RouterConfig,
)
from agentvisor.config.validate import (
    TcpBind,
    UnixBind,
    check_strategy,
    parse_bind,
    validate_config,
)


def _problems(config: Config) -> list[str]:
    return [f"{issue.path}: {issue.message}" for issue in validate_config(config)]


def _agents(**agents: AgentConfig) -> Config:
    return Config(agents=agents)


def _cmd(**fields: Any) -> AgentConfig:
    return AgentConfig(**{"command": "run", **fields})


def _route(*conditions: Condition, **fields: Any) -> Config:
    return Config(
        agents={"weather": _cmd()},
        routes=(RouteConfig(**{"name": "r", "match": conditions, **fields}),),
    )


def test_default_config_is_valid() -> None:
    assert _problems(Config()) == []


def test_issues_carry_the_config_source() -> None:
    config = Config(router=RouterConfig(default_strategy="x"), source="a.toml")
    assert [issue.file for issue in validate_config(config)] == ["a.toml"]


def test_agent_name_must_be_lowercase() -> None:
    assert _problems(_agents(Weather=_cmd())) == [
        'agents.Weather: invalid agent name "Weather" (use lowercase letters, digits, "_" and '
        '"-", starting with a letter or digit)'
    ]


@pytest.mark.parametrize("name", ["a", "0", "web-search_2"])
def test_agent_names_that_are_fine(name: str) -> None:
    assert _problems(_agents(**{name: _cmd()})) == []


def test_agent_needs_agent_or_command() -> None:
    assert _problems(_agents(search=AgentConfig())) == [
        "agents.search: needs exactly one of `agent` or `command`"
    ]


def test_agent_must_not_have_both_agent_and_command() -> None:
    assert _problems(_agents(search=_cmd(agent="s.py"))) == [
        "agents.search: needs exactly one of `agent` or `command`"
    ]


def test_empty_command_string() -> None:
    assert _problems(_agents(a=_cmd(command="  "))) == ["agents.a.command: must not be empty"]


def test_empty_command_list() -> None:
    assert _problems(_agents(a=_cmd(command=()))) == ["agents.a.command: must not be empty"]


def test_command_list_with_an_empty_program() -> None:
    assert _problems(_agents(a=_cmd(command=("", "x")))) == [
        "agents.a.command[0]: must not be empty"
    ]


def test_command_with_an_open_quote() -> None:
    assert _problems(_agents(a=_cmd(command='run "x'))) == [
        "agents.a.command: cannot be split into arguments (No closing quotation)"
    ]


def test_empty_agent_file() -> None:
    assert _problems(_agents(a=AgentConfig(agent=""))) == ["agents.a.agent: must not be empty"]


def test_agents_clash_on_a_fixed_port() -> None:
    config = _agents(a=_cmd(port=8200), b=_cmd(port=8200))
    assert _problems(config) == ['agents.b.port: port 8200 is also used by agent "a"']


def test_replica_ports_clash_with_the_next_agent() -> None:
    config = _agents(a=_cmd(port=8200, replicas=3), b=_cmd(port=8202))
    assert _problems(config) == [
        'agents.b.port: port 8202 is also used by agent "a" (ports 8200-8202)'
    ]


def test_clash_names_the_replica() -> None:
    config = _agents(a=_cmd(port=8201), b=_cmd(port=8200, replicas=2))
    assert _problems(config) == ['agents.b.port: port 8201 of replica 1 is also used by agent "a"']


def test_autoscale_maximum_counts_for_port_clashes() -> None:
    config = _agents(a=_cmd(port=8200, autoscale=AutoscaleConfig(min=1, max=3)), b=_cmd(port=8202))
    assert _problems(config) == [
        'agents.b.port: port 8202 is also used by agent "a" (ports 8200-8202)'
    ]


def test_adjacent_port_blocks_are_fine() -> None:
    assert _problems(_agents(a=_cmd(port=8200, replicas=2), b=_cmd(port=8202))) == []


def test_agents_on_different_interfaces_may_share_a_port() -> None:
    config = _agents(a=_cmd(port=8200, host="127.0.0.1"), b=_cmd(port=8200, host="10.0.0.5"))
    assert _problems(config) == []


def test_wildcard_host_clashes_with_any_interface() -> None:
    config = _agents(a=_cmd(port=8200, host="0.0.0.0"), b=_cmd(port=8200, host="10.0.0.5"))
    assert _problems(config) == ['agents.b.port: port 8200 is also used by agent "a"']


def test_agent_port_clashes_with_the_router() -> None:
    assert _problems(_agents(a=_cmd(port=9090))) == [
        'agents.a.port: port 9090 is also used by the router bind "127.0.0.1:9090"'
    ]


def test_agent_port_clashes_with_the_admin_api() -> None:
    assert _problems(_agents(a=_cmd(port=8080, host="localhost"))) == [
        'agents.a.port: port 8080 is also used by the admin bind "127.0.0.1:8080"'
    ]


def test_admin_and_router_on_one_port() -> None:
    config = Config(admin=AdminConfig(bind=("127.0.0.1:9090",)))
    assert _problems(config) == [
        'admin.bind[0]: port 9090 is also used by the router bind "127.0.0.1:9090"'
    ]


def test_port_zero_binds_never_clash() -> None:
    config = Config(
        router=RouterConfig(bind=("127.0.0.1:0",)), admin=AdminConfig(bind=("127.0.0.1:0",))
    )
    assert _problems(config) == []


def test_fixed_port_inside_the_port_range_is_fine() -> None:
    assert _problems(_agents(a=_cmd(port=8500))) == []


def test_replica_ports_past_65535() -> None:
    assert _problems(_agents(a=_cmd(port=65535, replicas=2))) == [
        "agents.a.port: replica ports 65535-65536 go past 65535"
    ]


def test_unknown_router_strategy_suggests_an_alias() -> None:
    config = Config(router=RouterConfig(default_strategy="fastest"))
    assert _problems(config) == [
        'router.default_strategy: unknown strategy "fastest" (did you mean "least_connections"?)'
    ]


def test_unknown_route_strategy_suggests_a_close_one() -> None:
    assert _problems(_route(strategy="round-robin")) == [
        'routes[0].strategy: unknown strategy "round-robin" (did you mean "round_robin"?)'
    ]


def test_unknown_strategy_without_a_close_one_lists_them() -> None:
    assert check_strategy("zebra") == (
        'unknown strategy "zebra" (expected one of: round_robin, least_connections, '
        "weighted_random, power_of_two, ip_hash, random, hash:header.NAME, hash:query.NAME)"
    )


@pytest.mark.parametrize("strategy", ["ip_hash", "hash:header.X-User", "hash:query.user"])
def test_strategies_that_are_fine(strategy: str) -> None:
    assert check_strategy(strategy) is None


def test_hash_strategy_of_an_unknown_source() -> None:
    assert check_strategy("hash:cookie.sid") == (
        'unknown hash key "cookie.sid" in strategy "hash:cookie.sid" '
        "(expected hash:header.NAME or hash:query.NAME)"
    )


def test_hash_strategy_without_a_name() -> None:
    assert check_strategy("hash:header.") is not None


def test_duplicate_route_names() -> None:
    config = Config(routes=(RouteConfig(name="a"), RouteConfig(name="b"), RouteConfig(name="a")))
    assert _problems(config) == ['routes[2].name: duplicate route name "a" (also routes[0])']


def test_empty_route_name() -> None:
    assert _problems(Config(routes=(RouteConfig(name=""),))) == [
        "routes[0].name: must not be empty"
    ]


def test_route_targets_an_unknown_agent() -> None:
    assert _problems(_route(target_agents=("weather", "wether"))) == [
        'routes[0].target_agents[1]: unknown agent "wether" (did you mean "weather"?)'
    ]


def test_router_default_agent_is_unknown() -> None:
    config = Config(router=RouterConfig(default_agent="nope"))
    assert _problems(config) == ['router.default_agent: unknown agent "nope"']


def test_depends_on_an_unknown_agent() -> None:
    assert _problems(_agents(a=_cmd(depends_on=("b",)))) == [
        'agents.a.depends_on[0]: unknown agent "b"'
    ]


def test_dependency_cycle_is_named() -> None:
    config = _agents(
        a=_cmd(depends_on=("b",)), b=_cmd(depends_on=("c",)), c=_cmd(depends_on=("a",))
    )
    assert _problems(config) == ["agents.a.depends_on: dependency cycle a -> b -> c -> a"]


def test_agent_depending_on_itself() -> None:
    assert _problems(_agents(a=_cmd(depends_on=("a",)))) == [
        "agents.a.depends_on: dependency cycle a -> a"
    ]


def test_shared_dependency_is_no_cycle() -> None:
    config = _agents(db=_cmd(), a=_cmd(depends_on=("db",)), b=_cmd(depends_on=("db", "a")))
    assert _problems(config) == []


def test_unknown_condition_field() -> None:
    assert _problems(_route(Condition(field="client-ip", value="x"))) == [
        'routes[0].match[0].field: unknown field "client-ip" (expected one of: client_ip, path, '
        'user_agent, origin, subprotocol, header.NAME, query.NAME; did you mean "client_ip"?)'
    ]


@pytest.mark.parametrize("field", ["client_ip", "header.X-Api-Key", "query.service", "subprotocol"])
def test_condition_fields_that_are_fine(field: str) -> None:
    assert _problems(_route(Condition(field=field, value="x"))) == []


def test_header_condition_without_a_name() -> None:
    assert _problems(_route(Condition(field="header.", value="x"))) == [
        'routes[0].match[0].field: invalid header name ""'
    ]


def test_regex_that_does_not_compile() -> None:
    assert _problems(_route(Condition(field="path", op=ConditionOp.REGEX, value="("))) == [
        'routes[0].match[0].value: invalid regular expression "(" '
        "(missing ), unterminated subpattern at position 0)"
    ]


def test_cidr_that_does_not_parse() -> None:
    condition = Condition(field="client_ip", op=ConditionOp.CIDR, value="10.0.0.0/33")
    assert _problems(_route(condition)) == [
        'routes[0].match[0].value: invalid network "10.0.0.0/33" (expected e.g. "10.0.0.0/8")'
    ]


def test_cidr_list_names_the_bad_item() -> None:
    condition = Condition(field="client_ip", op=ConditionOp.CIDR, value=("10.0.0.0/8", "x"))
    assert _problems(_route(condition)) == [
        'routes[0].match[0].value[1]: invalid network "x" (expected e.g. "10.0.0.0/8")'
    ]


def test_in_needs_a_list() -> None:
    assert _problems(_route(Condition(field="path", op=ConditionOp.IN, value="/a"))) == [
        'routes[0].match[0].value: must be an array for op "in", got "/a"'
    ]


def test_not_in_list_items_are_strings() -> None:
    condition = Condition(field="path", op=ConditionOp.NOT_IN, value=("/a", 2))
    assert _problems(_route(condition)) == ["routes[0].match[0].value[1]: must be a string, got 2"]


def test_exists_takes_no_value() -> None:
    condition = Condition(field="header.X", op=ConditionOp.EXISTS, value="yes")
    assert _problems(_route(condition)) == [
        'routes[0].match[0].value: must not be set for op "exists", got "yes"'
    ]


def test_exists_without_a_value_is_fine() -> None:
    assert _problems(_route(Condition(field="header.X", op=ConditionOp.EXISTS))) == []


def test_comparison_needs_a_value() -> None:
    assert _problems(_route(Condition(field="path", op=ConditionOp.STARTS_WITH))) == [
        'routes[0].match[0].value: is required for op "starts_with"'
    ]


def test_comparison_needs_a_string() -> None:
    assert _problems(_route(Condition(field="path", value=3))) == [
        'routes[0].match[0].value: must be a string for op "equals", got 3'
    ]


def test_autoscale_minimum_above_maximum() -> None:
    config = _agents(a=_cmd(autoscale=AutoscaleConfig(min=5, max=2)))
    assert _problems(config) == ["agents.a.autoscale.min: must not exceed max (2), got 5"]


def test_backoff_initial_above_backoff_max() -> None:
    config = _agents(a=_cmd(backoff_initial=60.0, backoff_max=30.0))
    assert _problems(config) == [
        "agents.a.backoff_initial: must not exceed backoff_max (30.0), got 60.0"
    ]


def test_stopsignal_with_sig_prefix_suggests_the_bare_name() -> None:
    assert _problems(_agents(a=_cmd(stopsignal="SIGTERM"))) == [
        'agents.a.stopsignal: unknown signal "SIGTERM" (write "TERM")'
    ]


def test_lowercase_stopsignal_suggests_the_name() -> None:
    assert _problems(_agents(a=_cmd(stopsignal="int"))) == [
        'agents.a.stopsignal: unknown signal "int" (write "INT")'
    ]


def test_unknown_stopsignal_lists_the_signals() -> None:
    assert _problems(_agents(a=_cmd(stopsignal="STOP"))) == [
        'agents.a.stopsignal: unknown signal "STOP" '
        "(expected one of: TERM, INT, QUIT, HUP, KILL, USR1, USR2)"
    ]


def test_max_memory_must_be_positive() -> None:
    assert _problems(_agents(a=_cmd(max_memory_mb=0.0))) == [
        "agents.a.max_memory_mb: must be > 0, got 0.0"
    ]


def test_exit_codes_are_bytes() -> None:
    assert _problems(_agents(a=_cmd(exitcodes=(0, 256)))) == [
        "agents.a.exitcodes[1]: must be from 0 to 255, got 256"
    ]


def test_ws_path_starts_with_a_slash() -> None:
    assert _problems(_agents(a=_cmd(ws_path="ws"))) == [
        'agents.a.ws_path: must start with "/", got "ws"'
    ]


def test_health_http_path_starts_with_a_slash() -> None:
    assert _problems(_agents(a=_cmd(health=HealthConfig(http_path="health")))) == [
        'agents.a.health.http_path: must start with "/", got "health"'
    ]


def test_agent_host_must_be_a_host() -> None:
    assert _problems(_agents(a=_cmd(host="not a host"))) == [
        'agents.a.host: invalid host "not a host"'
    ]


def test_environment_name_with_equals_sign() -> None:
    assert _problems(_agents(a=_cmd(environment={"A=B": "x"}))) == [
        'agents.a.environment."A=B": invalid environment variable name'
    ]


def test_admin_token_is_required_beyond_loopback() -> None:
    config = Config(admin=AdminConfig(bind=("0.0.0.0:8080",)))
    assert _problems(config) == [
        'admin.token: is required when the admin API listens beyond loopback ("0.0.0.0:8080")'
    ]


def test_admin_token_satisfies_a_public_bind() -> None:
    assert _problems(Config(admin=AdminConfig(bind=("0.0.0.0:8080",), token="t"))) == []


@pytest.mark.parametrize("bind", ["127.0.0.2:8080", "[::1]:8080", "localhost:8080", "unix:/a.sock"])
def test_loopback_and_unix_binds_need_no_token(bind: str) -> None:
    assert _problems(Config(admin=AdminConfig(bind=(bind,)))) == []


def test_empty_admin_token() -> None:
    assert _problems(Config(admin=AdminConfig(token=""))) == ["admin.token: must not be empty"]


def test_a_metrics_token_beside_the_admin_token_is_valid() -> None:
    assert _problems(Config(admin=AdminConfig(token="t", metrics_token="m"))) == []


@pytest.mark.parametrize(
    ("token", "metrics_token", "problem"),
    [
        ("t", "", "must not be empty"),
        (None, "m", "needs [admin] token: without one /metrics is open to every caller already"),
        ("t", "t", "must differ from [admin] token (it would open the whole API to Prometheus)"),
    ],
)
def test_a_metrics_token_is_second_to_a_distinct_admin_token(
    token: str | None, metrics_token: str, problem: str
) -> None:
    config = Config(admin=AdminConfig(token=token, metrics_token=metrics_token))
    assert _problems(config) == [f"admin.metrics_token: {problem}"]


def test_tls_cert_without_key() -> None:
    assert _problems(Config(router=RouterConfig(tls_cert="c.pem"))) == [
        "router.tls_key: is required when tls_cert is set"
    ]


def test_tls_key_without_cert() -> None:
    assert _problems(Config(router=RouterConfig(tls_key="k.pem"))) == [
        "router.tls_cert: is required when tls_key is set"
    ]


def test_router_cannot_listen_on_a_unix_socket() -> None:
    assert _problems(Config(router=RouterConfig(bind=("unix:/tmp/r.sock",)))) == [
        'router.bind[0]: unix sockets are not supported for the router, got "unix:/tmp/r.sock"'
    ]


def test_router_needs_a_bind() -> None:
    assert _problems(Config(router=RouterConfig(bind=()))) == [
        "router.bind: needs at least one address to listen on"
    ]


def test_router_path_must_be_a_path() -> None:
    assert _problems(Config(router=RouterConfig(path="ws"))) == [
        'router.path: must start with "/" (or be "*"), got "ws"'
    ]


def test_bind_without_a_port() -> None:
    assert _problems(Config(admin=AdminConfig(bind=("localhost",)))) == [
        'admin.bind[0]: invalid bind "localhost" (expected "host:port", "[v6]:port" or "unix:PATH")'
    ]


def test_bind_with_a_port_out_of_range() -> None:
    assert _problems(Config(router=RouterConfig(bind=("127.0.0.1:70000",)))) == [
        'router.bind[0]: port must be from 0 to 65535 in bind "127.0.0.1:70000"'
    ]


def test_every_problem_is_reported() -> None:
    config = Config(
        router=RouterConfig(default_strategy="fast", tls_cert="c"),
        agents={"a": AgentConfig(), "B": _cmd(stopsignal="SIGKILL")},
    )
    assert len(_problems(config)) == 5


def test_parse_bind_host_and_port() -> None:
    assert parse_bind("0.0.0.0:9090") == TcpBind("0.0.0.0", 9090)


def test_parse_bind_ipv6() -> None:
    assert parse_bind("[::1]:9090") == TcpBind("::1", 9090)


def test_parse_bind_unix() -> None:
    assert parse_bind("unix:.agentvisor/admin.sock") == UnixBind(".agentvisor/admin.sock")


def test_parse_bind_rejects_bare_ipv6() -> None:
    with pytest.raises(ValueError, match="invalid bind"):
        parse_bind("::1:9090")


def test_parse_bind_rejects_unix_when_not_allowed() -> None:
    with pytest.raises(ValueError, match="unix sockets are not supported"):
        parse_bind("unix:/x", allow_unix=False)


def test_parse_bind_rejects_non_ascii_digits() -> None:
    with pytest.raises(ValueError, match="port must be from 0 to 65535"):
        parse_bind("localhost:¹")
