"""Hypothesis strategies, all of them (one home, as STYLE.md asks).

``configs()`` draws configs that pass validation: unique agent names, fixed
ports in disjoint blocks, acyclic ``depends_on``, routes naming existing
agents, loopback binds (or a token).
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import strategies as st

from agentvisor.cluster.membership import NodeRecord, PublishedAgent, PublishedInstance
from agentvisor.config.edit import agent_settings, route_settings
from agentvisor.config.model import (
    STOP_SIGNALS,
    STRATEGIES,
    AdminConfig,
    AgentConfig,
    AutoRestart,
    AutoscaleConfig,
    ClusterConfig,
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
from agentvisor.router.rules import AgentInfo, ClientInfo
from agentvisor.router.strategies import Candidate
from agentvisor.supervise.autoscale import ReplicaSignals, Signals

__all__ = [
    "agent_configs",
    "agent_names",
    "autoscale_signals",
    "cluster_configs",
    "configs",
    "node_records",
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
        store_max_mb=draw(st.floats(1.0, 1e6, allow_nan=False)),
        store_log_lines_per_second=draw(_positive_seconds),
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
        target_turns=draw(st.none() | st.integers(1, 100)),
        max_cpu_percent=draw(st.none() | st.floats(1, 400)),
        decision_interval=draw(_positive_seconds),
        stabilization=draw(_seconds),
        cold_start_wait=draw(_seconds),
    )


#: An autoscale section with short times, for runs of the policy on a fake clock.
short_autoscale_configs = st.integers(1, 6).flatmap(
    lambda high: st.builds(
        AutoscaleConfig,
        min=st.integers(0, high),
        max=st.just(high),
        target_sessions=st.integers(1, 30),
        scale_up_cooldown=st.floats(0, 20),
        scale_down_cooldown=st.floats(0, 60),
        target_turns=st.none() | st.integers(1, 10),
        max_cpu_percent=st.none() | st.floats(10, 100),
        decision_interval=st.just(1.0),
        stabilization=st.floats(0, 10),
    )
)


@st.composite
def replica_signals(draw: st.DrawFn, replicas: int) -> tuple[ReplicaSignals, ...]:
    """The replicas of one round: states, sessions, turns, CPU."""
    return tuple(
        ReplicaSignals(
            replica=replica,
            state=draw(st.sampled_from(["running", "running", "starting", "backoff"])),
            sessions=draw(st.integers(0, 200)),
            turns=draw(st.integers(0, 20)),
            cpu_percent=draw(st.none() | st.floats(0, 400)),
            rss_bytes=draw(st.none() | st.integers(0, 2**34)),
        )
        for replica in range(replicas)
    )


@st.composite
def autoscale_signals(draw: st.DrawFn, max_replicas: int = 8) -> Signals:
    replicas = draw(replica_signals(draw(st.integers(0, max_replicas))))
    return Signals(replicas, draw(st.integers(0, 3)))


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
        cluster=draw(st.none() | cluster_configs()),
    )


# --- cluster -------------------------------------------------------------------------

node_names = st.builds(
    str.__add__,
    st.sampled_from(_lower_digits + "ABC"),
    st.text(alphabet=_lower_digits + "._-", max_size=8),
)
_redis_hosts = st.sampled_from(["127.0.0.1", "redis", "r1.example.com", "[::1]"])
_redis_ports = st.integers(1, 65535)
redis_urls = st.one_of(
    st.builds("redis://{}:{}/{}".format, _redis_hosts, _redis_ports, st.integers(0, 15)),
    st.builds("rediss://:pw@{}:{}".format, _redis_hosts, _redis_ports),
    st.just("unix:///run/redis/redis.sock"),
)
sentinel_urls = st.builds("redis+sentinel://{}:{}/mymaster".format, _redis_hosts, _redis_ports)
cluster_seeds = st.builds("redis://{}:{}".format, _redis_hosts, _redis_ports)


@st.composite
def cluster_configs(draw: st.DrawFn) -> ClusterConfig:
    url: str | tuple[str, ...] = draw(
        st.one_of(
            redis_urls,
            sentinel_urls,
            st.lists(sentinel_urls, min_size=1, max_size=3).map(tuple),
            st.lists(cluster_seeds, min_size=1, max_size=3).map(tuple),
        )
    )
    interval = draw(st.floats(0.01, 60, allow_nan=False))
    return ClusterConfig(
        redis_url=url,
        node_name=draw(st.none() | node_names),
        advertise_host=draw(st.none() | st.sampled_from(["10.0.0.7", "node-b", "::1"])),
        key_prefix=draw(st.sampled_from(["agentvisor", "prod:eu", "x.y_z-1"])),
        heartbeat_interval=interval,
        node_timeout=interval * draw(st.floats(1.5, 10, allow_nan=False)),
        lock_timeout=draw(_positive_seconds),
    )


_instance_states = st.sampled_from(["running", "starting", "backoff", "stopped"])


@st.composite
def published_instances(draw: st.DrawFn, agent: str, replica: int) -> PublishedInstance:
    return PublishedInstance(
        id=f"{agent}:{replica}",
        agent=agent,
        replica=replica,
        host=draw(st.sampled_from(["127.0.0.1", "node-b", "10.0.0.7"])),
        port=draw(st.integers(1, 65535)),
        ws_path=draw(st.sampled_from(["/", "/ws"])),
        state=draw(_instance_states),
        health=draw(st.sampled_from(["healthy", "unhealthy", "unknown"])),
        routable=draw(st.booleans()),
        draining=draw(st.booleans()),
        weight=draw(st.floats(0, 10, allow_nan=False)),
        max_sessions=draw(st.integers(1, 1000)),
        sessions=draw(st.integers(0, 1000)),
        connections=draw(st.integers(0, 1000)),
        tags=tuple(draw(st.lists(_words, max_size=2))),
        pid=draw(st.none() | st.integers(1, 2**22)),
        cpu_percent=draw(st.none() | st.floats(0, 400, allow_nan=False)),
        memory_bytes=draw(st.none() | st.integers(0, 2**40)),
    )


@st.composite
def node_records(draw: st.DrawFn, name: str | None = None) -> NodeRecord:
    agents = draw(st.lists(agent_names, max_size=3, unique=True))
    instances = [
        draw(published_instances(agent, replica))
        for agent in agents
        for replica in range(draw(st.integers(0, 2)))
    ]
    return NodeRecord(
        node=name if name is not None else draw(node_names),
        version=draw(st.sampled_from(["0.1.0", "0.2.0"])),
        pid=draw(st.integers(1, 2**22)),
        started_at=draw(st.floats(0, 2e9, allow_nan=False)),
        router=tuple(draw(st.lists(st.just("ws://127.0.0.1:9090"), max_size=1))),
        admin=(),
        agents=tuple(PublishedAgent(agent, "agent", "running", 1, 1, "", ()) for agent in agents),
        instances=tuple(instances),
    )


# --- router --------------------------------------------------------------------------

#: Client addresses as the router sees them: IPv4, IPv6, and what is not an IP.
client_ips = st.one_of(
    st.ip_addresses().map(str), st.sampled_from(["", "unix", "localhost", "10.0.0.300"])
)


@st.composite
def client_infos(draw: st.DrawFn) -> ClientInfo:
    """Any client: arbitrary header and query values, routing inputs or not."""
    routing = st.sampled_from(["service", "tag", "session_id", "routing_hint", "x", "Q"])
    return ClientInfo(
        ip=draw(client_ips),
        path="/" + draw(toml_text),
        headers=draw(st.dictionaries(_header_names, toml_text, max_size=4)),
        query=draw(
            st.dictionaries(routing | _header_names, st.lists(toml_text, max_size=3), max_size=4)
        ),
        subprotocols=tuple(draw(st.lists(_words, max_size=2, unique=True))),
    )


@st.composite
def router_candidates(
    draw: st.DrawFn, *, min_size: int = 0, max_size: int = 8, agents: tuple[str, ...] = ("a", "b")
) -> list[Candidate]:
    """Instances with unique ids, any health, load and weight."""
    ids = draw(
        st.lists(
            st.tuples(st.sampled_from(agents), st.integers(0, 30)),
            min_size=min_size,
            max_size=max_size,
            unique=True,
        )
    )
    found = []
    for agent, replica in ids:
        max_sessions = draw(st.integers(1, 5))
        found.append(
            Candidate(
                instance_id=f"{agent}:{replica}",
                agent=agent,
                weight=draw(st.sampled_from([0.0, 0.5, 1.0, 3.0])),
                connections=draw(st.integers(0, 20)),
                sessions=draw(st.integers(0, max_sessions)),
                max_sessions=max_sessions,
                healthy=draw(st.booleans()),
                draining=draw(st.booleans()),
            )
        )
    return found


@attrs.frozen
class RoutingSetup:
    """What the rules engine needs of a config, drawn directly (faster than ``configs``)."""

    agents: dict[str, AgentInfo]
    routes: tuple[RouteConfig, ...]
    router: RouterConfig


#: Small pools, so that generated conditions and clients often meet. Strategies
#: are built once here: building them inside a draw costs more than drawing.
_probe_values = st.sampled_from(["", "a", "A", "ab", "/ws", "bot", "10.0.0.1"])
_probe_fields = st.sampled_from(
    ["client_ip", "path", "user_agent", "origin", "subprotocol", "header.x-team", "query.q"]
)
_probe_lists = st.lists(_probe_values, max_size=3).map(tuple)
_probe_networks = st.sampled_from(["10.0.0.0/8", ("::/0", "10.0.0.1"), "2001:db8::/32"])
_probe_patterns = st.sampled_from(["^a", "b$", "A|/", ""])
_probe_ips = st.sampled_from(["10.0.0.1", "10.9.9.9", "::1", "2001:db8::1", "unix"])
_probe_paths = st.sampled_from(["/", "/ws", "/A"])
_probe_headers = st.dictionaries(
    st.sampled_from(["user-agent", "origin", "x-team"]), _probe_values, max_size=3
)
_probe_subprotocols = st.lists(st.sampled_from(["a", "ab"]), unique=True).map(tuple)
_condition_ops = st.sampled_from(ConditionOp)
_tag_pool = st.sampled_from(["eu", "us", "fast", "gpu"])
_tag_sets = st.lists(_tag_pool, max_size=3).map(frozenset)
_tag_tuples = st.lists(_tag_pool, max_size=2).map(tuple)
_maybe_strategy = st.none() | strategy_names
_mostly_true = st.sampled_from([True, True, True, False])


@st.composite
def routing_conditions(draw: st.DrawFn) -> Condition:
    op = draw(_condition_ops)
    value: Any
    if op is ConditionOp.EXISTS:
        value = None
    elif op in (ConditionOp.IN, ConditionOp.NOT_IN):
        value = draw(_probe_lists)
    elif op is ConditionOp.CIDR:
        value = draw(_probe_networks)
    elif op is ConditionOp.REGEX:
        value = draw(_probe_patterns)
    else:
        value = draw(_probe_values)
    return Condition(draw(_probe_fields), op, value, case_sensitive=draw(st.booleans()))


_condition_tuples = st.lists(routing_conditions(), max_size=2).map(tuple)


@st.composite
def routing_clients(draw: st.DrawFn) -> ClientInfo:
    """Clients drawn from the same small pools as ``routing_conditions``."""
    return ClientInfo(
        ip=draw(_probe_ips),
        path=draw(_probe_paths),
        headers=draw(_probe_headers),
        query={"q": draw(_probe_lists)},
        subprotocols=draw(_probe_subprotocols),
    )


@st.composite
def routing_setups(draw: st.DrawFn, *, max_agents: int = 5, max_routes: int = 4) -> RoutingSetup:
    names = draw(st.lists(agent_names, max_size=max_agents, unique=True))
    agents = {
        name: AgentInfo(
            name,
            draw(_tag_sets),
            routable=draw(_mostly_true),
            weight=draw(st.sampled_from([0.0, 1.0, 2.5])),
        )
        for name in names
    }
    targets = st.lists(st.sampled_from(names), max_size=2).map(tuple) if names else st.just(())
    routes = tuple(
        RouteConfig(
            name=f"rule-{index}",
            priority=draw(st.integers(-2, 2)),
            enabled=draw(_mostly_true),
            match=draw(_condition_tuples),
            action=draw(st.sampled_from(RouteAction)),
            target_agents=draw(targets),
            target_tags=draw(_tag_tuples),
            strategy=draw(_maybe_strategy),
        )
        for index in range(draw(st.integers(0, max_routes)))
    )
    router = RouterConfig(
        default_strategy=draw(strategy_names),
        default_agent=draw(st.none() | st.sampled_from(names)) if names else None,
    )
    return RoutingSetup(agents, routes, router)


# --- edits of agentvisor.toml (config.edit) ------------------------------------------


@attrs.frozen
class ConfigEdit:
    """One API edit of the file and the config it should give when it validates."""

    kind: str  # add_agent, update_agent, remove_agent, add_route, update_route, remove_route
    name: str  # the agent or route
    payload: dict[str, Any]  # settings (add) or merge patch (update); {} for remove
    expected: Config


_AGENT_PATCH_FIELDS = (
    *(f.name for f in attrs.fields(AgentConfig) if f.name not in ("agent", "command")),
    "agent_or_command",  # the two together, so that the agent keeps exactly one
)
_HEALTH_KEYS = [f.name for f in attrs.fields(HealthConfig)]
_ROUTE_PATCH_FIELDS = tuple(f.name for f in attrs.fields(RouteConfig) if f.name != "name")


@st.composite
def agent_patches(draw: st.DrawFn, old: AgentConfig) -> tuple[dict[str, Any], AgentConfig]:
    """A merge patch of some of an agent's keys, and the agent it makes of ``old``."""
    donor = draw(agent_configs())
    settings = agent_settings(donor)  # literal, defaults left out
    patch: dict[str, Any] = {}
    changes: dict[str, Any] = {}
    for field in draw(st.lists(st.sampled_from(_AGENT_PATCH_FIELDS), unique=True, max_size=4)):
        if field == "agent_or_command":
            patch |= {"agent": settings.get("agent"), "command": settings.get("command")}
            changes |= {"agent": donor.agent, "command": donor.command}
        elif field == "health":
            keys = draw(st.lists(st.sampled_from(_HEALTH_KEYS), unique=True))
            patch["health"] = {key: settings.get("health", {}).get(key) for key in keys}
            kept = {key: getattr(donor.health, key) for key in keys}
            changes["health"] = attrs.evolve(old.health, **kept)
        elif field == "autoscale" and donor.autoscale is not None:
            keys = attrs.fields_dict(AutoscaleConfig)
            patch["autoscale"] = {key: settings.get("autoscale", {}).get(key) for key in keys}
            changes["autoscale"] = donor.autoscale
        elif field == "environment":
            dropped = draw(st.lists(st.sampled_from(sorted(old.environment) or [""]), unique=True))
            patch["environment"] = dict.fromkeys(dropped) | settings.get("environment", {})
            kept_env = {k: v for k, v in old.environment.items() if k not in dropped}
            changes["environment"] = kept_env | donor.environment
        else:
            patch[field] = settings.get(field)
            changes[field] = getattr(donor, field)
    return patch, attrs.evolve(old, **changes)


