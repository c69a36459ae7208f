"""The cluster on a Sentinel-managed Redis and on a Redis Cluster, all real processes.

Sentinel: the master is SIGKILLed and the sentinel promotes its replica; the
node logs the loss and the recovery, stays up, and the conversation goes on
with its whole history, now in the new master. Redis Cluster: the registry
and the sessions live on three masters; a node killed whole loses no session.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
from websockets.sync.client import connect

from tests.e2e.cluster_nodes import Node, eventually, node_config, up_instances
from tests.e2e.test_cluster import answer, receive, routed_instance
from tests.redis_topologies import (
    ClusterSetup,
    SentinelSetup,
    running_redis_cluster,
    running_sentinel,
)

pytestmark = pytest.mark.timeout(180)


def user_messages(client: Any, session_id: str) -> list[str]:
    key = "{agentvisor:sessions:chat:" + session_id + "}:history"
    return [m["content"] for m in map(json.loads, client.lrange(key, 0, -1)) if m["role"] == "user"]


def started(tmp_path: Path, names_replicas: list[tuple[str, int]], urls: list[str]) -> list[Node]:
    nodes = []
    for index, (name, replicas) in enumerate(names_replicas):
        directory = tmp_path / name
        directory.mkdir()
        node = Node(name, directory)
        node.config.write_text(node_config(name, urls, index, replicas))
        node.start()
        nodes.append(node)
    return nodes


def killed_all(nodes: list[Node]) -> None:
    for node in nodes:
        if node.process is not None and node.process.poll() is None:
            node.kill()


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[SentinelSetup]:
    with running_sentinel(tmp_path / "redis") as setup:
        yield setup


def test_a_sentinel_failover_is_followed_and_the_conversation_goes_on(
    tmp_path: Path, sentinel: SentinelSetup
) -> None:
    (node,) = nodes = started(tmp_path, [("s", 2)], sentinel.urls)
    with ExitStack() as stack:
        stack.callback(killed_all, nodes)
        listing = eventually(
            lambda: len(up_instances(node.cluster(), "chat").get("s", [])) == 2 and node.cluster(),
            "node s to publish two replicas of chat",
        )
        assert listing["redis"]["target"] == f"sentinel {sentinel.urls[0]}"
        assert sentinel.master.client().hexists("{agentvisor}:nodes", "s")
        ws = stack.enter_context(connect(node.router_url(), open_timeout=20))
        first = routed_instance(ws)
        reply = answer(ws, "one")
        session_id = reply["session_id"]
        assert answer(ws, "two", session_id)["content"].startswith("one | two @ s/")
        master = sentinel.master.client()
        assert user_messages(master, session_id) == ["one", "two"]
        assert master.wait(1, 5000) == 1  # the replica has it all

        sentinel.master.stop()  # SIGKILL: the sentinel promotes the replica
        eventually(lambda: sentinel.master_port() == sentinel.replica.port, "the failover")
        eventually(lambda: "cannot reach Redis" in node.log(), "the node to log the loss")
        eventually(lambda: "is reachable again" in node.log(), "the node to log the recovery")
        new_master = sentinel.current_master()
        eventually(lambda: new_master.hexists("{agentvisor}:nodes", "s"), "s re-published")

        # The worker saves to the new master; a replica that loads the session reads it there.
        assert answer(ws, "three", session_id)["content"].startswith("one | two | three @")
        assert user_messages(new_master, session_id) == ["one", "two", "three"]
        pid = next(i["pid"] for i in up_instances(node.cluster(), "chat")["s"] if i["id"] == first)
        ws.send(
            json.dumps(
                {"event": "user.message", "content": "slow:1:four", "session_id": session_id}
            )
        )
        receive(ws, "agent.thinking")
        os.kill(pid, signal.SIGKILL)
        switched = receive(ws, "service_switched")["data"]
        assert switched["from_instance"] == first
        assert switched["session_preserved"] is True
        reply = receive(ws, "agent.final_answer")
        assert reply["content"].startswith("one | two | three | slow:1:four @ s/")
        assert user_messages(new_master, session_id) == ["one", "two", "three", "slow:1:four"]
        assert node.process is not None
        assert node.process.poll() is None
        assert "Traceback" not in node.log()


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[ClusterSetup]:
    with running_redis_cluster(tmp_path / "redis") as setup:
        yield setup


def test_on_a_redis_cluster_a_node_killed_whole_loses_no_session(
    tmp_path: Path, redis_cluster: ClusterSetup
) -> None:
    a, b = nodes = started(tmp_path, [("a", 1), ("b", 1)], redis_cluster.urls)
    with ExitStack() as stack:
        stack.callback(killed_all, nodes)
        for node in nodes:
            eventually(
                lambda node=node: all(up_instances(node.cluster(), "chat").get(n) for n in "ab"),
                f"node {node.name} to see chat on a and b",
            )
        url = a.router_url()
        while True:  # round robin: a's own replica, then b's
            ws = stack.enter_context(connect(url, open_timeout=20))
            if routed_instance(ws) == "b/chat:0":
                break
        reply = answer(ws, "one")
        session_id = reply["session_id"]
        assert answer(ws, "two", session_id)["content"] == "one | two @ b/0"
        seed: Any = redis.cluster.ClusterNode  # untyped in redis-py
        seeds = [seed("127.0.0.1", s.port) for s in redis_cluster.servers]
        store = redis.cluster.RedisCluster(startup_nodes=seeds, decode_responses=True)
        stack.callback(store.close)
        assert user_messages(store, session_id) == ["one", "two"]

        ws.send(
            json.dumps(
                {"event": "user.message", "content": "slow:1:three", "session_id": session_id}
            )
        )
        receive(ws, "agent.thinking")
        b.kill()
        switched = receive(ws, "service_switched")["data"]
        assert (switched["from_instance"], switched["to_instance"]) == ("b/chat:0", "chat:0")
        assert switched["session_preserved"] is True
        assert receive(ws, "agent.final_answer")["content"] == "one | two | slow:1:three @ a/0"
        assert user_messages(store, session_id) == ["one", "two", "slow:1:three"]
        eventually(
            lambda: any(
                n["name"] == "b" and n["state"] == "down"
                for n in (a.cluster() or {"nodes": []})["nodes"]
            ),
            "a to see b down",
            timeout=10,
        )
