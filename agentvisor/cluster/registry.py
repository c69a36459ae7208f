"""The node's side of the registry: publish its instances, read everyone's, each heartbeat.

Every ``heartbeat_interval`` one Lua script writes this node's record and
heartbeat (Redis's ``TIME``) and returns every node's, with Redis's ``now``;
``membership`` decides who is up. The router reads ``remote_endpoints()``
(the last read, computed once per read). Redis commands run in a worker
thread through redis-py's synchronous client (see ``worker.redis_client``).

Redis unreachable (at start or later) is a degraded mode, not a failure:
the node keeps serving and routing to its own instances, logs the loss once
and the recovery once, and keeps beating; other nodes' instances are used
until ``node_timeout`` after the last good read, then dropped. A Redis that
came back empty (restarted without persistence) gets every node's record
again at its next beat; the node logs that it re-published.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from agentvisor.cluster.lock import ConfigLock
from agentvisor.cluster.membership import (
    FORGET_AFTER,
    ClusterSnapshot,
    NodeRecord,
    PublishedAgent,
    PublishedInstance,
    advertised_host,
    encode_record,
    forgotten,
    read_snapshot,
    remote_endpoints,
)
from agentvisor.config.model import ClusterConfig, Config
from agentvisor.config.redis_target import parse_redis_target
from agentvisor.supervise.registry import Endpoint, ServiceView
from agentvisor.supervise.spec import node_name
from agentvisor.worker.redis_client import open_redis, redis_errors

if TYPE_CHECKING:
    import redis

    from agentvisor.supervise.supervisor import Supervisor

log = logging.getLogger("agentvisor.cluster")

#: The bound on leaving the registry at shutdown.
LEAVE_TIMEOUT = 2.0

_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local had = redis.call('HEXISTS', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[1], string.format('%.6f', now))
end
for i = 4, #ARGV do
  local beat = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0')
  if now - beat > tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
  end
end
return {string.format('%.6f', now), had, redis.call('HGETALL', KEYS[1]),
        redis.call('HGETALL', KEYS[2])}
"""


def registry_keys(key_prefix: str) -> tuple[str, str]:
    """The records hash and the heartbeats hash (one Redis Cluster slot: the braces)."""
    tag = "{" + key_prefix + "}"
    return f"{tag}:nodes", f"{tag}:heartbeats"


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class ClusterView:
    """The router's endpoint source in a cluster: this node's instances, then the others'."""

    def __init__(self, supervisor: Supervisor, registry: ClusterRegistry) -> None:
        self._supervisor = supervisor
        self._registry = registry

    @property
    def config(self) -> Config:
        return self._supervisor.config

    def endpoints(self) -> list[Endpoint]:
        return [*self._supervisor.endpoints(), *self._registry.remote_endpoints()]