@st.composite
def _fresh_or_taken(draw: st.DrawFn, fresh: st.SearchStrategy[str], taken: list[str]) -> str:
    """A drawn name, and one time in ten (to see it refused) a taken one."""
    if taken and draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(taken))
    return draw(fresh)


@st.composite
def config_edits(draw: st.DrawFn, config: Config) -> ConfigEdit:
    """A random API edit of a file whose config is ``config`` (names may clash or be missing)."""
    agents, routes = dict(config.agents), list(config.routes)
    route_names = [route.name for route in routes]
    kinds = ["add_agent", "add_route"]
    kinds += ["update_agent", "remove_agent"] if agents else []
    kinds += ["update_route", "remove_route"] if routes else []
    kind = draw(st.sampled_from(kinds))
    payload: dict[str, Any] = {}
    if kind == "add_agent":
        name = draw(_fresh_or_taken(agent_names, sorted(agents)))
        agent = draw(agent_configs())
        payload, agents[name] = agent_settings(agent), agent
    elif kind == "update_agent":
        name = draw(st.sampled_from(sorted(agents)))
        payload, agents[name] = draw(agent_patches(agents[name]))
    elif kind == "remove_agent":
        name = draw(st.sampled_from(sorted(agents)))
        del agents[name]
    elif kind == "add_route":
        name = draw(_fresh_or_taken(_words, route_names))
        route = draw(route_configs(name=name, agents=tuple(agents)))
        payload = route_settings(route)
        routes.append(route)
    else:
        index = draw(st.integers(0, len(routes) - 1))
        name = routes[index].name
        if kind == "remove_route":
            del routes[index]
        else:
            donor = draw(route_configs(name=name, agents=tuple(agents)))
            fields = draw(st.lists(st.sampled_from(_ROUTE_PATCH_FIELDS), unique=True, max_size=4))
            settings = route_settings(donor)
            payload = {field: settings.get(field) for field in fields}
            changes = {field: getattr(donor, field) for field in fields}
            routes[index] = attrs.evolve(routes[index], **changes)
    expected = attrs.evolve(config, agents=agents, routes=tuple(routes))
    return ConfigEdit(kind, name, payload, expected)


