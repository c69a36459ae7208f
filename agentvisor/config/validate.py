"""Cross-field rules of agentvisor.toml (pure).

Per-field types and ranges are checked while structuring (``convert``); what
needs more than one field — port clashes, references between agents and
routes, dependency cycles, a token for a public admin API — is checked here.
Every problem is reported, each at the key path that should change.
Relative paths are left as written: resolving them is the loader's job.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from agentvisor.config.convert import KeySegment, did_you_mean, key_path, show_value
from agentvisor.config.model import (
    STOP_SIGNALS,
    STRATEGIES,
    AgentConfig,
    Condition,
    ConditionOp,
    Config,
    RouteConfig,
)
from agentvisor.config.redis_target import parse_redis_target
from agentvisor.errors import ConfigIssue

__all__ = [
    "AGENT_NAME",
    "CONDITION_FIELDS",
    "TcpBind",
    "UnixBind",
    "check_strategy",
    "parse_bind",
    "validate_config",
]

#: What an agent (service) name looks like.
AGENT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")

#: Request fields a route condition can test, besides ``header.NAME`` and ``query.NAME``.
CONDITION_FIELDS = ("client_ip", "path", "user_agent", "origin", "subprotocol")

#: Names other load balancers use, mapped to ours, for "did you mean".
_STRATEGY_ALIASES = {
    "roundrobin": "round_robin",
    "rr": "round_robin",
    "leastconn": "least_connections",
    "least_conn": "least_connections",
    "least_request": "least_connections",
    "least_requests": "least_connections",
    "least_loaded": "least_connections",
    "fastest": "least_connections",
    "weighted": "weighted_random",
    "weighted_round_robin": "weighted_random",
    "p2c": "power_of_two",
    "power_of_two_choices": "power_of_two",
    "two_random_choices": "power_of_two",
    "source": "ip_hash",
    "source_ip": "ip_hash",
    "sticky": "ip_hash",
    "consistent_hash": "ip_hash",
    "ring_hash": "ip_hash",
}

_HASH_SOURCES = ("header", "query")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
_TOKEN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_WILDCARDS = ("0.0.0.0", "::")

Path = tuple[KeySegment, ...]


@attrs.frozen
class TcpBind:
    host: str
    port: int

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@attrs.frozen
class UnixBind:
    path: str


def parse_bind(text: str, *, allow_unix: bool = True) -> TcpBind | UnixBind:
    """``host:port``, ``[v6]:port`` or ``unix:PATH``; ``ValueError`` says what is wrong."""
    expected = (
        '"host:port", "[v6]:port" or "unix:PATH"' if allow_unix else '"host:port" or "[v6]:port"'
    )
    if text.startswith("unix:"):
        if not allow_unix:
            raise ValueError(f"unix sockets are not supported here, got {show_value(text)}")
        if not text[5:]:
            raise ValueError(f'needs a path after "unix:", got {show_value(text)}')
        return UnixBind(text[5:])
    host, colon, port_text = text.rpartition(":")
    if not colon or not host:
        raise ValueError(f"invalid bind {show_value(text)} (expected {expected})")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid IPv6 address in bind {show_value(text)}") from None
    elif ":" in host or not _is_host(host):
        raise ValueError(f"invalid bind {show_value(text)} (expected {expected})")
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise ValueError(f"port must be from 0 to 65535 in bind {show_value(text)}")
    return TcpBind(host, int(port_text))


def check_strategy(text: str) -> str | None:
    """Why ``text`` is not a routing strategy, or ``None`` when it is one."""
    if text in STRATEGIES:
        return None
    if text.startswith("hash:"):
        source, dot, name = text[5:].partition(".")
        if source in _HASH_SOURCES and dot and _TOKEN_NAME.fullmatch(name):
            return None
        return (
            f"unknown hash key {show_value(text[5:])} in strategy {show_value(text)} "
            "(expected hash:header.NAME or hash:query.NAME)"
        )
    folded = text.strip().lower().replace("-", "_").replace(" ", "_")
    hint = _STRATEGY_ALIASES.get(folded) or did_you_mean(folded, STRATEGIES)
    if hint is not None:
        return f'unknown strategy {show_value(text)} (did you mean "{hint}"?)'
    expected = ", ".join((*STRATEGIES, "hash:header.NAME", "hash:query.NAME"))
    return f"unknown strategy {show_value(text)} (expected one of: {expected})"


def validate_config(config: Config) -> list[ConfigIssue]:
    """Every cross-field problem of ``config``, in the order of the file's sections."""
    found = [
        *_check_router(config),
        *_check_admin(config),
        *_check_agents(config),
        *_check_ports(config),
        *_check_dependencies(config),
        *_check_routes(config),
        *_check_cluster(config),
    ]
    return [
        ConfigIssue(path=key_path(*path), message=message, file=config.source)
        for path, message in found
    ]


