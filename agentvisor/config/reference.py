"""The configuration reference (docs/configuration.md), rendered from the models (pure).

Keys, types, defaults and range checks come from the attrs models in
``model``, so the reference cannot drift from what the loader accepts; what a
key means is written here, one entry per field, and a test fails when a field
has no entry or an entry names no field. ``python -m
agentvisor.config.reference`` prints the document (``make docs`` writes it).
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Iterator
from typing import Any

import attrs
import tomlkit

from agentvisor.config import model
from agentvisor.config.validate import CONDITION_FIELDS

_FACTORY: type[Any] = type(attrs.Factory(list))  # attrs' stubs type ``Factory`` as a function


@attrs.frozen
class Table:
    heading: str
    cls: type[Any]
    meanings: dict[str, str]
    intro: str = ""


SUPERVISOR = Table(
    "[supervisor]",
    model.SupervisorConfig,
    {
        "state_dir": "SQLite state store, worker logs, pidfile and admin socket live here",
        "port_range": "where ports are allocated for instances without a fixed `port`; keep it "
        "outside the kernel's ephemeral ports (`net.ipv4.ip_local_port_range`, warned about)",
        "sample_interval": "seconds between psutil samples (CPU, RSS) of every instance",
        "log_level": "agentvisor's own log level (library loggers stay at warning)",
        "log_format": "`text`, or `json` for one object per line (log shippers)",
        "shutdown_timeout": "seconds a graceful shutdown may take before remaining workers are "
        "killed",
        "retention_days": "days of history kept in the state store (metrics, health, logs, events)",
        "store_max_mb": "state.db and its WAL stay under this together; the oldest rows go "
        "first, worker log lines before other history (read at start)",
        "store_log_lines_per_second": "worker log lines stored per agent per second on average "
        "(bursts of ten seconds' worth); the rest are counted as sampled out, the rotating log "
        "files keep every line (read at start)",
        "forward_worker_output": "also write every worker line, prefixed with `name:replica`, "
        "to agentvisor's own stdout (journald, docker logs)",
    },
)

ADMIN = Table(
    "[admin]",
    model.AdminConfig,
    {
        "bind": "Hypercorn binds of the HTTP admin API and console; `unix:PATH` sockets are "
        "created mode 0600",
        "token": "bearer token the API requires; agentvisor refuses to start without one when a "
        "TCP bind is not loopback",
        "metrics_token": "a second bearer token that is good for `GET /metrics` only, for "
        "Prometheus; needs `token`",
        "console": "serve the web console at `/`",
        "cors_origins": "extra origins allowed to call the API from a browser",
    },
)

ROUTER = Table(
    "[router]",
    model.RouterConfig,
    {
        "bind": "where WebSocket clients connect",
        "path": 'request path clients use; `"*"` accepts any path',
        "default_strategy": "strategy when a rule names none (see Strategies below)",
        "default_agent": "agent used when no rule, `service` or `tag` selects one; none = all "
        "routable agents",
        "management_events": "send `connection_routed`, `service_switched` and notifications to "
        "clients of agent workers",
        "max_connections": "beyond it new clients are refused with close code 1013",
        "max_connections_per_ip": "open connections allowed per client IP",
        "connect_rate_per_ip": "new connections per second per client IP (token bucket; "
        "bursts of twice the rate)",
        "max_message_bytes": "a larger client message closes the connection with 1009",
        "handshake_timeout": "seconds a client has to complete its opening handshake",
        "ping_interval": "seconds between WebSocket pings to an idle client",
        "ping_timeout": "a client that does not answer a ping within this is closed",
        "allowed_origins": "checked against the `Origin` header when a client sends one",
        "tls_cert": "certificate file; with `tls_key`, the router serves `wss://`",
        "tls_key": "private key file of `tls_cert`",
        "failover": "reconnect a live client of an agent worker to another replica when its "
        "instance dies",
        "max_messages_in_flight": "`user.message`s of one session a client may have awaiting "
        "their answer on one connection (the router keeps them to send again after a "
        "failover); one more is refused with a recoverable `agent.error` "
        "`TOO_MANY_IN_FLIGHT` naming this limit",
        "compression": "permessage-deflate for clients that offer it: agreed at the router on "
        "agent routes (the worker leg stays uncompressed), passed to the backend on transparent "
        "`command` routes; `false` declines it (saves the router's CPU)",
    },
)

AGENT = Table(
    "[agents.NAME]",
    model.AgentConfig,
    {
        "agent": "Python agent file; it defines `create_agent()` or a module-level `agent`",
        "command": "program run instead of an agent file: an argv string (shlex) or list; "
        "`{port}`, `{host}`, `{name}`, `{replica}` are substituted, and a program of exactly "
        "`python` or `python3` is agentvisor's own interpreter",
        "description": "free text shown in status and the console",
        "tags": "used by tag routing and filters",
        "host": "interface the worker binds",
        "port": "fixed port of replica 0 (replica i gets `port + i`); none = allocated from "
        "`port_range`",
        "replicas": "number of instances (an `autoscale` table replaces it)",
        "weight": "share of clients under `weighted_random`",
        "routable": "whether the router may send clients here",
        "autostart": "start on `agentvisor run` and on registration",
        "autorestart": "`always`, `on-failure` (exit code not in `exitcodes`) or `never`",
        "exitcodes": "exit codes that count as expected",
        "startsecs": "seconds an instance must stay up (and pass its first health check, when "
        "enabled) to count as started",
        "startretries": "consecutive failures (a failed start, or a crash before `stable_secs` of "
        "uptime) before the instance goes `fatal`",
        "backoff_initial": "seconds before the first automatic restart",
        "backoff_max": "ceiling of the restart delay",
        "backoff_factor": "each consecutive failure multiplies the delay by this",
        "backoff_jitter": "random spread of each delay, as a fraction of it",
        "stable_secs": "uptime after which the failure count and the backoff reset",
        "fatal_cooldown": "a `fatal` instance is tried again after this long (`next_retry_at`); "
        "0 = stay fatal until an operator starts it",
        "depends_on": "agents that must be running and healthy before this one starts (a cycle "
        "is an error)",
        "stopsignal": "signal sent to stop an instance (see Stop signals below)",
        "stopwaitsecs": "seconds after `stopsignal` before SIGKILL to the instance's whole "
        "process group",
        "drain_timeout": "rolling restart and scale-down: seconds to wait for running turns "
        "before the instance is stopped anyway",
        "max_memory_mb": "sampled RSS of the instance's process tree above this restarts it "
        "gracefully (drained first, logged with the reason)",
        "max_sessions": "sessions per instance; passed to agent workers; the router avoids full "
        "instances",
        "session_timeout": "seconds after which an idle session expires (agent workers)",
        "on_busy": "a message for a session still running a turn: `queue`, `reject`, or "
        "`interrupt` (cancel the run, start the new one)",
        "runtime": "event loop of agent workers: `asyncio` or `trio`",
        "router_notices": "for `command` agents: let the router inject its notices "
        "(`connection_routed`, `service_switched`…) and fail connections over; without it "
        "the router is a transparent proxy (agent workers always get both)",
        "ws_path": "path the router and health checks use on the worker",
        "environment": "extra environment variables, merged over agentvisor's own",
        "directory": "working directory; none = the config file's directory",
        "user": "run as this user (only when agentvisor runs as root)",
        "stdout_log_max_mb": "size at which an instance's log file in `state_dir/logs/` rotates",
        "stdout_log_backups": "rotated log files kept per instance",
        "health": "health checks: the `[agents.NAME.health]` table below",
        "autoscale": "autoscaling: the `[agents.NAME.autoscale]` table below; absent = fixed "
        "`replicas`",
    },
    intro="NAME is the service name (`[a-z0-9][a-z0-9_-]*`). Exactly one of `agent` or "
    "`command` is required.",
)

HEALTH = Table(
    "[agents.NAME.health]",
    model.HealthConfig,
    {
        "enabled": "run health checks on every instance",
        "mode": "`websocket`: open a WebSocket to `ws_path`, exchange a protocol ping/pong, close; "
        "`http`: GET `http_path`, 2xx is healthy",
        "http_path": "path of the `http` check",
        "interval": "seconds between checks",
        "timeout": "seconds a check may take",
        "unhealthy_threshold": "consecutive failures before `unhealthy`: the router stops using "
        "the instance and, unless `autorestart = never`, it is restarted",
        "healthy_threshold": "consecutive successes before `healthy`",
    },
)

AUTOSCALE = Table(
    "[agents.NAME.autoscale]",
    model.AutoscaleConfig,
    {
        "min": "fewest replicas; 0 allows scale to zero (the router holds the first client)",
        "max": "most replicas",
        "target_sessions": "active sessions per replica: desired = ceil(sessions / this)",
        "scale_up_cooldown": "seconds after a change before the next scale-up",
        "scale_down_cooldown": "seconds after a change before the next scale-down",
        "target_turns": "optional: turns in flight per replica: desired = ceil(turns / this)",
        "max_cpu_percent": "optional: mean CPU percent per replica to stay under: desired = "
        "ceil(running * mean CPU / this)",
        "decision_interval": "seconds between decisions",
        "stabilization": "seconds a new desired count must hold before it is acted on",
        "cold_start_wait": "with no replica running, seconds the router holds a client's "
        "handshake while one starts; then 503",
    },
    intro="Desired replicas are the highest of what each signal asks for, clamped to "
    "[`min`, `max`]. An operator `scale` of an autoscaled agent is refused: change `min` / "
    "`max`.",
)

ROUTES = Table(
    "[[routes]]",
    model.RouteConfig,
    {
        "name": "unique name, shown in `connection_routed` and the rule tester",
        "priority": "higher is tried first; equal priorities keep file order",
        "enabled": "a disabled rule is skipped",
        "match": "conditions that must all hold (see below); empty = always",
        "action": "`route`, or `reject` (close 1008 naming the rule)",
        "target_agents": "candidate agents by name",
        "target_tags": "candidate agents: those having all of these tags",
        "strategy": "strategy among the candidates' instances; none = `default_strategy`",
        "description": "free text",
        "wrap_messages": 'wrap each client message in `{"proxy_metadata": …, '
        '"original_message": …}` for the worker',
    },
    intro="The first enabled rule whose conditions all match picks the candidate agents; its "
    "strategy picks the instance. A client's `service=` or `tag=` narrows the candidates "
    "further, within what the rule allows.",
)

CONDITION = Table(
    "Conditions (`match = [{ … }]`)",
    model.Condition,
    {
        "field": f"{', '.join(f'`{name}`' for name in CONDITION_FIELDS)}, `header.NAME` or "
        "`query.NAME`",
        "op": "how the field is compared with `value`",
        "value": "a string, or a list for `in` / `not_in`; a CIDR block for `cidr`; unused by "
        "`exists`",
        "case_sensitive": "compare strings case-sensitively",
    },
)

CLUSTER = Table(
    "[cluster]",
    model.ClusterConfig,
    {
        "redis_url": "the shared Redis: `redis://HOST:PORT/DB` (`rediss://` for TLS, "
        "`unix:///PATH`); a list of `redis+sentinel://HOST:PORT/MASTER` for Sentinel, or of "
        "`redis://HOST:PORT` for the seed nodes of a Redis Cluster",
        "node_name": "this node's name in the registry, unique in the cluster (letters, digits, "
        "`.`, `_`, `-`); none = the host name",
        "advertise_host": "address other nodes' routers connect to for this node's instances; "
        "none = each instance's own `host` (a wildcard host is replaced by the host name)",
        "key_prefix": "every Redis key of the cluster starts with this (several clusters can "
        "share one Redis)",
        "heartbeat_interval": "seconds between two publications of this node's instances",
        "node_timeout": "a node whose last heartbeat is older than this is out of the cluster: "
        "its instances are no longer routed to",
        "lock_timeout": "lease of the cluster-wide config edit lock; an edit still running "
        "after it has lost the lock and is refused before it writes (fencing)",
    },
    intro="Absent: one host, sessions in SQLite (today's behaviour). Present: this agentvisor "
    "publishes its instances to Redis, routes to every live node's instances, and its agent "
    "workers keep their sessions in Redis, so a session survives the loss of a whole host "
    "(see [cluster.md](cluster.md)).",
)

TABLES = (SUPERVISOR, ADMIN, ROUTER, AGENT, HEALTH, AUTOSCALE, ROUTES, CONDITION, CLUSTER)

_PREAMBLE = """\
# Configuration reference

