"""Hypothesis strategies, all of them (one home, as STYLE.md asks).

``configs()`` draws configs that pass validation: unique agent names, fixed
ports in disjoint blocks, acyclic ``depends_on``, routes naming existing
agents, loopback binds (or a token).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from agentvisor.config.model import (
    STOP_SIGNALS,
    STRATEGIES,
    AdminConfig,
    AgentConfig,
    AutoRestart,
    AutoscaleConfig,
    Condition,
    ConditionOp,
    Config,
    HealthConfig,
    HealthMode,
    LogFormat,
    LogLevel,
    OnBusy,
    RouteAction,
    RouteConfig,
    RouterConfig,
    Runtime,
    SupervisorConfig,
)

__all__ = [
    "agent_configs",
    "agent_names",
    "configs",
    "route_configs",
    "strategy_names",
    "toml_text",
]

#: Any text TOML can hold (no lone surrogates), ``$`` and control characters included.
toml_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._/-", min_size=1, max_size=10)

_lower_digits = "abcdefghijklmnopqrstuvwxyz0123456789"
agent_names = st.builds(
    str.__add__, st.sampled_from(_lower_digits), st.text(alphabet=_lower_digits + "_-", max_size=11)
)
_header_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzXYZ-", min_size=1, max_size=8)


_seconds = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
_positive_seconds = st.floats(0, 1e6, exclude_min=True, allow_nan=False, allow_infinity=False)
_maybe_words = st.none() | _words


strategy_names = st.one_of(
    st.sampled_from(STRATEGIES),
    st.builds(
        "hash:{}.{}".format,
        st.sampled_from(["header", "query"]),
        _header_names,
    ),
)


@st.composite
def _supervisor(draw: st.DrawFn) -> SupervisorConfig:
    low = draw(st.integers(1, 65535))
    return SupervisorConfig(
        state_dir=draw(_words),
        port_range=(low, draw(st.integers(low, 65535))),
        sample_interval=draw(_positive_seconds),
        log_level=draw(st.sampled_from(LogLevel)),
        log_format=draw(st.sampled_from(LogFormat)),
        shutdown_timeout=draw(_positive_seconds),
        retention_days=draw(_positive_seconds),
        forward_worker_output=draw(st.booleans()),
    )


def _loopback_binds(ports: list[int]) -> list[str]:
    hosts = ("127.0.0.1", "localhost", "[::1]")
    return [f"{hosts[port % 3]}:{port}" for port in ports]


@st.composite
def health_configs(draw: st.DrawFn) -> HealthConfig:
    return HealthConfig(
        enabled=draw(st.booleans()),
        mode=draw(st.sampled_from(HealthMode)),
        http_path="/" + draw(_words),
        interval=draw(_positive_seconds),
        timeout=draw(_positive_seconds),
        unhealthy_threshold=draw(st.integers(1, 100)),
        healthy_threshold=draw(st.integers(1, 100)),
    )


@st.composite
def autoscale_configs(draw: st.DrawFn) -> AutoscaleConfig:
    high = draw(st.integers(1, 8))
    return AutoscaleConfig(
        min=draw(st.integers(0, high)),
        max=high,
        target_sessions=draw(st.integers(1, 1000)),
        scale_up_cooldown=draw(_seconds),
        scale_down_cooldown=draw(_seconds),
    )


_commands = st.one_of(
    st.lists(_words, min_size=1, max_size=4).map(" ".join),
    st.lists(toml_text, max_size=3).flatmap(lambda rest: _words.map(lambda first: (first, *rest))),
)


@st.composite
def agent_configs(
    draw: st.DrawFn, *, port: int | None = None, depends_on: tuple[str, ...] = ()
) -> AgentConfig:
    """A valid agent; ``port`` (a block of 10 free ports) is used or not, at random."""
    backoff_max = draw(_seconds)
    uses_agent_file = draw(st.booleans())
    return AgentConfig(
        agent=draw(_words) if uses_agent_file else None,
        command=None if uses_agent_file else draw(_commands),
        description=draw(toml_text),
        tags=tuple(draw(st.lists(_words, max_size=3))),
        host=draw(st.sampled_from(["127.0.0.1", "localhost", "0.0.0.0", "::1"])),
        port=draw(st.none() | st.just(port)) if port is not None else None,
        replicas=draw(st.integers(0, 8)),
        weight=draw(_seconds),
        routable=draw(st.booleans()),
        autostart=draw(st.booleans()),
        autorestart=draw(st.sampled_from(AutoRestart)),
        exitcodes=tuple(draw(st.lists(st.integers(0, 255), max_size=3))),
        startsecs=draw(_seconds),
        startretries=draw(st.integers(0, 100)),
        backoff_initial=draw(st.floats(0, backoff_max)),
        backoff_max=backoff_max,
        backoff_factor=draw(st.floats(1, 10)),
        backoff_jitter=draw(st.floats(0, 1)),
        stable_secs=draw(_seconds),
        fatal_cooldown=draw(_seconds),
        depends_on=depends_on,
        stopsignal=draw(st.sampled_from(STOP_SIGNALS)),
        stopwaitsecs=draw(_seconds),
        drain_timeout=draw(_seconds),
        max_memory_mb=draw(st.none() | _positive_seconds),
        max_sessions=draw(st.integers(1, 10_000)),
        session_timeout=draw(_positive_seconds),
        on_busy=draw(st.sampled_from(OnBusy)),
        runtime=draw(st.sampled_from(Runtime)),
        ws_path="/" + draw(st.just("") | _words),
        environment=draw(
            st.dictionaries(
                st.text(
                    alphabet=st.characters(codec="utf-8", exclude_characters="=\0"),
                    min_size=1,
                    max_size=8,
                ),
                toml_text,
                max_size=3,
            )
        ),
        directory=draw(_maybe_words),
        user=draw(_maybe_words),
        stdout_log_max_mb=draw(_positive_seconds),
        stdout_log_backups=draw(st.integers(0, 100)),
        health=draw(health_configs()),
        autoscale=draw(st.none() | autoscale_configs()),
    )


@st.composite
def conditions(draw: st.DrawFn) -> Condition:
    op = draw(st.sampled_from(ConditionOp))
    value: Any
    if op is ConditionOp.EXISTS:
        value = None
    elif op in (ConditionOp.IN, ConditionOp.NOT_IN):
        value = tuple(draw(st.lists(toml_text, max_size=3)))
    elif op is ConditionOp.CIDR:
        value = draw(st.sampled_from(["10.0.0.0/8", "127.0.0.1", "::1/128", "192.168.1.0/24"]))
    elif op is ConditionOp.REGEX:
        value = draw(st.sampled_from(["^/ws$", "bot|crawler", r"\d+", ""]))
    else:
        value = draw(toml_text)
    field = draw(
        st.sampled_from(["client_ip", "path", "user_agent", "origin", "subprotocol"])
        | st.builds(
            "{}.{}".format,
            st.sampled_from(["header", "query"]),
            _header_names,
        )
    )
    return Condition(field=field, op=op, value=value, case_sensitive=draw(st.booleans()))


@st.composite
def route_configs(draw: st.DrawFn, *, name: str, agents: tuple[str, ...] = ()) -> RouteConfig:
    return RouteConfig(
        name=name,
        priority=draw(st.integers(-100, 100)),
        enabled=draw(st.booleans()),
        match=tuple(draw(st.lists(conditions(), max_size=3))),
        action=draw(st.sampled_from(RouteAction)),
        target_agents=tuple(draw(st.lists(st.sampled_from(agents), max_size=2))) if agents else (),
        target_tags=tuple(draw(st.lists(_words, max_size=2))),
        strategy=draw(st.none() | strategy_names),
        description=draw(toml_text),
        wrap_messages=draw(st.booleans()),
    )


@st.composite
def configs(draw: st.DrawFn, *, max_agents: int = 4, max_routes: int = 3) -> Config:
    """A config that passes validation, so ``dump`` → ``parse`` gives it back."""
    names = draw(st.lists(agent_names, max_size=max_agents, unique=True))
    agents: dict[str, AgentConfig] = {}
    for index, name in enumerate(names):
        earlier = tuple(agents)
        depends_on = tuple(draw(st.lists(st.sampled_from(earlier), max_size=2))) if earlier else ()
        agents[name] = draw(agent_configs(port=20000 + 10 * index, depends_on=depends_on))
    bind_ports = draw(st.lists(st.integers(1024, 19999), min_size=2, max_size=4, unique=True))
    router_binds = _loopback_binds(bind_ports[:1]) + draw(st.sampled_from([[], ["127.0.0.1:0"]]))
    public = draw(st.booleans())
    admin_binds = _loopback_binds(bind_ports[1:]) + (["0.0.0.0:0"] if public else [])
    admin_binds += draw(st.sampled_from([[], ["unix:.agentvisor/admin.sock"]]))
    token = draw(_words) if public else draw(_maybe_words)
    tls = draw(st.none() | st.tuples(_words, _words))
    route_names = draw(st.lists(_words, max_size=max_routes, unique=True))
    return Config(
        supervisor=draw(_supervisor()),
        admin=AdminConfig(
            bind=tuple(admin_binds),
            token=token,
            console=draw(st.booleans()),
            cors_origins=tuple(draw(st.lists(_words, max_size=2))),
        ),
        router=RouterConfig(
            bind=tuple(router_binds),
            path=draw(st.sampled_from(["/ws", "*", "/"])),
            default_strategy=draw(strategy_names),
            default_agent=draw(st.none() | st.sampled_from(names)) if names else None,
            management_events=draw(st.booleans()),
            max_connections=draw(st.integers(1, 10**6)),
            max_connections_per_ip=draw(st.integers(1, 10**4)),
            connect_rate_per_ip=draw(_positive_seconds),
            max_message_bytes=draw(st.integers(1, 2**31)),
            handshake_timeout=draw(_positive_seconds),
            ping_interval=draw(_positive_seconds),
            ping_timeout=draw(_positive_seconds),
            allowed_origins=tuple(draw(st.lists(_words, max_size=2))),
            tls_cert=tls[0] if tls else None,
            tls_key=tls[1] if tls else None,
            failover=draw(st.booleans()),
        ),
        agents=agents,
        routes=tuple(draw(route_configs(name=name, agents=tuple(names))) for name in route_names),
    )
