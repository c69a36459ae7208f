"""The schema of agentvisor.toml as frozen attrs models (pure).

Field names are the TOML keys; defaults are those of CONFIG.md. Models are
frozen and compare by value, so a reload diff is a comparison. Cross-field
rules (port clashes, exactly one of agent/command, unknown route targets…)
live in ``validate``; per-field type and range checks live here as attrs
validators so cattrs reports them with their key path.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs
from attrs import field, frozen
from attrs.validators import ge, gt, instance_of, le, optional


class AutoRestart(enum.StrEnum):
    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    NEVER = "never"


class OnBusy(enum.StrEnum):
    QUEUE = "queue"
    REJECT = "reject"
    INTERRUPT = "interrupt"


class Runtime(enum.StrEnum):
    ASYNCIO = "asyncio"
    TRIO = "trio"


class HealthMode(enum.StrEnum):
    WEBSOCKET = "websocket"
    HTTP = "http"


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class RouteAction(enum.StrEnum):
    ROUTE = "route"
    REJECT = "reject"


class ConditionOp(enum.StrEnum):
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    REGEX = "regex"
    IN = "in"
    NOT_IN = "not_in"
    EXISTS = "exists"
    CIDR = "cidr"


#: Strategies without a parameter; ``hash:header.NAME`` / ``hash:query.NAME`` are the others.
STRATEGIES = (
    "round_robin",
    "least_connections",
    "weighted_random",
    "power_of_two",
    "ip_hash",
    "random",
)

#: Signals accepted for ``stopsignal`` (names without the SIG prefix).
STOP_SIGNALS = ("TERM", "INT", "QUIT", "HUP", "KILL", "USR1", "USR2")

_non_negative = ge(0.0)


def _port_range(_inst: object, _attr: attrs.Attribute[Any], value: tuple[int, int]) -> None:
    """[low, high] with 1 <= low <= high <= 65535."""
    low, high = value
    if not (1 <= low <= high <= 65535):
        raise ValueError(f"must be [low, high] with 1 <= low <= high <= 65535, got {list(value)}")


def _optional_port(_inst: object, _attr: attrs.Attribute[Any], value: int | None) -> None:
    """1 to 65535."""
    if value is not None and not (1 <= value <= 65535):
        raise ValueError(f"must be a port from 1 to 65535, got {value}")


@frozen
class SupervisorConfig:
    state_dir: str = ".agentvisor"
    port_range: tuple[int, int] = field(default=(8100, 8999), validator=_port_range)
    sample_interval: float = field(default=5.0, validator=gt(0.0))
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = LogFormat.TEXT
    shutdown_timeout: float = field(default=30.0, validator=gt(0.0))
    retention_days: float = field(default=7.0, validator=gt(0.0))
    store_max_mb: float = field(default=512.0, validator=ge(1.0))
    store_log_lines_per_second: float = field(default=1000.0, validator=gt(0.0))
    forward_worker_output: bool = False


def _default_admin_bind() -> tuple[str, ...]:
    return ("127.0.0.1:8080", "unix:.agentvisor/admin.sock")


@frozen
class AdminConfig:
    bind: tuple[str, ...] = field(factory=_default_admin_bind)
    token: str | None = None
    metrics_token: str | None = None
    console: bool = True
    cors_origins: tuple[str, ...] = ()


@frozen
class RouterConfig:
    bind: tuple[str, ...] = ("127.0.0.1:9090",)
    path: str = "/ws"
    default_strategy: str = "least_connections"
    default_agent: str | None = None
    management_events: bool = True
    max_connections: int = field(default=10000, validator=ge(1))
    max_connections_per_ip: int = field(default=256, validator=ge(1))
    connect_rate_per_ip: float = field(default=20.0, validator=gt(0.0))
    max_message_bytes: int = field(default=1048576, validator=ge(1))
    handshake_timeout: float = field(default=10.0, validator=gt(0.0))
    ping_interval: float = field(default=20.0, validator=gt(0.0))
    ping_timeout: float = field(default=20.0, validator=gt(0.0))
    allowed_origins: tuple[str, ...] = ("*",)
    tls_cert: str | None = None
    tls_key: str | None = None
    failover: bool = True
    max_messages_in_flight: int = field(default=4, validator=ge(1))
    compression: bool = True


@frozen
class HealthConfig:
    enabled: bool = True
    mode: HealthMode = HealthMode.WEBSOCKET
    http_path: str = "/health"
    interval: float = field(default=10.0, validator=gt(0.0))
    timeout: float = field(default=5.0, validator=gt(0.0))
    unhealthy_threshold: int = field(default=3, validator=ge(1))
    healthy_threshold: int = field(default=1, validator=ge(1))


@frozen
class AutoscaleConfig:
    min: int = field(default=1, validator=ge(0))
    max: int = field(default=4, validator=ge(1))
    target_sessions: int = field(default=20, validator=ge(1))
    scale_up_cooldown: float = field(default=15.0, validator=_non_negative)
    scale_down_cooldown: float = field(default=120.0, validator=_non_negative)
    #: Optional signals: turns in flight per replica, mean CPU percent per replica.
    target_turns: int | None = field(default=None, validator=optional(ge(1)))
    max_cpu_percent: float | None = field(default=None, validator=optional(gt(0.0)))
    #: Seconds between decisions, and how long a new count must hold before it is acted on.
    decision_interval: float = field(default=1.0, validator=gt(0.0))
    stabilization: float = field(default=5.0, validator=_non_negative)
    #: With no replica running (min = 0), how long the router holds a client's handshake
    #: while one starts; then 503.
    cold_start_wait: float = field(default=30.0, validator=_non_negative)


@frozen
class AgentConfig:
    """One ``[agents.NAME]`` table. The name is the key in ``Config.agents``."""

    agent: str | None = None
    command: str | tuple[str, ...] | None = None
    description: str = ""
    tags: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int | None = field(default=None, validator=_optional_port)
    replicas: int = field(default=1, validator=[instance_of(int), ge(0), le(1000)])
    weight: float = field(default=1.0, validator=_non_negative)
    routable: bool = True
    autostart: bool = True
    autorestart: AutoRestart = AutoRestart.ON_FAILURE
    exitcodes: tuple[int, ...] = (0,)
    startsecs: float = field(default=1.0, validator=_non_negative)
    startretries: int = field(default=5, validator=ge(0))
    backoff_initial: float = field(default=0.5, validator=_non_negative)
    backoff_max: float = field(default=30.0, validator=_non_negative)
    backoff_factor: float = field(default=2.0, validator=ge(1.0))
    backoff_jitter: float = field(default=0.1, validator=[ge(0.0), le(1.0)])
    stable_secs: float = field(default=60.0, validator=_non_negative)
    fatal_cooldown: float = field(default=300.0, validator=_non_negative)
    depends_on: tuple[str, ...] = ()
    stopsignal: str = "TERM"
    stopwaitsecs: float = field(default=10.0, validator=_non_negative)
    drain_timeout: float = field(default=30.0, validator=_non_negative)
    max_memory_mb: float | None = field(default=None)
    max_sessions: int = field(default=100, validator=ge(1))
    session_timeout: float = field(default=1800.0, validator=gt(0.0))
    on_busy: OnBusy = OnBusy.QUEUE
    runtime: Runtime = Runtime.ASYNCIO
    ws_path: str = "/"
    #: A ``command =`` worker gets the router's notices and failover only when true.
    router_notices: bool = False
    environment: dict[str, str] = field(factory=dict)
    directory: str | None = None
    user: str | None = None
    stdout_log_max_mb: float = field(default=50.0, validator=gt(0.0))
    stdout_log_backups: int = field(default=5, validator=ge(0))
    health: HealthConfig = field(factory=HealthConfig)
    autoscale: AutoscaleConfig | None = None

    @property
    def desired_replicas(self) -> int:
        """Replicas to run now: ``replicas``, or the autoscale minimum when autoscaled."""
        return self.autoscale.min if self.autoscale is not None else self.replicas


@frozen
class Condition:
    field: str
    op: ConditionOp = ConditionOp.EQUALS
    value: Any = None
    case_sensitive: bool = False


@frozen
class RouteConfig:
    name: str
    priority: int = 0
    enabled: bool = True
    match: tuple[Condition, ...] = ()
    action: RouteAction = RouteAction.ROUTE
    target_agents: tuple[str, ...] = ()
    target_tags: tuple[str, ...] = ()
    strategy: str | None = None
    description: str = ""
    wrap_messages: bool = False


def _redis_url(_inst: object, _attr: attrs.Attribute[Any], value: str | tuple[str, ...]) -> None:
    """A URL, or a non-empty array of them."""
    if isinstance(value, tuple) and not value:
        raise ValueError("must name at least one Redis URL, got []")


@frozen
class ClusterConfig:
    """``[cluster]``: this agentvisor is one node of a fleet sharing a Redis."""

    redis_url: str | tuple[str, ...] = field(validator=_redis_url)
    node_name: str | None = None  # None: the host name
    advertise_host: str | None = None  # None: each instance's own host
    key_prefix: str = "agentvisor"
    heartbeat_interval: float = field(default=1.0, validator=gt(0.0))
    node_timeout: float = field(default=5.0, validator=gt(0.0))
    lock_timeout: float = field(default=15.0, validator=gt(0.0))


@frozen
class Config:
    """The whole file. ``source`` and ``base_dir`` are not keys: they say where it came from."""

    supervisor: SupervisorConfig = field(factory=SupervisorConfig)
    admin: AdminConfig = field(factory=AdminConfig)
    router: RouterConfig = field(factory=RouterConfig)
    agents: dict[str, AgentConfig] = field(factory=dict)
    routes: tuple[RouteConfig, ...] = ()
    cluster: ClusterConfig | None = None
    source: str = field(default="", eq=False)
    base_dir: str = field(default=".", eq=False)
