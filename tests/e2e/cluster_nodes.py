"""Several ``agentvisor run`` nodes on one machine sharing the test's own redis-server.

Each node has its own directory (config, state_dir, admin socket), a router
on port 0 and its own port range; the cluster API on its admin socket tells
where every node's router listens. ``kill`` SIGKILLs a whole node: its
agentvisor and every process under it (workers and the guard), all at once.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
from attrs import define, field

from tests.e2e.test_daemon import eventually as daemon_eventually
from tests.redis_server import RedisServer

AGENTS = Path(__file__).resolve().parents[1] / "agents"
BIN = Path(sys.executable).parent
DEADLINE = 60.0  # a loaded 2-core machine takes 20 s to import agentvisor three times


#: Poll a fact held by another process until it is true, within this file's deadline.
eventually = functools.partial(daemon_eventually, timeout=DEADLINE)


def node_config(
    name: str, redis: RedisServer | list[str], index: int, replicas: int, *, extra: str = ""
) -> str:
    """A node's config; ``redis`` is the test's server or ``[cluster] redis_url``'s list."""
    url = json.dumps(redis.url if isinstance(redis, RedisServer) else redis)
    low = 31000 + 1000 * index
    ledger = json.dumps(str(AGENTS / "ledger.py"))
    return f"""
[supervisor]
state_dir = "state"
port_range = [{low}, {low + 999}]

[admin]
bind = ["unix:state/admin.sock"]

[router]
bind = ["127.0.0.1:0"]
default_strategy = "round_robin"

[cluster]
redis_url = {url}
node_name = "{name}"
advertise_host = "127.0.0.1"
heartbeat_interval = 0.2
node_timeout = 2.0

[agents.chat]
agent = {ledger}
replicas = {replicas}
startsecs = 0.2
stopwaitsecs = 2
{extra}
"""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("node", timeout=10)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


@define
class Node:
    name: str
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    output: Any = field(default=None)

    @property
    def config(self) -> Path:
        return self.directory / "agentvisor.toml"

    def start(self) -> None:
        self.output = open(self.directory / "agentvisor.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(BIN / "agentvisor"), "run", "-c", str(self.config)],
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return (self.directory / "agentvisor.log").read_text(errors="replace")

    def api(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        """One request on the node's admin socket: the status and the decoded JSON."""
        connection = _UnixConnection(str(self.directory / "state" / "admin.sock"))
        try:
            payload = None if body is None else json.dumps(body)
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def cluster(self) -> dict[str, Any] | None:
        try:
            status, answer = self.api("/api/v1/cluster/nodes")
        except OSError:  # not listening yet
            return None
        if status != 200:
            return None
        data: dict[str, Any] = answer["data"]
        return data

    def router_url(self) -> str:
        def published() -> list[str]:  # the router listens after the instances are up
            listing = self.cluster()
            own = [n for n in (listing or {"nodes": []})["nodes"] if n["self"]]
            return list(own[0]["router"]) if own else []

        routers = eventually(published, f"{self.name}'s router in its cluster API")
        return str(routers[0]).rstrip("/") + "/ws"

    def stop(self) -> None:
        """SIGTERM and wait (a clean stop), SIGKILL past the deadline."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()

    def kill(self) -> list[int]:
        """SIGKILL agentvisor and everything under it at once; the pids killed."""
        assert self.process is not None
        root = psutil.Process(self.process.pid)
        victims = [root, *root.children(recursive=True)]
        for victim in victims:
            try:
                os.kill(victim.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(DEADLINE)
        psutil.wait_procs(victims[1:], timeout=DEADLINE)
        self._close()
        return [victim.pid for victim in victims]

    def _close(self) -> None:
        if self.output is not None:
            self.output.close()
            self.output = None


def up_instances(listing: dict[str, Any] | None, agent: str) -> dict[str, list[dict[str, Any]]]:
    """Per up node, its routable running instances of ``agent``."""
    if listing is None:
        return {}
    found: dict[str, list[dict[str, Any]]] = {}
    for node in listing["nodes"]:
        if node["state"] != "up":
            continue
        found[node["name"]] = [
            instance
            for instance in node["instances"]
            if instance["agent"] == agent
            and instance["routable"]
            and instance["state"] == "running"
        ]
    return found


def ctl(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "agentvisorctl"), "-c", str(node.config), *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