@st.composite
def config_write_histories(draw: st.DrawFn) -> tuple[list[Any], int, int]:
    """Edits of one file, each an intent ``old → new`` (store/intents.py): (the pending
    intents, how many edits reached the file, how many of those wrote their entry)."""
    from agentvisor.store.intents import Intent

    edits = draw(st.integers(0, 6))
    landed = draw(st.integers(max(0, edits - 1), edits))  # a kill may cut off the last rename
    completed = draw(st.integers(0, landed))  # entries come in order; the rest are pending
    versions = [f"v{index}" for index in range(edits + 1)]
    pending = [
        Intent(index + 1, "/etc/agentvisor.toml", versions[index], versions[index + 1])
        for index in range(completed, edits)
    ]
    return pending, landed, completed


# -- the router's connection core (tests/unit/router/test_connection.py) ---------------

#: What happens to one routed connection, one step at a time: the client sends a
#: ``user.message``, the worker ends its oldest running turn, the worker dies (after
#: reading what was sent, or with the last message still unread), the keepalive timer.
CONNECTION_STEPS = ("send", "answer", "kill", "kill_unread", "tick")


@st.composite
def connection_runs(draw: st.DrawFn) -> list[tuple[str, float]]:
    """Interleavings of connection events, each with the seconds since the previous one."""
    steps = st.tuples(
        st.sampled_from(CONNECTION_STEPS),
        st.sampled_from((0.0, 0.01, 0.5, 3.0)),
    )
    return draw(st.lists(steps, max_size=40))