Found = Iterator[tuple[Path, str]]


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME.fullmatch(host))
    return True


def _check_binds(binds: Sequence[str], section: str, *, allow_unix: bool) -> Found:
    for index, text in enumerate(binds):
        try:
            parse_bind(text, allow_unix=allow_unix)
        except ValueError as exc:
            message = str(exc)
            if not allow_unix and text.startswith("unix:"):
                message = (
                    f"unix sockets are not supported for the {section}, got {show_value(text)}"
                )
            yield (section, "bind", index), message


def _tcp_binds(binds: Sequence[str]) -> Iterator[tuple[int, TcpBind]]:
    for index, text in enumerate(binds):
        try:
            bind = parse_bind(text)
        except ValueError:
            continue
        if isinstance(bind, TcpBind):
            yield index, bind


def _check_router(config: Config) -> Found:
    router = config.router
    if not router.bind:
        yield ("router", "bind"), "needs at least one address to listen on"
    yield from _check_binds(router.bind, "router", allow_unix=False)
    if router.path != "*" and not router.path.startswith("/"):
        yield ("router", "path"), f'must start with "/" (or be "*"), got {show_value(router.path)}'
    problem = check_strategy(router.default_strategy)
    if problem:
        yield ("router", "default_strategy"), problem
    if router.default_agent is not None and router.default_agent not in config.agents:
        yield ("router", "default_agent"), _unknown_agent(router.default_agent, config)
    if router.tls_cert and not router.tls_key:
        yield ("router", "tls_key"), "is required when tls_cert is set"
    if router.tls_key and not router.tls_cert:
        yield ("router", "tls_cert"), "is required when tls_key is set"


def _check_admin(config: Config) -> Found:
    admin = config.admin
    yield from _check_binds(admin.bind, "admin", allow_unix=True)
    if admin.token == "":
        yield ("admin", "token"), "must not be empty"
    elif admin.token is None:
        public = [bind for _, bind in _tcp_binds(admin.bind) if not bind.is_loopback]
        if public:
            shown = f"{public[0].host}:{public[0].port}"
            yield (
                ("admin", "token"),
                f'is required when the admin API listens beyond loopback ("{shown}")',
            )
    if admin.metrics_token == "":
        yield ("admin", "metrics_token"), "must not be empty"
    elif admin.metrics_token is not None:
        if admin.token is None:
            yield (
                ("admin", "metrics_token"),
                "needs [admin] token: without one /metrics is open to every caller already",
            )
        elif admin.metrics_token == admin.token:
            yield (
                ("admin", "metrics_token"),
                "must differ from [admin] token (it would open the whole API to Prometheus)",
            )


def _check_agents(config: Config) -> Found:
    for name, agent in config.agents.items():
        path: Path = ("agents", name)
        if not AGENT_NAME.fullmatch(name):
            yield (
                path,
                (
                    f"invalid agent name {show_value(name)} (use lowercase letters, digits, "
                    '"_" and "-", starting with a letter or digit)'
                ),
            )
        yield from _check_agent(path, agent, config)


def _check_agent(path: Path, agent: AgentConfig, config: Config) -> Found:
    if (agent.agent is None) == (agent.command is None):
        yield path, "needs exactly one of `agent` or `command`"
    if agent.agent is not None and not agent.agent.strip():
        yield (*path, "agent"), "must not be empty"
    yield from _check_command(path, agent.command)
    if not _is_host(agent.host):
        yield (*path, "host"), f"invalid host {show_value(agent.host)}"
    if not agent.ws_path.startswith("/"):
        yield (*path, "ws_path"), f'must start with "/", got {show_value(agent.ws_path)}'
    if not agent.health.http_path.startswith("/"):
        yield (
            (*path, "health", "http_path"),
            f'must start with "/", got {show_value(agent.health.http_path)}',
        )
    for index, code in enumerate(agent.exitcodes):
        if not 0 <= code <= 255:
            yield (*path, "exitcodes", index), f"must be from 0 to 255, got {code}"
    if agent.backoff_initial > agent.backoff_max:
        yield (
            (*path, "backoff_initial"),
            f"must not exceed backoff_max ({show_value(agent.backoff_max)}), "
            f"got {show_value(agent.backoff_initial)}",
        )
    if agent.autoscale is not None and agent.autoscale.min > agent.autoscale.max:
        yield (
            (*path, "autoscale", "min"),
            f"must not exceed max ({agent.autoscale.max}), got {agent.autoscale.min}",
        )
    yield from _check_signal(path, agent.stopsignal)
    if agent.max_memory_mb is not None and not agent.max_memory_mb > 0:
        yield (*path, "max_memory_mb"), f"must be > 0, got {show_value(agent.max_memory_mb)}"
    for key in agent.environment:
        if not key or "=" in key or "\0" in key:
            yield (*path, "environment", key), "invalid environment variable name"
    for index, dependency in enumerate(agent.depends_on):
        if dependency not in config.agents:
            yield (*path, "depends_on", index), _unknown_agent(dependency, config)


