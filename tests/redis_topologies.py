"""Redis as production runs it for a cluster: Sentinel-managed, or a Redis Cluster.

Real ``redis-server`` processes (``redis-server --sentinel`` is Sentinel;
Debian's package ships no separate binary), each on its own free port
(``tests.redis_server.free_port``), each stopped by its PID:

- ``running_sentinel``: a master, one replica and one sentinel (quorum 1)
  watching the master as ``mymaster``, with a failure noticed after 0.5 s;
- ``running_redis_cluster``: three masters holding all 16384 slots, made a
  cluster by ``redis-cli --cluster create``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import redis
from attrs import define

from tests.redis_server import RedisServer, free_port, running_redis

MASTER = "mymaster"
READY_TIMEOUT = 20.0


def _until(check: object, what: str, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


@define
class SentinelSetup:
    master: RedisServer
    replica: RedisServer
    sentinel_port: int

    @property
    def urls(self) -> list[str]:
        """``[cluster] redis_url`` for it."""
        return [f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{MASTER}/0"]

    def sentinel(self) -> redis.Redis:
        return redis.Redis(port=self.sentinel_port, decode_responses=True, socket_timeout=5)

    def master_port(self) -> int:
        """The port of the master as the sentinel names it now."""
        reply: Any = self.sentinel().sentinel_get_master_addr_by_name(MASTER)
        return int(reply[1])

    def current_master(self) -> redis.Redis:
        return redis.Redis(port=self.master_port(), decode_responses=True, socket_timeout=5)


def _sentinel_sees_the_replica(sentinel: redis.Redis, replica: RedisServer) -> bool:
    replicas: list[dict[str, Any]] = sentinel.sentinel_slaves(MASTER)
    for fields in replicas:
        if int(fields["port"]) == replica.port:
            return bool(fields["is_slave"]) and not fields["is_sdown"]
    return False


@contextmanager
def running_sentinel(directory: Path) -> Iterator[SentinelSetup]:
    """A master, its replica in sync, and a sentinel that sees both."""
    with ExitStack() as stack:
        master = stack.enter_context(  # a replica syncs at once, not after 5 s
            running_redis(directory / "master", ("--repl-diskless-sync-delay", "0"))
        )
        replica = stack.enter_context(
            running_redis(directory / "replica", ("--replicaof", "127.0.0.1", str(master.port)))
        )
        _until(
            lambda: replica.client().info("replication")["master_link_status"] == "up",
            "the replica to sync",
        )
        port = free_port()
        conf = directory / "sentinel.conf"  # a sentinel rewrites its file: one of its own
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds {MASTER} 500\n"
            f"sentinel failover-timeout {MASTER} 5000\n"
        )
        log = open(directory / "sentinel.log", "ab")  # noqa: SIM115 -- the child holds it
        with log:
            process = subprocess.Popen(
                ["redis-server", str(conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
            )
        stack.callback(_stop, process)
        setup = SentinelSetup(master, replica, port)
        _until(lambda: _sentinel_sees_the_replica(setup.sentinel(), replica), "the sentinel")
        yield setup


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(5)


@define
class ClusterSetup:
    servers: list[RedisServer]

    @property
    def urls(self) -> list[str]:
        """``[cluster] redis_url`` for it: every master as a seed node."""
        return [f"redis://127.0.0.1:{server.port}" for server in self.servers]


@contextmanager
def running_redis_cluster(directory: Path, masters: int = 3) -> Iterator[ClusterSetup]:
    """``masters`` cluster-enabled servers (their bus on a free port too), one cluster."""
    with ExitStack() as stack:
        servers = []
        for index in range(masters):
            options = (
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(free_port()),
                "--cluster-node-timeout",
                "1000",
                "--cluster-config-file",
                "nodes.conf",
            )
            servers.append(stack.enter_context(running_redis(directory / f"n{index}", options)))
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{server.port}" for server in servers),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=READY_TIMEOUT,
        )
        for server in servers:
            _until(
                lambda server=server: server.client().cluster("INFO")["cluster_state"] == "ok",
                f"cluster node {server.port} to be ok",
            )
        yield ClusterSetup(servers)