@st.composite
def interpolated_texts(draw: st.DrawFn) -> tuple[str, set[str]]:
    """A string value of literal text, ``$$`` escapes and ``${NAME}`` / ``${NAME:-default}``
    references to A, B or C; with the names it references."""
    pieces = draw(
        st.lists(
            st.one_of(
                st.text(alphabet="abc {}:-", max_size=4).map(lambda t: (t, "")),
                st.just(("$$", "")),
                st.sampled_from("ABC").map(lambda n: ("${" + n + "}", n)),
                st.tuples(st.sampled_from("ABC"), st.text(alphabet="xy $", max_size=3)).map(
                    lambda p: ("${" + p[0] + ":-" + p[1] + "}", p[0])
                ),
            ),
            max_size=6,
        )
    )
    return "".join(text for text, _ in pieces), {name for _, name in pieces if name}


@st.composite
def scale_situations(draw: st.DrawFn) -> dict[str, Any]:
    """A service's replicas (distinct numbers, any order of retirement), a desired count,
    victims among them, replicas still retiring and the replica numbers that have a port."""
    replicas = draw(st.lists(st.integers(0, 12), unique=True, max_size=8).map(sorted))
    retiring = draw(st.sets(st.integers(0, 12).filter(lambda r: r not in replicas), max_size=3))
    return {
        "replicas": replicas,
        "desired": draw(st.integers(0, 10)),
        "victims": draw(st.sets(st.sampled_from(replicas))) if replicas else set(),
        "retiring": retiring,
        "has_port": draw(st.sets(st.integers(0, 20), max_size=20)),
    }


