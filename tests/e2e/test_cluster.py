"""Three agentvisor nodes and one redis-server on this machine behave as one service.

Node ``a`` runs no replica of ``chat`` (a router-only node), ``b`` and ``c``
one each. Clients are the independent ``websockets`` library; what was
stored is checked in Redis itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.e2e.cluster_nodes import Node, ctl, eventually, node_config, up_instances
from tests.redis_server import RedisServer

pytestmark = pytest.mark.timeout(180)


def receive(ws: ClientConnection, event: str, timeout: float = 20.0) -> dict[str, Any]:
    """The next frame that is ``event``, skipping others (thinking, notices)."""
    while True:
        frame: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
        if frame.get("event") == event:
            return frame
        if frame.get("event") in ("error", "agent.error"):
            raise AssertionError(f"got {frame} while waiting for {event}")


def answer(ws: ClientConnection, text: str, session_id: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"event": "user.message", "content": text}
    if session_id is not None:
        message["session_id"] = session_id
    ws.send(json.dumps(message))
    return receive(ws, "agent.final_answer")


@pytest.fixture
def nodes(tmp_path: Path, redis_server: RedisServer) -> Iterator[dict[str, Node]]:
    started: dict[str, Node] = {}
    try:
        for index, (name, replicas) in enumerate((("a", 0), ("b", 1), ("c", 1))):
            directory = tmp_path / name
            directory.mkdir()
            node = Node(name, directory)
            node.config.write_text(node_config(name, redis_server, index, replicas))
            node.start()
            started[name] = node
        for node in started.values():  # every node sees chat running on b and c
            eventually(
                lambda node=node: all(
                    up_instances(node.cluster(), "chat").get(n) for n in ("b", "c")
                ),
                f"node {node.name} to see chat on b and c",
            )
        yield started
    finally:
        for node in started.values():
            if node.process is not None and node.process.poll() is None:
                node.kill()


def routed_instance(ws: ClientConnection) -> str:
    routed = receive(ws, "connection_routed")
    return str(routed["data"]["target_instance"])


def test_every_router_routes_to_every_nodes_instances(nodes: dict[str, Node]) -> None:
    """round_robin on each router reaches its own replica and the other node's."""
    seen: dict[str, set[str]] = {}
    for name, node in nodes.items():
        url = node.router_url()
        for _ in range(4):
            with connect(url, open_timeout=20) as ws:
                instance = routed_instance(ws)
                reply = answer(ws, "hello")
                seen.setdefault(name, set()).add(instance)
                owner = instance.partition("/")[0] if "/" in instance else name
                assert reply["content"] == f"hello @ {owner}/0"
    assert seen["a"] == {"b/chat:0", "c/chat:0"}  # a runs none itself
    assert seen["b"] == {"chat:0", "c/chat:0"}
    assert seen["c"] == {"chat:0", "b/chat:0"}

    shown = ctl(nodes["c"], "status", "--cluster")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "as seen by node c" in lines[0]
    assert [line.split()[:2] for line in lines[2:5]] == [["a", "up"], ["b", "up"], ["c", "*"]]
    listing = json.loads(ctl(nodes["a"], "--json", "status", "--cluster").stdout)
    assert {n["name"]: n["state"] for n in listing["nodes"]} == {"a": "up", "b": "up", "c": "up"}


def test_a_whole_node_killed_mid_conversation_loses_nothing(
    nodes: dict[str, Node], redis_server: RedisServer
) -> None:
    """SIGKILL of the node holding the session (agentvisor and workers): the client stays
    connected to node a's router, is switched to the other node with its whole history."""
    with connect(nodes["a"].router_url(), open_timeout=20) as ws:
        first = routed_instance(ws)
        owner = first.partition("/")[0]
        survivor = "c" if owner == "b" else "b"
        reply = answer(ws, "one")
        session_id = reply["session_id"]
        assert reply["content"] == f"one @ {owner}/0"
        assert answer(ws, "two", session_id)["content"] == f"one | two @ {owner}/0"
        history = redis_server.client().lrange(
            "{agentvisor:sessions:chat:" + session_id + "}:history", 0, -1
        )
        assert [json.loads(m)["content"] for m in history][::2] == ["one", "two"]

        killed = nodes[owner].kill()
        assert not any(psutil.pid_exists(pid) for pid in killed)

        ws.send(json.dumps({"event": "user.message", "content": "three", "session_id": session_id}))
        switched = receive(ws, "service_switched")["data"]
        assert switched["from_instance"] == f"{owner}/chat:0"
        assert switched["to_instance"] == f"{survivor}/chat:0"
        assert switched["session_preserved"] is True
        reply = receive(ws, "agent.final_answer")
        assert reply["content"] == f"one | two | three @ {survivor}/0"
        assert answer(ws, "four", session_id)["content"] == (
            f"one | two | three | four @ {survivor}/0"
        )

    history = redis_server.client().lrange(
        "{agentvisor:sessions:chat:" + session_id + "}:history", 0, -1
    )
    users = [json.loads(m)["content"] for m in history if json.loads(m)["role"] == "user"]
    assert users == ["one", "two", "three", "four"]  # each once
    # The dead node drops out of every survivor's view within node_timeout + a beat.
    for name in ("a", survivor):
        listing = eventually(
            lambda name=name: (
                (view := nodes[name].cluster()) is not None
                and any(n["name"] == owner and n["state"] == "down" for n in view["nodes"])
                and view
            ),
            f"{name} to see {owner} down",
            timeout=10,
        )
        assert up_instances(listing, "chat").keys() == {"a", survivor}
    shown = ctl(nodes["a"], "status", "--cluster")
    assert shown.returncode == 3  # a node shown is not up
    assert any(line.split()[:2] == [owner, "down"] for line in shown.stdout.splitlines())
