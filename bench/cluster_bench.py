"""Cluster benchmark: relay to another node's worker vs to the router's own, and failover time.

    .venv/bin/python bench/cluster_bench.py                 # 3 rounds x 5 s, 3 node kills
    .venv/bin/python bench/cluster_bench.py --quick         # 1 round x 2 s, 1 kill

Runs its own redis-server (tests/redis_server.py) and agentvisor nodes on
this machine, in a temporary directory, routers on port 0.

1. **Relay**: nodes ``a`` and ``b``; agent ``here`` (an echo ``command =``
   worker) runs on ``a``, agent ``there`` on ``b``. ``--connections``
   clients on ``a``'s router do round trips for ``--seconds`` to ``here``
   (same node) and to ``there`` (across nodes), alternating A B A B; the
   table gives messages/s and p50/p99 round trip per side, medians of the
   rounds, and the ratio.
2. **Failover after a node's death**: nodes ``a`` (no replica), ``b``, ``c``
   with the ledger agent and the default ``heartbeat_interval`` (1 s) and
   ``node_timeout`` (5 s). A client on ``a``'s router holds a conversation;
   the node serving it is SIGKILLed whole; the time from the kill to the
   answer of the next message (served on the other node, history intact) and
   to ``a``'s listing showing the node down. The killed node is started again
   before the next kill.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect as async_connect
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.cluster_nodes import Node, eventually, node_config, up_instances  # noqa: E402
from tests.redis_server import RedisServer, running_redis  # noqa: E402

ECHO = json.dumps(str(ROOT / "examples" / "ws_echo_server.py"))


def relay_config(name: str, redis: RedisServer, index: int) -> str:
    text = node_config(name, redis, index, 0)
    here, there = (1, 0) if name == "a" else (0, 1)
    for agent, replicas in (("here", here), ("there", there)):
        text += f"""
[agents.{agent}]
command = ["python3", {ECHO}, "--port", "{{port}}"]
replicas = {replicas}
startsecs = 0.2
"""
    return text


def start(base: Path, specs: list[tuple[str, str]]) -> dict[str, Node]:
    nodes = {}
    for name, text in specs:
        directory = base / name
        directory.mkdir()
        node = Node(name, directory)
        node.config.write_text(text)
        node.start()
        nodes[name] = node
    return nodes


async def _client(url: str, until: float, latencies: list[float]) -> int:
    count = 0
    async with async_connect(url, open_timeout=30, max_size=None) as ws:
        while time.monotonic() < until:
            sent = time.perf_counter()
            await ws.send("x" * 64)
            await ws.recv()
            latencies.append(time.perf_counter() - sent)
            count += 1
    return count


async def _load(url: str, connections: int, seconds: float) -> tuple[float, float, float]:
    latencies: list[float] = []
    until = time.monotonic() + seconds
    started = time.monotonic()
    counts = await asyncio.gather(*(_client(url, until, latencies) for _ in range(connections)))
    elapsed = time.monotonic() - started
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return sum(counts) / elapsed, p50, p99


def relay(base: Path, redis: RedisServer, rounds: int, seconds: float, connections: int) -> None:
    nodes = start(base, [(n, relay_config(n, redis, i)) for i, n in enumerate(("a", "b"))])
    try:
        for agent, owner in (("here", "a"), ("there", "b")):
            eventually(
                lambda agent=agent, owner=owner: up_instances(nodes["a"].cluster(), agent).get(
                    owner
                ),
                f"{agent} on {owner}",
                timeout=60,
            )
        router = nodes["a"].router_url()
        results: dict[str, list[tuple[float, float, float]]] = {"here": [], "there": []}
        for _ in range(rounds):
            for agent in ("here", "there"):
                results[agent].append(
                    asyncio.run(_load(f"{router}?service={agent}", connections, seconds))
                )
        print(
            f"\nRelay through node a's router, {connections} connections, {seconds:g} s x {rounds}"
        )
        print(f"{'target':<28}{'msgs/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
        medians = {}
        for agent, label in (("here", "same node (a → a)"), ("there", "across nodes (a → b)")):
            rate, p50, p99 = (statistics.median(r[k] for r in results[agent]) for k in range(3))
            medians[agent] = (rate, p99)
            print(f"{label:<28}{rate:>10.0f}{p50:>10.2f}{p99:>10.2f}")
        print(
            f"across / same: msgs/s x{medians['there'][0] / medians['here'][0]:.2f}, "
            f"p99 x{medians['there'][1] / medians['here'][1]:.2f}"
        )
    finally:
        for node in nodes.values():
            node.kill()


def _receive(ws: object, event: str) -> dict[str, object]:
    while True:
        frame: dict[str, object] = json.loads(ws.recv(timeout=60))  # type: ignore[attr-defined]
        if frame.get("event") == event:
            return frame


def failover(base: Path, redis: RedisServer, kills: int) -> None:
    def config(name: str, index: int, replicas: int) -> str:
        text = node_config(name, redis, index, replicas)
        return text.replace("heartbeat_interval = 0.2\nnode_timeout = 2.0\n", "")

    specs = [("a", 0), ("b", 1), ("c", 1)]
    nodes = start(base, [(n, config(n, i, r)) for i, (n, r) in enumerate(specs)])
    served: list[float] = []
    dropped: list[float] = []
    try:
        for _ in range(kills):
            for node in nodes.values():
                eventually(
                    lambda node=node: all(
                        up_instances(node.cluster(), "chat").get(n) for n in ("b", "c")
                    ),
                    f"{node.name} to see chat on b and c",
                    timeout=90,
                )
            with connect(nodes["a"].router_url(), open_timeout=30) as ws:
                routed = _receive(ws, "connection_routed")["data"]
                owner = str(routed["target_instance"]).partition("/")[0]  # type: ignore[index]
                ws.send(json.dumps({"event": "user.message", "content": "one"}))
                session = _receive(ws, "agent.final_answer")["session_id"]
                killed_at = time.monotonic()
                nodes[owner].kill()
                message = {"event": "user.message", "content": "two", "session_id": session}
                ws.send(json.dumps(message))
                reply = _receive(ws, "agent.final_answer")
                served.append(time.monotonic() - killed_at)
                assert str(reply["content"]).startswith("one | two @ "), reply
            eventually(
                lambda owner=owner: any(
                    n["name"] == owner and n["state"] == "down"
                    for n in (nodes["a"].cluster() or {"nodes": []})["nodes"]
                ),
                f"{owner} down",
            )
            dropped.append(time.monotonic() - killed_at)
            nodes[owner].start()  # back for the next round
    finally:
        for node in nodes.values():
            if node.process is not None and node.process.poll() is None:
                node.kill()
    print(
        f"\nNode death → sessions served elsewhere ({kills} kills, default heartbeat 1 s, "
        "node_timeout 5 s)"
    )
    print(f"{'':<40}{'median s':>10}{'max s':>10}")
    print(
        f"{'kill → next answer (other node)':<40}{statistics.median(served):>10.2f}"
        f"{max(served):>10.2f}"
    )
    print(
        f"{'kill → node down in the listing':<40}{statistics.median(dropped):>10.2f}"
        f"{max(dropped):>10.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s, 1 kill")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.kills = 1, 2.0, 1
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as temp:
        base = Path(temp)
        with running_redis(base / "redis") as redis:
            (base / "relay").mkdir()
            relay(base / "relay", redis, args.rounds, args.seconds, args.connections)
            redis.client().flushall()
            (base / "failover").mkdir()
            failover(base / "failover", redis, args.kills)
    return 0


if __name__ == "__main__":
    sys.exit(main())