<!-- Generated from agentvisor/config/model.py by `make docs`; do not edit by hand. -->

One TOML file, `agentvisor.toml`, describes the whole system;
`agentvisor.toml.example` is a commented example that runs as it is.
`agentvisor check -c FILE` validates a file the way `agentvisor reload` does.

- A value may name an environment variable: `"${NAME}"` or `"${NAME:-default}"`.
  A missing variable without a default is an error naming the key. `check`
  reads the environment of the shell it runs in and names the variables it
  used; a reload reads agentvisor's own (the systemd unit's, say).
  `agentvisor check --against-daemon -c FILE` lets the running agentvisor
  validate its file with its environment and print what a reload would do,
  changing nothing.
- Relative paths are relative to the config file's directory.
- Durations are seconds (floats allowed); sizes carry their unit in the key
  (`_mb`, `_bytes`).
- Unknown keys are errors, with a suggestion when one is close. Errors name
  the file, line, column and key path, for example
  `agentvisor.toml:14:9 agents.weather.replicas: must be >= 0, got -1`.
- Port clashes (between agents, the router and the admin binds), routes
  naming unknown agents and `depends_on` cycles are errors.
"""


def render() -> str:
    """The whole reference document, in Markdown."""
    parts = [_PREAMBLE]
    for table in TABLES:
        parts.append(_render_table(table))
    parts.append(_lists())
    return "\n".join(parts)


def check_complete() -> list[str]:
    """Fields without a meaning and meanings without a field, one line each."""
    problems = []
    for table in TABLES:
        names = {f.name for f in fields(table.cls)}
        for name in sorted(names - table.meanings.keys()):
            problems.append(f"{table.heading} {name}: no meaning in config/reference.py")
        for name in sorted(table.meanings.keys() - names):
            problems.append(f"{table.heading} {name}: described but not a field")
    return problems


def fields(cls: type[Any]) -> Iterator[attrs.Attribute[Any]]:
    attrs.resolve_types(cls)
    for f in attrs.fields(cls):
        if f.eq:  # ``source`` / ``base_dir`` are not keys
            yield f


def _render_table(table: Table) -> str:
    lines = [f"## {table.heading}", ""]
    if table.intro:
        lines += [table.intro, ""]
    lines += ["| key | type | default | limits | meaning |", "| --- | --- | --- | --- | --- |"]
    for f in fields(table.cls):
        cells = (
            f.name,
            _type(f.type),
            _default(f),
            _limits(f.validator),
            table.meanings.get(f.name, ""),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _type(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        present = [a for a in args if a is not type(None)]
        return " or ".join(_type(a) for a in present)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"array of {_type(args[0])}s"
        return "[" + ", ".join(_type(a) for a in args) + "]"
    if origin is dict:
        return "table of strings"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return " \\| ".join(f'`"{member.value}"`' for member in tp)
    if isinstance(tp, type) and attrs.has(tp):
        return "table"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, "any")


def _default(f: attrs.Attribute[Any]) -> str:
    if f.default is attrs.NOTHING:
        return "required"
    text = default_toml(f)
    if text is None:
        return "see below" if isinstance(f.default, _FACTORY) else "none"
    return f"`{text}`"


def default_toml(f: attrs.Attribute[Any]) -> str | None:
    """The field's default as TOML, or None when it is none, required or a table."""
    default: Any = f.default
    if isinstance(default, _FACTORY):
        default = default.factory()
    if default is None or default is attrs.NOTHING or attrs.has(type(default)):
        return None
    return _toml(default)