#: What happens around a connection driven through its core as bytes
#: (tests/unit/router/test_relay_core.py): the client sends a ``user.message``; the
#: worker reads what reached it, ends its oldest turn (with a small or a large answer),
#: writes what it has to the router; the client reads (a part of) what the router has
#: for it; the worker dies; an operator drains the instance; the keepalive timer.
RELAY_STEPS = (
    "send",
    "worker_read",
    "answer",
    "answer_large",
    "worker_write",
    "client_read",
    "kill",
    "drain",
    "tick",
)


@attrs.frozen
class RelayStep:
    step: str
    pause: float  # seconds since the previous step
    size: int  # bytes per read / write of this step (cuts frames anywhere)
    part: float  # the share of a write to the client that gets through at once


@st.composite
def relay_runs(draw: st.DrawFn) -> list[RelayStep]:
    """Interleavings of byte-level connection events, cut at arbitrary boundaries."""
    step = st.builds(
        RelayStep,
        st.sampled_from(RELAY_STEPS),
        st.sampled_from((0.0, 0.01, 0.5, 3.0, 25.0)),
        st.integers(min_value=1, max_value=300),
        st.sampled_from((1.0, 1.0, 0.5, 0.0)),
    )
    return draw(st.lists(step, max_size=60))


@attrs.frozen
class DeflateRun:
    """Messages for a permessage-deflate leg: each ``(opcode, payload, cuts)`` is sent in
    frames cut at ``cuts``; ``pings`` frames go between frames; the byte stream is read
    in ``reads``-sized pieces; the agreed parameters."""

    messages: list[tuple[int, bytes, list[int]]]
    pings: list[int]
    reads: list[int]
    no_context_takeover: bool
    window_bits: int


@st.composite
def deflate_runs(draw: st.DrawFn) -> DeflateRun:
    """Compressible and random payloads, fragmented anywhere, with random parameters."""
    payload = st.one_of(
        st.binary(max_size=300),
        st.builds(lambda word, n: word * n, st.binary(min_size=1, max_size=8), st.integers(0, 900)),
    )
    message = st.tuples(
        st.sampled_from((0x1, 0x2)),
        payload,
        st.lists(st.integers(min_value=0, max_value=1000), max_size=3),
    )
    return DeflateRun(
        messages=draw(st.lists(message, min_size=1, max_size=8)),
        pings=draw(st.lists(st.integers(min_value=0, max_value=20), max_size=3)),
        reads=draw(st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=10)),
        no_context_takeover=draw(st.booleans()),
        window_bits=draw(st.integers(min_value=9, max_value=15)),
    )