class ClusterRegistry:
    def __init__(self, cluster: ClusterConfig, supervisor: Supervisor, *, version: str) -> None:
        self.cluster = cluster
        self.node = node_name(cluster)
        self.target = parse_redis_target(cluster.redis_url)
        self.supervisor = supervisor
        self.version = version
        self.started_at = time.time()
        self.host_name = socket.gethostname()
        #: Set by the daemon once they listen.
        self.router_binds: tuple[str, ...] = ()
        self.admin_binds: tuple[str, ...] = ()
        #: The node's router's clients per local instance id (set by the daemon).
        self.connections: Callable[[str], int] = lambda _instance_id: 0
        self.snapshot: ClusterSnapshot | None = None
        self.reachable: bool | None = None  # None: not tried yet
        self.last_error = ""
        self.beats = 0
        self.failures = 0
        self._read_at: float | None = None  # trio clock of the last good read
        self._down_since: float | None = None
        self._remote: list[Endpoint] = []
        self._client: redis.Redis = open_redis(self.target)  # connects on first use
        self._errors = redis_errors()
        self.config_lock = ConfigLock(
            self._client, cluster.key_prefix, self.node, cluster.lock_timeout
        )
        self._left = False

    # -- what the router and the API read -----------------------------------------------

    def remote_endpoints(self) -> list[Endpoint]:
        """Other up nodes' instances, from a read no older than ``node_timeout``."""
        if self._read_at is None:
            return []
        if trio.current_time() - self._read_at > self.cluster.node_timeout:
            return []  # Redis unreachable that long: nothing says those nodes are alive
        return self._remote

    def read_age(self) -> float | None:
        """Seconds since the last good read of the registry."""
        return None if self._read_at is None else trio.current_time() - self._read_at

    # -- running ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Beat once (a failure is logged, not raised), report started, beat until cancelled."""
        try:
            await self.beat()
            task_status.started()
            while True:
                await trio.sleep(self.cluster.heartbeat_interval)
                await self.beat()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(LEAVE_TIMEOUT):
                await self.leave()
            self._client.close()

    async def leave(self) -> None:
        """Take this node out of the registry now and stop publishing it (a clean stop)."""
        if self._left:
            return
        self._left = True
        await trio.to_thread.run_sync(self._leave, abandon_on_cancel=True)

    def _leave(self) -> None:
        """Take this node out of the registry at a clean shutdown (a kill leaves it to expire)."""
        records, heartbeats = registry_keys(self.cluster.key_prefix)
        try:
            self._client.hdel(records, self.node)
            self._client.hdel(heartbeats, self.node)
        except self._errors as error:
            log.warning("cluster: could not leave the registry in Redis: %s", error)

    async def beat(self) -> None:
        """Publish this node and read the others; log a change of Redis's reachability."""
        text = "" if self._left else encode_record(self.record())
        forget = [] if self.snapshot is None else forgotten(self.snapshot)
        try:
            reply = await trio.to_thread.run_sync(
                self._beat_sync, text, forget, abandon_on_cancel=True
            )
        except self._errors as error:
            self._failed(error)
            return
        now_text, had, records, heartbeats = reply
        snapshot = read_snapshot(
            _pairs(records), _pairs(heartbeats), float(now_text), self.cluster.node_timeout
        )
        self.snapshot = snapshot
        self._remote = remote_endpoints(snapshot, self.node)
        self._read_at = trio.current_time()
        self.beats += 1
        if self.reachable is False and self._down_since is not None:
            log.warning(
                "cluster: Redis at %s is reachable again after %.1f s; node %s re-published "
                "%d instances, %d nodes up",
                self.target.describe(),
                trio.current_time() - self._down_since,
                self.node,
                len(self.supervisor.endpoints()),
                len(snapshot.up()),
            )
        elif not had and self.beats > 1 and not self._left:
            log.warning(
                "cluster: the registry in Redis had lost node %s (Redis restarted or flushed); "
                "re-published its %d instances",
                self.node,
                len(self.supervisor.endpoints()),
            )
        elif self.reachable is None:
            log.info(
                "cluster: node %s joined through Redis at %s; %d nodes up",
                self.node,
                self.target.describe(),
                len(snapshot.up()),
            )
        self.reachable = True
        self._down_since = None

    def _beat_sync(self, text: str, forget: list[str]) -> Any:
        records, heartbeats = registry_keys(self.cluster.key_prefix)
        return self._client.eval(
            _BEAT, 2, records, heartbeats, self.node, text, repr(FORGET_AFTER), *forget
        )

    def _failed(self, error: BaseException) -> None:
        self.failures += 1
        self.last_error = str(error)
        if self.reachable is not False:
            self._down_since = trio.current_time()
            log.error(
                "cluster: cannot reach Redis at %s (%s); node %s keeps serving and routing to "
                "its own instances, and retries every %g s",
                self.target.describe(),
                error,
                self.node,
                self.cluster.heartbeat_interval,
            )
        self.reachable = False

    # -- what this node publishes ---------------------------------------------------------

    def record(self) -> NodeRecord:
        views = self.supervisor.services()
        found = {
            f"{view.name}:{instance.replica}": instance
            for view in views
            for instance in view.instances
        }
        instances = []
        for endpoint in self.supervisor.endpoints():
            view = found.get(endpoint.instance_id)
            instances.append(
                PublishedInstance(
                    id=endpoint.instance_id,
                    agent=endpoint.service,
                    replica=endpoint.replica,
                    host=advertised_host(
                        endpoint.host, self.cluster.advertise_host, self.host_name
                    ),
                    port=endpoint.port,
                    ws_path=endpoint.ws_path,
                    state=view.state if view is not None else "unknown",
                    health=view.health.status if view is not None else "unknown",
                    routable=endpoint.routable,
                    draining=endpoint.draining,
                    weight=endpoint.weight,
                    max_sessions=endpoint.max_sessions,
                    sessions=endpoint.sessions,
                    connections=self.connections(endpoint.instance_id),
                    tags=endpoint.tags,
                    pid=view.pid if view is not None else None,
                    cpu_percent=view.cpu_percent if view is not None else None,
                    memory_bytes=view.memory_bytes if view is not None else None,
                )
            )
        return NodeRecord(
            node=self.node,
            version=self.version,
            pid=os.getpid(),
            started_at=self.started_at,
            router=self.router_binds,
            admin=self.admin_binds,
            agents=tuple(_published_agent(view) for view in views),
            instances=tuple(instances),
        )


def _published_agent(view: ServiceView) -> PublishedAgent:
    return PublishedAgent(
        name=view.name,
        kind=view.kind,
        state=view.state,
        desired=view.desired_replicas,
        running=view.running,
        description=view.description,
        tags=view.tags,
    )
