"""The sampling round: process trees' CPU and memory, and agent workers' /stats.

Every ``sample_interval`` one pass over /proc (in a thread) samples every live
instance's process tree; instances above ``max_memory_mb`` are restarted with
the reason; then every running agent worker is asked for ``GET /stats``.
httpx is imported by the first round that has an agent worker to ask, not
with the module: the daemon imports this before its first worker starts, and
a daemon of command workers only never needs it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import trio

from agentvisor.events import MetricPoint, MetricsSampled
from agentvisor.supervise.instance import Instance
from agentvisor.supervise.machine import Restart
from agentvisor.supervise.sampling import TreeSampler
from agentvisor.supervise.states import ProcessState

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("agentvisor.monitor")

MiB = 1024 * 1024

#: (instance, its agent's max_memory_mb or None, whether it is an agent worker)
Watched = tuple[Instance, float | None, bool]


class Monitor:
    def __init__(
        self,
        watched: Callable[[], Iterable[Watched]],
        on_memory_restart: Callable[[Instance, str], None],
        publish: Callable[[MetricsSampled], None],
    ) -> None:
        self._watched = watched
        self._on_memory_restart = on_memory_restart
        self._publish = publish
        self._sampler = TreeSampler()
        self._restarts: dict[tuple[str, int], int] = {}

    async def run(self, interval: Callable[[], float]) -> None:
        async with contextlib.AsyncExitStack() as stack:
            http: httpx.AsyncClient | None = None
            while True:
                await trio.sleep(interval())
                await self.sample_now()
                if http is None and any(agent for _, _, agent in self._watched()):
                    import httpx  # usually imported already, in the daemon's background

                    # One client for the daemon's life: creating one loads a CA bundle.
                    client = httpx.AsyncClient(verify=False, trust_env=False, timeout=2.0)
                    http = await stack.enter_async_context(client)
                if http is not None:
                    await self.read_worker_stats(http)
                self._publish(MetricsSampled(self.metric_points(), time.time()))

    def metric_points(self) -> tuple[MetricPoint, ...]:
        """This round's values: cpu, memory, sessions (gauges), restarts (the increase)."""
        points: list[MetricPoint] = []
        seen: dict[tuple[str, int], int] = {}
        for instance, _limit, agent in self._watched():
            key = (instance.service, instance.replica)
            restarts = instance.machine.restarts
            seen[key] = restarts
            increase = restarts - self._restarts.get(key, restarts)
            values: dict[str, float | None] = {"restarts": max(increase, 0)}
            if instance.sample is not None:
                values["cpu"] = instance.sample.cpu_percent
                values["memory"] = instance.sample.rss_bytes
            if agent and instance.worker_stats is not None:
                values["sessions"] = instance.sessions
            points += [
                MetricPoint(instance.service, instance.replica, metric, value)
                for metric, value in values.items()
                if value is not None
            ]
        self._restarts = seen
        return tuple(points)

    async def sample_now(self) -> None:
        """Sample every live instance's process tree; restart those above max_memory_mb."""
        live = {
            instance.pid: (instance, limit)
            for instance, limit, _agent in self._watched()
            if instance.pid is not None
        }
        now = trio.current_time()
        samples = await trio.to_thread.run_sync(self._sampler.sample, list(live), now)
        for pid, sample in samples.items():
            instance, limit = live[pid]
            if instance.pid != pid:
                continue  # it was replaced while the thread sampled
            instance.sample = sample
            over = limit is not None and sample.rss_bytes > limit * MiB
            if over and instance.state is ProcessState.RUNNING:
                assert limit is not None
                message = (
                    f"memory {sample.rss_bytes / MiB:.0f} MiB above max_memory_mb {limit:g}; "
                    "restarting"
                )
                self._on_memory_restart(instance, message)
                # As a failure: a worker over the limit right after each start backs off and
                # goes fatal; one that leaked slowly through a stable run restarts at once.
                # Bound to this process: if it died meanwhile, the event is dropped.
                instance.send_to_process(Restart(message, as_failure=True))

    async def read_worker_stats(self, http: httpx.AsyncClient) -> None:
        """Ask every running agent worker for ``GET /stats`` (sessions, turns), concurrently."""
        async with trio.open_nursery() as nursery:
            for instance, _limit, agent in self._watched():
                if agent and instance.state is ProcessState.RUNNING and instance.port:
                    nursery.start_soon(_read_stats, http, instance)


async def _read_stats(http: httpx.AsyncClient, instance: Instance) -> None:
    import httpx

    url = f"http://{instance.host}:{instance.port}/stats"
    try:
        response = await http.get(url)
        stats = response.raise_for_status().json()
        active = int(stats["sessions"]["active"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
        log.debug("%s:%d stats unavailable: %s", instance.service, instance.replica, error)
        return
    instance.worker_stats, instance.sessions = stats, active
