"""Sessions moved back and forth between two live replicas keep their whole history.

Drains move each client to the other replica and back, while every client
talks without pause: a replica that sees a session again must not answer from
its own stale copy (turns it never saw went on elsewhere) but from the store.
Real agent workers (agentvisor's runtime serving ``tests/agents/ledger.py``),
a real Supervisor and Router, ``websockets`` clients.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import trio

from tests.integration.router.harness import Client
from tests.integration.router.supervised import agent_config, supervised
from tests.integration.supervise.daemonized import LEDGER, answer_text

CLIENTS = 12
DRAINS = 6


async def converse(url: str, name: str, stop: trio.Event, log: dict[str, Any]) -> None:
    """Talk until ``stop``; record the first answer that lacks part of the conversation."""
    ws = await Client.connect(url)
    said: list[str] = []
    session: str | None = None
    rng = random.Random(name)
    wrong = None
    try:
        while not stop.is_set() and wrong is None:
            content = f"{name}-{len(said) + 1}"
            message: dict[str, Any] = {"event": "user.message", "content": content}
            if session is not None:
                message["session_id"] = session
            await ws.send(message)
            said.append(content)
            answer = await ws.event("agent.final_answer", timeout=15)
            session = answer["session_id"]
            seen, _ = answer_text(answer)
            if seen != " | ".join(said):
                wrong = seen
            await trio.sleep(rng.uniform(0, 0.2))
    finally:
        switches = [e["data"] for e in ws.received if e["event"] == "service_switched"]
        log[name] = {"turns": len(said), "wrong": wrong, "switches": switches}
        await ws.close()


async def test_sessions_drained_back_and_forth_keep_their_history(tmp_path: Path) -> None:
    config = agent_config(
        tmp_path / "agentvisor.toml", agent_file=LEDGER, router='default_strategy = "round_robin"'
    )
    log: dict[str, Any] = {}
    async with supervised(config) as stack:
        stop = trio.Event()
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for number in range(CLIENTS):
                    nursery.start_soon(converse, stack.url, f"c{number}", stop, log)
                await stack.wait(lambda: len(stack.router.connections) == CLIENTS)
                for drain in range(DRAINS):
                    instance_id = f"chat:{drain % 2}"
                    instance = stack.instance(instance_id)
                    instance.draining = True
                    await stack.router.drain(instance_id, timeout=5)
                    instance.draining = False
                    await stack.wait(lambda back=instance_id: back in stack.routable())
                stop.set()

    assert {name: entry["wrong"] for name, entry in log.items() if entry["wrong"]} == {}
    switches = [s for entry in log.values() for s in entry["switches"]]
    assert len(switches) >= CLIENTS * 2  # every client moved away and came back at least once
    assert all(s["session_preserved"] for s in switches)
