"""Three agentvisor nodes and one redis-server on this machine behave as one service.

Node ``a`` runs no replica of ``chat`` (a router-only node), ``b`` and ``c``
one each. Clients are the independent ``websockets`` library; what was
stored is checked in Redis itself.
"""

from __future__ import annotations

import contextlib
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


def stored_user_messages(redis_server: RedisServer, session_id: str) -> list[str]:
    key = "{agentvisor:sessions:chat:" + session_id + "}:history"
    messages = [json.loads(m) for m in redis_server.client().lrange(key, 0, -1)]
    return [m["content"] for m in messages if m.get("role") == "user"]


def test_a_whole_node_killed_mid_conversation_loses_nothing(
    nodes: dict[str, Node], redis_server: RedisServer
) -> None:
    """Six clients on node a's router, their sessions on b and c. The node serving the
    first is SIGKILLed whole (agentvisor, workers, guard) while each of its clients has a
    turn in flight: every client stays connected, is switched to the other node with
    ``session_preserved`` and gets the answer with its whole history; Redis holds every
    user message once."""
    url = nodes["a"].router_url()
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(connect(url, open_timeout=20)) for _ in range(6)]
        owners, sessions = [], []
        for index, ws in enumerate(clients):
            owner = routed_instance(ws).partition("/")[0]
            reply = answer(ws, f"one-{index}")
            assert reply["content"] == f"one-{index} @ {owner}/0"
            session_id = reply["session_id"]
            reply = answer(ws, f"two-{index}", session_id)
            assert reply["content"] == f"one-{index} | two-{index} @ {owner}/0"
            owners.append(owner)
            sessions.append(session_id)
        victim = owners[0]
        survivor = "c" if victim == "b" else "b"
        assert {"b", "c"} == set(owners)  # round robin spread them
        assert stored_user_messages(redis_server, sessions[0]) == ["one-0", "two-0"]
        doomed = [i for i, owner in enumerate(owners) if owner == victim]
        for index in doomed:  # a turn in flight on each of the victim's sessions
            message = {"event": "user.message", "content": f"slow:1:three-{index}"}
            clients[index].send(json.dumps({**message, "session_id": sessions[index]}))
        for index in doomed:
            receive(clients[index], "agent.thinking")

        killed = nodes[victim].kill()
        assert not any(psutil.pid_exists(pid) for pid in killed)

        for index, ws in enumerate(clients):
            said = f"one-{index} | two-{index}"
            if index in doomed:
                switched = receive(ws, "service_switched")["data"]
                assert switched["from_instance"] == f"{victim}/chat:0"
                assert switched["to_instance"] == f"{survivor}/chat:0"
                assert switched["session_preserved"] is True
                reply = receive(ws, "agent.final_answer")
                assert reply["content"] == f"{said} | slow:1:three-{index} @ {survivor}/0"
                said += f" | slow:1:three-{index}"
            reply = answer(ws, f"four-{index}", sessions[index])
            owner = survivor if index in doomed else owners[index]
            assert reply["content"] == f"{said} | four-{index} @ {owner}/0"
    for index, session_id in enumerate(sessions):  # each message stored once, in order
        expected = [f"one-{index}", f"two-{index}", f"four-{index}"]
        if index in doomed:
            expected.insert(2, f"slow:1:three-{index}")
        assert stored_user_messages(redis_server, session_id) == expected
    # The dead node drops out of every survivor's view within node_timeout + a beat.
    for name in ("a", survivor):
        listing = eventually(
            lambda name=name: (
                (view := nodes[name].cluster()) is not None
                and any(n["name"] == victim and n["state"] == "down" for n in view["nodes"])
                and view
            ),
            f"{name} to see {victim} down",
            timeout=10,
        )
        assert up_instances(listing, "chat").keys() == {"a", survivor}
    shown = ctl(nodes["a"], "status", "--cluster")
    assert shown.returncode == 3  # a node shown is not up
    assert any(line.split()[:2] == [victim, "down"] for line in shown.stdout.splitlines())


