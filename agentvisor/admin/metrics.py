"""``GET /metrics``: the live state in Prometheus' text format.

A custom collector reads the supervisor's snapshot (``services()``), the
router's ``statistics()`` and the event stream's counters on each scrape, so
the numbers cannot drift from what the API shows and there is no metric
object at module level. The one thing counted here is the distribution of
health check times, which no snapshot holds (``HealthCheckRecorder``). Each
app gets its own ``CollectorRegistry``: two apps in one process never share.

Metric names (labels in braces):

- ``agentvisor_info{version}``, ``agentvisor_start_time_seconds``, ``agentvisor_uptime_seconds``
- ``agentvisor_service_replicas{service}`` (desired), ``agentvisor_service_running{service}``
- ``agentvisor_instance_up{service,replica}`` 1 while running, else 0
- ``agentvisor_instance_state{service,replica,state}`` 1 for the current state, 0 for the others
- ``agentvisor_instance_restarts_total{service,replica}``
- ``agentvisor_instance_cpu_percent``, ``agentvisor_instance_memory_bytes``,
  ``agentvisor_instance_sessions``, ``agentvisor_instance_uptime_seconds`` (when known)
- ``agentvisor_instance_health{service,replica,status}`` 1 for healthy|unhealthy|unknown|disabled
- ``agentvisor_health_check_seconds{service,replica}`` response time of the last check
- ``agentvisor_health_check_duration_seconds{service}`` histogram of every check, and
  ``agentvisor_health_checks_total{service,outcome}`` (ok|failed), kept by
  ``HealthCheckRecorder`` from the bus while the admin server runs (every service from the
  start, at 0 until its first check)
- ``agentvisor_events_published_total``, ``agentvisor_admin_event_streams``,
  ``agentvisor_admin_event_stream_dropped_total``
- with a router: ``agentvisor_router_connections``,
  ``agentvisor_router_connections_accepted_total``, ``agentvisor_router_bytes_total{direction}``,
  ``agentvisor_router_messages_total{direction}``,
  ``agentvisor_router_routing_failures_total``, ``agentvisor_router_refused_total{code}``,
  ``agentvisor_router_failovers_total{outcome}``;
  ``direction`` is ``in`` (client to agent) or ``out`` (agent to client).
- with a store: ``agentvisor_store_log_lines_written_total``,
  ``agentvisor_store_log_lines_sampled_out_total``, ``agentvisor_store_dropped_total``,
  ``agentvisor_store_file_bytes``.
- agentvisor's own process, from prometheus_client's collectors: ``process_*`` (CPU seconds,
  resident and virtual memory, open and maximum file descriptors, start time),
  ``python_info`` and ``python_gc_*``.
- for autoscaled agents, from the last decision: ``agentvisor_autoscaler_signal{service,signal}``
  (sessions, turns, cpu_percent, waiting_clients) and
  ``agentvisor_autoscaler_wanted_replicas{service,signal}`` (the count each signal asks for).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

import attrs
import trio
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from quart import Blueprint, Response, request

from agentvisor.events import Event, EventBus, HealthCheckCompleted
from agentvisor.router.limits import CLOSE_POLICY, CLOSE_TRY_AGAIN

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps
    from agentvisor.admin.stream import StreamCounters
    from agentvisor.store.records import StoreStatistics
    from agentvisor.supervise.registry import ServiceView

#: supervisord's states (``supervise/states.py``): every instance has one 1 among them.
INSTANCE_STATES = ("stopped", "starting", "running", "backoff", "stopping", "exited", "fatal")
#: ``disabled`` when the agent has no health checks configured.
HEALTH_STATUSES = ("healthy", "unhealthy", "unknown", "disabled")
INSTANCE_LABELS = ("service", "replica")
#: The router's own refusals, exported at 0 before the first (so ``rate()`` and alerts see
#: them from the first scrape): policy (rate limit, origin, a rule's reject, an unknown
#: service), try again (no healthy instance) and overload (over ``max_connections``). HTTP
#: statuses of malformed handshakes appear once they happen.
REFUSAL_CODES = (str(CLOSE_POLICY), str(CLOSE_TRY_AGAIN), "overload")
#: Upper bounds (seconds) of the health check histogram's buckets; +Inf follows.
HEALTH_CHECK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@attrs.define
class CheckTimes:
    """One service's health checks: counts per bucket (the last is +Inf), sum, outcomes."""

    counts: list[int] = attrs.field(factory=lambda: [0] * (len(HEALTH_CHECK_BUCKETS) + 1))
    seconds: float = 0.0
    ok: int = 0
    failed: int = 0