def _toml(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update(value)
        return table.as_string()
    return str(tomlkit.item(value).as_string())


def _limits(validator: Any) -> str:
    """``>= 0``-style text from the field's attrs validators."""
    if validator is None:
        return ""
    inner = getattr(validator, "_validators", None)
    if inner is not None:
        return ", ".join(filter(None, (_limits(v) for v in inner)))
    optional = getattr(validator, "validator", None)
    if optional is not None:
        return _limits(optional)
    op = getattr(validator, "compare_op", None)
    if op is not None:
        return f"{op} {_toml(validator.bound)}"
    if isinstance(validator, types.FunctionType) and validator.__doc__:
        return validator.__doc__.strip().splitlines()[0].rstrip(".")
    return ""


def _lists() -> str:
    strategies = ", ".join(f"`{name}`" for name in model.STRATEGIES)
    signals = ", ".join(f"`{name}`" for name in model.STOP_SIGNALS)
    return f"""\
## Strategies

{strategies}, and `hash:header.NAME` / `hash:query.NAME` (a consistent hash of
that value). `power_of_two` takes the less loaded of two random picks;
`ip_hash` is a consistent hash of the client IP. A client naming an existing
`session_id` goes to the instance holding that session before any strategy
applies.

## Stop signals

{signals} (names without the `SIG` prefix).
"""


if __name__ == "__main__":
    print(render(), end="")
