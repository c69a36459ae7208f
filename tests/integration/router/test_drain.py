"""Drain: a rolling restart of a 2-replica agent under live conversations loses nothing.

The supervisor's side of a rolling restart is emulated here as the lead's
supervisor will do it: mark the instance draining, ``Router.drain`` it, stop
it (SIGTERM; ``autorestart = "always"`` brings it back), wait until it is
routable again, next replica.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import trio

from tests.integration.router.harness import client
from tests.integration.router.supervised import DEADLINE, Supervised, agent_config, supervised


async def converse(url: str, name: str, stop: trio.Event, log: dict[str, Any]) -> None:
    """Talk until ``stop``; every answer must carry the whole history so far."""
    async with client(url) as ws:
        history: list[str] = []
        session = None
        turn = 0
        while not stop.is_set() or turn < 3:
            content = f"{name}-{turn}"
            answer = await ws.ask(content, session)
            session = answer["session_id"]
            history.append(content)
            assert answer["content"] == " | ".join(history), (name, answer)
            turn += 1
            await trio.sleep(0.02)
        log[name] = {
            "turns": turn,
            "switches": [e["data"] for e in ws.received if e["event"] == "service_switched"],
        }


async def restart_one(stack: Supervised, instance_id: str, timeout: float) -> None:
    instance = stack.instance(instance_id)
    old_pid = stack.pid_of(instance_id)
    instance.draining = True
    await stack.router.drain(instance_id, timeout=timeout)
    assert not [c for c in stack.router.connections.values() if c.instance_id == instance_id]
    os.kill(old_pid, signal.SIGTERM)
    await stack.wait(lambda: instance.pid not in (None, old_pid) and instance.state == "running")
    instance.draining = False
    await stack.wait(lambda: instance_id in stack.routable())


async def rolling_restart(stack: Supervised, timeout: float) -> None:
    for replica in range(2):
        await restart_one(stack, f"chat:{replica}", timeout)


async def test_a_rolling_restart_under_live_conversations_loses_nothing(tmp_path: Path) -> None:
    config = agent_config(tmp_path / "agentvisor.toml", router='default_strategy = "round_robin"')
    log: dict[str, Any] = {}
    async with supervised(config) as stack:
        stop = trio.Event()
        with trio.fail_after(DEADLINE * 2):
            async with trio.open_nursery() as nursery:
                for number in range(4):
                    nursery.start_soon(converse, stack.url, f"c{number}", stop, log)
                await stack.wait(lambda: len(stack.router.connections) == 4)
                await rolling_restart(stack, timeout=5.0)
                stop.set()
        moves = stack.router.statistics().drain_moves

    assert sorted(log) == ["c0", "c1", "c2", "c3"]
    switches = [s for entry in log.values() for s in entry["switches"]]
    assert switches, "every client was on one of the restarted instances"
    assert all(s["reason"] == "instance_draining" for s in switches)
    assert all(s["session_preserved"] for s in switches)
    assert moves == len(switches) >= 4


async def test_a_drain_waits_for_the_turn_in_flight(tmp_path: Path) -> None:
    config = agent_config(tmp_path / "agentvisor.toml", slow=1.0)
    async with supervised(config) as stack, client(stack.url) as ws:
        routed = await ws.event("connection_routed")
        serving = routed["data"]["target_instance"]
        first = await ws.ask("quick")
        session = first["session_id"]
        await ws.send({"event": "user.message", "session_id": session, "content": "slow: think"})
        await ws.event("agent.thinking")
        stack.instance(serving).draining = True
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: stack.router.drain(serving, timeout=5.0))
            notice = await ws.event("management_notification")
            slow = await ws.event("agent.final_answer")
            switched = await ws.event("service_switched")
        waited = trio.current_time() - started
        after = await ws.ask("after", session)

    assert notice["data"]["type"] == "drain"
    assert 0 < notice["data"]["countdown_seconds"] <= 5.0
    assert slow["content"] == "quick | slow: think"
    assert slow["served_by"] == "chat-" + serving.split(":")[1]  # finished where it began
    assert switched["data"]["from_instance"] == serving
    assert switched["data"]["reason"] == "instance_draining"
    assert waited < 5.0  # did not wait out the timeout: the turn ended first
    assert after["content"] == "quick | slow: think | after"


async def test_a_drain_with_nowhere_to_go_leaves_the_connection(tmp_path: Path) -> None:
    config = agent_config(tmp_path / "agentvisor.toml", replicas=1)
    async with supervised(config) as stack, client(stack.url) as ws:
        first = await ws.ask("hi")
        with trio.fail_after(5):
            await stack.router.drain("chat:0", timeout=1.0)
        answer = await ws.ask("still", first["session_id"])

    assert answer["content"] == "hi | still"


async def test_a_switch_asked_during_a_turn_waits_for_its_end(tmp_path: Path) -> None:
    """The race a drain has: its check found no turn, then one began before the switch. The
    pump itself holds the switch until that turn's answer (or the drain's deadline)."""
    config = agent_config(tmp_path / "agentvisor.toml", slow=0.5)
    async with supervised(config) as stack, client(stack.url) as ws:
        routed = await ws.event("connection_routed")
        serving = routed["data"]["target_instance"]
        session = (await ws.ask("first"))["session_id"]
        await ws.send({"event": "user.message", "session_id": session, "content": "slow: late"})
        await ws.event("agent.thinking")
        connection = next(iter(stack.router.connections.values()))
        connection.request_switch("instance_draining", force_at=trio.current_time() + 10)
        await ws.event("service_switched")
        after = await ws.ask("after", session)

    names = [e["event"] for e in ws.received]
    late = next(e for e in ws.received if e.get("content") == "first | slow: late")
    assert names.index("agent.final_answer", names.index("agent.thinking")) < names.index(
        "service_switched"
    )
    assert late["served_by"] == "chat-" + serving.split(":")[1]
    assert after["content"] == "first | slow: late | after"
