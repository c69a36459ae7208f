"""The admin API application: ``create_app(deps)`` and nothing at module level.

Handlers reach the running system only through ``AdminDeps`` (closed over by
each blueprint factory in ``routes/``); they call methods of the Supervisor,
which does its work in its own nursery. No nursery or state lives on the app.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import psutil
import trio
from quart_trio import QuartTrio

from agentvisor.admin.console import console_blueprint
from agentvisor.admin.errors import install_error_handlers
from agentvisor.admin.metrics import HealthCheckRecorder, metrics_blueprint
from agentvisor.admin.routes.cluster import cluster_blueprint
from agentvisor.admin.routes.connections import connections_blueprint
from agentvisor.admin.routes.docs import docs_blueprint
from agentvisor.admin.routes.events import events_blueprint
from agentvisor.admin.routes.health import health_blueprint
from agentvisor.admin.routes.logs import logs_blueprint
from agentvisor.admin.routes.routing import routing_blueprint
from agentvisor.admin.routes.rules import rules_blueprint
from agentvisor.admin.routes.service_edits import service_edits_blueprint
from agentvisor.admin.routes.services import services_blueprint
from agentvisor.admin.routes.stats import stats_blueprint
from agentvisor.admin.routes.system import system_blueprint
from agentvisor.admin.security import install_security
from agentvisor.admin.stream import StreamCounters, stream_blueprint
from agentvisor.config.persist import ConfigEditor
from agentvisor.supervise.agentfiles import check_changed_agent_files

if TYPE_CHECKING:
    from agentvisor.admin.routes.connections import RouterApi
    from agentvisor.cluster.registry import ClusterRegistry
    from agentvisor.store.writer import StateStore
    from agentvisor.supervise.supervisor import Supervisor


def _editor_of(deps: AdminDeps) -> ConfigEditor | None:
    """The file the daemon runs from is the one API edits go to (ARCHITECTURE.md)."""
    if not deps.config_path:
        return None
    return ConfigEditor(deps.config_path, check=check_changed_agent_files)


@attrs.frozen
class AdminLimits:
    """The admin API's own bounds: fixed defaults, not config keys; tests shrink them.

    ``clock`` is the rate limiter's (monotonic seconds), injected so that a
    test can run out a bucket and refill it without sleeping.
    """

    #: Mutating requests (POST / PUT / PATCH / DELETE) per second per client, and the burst.
    mutating_rate: float = 20.0
    mutating_burst: float = 40.0
    #: Request bodies above this are refused (413) before any handler reads them.
    max_body_bytes: int = 1024 * 1024
    #: An idle event stream sends a comment this often, so proxies keep it open.
    stream_keepalive_interval: float = 15.0
    #: Events held for one slow stream client before it loses some (and is told so).
    stream_buffer_events: int = 256
    clock: Callable[[], float] = time.monotonic


@attrs.define
class AdminDeps:
    """What the admin API needs from the daemon. ``binds`` is filled once bound."""

    supervisor: Supervisor
    version: str
    pid: int
    started_at: float  # wall clock, seconds since the epoch
    config_path: str
    token: str | None = None
    #: Good for ``GET /metrics`` only (Prometheus), beside ``token``.
    metrics_token: str | None = None
    binds: list[str] = attrs.field(factory=list)
    #: Set when the server begins to shut down: long-polls answer at once.
    stopping: trio.Event = attrs.field(factory=trio.Event)
    #: History (audit log, health checks, metrics, logs); endpoints that need it
    #: answer 503 ``STORE_UNAVAILABLE`` without it.
    store: StateStore | None = None
    #: Edits of agentvisor.toml; by default one for ``config_path``.
    editor: ConfigEditor | None = attrs.field(default=attrs.Factory(_editor_of, takes_self=True))
    #: Held from an API edit of the file until the supervisor has applied it, so
    #: two edits are never applied in the opposite order of their writes.
    edit_lock: trio.Lock = attrs.field(factory=trio.Lock)
    #: agentvisor's own process, for its cpu and memory in the overview.
    process: psutil.Process = attrs.field(factory=psutil.Process)
    limits: AdminLimits = attrs.field(factory=AdminLimits)
    #: Every health check's time for ``/metrics``; ``AdminServer`` feeds it from the bus.
    health_checks: HealthCheckRecorder = attrs.field(factory=HealthCheckRecorder)
    #: The router: ``/metrics`` (``statistics()``), connections and the routing test.
    router: RouterApi | None = None
    #: This node's view of the cluster (``[cluster]``): ``/api/v1/cluster/nodes``.
    cluster: ClusterRegistry | None = None


def create_app(deps: AdminDeps) -> QuartTrio:
    app = QuartTrio("agentvisor.admin")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # Errors are answered by our handlers, never re-raised into Hypercorn.
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.config["MAX_CONTENT_LENGTH"] = deps.limits.max_body_bytes
    install_error_handlers(app)
    install_security(app, deps)  # CORS preflight, then the token, then rate and body limits
    streams = StreamCounters()  # per app: shared by the stream and its gauges in /metrics
    app.register_blueprint(system_blueprint(deps))
    app.register_blueprint(metrics_blueprint(deps, streams))
    app.register_blueprint(docs_blueprint(deps))
    app.register_blueprint(stream_blueprint(deps, streams), url_prefix="/api/v1")
    app.register_blueprint(services_blueprint(deps), url_prefix="/api/v1")
    app.register_blueprint(logs_blueprint(deps), url_prefix="/api/v1")
    app.register_blueprint(service_edits_blueprint(deps), url_prefix="/api/v1")
    app.register_blueprint(health_blueprint(deps), url_prefix="/api/v1")
    app.register_blueprint(stats_blueprint(deps), url_prefix="/api/v1")
    app.register_blueprint(events_blueprint(deps), url_prefix="/api/v1")
    app.register_blueprint(rules_blueprint(deps), url_prefix="/api/v1")
    app.register_blueprint(connections_blueprint(deps), url_prefix="/api/v1")
    app.register_blueprint(routing_blueprint(deps), url_prefix="/api/v1")
    app.register_blueprint(cluster_blueprint(deps), url_prefix="/api/v1")
    app.register_blueprint(console_blueprint())  # last: "/" and the console's deep links
    return app
