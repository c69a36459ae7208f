"""Failover: the serving worker is SIGKILLed and the client's conversation goes on, whole."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import trio

from agentvisor.events import ConnectionSwitched
from tests.integration.router.harness import client
from tests.integration.router.supervised import DEADLINE, agent_config, supervised

SCRIPTED = Path(__file__).resolve().parents[2] / "agents" / "scripted.py"


async def test_sigkill_of_the_serving_worker_keeps_the_conversation(tmp_path: Path) -> None:
    config = agent_config(tmp_path / "agentvisor.toml")
    is_switch = lambda e: isinstance(e, ConnectionSwitched)  # noqa: E731
    async with (
        supervised(config) as stack,
        stack.supervisor.bus.subscribe(is_switch) as switches,
        client(stack.url + "?service=chat") as ws,
    ):
        routed = await ws.event("connection_routed")
        serving = routed["data"]["target_instance"]
        first = await ws.ask("one")
        session = first["session_id"]
        await ws.ask("two", session)

        os.kill(stack.pid_of(serving), signal.SIGKILL)
        switched = await ws.event("service_switched", timeout=DEADLINE)
        answer = await ws.ask("three", session)
        with trio.fail_after(5):
            event = await switches.receive()

    data = switched["data"]
    assert data["from_instance"] == serving
    assert data["to_instance"] != serving
    assert (data["from_service"], data["to_service"]) == ("chat", "chat")
    assert data["reason"] == "upstream_lost"
    assert data["session_preserved"] is True
    assert answer["content"] == "one | two | three"
    assert answer["served_by"] == "chat-" + data["to_instance"].split(":")[1]
    assert isinstance(event, ConnectionSwitched)
    assert event.session_preserved
    assert stack.router.statistics().failovers == 1


async def test_the_restarted_instance_takes_the_client_back_when_it_is_the_only_one(
    tmp_path: Path,
) -> None:
    config = agent_config(tmp_path / "agentvisor.toml", replicas=1)
    async with supervised(config, failover_grace=15.0) as stack, client(stack.url) as ws:
        first = await ws.ask("before")
        old_pid = stack.pid_of("chat:0")
        os.kill(old_pid, signal.SIGKILL)
        switched = await ws.event("service_switched", timeout=DEADLINE)
        answer = await ws.ask("after", first["session_id"])
        new_pid = stack.pid_of("chat:0")

    assert switched["data"]["to_instance"] == "chat:0"
    assert switched["data"]["session_preserved"] is True
    assert new_pid != old_pid
    assert answer["content"] == "before | after"


async def test_no_instance_within_the_grace_period_is_upstream_lost_1013(tmp_path: Path) -> None:
    config = agent_config(tmp_path / "agentvisor.toml", replicas=1, autorestart="never")
    async with supervised(config, failover_grace=0.5) as stack, client(stack.url) as ws:
        await ws.ask("hello")
        os.kill(stack.pid_of("chat:0"), signal.SIGKILL)
        code, _reason = await ws.closed(timeout=DEADLINE)

    errors = [e for e in ws.received if e["event"] == "error"]
    assert code == 1013
    assert errors[-1]["data"]["code"] == "UPSTREAM_LOST"
    assert stack.router.statistics().failover_failures == 1


async def test_with_failover_off_a_lost_worker_closes_the_client_1011(tmp_path: Path) -> None:
    config = agent_config(tmp_path / "agentvisor.toml", router="failover = false")
    async with supervised(config) as stack, client(stack.url) as ws:
        routed = await ws.event("connection_routed")
        await ws.ask("hello")
        os.kill(stack.pid_of(routed["data"]["target_instance"]), signal.SIGKILL)
        code, _reason = await ws.closed(timeout=DEADLINE)

    assert code == 1011
    assert ws.received[-1]["data"]["code"] == "UPSTREAM_LOST"


async def test_a_worker_stopped_with_sigterm_is_failed_over_too(tmp_path: Path) -> None:
    """agent_server closes its clients with 1001 on SIGTERM: a failover code."""
    config = agent_config(tmp_path / "agentvisor.toml")
    async with supervised(config) as stack, client(stack.url) as ws:
        routed = await ws.event("connection_routed")
        first = await ws.ask("one")
        os.kill(stack.pid_of(routed["data"]["target_instance"]), signal.SIGTERM)
        switched = await ws.event("service_switched", timeout=DEADLINE)
        answer = await ws.ask("two", first["session_id"])

    assert switched["data"]["session_preserved"] is True
    assert answer["content"] == "one | two"


async def test_failover_between_real_workers_resumes_from_the_shared_store(
    tmp_path: Path,
) -> None:
    """agentvisor's own worker runtime (``agent =``): sessions live in the SQLite store that
    the replicas share, so the other replica resumes them; the next answer sees it all."""
    config = agent_config(tmp_path / "agentvisor.toml", agent_file=SCRIPTED)
    async with supervised(config) as stack, client(stack.url) as ws:
        routed = await ws.event("connection_routed")
        serving = routed["data"]["target_instance"]
        first = await ws.ask("one")
        session = first["session_id"]
        await ws.ask("two", session)
        os.kill(stack.pid_of(serving), signal.SIGKILL)
        switched = await ws.event("service_switched", timeout=DEADLINE)
        history = await ws.ask("history", session)

    assert switched["data"]["to_instance"] != serving
    assert switched["data"]["session_preserved"] is True
    text = history["content"]
    assert "one" in text
    assert "two" in text
    assert text.index("one") < text.index("two")


async def test_what_the_client_sends_during_a_failover_is_delivered_after_it(
    tmp_path: Path,
) -> None:
    """One replica, restarted by the supervisor: while the router waits for it, the client's
    message is kept, then delivered to the restarted worker after the resume."""
    config = agent_config(tmp_path / "agentvisor.toml", replicas=1)
    async with supervised(config, failover_grace=15.0) as stack, client(stack.url) as ws:
        first = await ws.ask("before")
        connection = next(iter(stack.router.connections.values()))
        os.kill(stack.pid_of("chat:0"), signal.SIGKILL)
        with trio.fail_after(DEADLINE):
            while connection.up_ready:
                await trio.sleep(0.01)
        await ws.send({"event": "user.message", "session_id": first["session_id"], "content": "x"})
        switched = await ws.event("service_switched", timeout=DEADLINE)
        answer = await ws.event("agent.final_answer")

    assert switched["data"]["session_preserved"] is True
    assert answer["content"] == "before | x"


async def test_a_message_sent_as_the_worker_dies_is_sent_again_to_the_new_one(
    tmp_path: Path,
) -> None:
    """Real workers on a shared store: the client sends its next message right after the
    SIGKILL, before the router can notice; the router sends it again after the resume, so
    the other replica answers it, with the whole history."""
    config = agent_config(tmp_path / "agentvisor.toml", agent_file=SCRIPTED)
    async with supervised(config) as stack, client(stack.url) as ws:
        routed = await ws.event("connection_routed")
        serving = routed["data"]["target_instance"]
        first = await ws.ask("one")
        session = first["session_id"]
        os.kill(stack.pid_of(serving), signal.SIGKILL)
        await ws.send({"event": "user.message", "session_id": session, "content": "history"})
        switched = await ws.event("service_switched", timeout=DEADLINE)
        answer = await ws.event("agent.final_answer", timeout=DEADLINE)

    assert switched["data"]["to_instance"] != serving
    assert switched["data"]["session_preserved"] is True
    assert answer["session_id"] == session
    history = json.loads(answer["content"])
    assert [m["content"] for m in history if m["role"] == "user"] == ["one"]
    assert "one" in [m["content"] for m in history if m["role"] == "assistant"]