def _check_command(path: Path, command: str | tuple[str, ...] | None) -> Found:
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            yield (*path, "command"), f"cannot be split into arguments ({exc})"
            return
        if not argv:
            yield (*path, "command"), "must not be empty"
    elif command is not None:
        if not command:
            yield (*path, "command"), "must not be empty"
        elif not command[0].strip():
            yield (*path, "command", 0), "must not be empty"


def _check_signal(path: Path, signal: str) -> Found:
    if signal in STOP_SIGNALS:
        return
    bare = signal.strip().upper().removeprefix("SIG")
    if bare in STOP_SIGNALS:
        yield (*path, "stopsignal"), f'unknown signal {show_value(signal)} (write "{bare}")'
    else:
        expected = ", ".join(STOP_SIGNALS)
        yield (
            (*path, "stopsignal"),
            f"unknown signal {show_value(signal)} (expected one of: {expected})",
        )


def _unknown_agent(name: str, config: Config) -> str:
    hint = did_you_mean(name, config.agents)
    suffix = f' (did you mean "{hint}"?)' if hint else ""
    return f"unknown agent {show_value(name)}{suffix}"


# --- ports ---------------------------------------------------------------------------


@attrs.frozen
class _Claim:
    path: Path
    owner: str  # for messages: 'agent "a"', 'the router bind "127.0.0.1:9090"'
    host: str
    first: int
    count: int

    def ports(self) -> range:
        return range(self.first, self.first + self.count)


def _same_interface(a: str, b: str) -> bool:
    a, b = ("127.0.0.1" if h == "localhost" else h for h in (a, b))
    return a == b or a in _WILDCARDS or b in _WILDCARDS


def _claims(config: Config) -> list[_Claim]:
    claims = []
    for section, binds in (("router", config.router.bind), ("admin", config.admin.bind)):
        for index, bind in _tcp_binds(binds):
            if bind.port:  # port 0: the OS picks a free one
                owner = f"the {section} bind {show_value(binds[index])}"
                claims.append(_Claim((section, "bind", index), owner, bind.host, bind.port, 1))
    for name, agent in config.agents.items():
        if agent.port is not None:
            count = agent.autoscale.max if agent.autoscale is not None else agent.replicas
            path: Path = ("agents", name, "port")
            owner = f"agent {show_value(name)}"
            if count > 1:
                owner += f" (ports {agent.port}-{agent.port + count - 1})"
            claims.append(_Claim(path, owner, agent.host, agent.port, count))
    return claims


def _check_ports(config: Config) -> Found:
    earlier: list[_Claim] = []
    for claim in _claims(config):
        last = claim.first + claim.count - 1
        if last > 65535:
            yield claim.path, f"replica ports {claim.first}-{last} go past 65535"
        for other in earlier:
            if not _same_interface(claim.host, other.host):
                continue
            shared = set(claim.ports()) & set(other.ports())
            if shared:
                port = min(shared)
                replica = port - claim.first
                of_replica = f" of replica {replica}" if replica else ""
                yield claim.path, f"port {port}{of_replica} is also used by {other.owner}"
                break
        earlier.append(claim)


# --- dependencies --------------------------------------------------------------------


def _check_dependencies(config: Config) -> Found:
    graph = {
        name: [dep for dep in agent.depends_on if dep in config.agents]
        for name, agent in config.agents.items()
    }
    done: set[str] = set()
    reported: set[frozenset[str]] = set()
    for root in graph:
        if root in done:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(graph[root]))]
        on_stack = {root}
        while stack:
            node, edges = stack[-1]
            following = next(edges, None)
            if following is None:
                stack.pop()
                on_stack.discard(node)
                done.add(node)
            elif following in on_stack:
                names = [name for name, _ in stack]
                cycle = [*names[names.index(following) :], following]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    yield (
                        ("agents", cycle[0], "depends_on"),
                        ("dependency cycle " + " -> ".join(cycle)),
                    )
            elif following not in done:
                stack.append((following, iter(graph[following])))
                on_stack.add(following)


# --- routes --------------------------------------------------------------------------