@pytest.fixture
def pair(tmp_path: Path, redis_server: RedisServer) -> Iterator[dict[str, Node]]:
    """Nodes a and b, one replica of chat each, a config lock lease of 1 s."""
    started: dict[str, Node] = {}
    try:
        for index, name in enumerate(("a", "b")):
            directory = tmp_path / name
            directory.mkdir()
            node = Node(name, directory)
            text = node_config(name, redis_server, index, 1)
            node.config.write_text(
                text.replace("node_timeout = 2.0", "node_timeout = 2.0\nlock_timeout = 1.0")
            )
            node.start()
            started[name] = node
        for node in started.values():
            eventually(
                lambda node=node: all(up_instances(node.cluster(), "chat").get(n) for n in "ab"),
                f"node {node.name} to see chat on a and b",
            )
        yield started
    finally:
        for node in started.values():
            if node.process is not None and node.process.poll() is None:
                node.kill()


def test_config_edits_take_the_cluster_lock_and_redis_restarts_are_survived(
    pair: dict[str, Node], redis_server: RedisServer
) -> None:
    a, b = pair["a"], pair["b"]
    router = a.router_url()
    lock = "{agentvisor}:lock:config"
    before = a.config.read_text()
    redis_server.client().set(lock, "0123abcd 41 z", px=60_000)  # node z is editing

    status, body = a.api("/api/v1/services/chat/config", "PUT", {"description": "from a"})

    assert status == 409
    assert body["error"]["code"] == "CONFIG_LOCKED"
    assert "node z holds the cluster's config edit lock (fence 41)" in body["error"]["message"]
    assert a.config.read_text() == before  # nothing written
    redis_server.client().delete(lock)
    for node in (a, b):  # each takes the lock in turn; the fence counter goes on
        status, body = node.api("/api/v1/services/chat/config", "PUT", {"description": node.name})
        assert status == 200, body
        assert f'description = "{node.name}"' in node.config.read_text()
    assert redis_server.client().get(lock + ":written") == "2"

    # Redis dies and comes back empty: both nodes keep running, log it, re-publish.
    redis_server.stop()
    for node in (a, b):
        eventually(lambda node=node: "cannot reach Redis" in node.log(), f"{node.name}'s log")
    with connect(router, open_timeout=20) as ws:  # a's router still serves
        instance = routed_instance(ws)
        owner = instance.partition("/")[0] if "/" in instance else "a"
        assert answer(ws, "meanwhile")["content"] == f"meanwhile @ {owner}/0"
    redis_server.start()
    for node in (a, b):
        eventually(
            lambda node=node: "is reachable again" in node.log() or "re-published" in node.log(),
            f"{node.name} to re-publish",
        )
        eventually(
            lambda node=node: all(up_instances(node.cluster(), "chat").get(n) for n in "ab"),
            f"{node.name} to see both nodes again",
        )
    for node in (a, b):
        assert node.process is not None
        assert node.process.poll() is None
    for line in a.log().splitlines():
        assert "Traceback" not in line


def test_redis_unreachable_at_start_runs_the_node_alone_and_says_so(tmp_path: Path) -> None:
    """A node whose Redis is down at start serves its own agents, says so, and joins later."""
    node = Node("solo", tmp_path)
    dead = RedisServer(port=1, directory=tmp_path)  # nothing listens on port 1
    node.config.write_text(node_config("solo", dead, 3, 1))
    node.start()
    try:
        listing = eventually(
            lambda: (view := node.cluster()) is not None and view["nodes"] == [] and view,
            "the cluster API of a node without Redis",
        )
        assert listing["redis"]["reachable"] is False
        assert "refused" in listing["redis"]["last_error"]
        eventually(lambda: "chat:0 running" in node.log(), "chat to run")
        assert "cannot reach Redis at redis://127.0.0.1:1/0" in node.log()
        assert "keeps serving and routing to its own instances" in node.log()
        shown = ctl(node, "status", "--cluster")
        assert shown.returncode == 3
        assert "unreachable" in shown.stdout
    finally:
        node.kill()