class HealthCheckRecorder:
    """Every health check's response time, per service, from ``HealthCheckCompleted``.

    The one thing ``/metrics`` cannot read from a snapshot: the distribution
    of all checks, not just the last. ``AdminServer`` runs :meth:`run` in its
    nursery; a check lost by a full subscription is only a missing sample.
    """

    def __init__(self) -> None:
        self._services: dict[str, CheckTimes] = {}

    def observe(self, event: HealthCheckCompleted) -> None:
        times = self._services.setdefault(event.service, CheckTimes())
        times.counts[bisect.bisect_left(HEALTH_CHECK_BUCKETS, event.response_time)] += 1
        times.seconds += event.response_time
        if event.ok:
            times.ok += 1
        else:
            times.failed += 1

    async def run(
        self, bus: EventBus, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        def wanted(event: Event) -> bool:
            return isinstance(event, HealthCheckCompleted)

        async with bus.subscribe(wanted) as checks:
            task_status.started()
            async for event in checks:
                assert isinstance(event, HealthCheckCompleted)
                self.observe(event)

    def families(self, live: Iterable[str]) -> Iterator[Metric]:
        """The families for the services configured now (removed ones are forgotten)."""
        names = set(live)
        for gone in self._services.keys() - names:
            del self._services[gone]
        duration = HistogramMetricFamily(
            "agentvisor_health_check_duration_seconds",
            "Response time of every health check",
            labels=["service"],
        )
        outcomes = CounterMetricFamily(
            "agentvisor_health_checks",
            "Health checks run, by outcome",
            labels=["service", "outcome"],
        )
        for name in sorted(names):  # every service, at 0 before its first check
            times = self._services.get(name, CheckTimes())
            # As prometheus_client's own histograms write them: "0.005", "10.0", "+Inf".
            bounds = [*(repr(float(bound)) for bound in HEALTH_CHECK_BUCKETS), "+Inf"]
            cumulative = [sum(times.counts[: index + 1]) for index in range(len(bounds))]
            duration.add_metric([name], list(zip(bounds, cumulative, strict=True)), times.seconds)
            outcomes.add_metric([name, "ok"], times.ok)
            outcomes.add_metric([name, "failed"], times.failed)
        yield duration
        yield outcomes


class RouterStatistics(Protocol):
    """What ``/metrics`` reads from ``Router.statistics()`` (``router.lifecycle``).

    ``connections`` (relaying now), ``accepted`` (routed since start),
    ``bytes_in`` / ``bytes_out`` and ``messages_in`` / ``messages_out``
    (client to agent / back), ``refused`` (clients turned away, by close code
    or HTTP status), ``failovers`` and ``failover_failures``.
    """

    @property
    def connections(self) -> int: ...
    @property
    def accepted(self) -> int: ...
    @property
    def bytes_in(self) -> int: ...
    @property
    def bytes_out(self) -> int: ...
    @property
    def messages_in(self) -> int: ...
    @property
    def messages_out(self) -> int: ...
    @property
    def refused(self) -> Mapping[str, int]: ...
    @property
    def failovers(self) -> int: ...
    @property
    def failover_failures(self) -> int: ...


class RouterStatisticsSource(Protocol):
    def statistics(self) -> RouterStatistics: ...


class AgentvisorCollector(Collector):
    """Builds every family from the live state at scrape time."""

    def __init__(self, deps: AdminDeps, streams: StreamCounters) -> None:
        self.deps = deps
        self.streams = streams

    def collect(self) -> Iterator[Metric]:
        yield from self._process()
        views = self.deps.supervisor.services()
        yield from self._services(views)
        yield from self._instances(views)
        yield from self.deps.health_checks.families(view.name for view in views)
        yield from self._events()
        yield from self._autoscaler()
        router = self.deps.router
        if router is not None:
            yield from router_families(router.statistics())
        store = self.deps.store
        if store is not None:
            yield from store_families(store.statistics())

    def _process(self) -> Iterator[Metric]:
        deps = self.deps
        yield InfoMetricFamily("agentvisor", "agentvisor's version", {"version": deps.version})
        yield GaugeMetricFamily(
            "agentvisor_start_time_seconds",
            "When agentvisor started, seconds since the epoch",
            deps.started_at,
        )
        yield GaugeMetricFamily(
            "agentvisor_uptime_seconds",
            "Seconds since agentvisor started",
            max(0.0, time.time() - deps.started_at),
        )

    def _services(self, views: list[ServiceView]) -> Iterator[Metric]:
        desired = GaugeMetricFamily(
            "agentvisor_service_replicas", "Replicas the service should run", labels=["service"]
        )
        running = GaugeMetricFamily(
            "agentvisor_service_running", "Instances of the service running", labels=["service"]
        )
        for view in views:
            desired.add_metric([view.name], view.desired_replicas)
            running.add_metric([view.name], view.running)
        yield desired
        yield running

    def _autoscaler(self) -> Iterator[Metric]:
        values = GaugeMetricFamily(
            "agentvisor_autoscaler_signal",
            "What the autoscaler's last decision saw",
            labels=["service", "signal"],
        )
        wanted = GaugeMetricFamily(
            "agentvisor_autoscaler_wanted_replicas",
            "Replicas each signal asked for at the autoscaler's last decision",
            labels=["service", "signal"],
        )
        for name, decision in self.deps.supervisor.autoscaler.decisions().items():
            seen: dict[str, float] = {
                "sessions": decision.sessions,
                "turns": decision.turns,
                "waiting_clients": decision.waiting_clients,
            }
            if decision.cpu_percent is not None:
                seen["cpu_percent"] = decision.cpu_percent
            for signal, value in seen.items():
                values.add_metric([name, signal], value)
            for signal, count in decision.by_signal.items():
                wanted.add_metric([name, signal], count)
        yield values
        yield wanted

    def _instances(self, views: list[ServiceView]) -> Iterator[Metric]:
        labels = list(INSTANCE_LABELS)
        up = GaugeMetricFamily(
            "agentvisor_instance_up", "1 while the instance is running, else 0", labels=labels
        )
        state = GaugeMetricFamily(
            "agentvisor_instance_state",
            "1 for the instance's current state, 0 for the others",
            labels=[*labels, "state"],
        )
        restarts = CounterMetricFamily(
            "agentvisor_instance_restarts",
            "Automatic restarts of the instance since agentvisor started it",
            labels=labels,
        )
        cpu = GaugeMetricFamily(
            "agentvisor_instance_cpu_percent",
            "CPU of the instance's process group, percent of one core",
            labels=labels,
        )
        memory = GaugeMetricFamily(
            "agentvisor_instance_memory_bytes",
            "Resident memory of the instance's process group",
            labels=labels,
        )
        sessions = GaugeMetricFamily(
            "agentvisor_instance_sessions", "Active sessions the worker reports", labels=labels
        )
        uptime = GaugeMetricFamily(
            "agentvisor_instance_uptime_seconds",
            "Seconds since the instance's current process started",
            labels=labels,
        )
        health = GaugeMetricFamily(
            "agentvisor_instance_health",
            "1 for the instance's health (healthy, unhealthy, unknown, disabled), 0 for the others",
            labels=[*labels, "status"],
        )
        check = GaugeMetricFamily(
            "agentvisor_health_check_seconds",
            "Response time of the instance's last health check",
            labels=labels,
        )
        for view in views:
            for instance in view.instances:
                key = [view.name, str(instance.replica)]
                up.add_metric(key, 1 if instance.state == "running" else 0)
                for name in INSTANCE_STATES:
                    state.add_metric([*key, name], 1 if instance.state == name else 0)
                restarts.add_metric(key, instance.restarts)
                if instance.cpu_percent is not None:
                    cpu.add_metric(key, instance.cpu_percent)
                if instance.memory_bytes is not None:
                    memory.add_metric(key, instance.memory_bytes)
                if instance.sessions is not None:
                    sessions.add_metric(key, instance.sessions)
                if instance.uptime is not None:
                    uptime.add_metric(key, instance.uptime)
                for status in HEALTH_STATUSES:
                    health.add_metric([*key, status], 1 if instance.health.status == status else 0)
                if instance.health.response_time is not None:
                    check.add_metric(key, instance.health.response_time)
        yield from (up, state, restarts, cpu, memory, sessions, uptime, health, check)

    def _events(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "agentvisor_events_published",
            "Events published on agentvisor's internal bus",
            self.deps.supervisor.bus.published,
        )
        yield GaugeMetricFamily(
            "agentvisor_admin_event_streams",
            "Clients following /api/v1/events/stream now",
            self.streams.open,
        )
        yield CounterMetricFamily(
            "agentvisor_admin_event_stream_dropped",
            "Events event-stream clients lost because they read too slowly",
            self.streams.dropped,
        )


def router_families(stats: RouterStatistics) -> Iterator[Metric]:
    """The router's gauges and counters, from one ``statistics()`` snapshot."""
    yield GaugeMetricFamily(
        "agentvisor_router_connections", "Client connections relayed now", stats.connections
    )
    yield CounterMetricFamily(
        "agentvisor_router_connections_accepted",
        "Client connections routed since agentvisor started",
        stats.accepted,
    )
    traffic = CounterMetricFamily(
        "agentvisor_router_bytes",
        "Bytes relayed; direction in = client to agent, out = agent to client",
        labels=["direction"],
    )
    traffic.add_metric(["in"], stats.bytes_in)
    traffic.add_metric(["out"], stats.bytes_out)
    yield traffic
    messages = CounterMetricFamily(
        "agentvisor_router_messages",
        "WebSocket messages relayed; direction in = client to agent, out = agent to client",
        labels=["direction"],
    )
    messages.add_metric(["in"], stats.messages_in)
    messages.add_metric(["out"], stats.messages_out)
    yield messages
    yield CounterMetricFamily(
        "agentvisor_router_routing_failures",
        "Clients the router could not route: refused by limits, rules or no instance",
        sum(stats.refused.values()),
    )
    refused = CounterMetricFamily(
        "agentvisor_router_refused",
        "Clients refused, by WebSocket close code or HTTP status",
        labels=["code"],
    )
    counts = dict.fromkeys(REFUSAL_CODES, 0) | {str(code): n for code, n in stats.refused.items()}
    for code, count in sorted(counts.items()):
        refused.add_metric([code], count)
    yield refused
    failovers = CounterMetricFamily(
        "agentvisor_router_failovers",
        "Connections moved to another instance after theirs was lost",
        labels=["outcome"],
    )
    failovers.add_metric(["ok"], stats.failovers)
    failovers.add_metric(["failed"], stats.failover_failures)
    yield failovers


def store_families(stats: StoreStatistics) -> Iterator[Metric]:
    """The state store's counters, from one ``statistics()`` snapshot."""
    yield CounterMetricFamily(
        "agentvisor_store_log_lines_written",
        "Worker lines written to the store",
        stats.log_lines_written,
    )
    yield CounterMetricFamily(
        "agentvisor_store_log_lines_sampled_out",
        "Worker lines over their agent's store_log_lines_per_second (kept by the log files only)",
        stats.log_sampled_out,
    )
    yield CounterMetricFamily(
        "agentvisor_store_dropped",
        "Rows the store's queue dropped (full, or the store closed)",
        stats.dropped,
    )
    yield GaugeMetricFamily(
        "agentvisor_store_file_bytes", "state.db plus its WAL on disk", stats.file_bytes
    )


def metrics_blueprint(deps: AdminDeps, streams: StreamCounters) -> Blueprint:
    """``GET /metrics`` over a registry of its own (one per app)."""
    blueprint = Blueprint("metrics", __name__)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentvisorCollector(deps, streams))
    # agentvisor's own process (process_cpu_seconds_total, process_resident_memory_bytes,
    # process_open_fds...), its Python and its garbage collector, as every Python exporter has.
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)

    @blueprint.get("/metrics")
    async def metrics() -> Response:
        # Negotiated like prometheus_client's own server: OpenMetrics when asked for.
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(encode(registry), status=200, content_type=content_type)

    return blueprint