def _check_routes(config: Config) -> Found:
    first_index: dict[str, int] = {}
    for index, route in enumerate(config.routes):
        path: Path = ("routes", index)
        if not route.name.strip():
            yield (*path, "name"), "must not be empty"
        elif route.name in first_index:
            yield (
                (*path, "name"),
                (
                    f"duplicate route name {show_value(route.name)} "
                    f"(also routes[{first_index[route.name]}])"
                ),
            )
        else:
            first_index[route.name] = index
        yield from _check_route(path, route, config)


def _check_route(path: Path, route: RouteConfig, config: Config) -> Found:
    if route.strategy is not None:
        problem = check_strategy(route.strategy)
        if problem:
            yield (*path, "strategy"), problem
    for index, target in enumerate(route.target_agents):
        if target not in config.agents:
            yield (*path, "target_agents", index), _unknown_agent(target, config)
    for index, condition in enumerate(route.match):
        yield from _check_condition((*path, "match", index), condition)


def _check_condition(path: Path, condition: Condition) -> Found:
    yield from _check_condition_field(path, condition.field)
    op, value = condition.op, condition.value
    where: Path = (*path, "value")
    if op is ConditionOp.EXISTS:
        if value is not None:
            yield where, f'must not be set for op "exists", got {show_value(value)}'
    elif value is None:
        yield where, f'is required for op "{op}"'
    elif op in (ConditionOp.IN, ConditionOp.NOT_IN):
        if not isinstance(value, tuple):
            yield where, f'must be an array for op "{op}", got {show_value(value)}'
        else:
            yield from _check_strings(where, value)
    elif op is ConditionOp.CIDR:
        items = value if isinstance(value, tuple) else (value,)
        for index, item in enumerate(items):
            at = (*where, index) if isinstance(value, tuple) else where
            if not isinstance(item, str):
                yield at, f'must be a network like "10.0.0.0/8", got {show_value(item)}'
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                yield at, f'invalid network {show_value(item)} (expected e.g. "10.0.0.0/8")'
    elif not isinstance(value, str):
        yield where, f'must be a string for op "{op}", got {show_value(value)}'
    elif op is ConditionOp.REGEX:
        try:
            re.compile(value)
        except re.error as exc:
            yield where, f"invalid regular expression {show_value(value)} ({exc})"


def _check_strings(path: Path, values: tuple[Any, ...]) -> Found:
    for index, item in enumerate(values):
        if not isinstance(item, str):
            yield (*path, index), f"must be a string, got {show_value(item)}"


def _check_condition_field(path: Path, field: str) -> Found:
    if field in CONDITION_FIELDS:
        return
    prefix, dot, name = field.partition(".")
    if prefix in ("header", "query") and dot:
        if not _TOKEN_NAME.fullmatch(name):
            yield (*path, "field"), f"invalid {prefix} name {show_value(name)}"
        return
    choices = (*CONDITION_FIELDS, "header.NAME", "query.NAME")
    hint = did_you_mean(field, CONDITION_FIELDS)
    suffix = f'; did you mean "{hint}"?' if hint else ""
    yield (
        (*path, "field"),
        (f"unknown field {show_value(field)} (expected one of: {', '.join(choices)}{suffix})"),
    )


#: A node name: it is a Redis hash field and part of remote instance ids (``NODE/agent:0``).
NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_KEY_PREFIX = re.compile(r"[A-Za-z0-9_.:-]+")


def _check_cluster(config: Config) -> Found:
    cluster = config.cluster
    if cluster is None:
        return
    try:
        parse_redis_target(cluster.redis_url)
    except ValueError as error:
        yield ("cluster", "redis_url"), str(error)
    if cluster.node_name is not None and not NODE_NAME.fullmatch(cluster.node_name):
        yield (
            ("cluster", "node_name"),
            f"must be 1-63 letters, digits, '.', '_' or '-' starting with a letter or digit, "
            f"got {show_value(cluster.node_name)}",
        )
    if cluster.advertise_host is not None and not _is_host(cluster.advertise_host):
        yield (
            ("cluster", "advertise_host"),
            f"must be a host name or IP address, got {show_value(cluster.advertise_host)}",
        )
    if not _KEY_PREFIX.fullmatch(cluster.key_prefix):
        yield (
            ("cluster", "key_prefix"),
            f"must be letters, digits, '_', '.', ':' or '-', got {show_value(cluster.key_prefix)}",
        )
    if cluster.node_timeout <= cluster.heartbeat_interval:
        yield (
            ("cluster", "node_timeout"),
            f"must be longer than heartbeat_interval ({cluster.heartbeat_interval:g}), "
            f"got {cluster.node_timeout:g}",
        )
