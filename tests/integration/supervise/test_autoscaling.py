"""Issue 10: an autoscaled agent grows and shrinks with its sessions on a real run.

agentvisor runs from its composition root with real agent workers; the
clients are the ``websockets`` library through the router. Growing: new
sessions reach the new replicas once they are healthy. Shrinking is
turn-aware: the replicas with the fewest sessions take no new ones, their
turns in flight finish where they began, their idle sessions move through
the resume path (``service_switched``, ``session_preserved``), then they
stop; no turn is lost, by what each client saw and by the session store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import trio
from websockets.exceptions import InvalidStatus

from tests.integration.router.harness import Client
from tests.integration.supervise.daemonized import (
    Running,
    answer_text,
    running_daemon,
    scaled_config,
)

#: Quick enough for a test, still through the stabilization window and the cooldowns.
QUICK = """
decision_interval = 0.1
stabilization = 0.3
scale_up_cooldown = 0.5
scale_down_cooldown = 0.5
"""
DEADLINE = 60.0


@attrs.define
class Talker:
    """One client with one session; every answer must carry the whole conversation."""

    name: str
    ws: Client
    routed: str  # the instance the router first sent it to
    said: list[str] = attrs.field(factory=list)
    session: str | None = None

    @classmethod
    async def open(cls, url: str, name: str) -> Talker:
        ws = await Client.connect(url)
        routed = await ws.event("connection_routed")
        talker = cls(name, ws, routed["data"]["target_instance"])
        await talker.say(f"{name} hello")
        return talker

    async def say(self, content: str) -> str:
        """Ask and check the answer; the replica that answered."""
        await self.send(content)
        return await self.answer()

    async def send(self, content: str) -> None:
        message: dict[str, Any] = {"event": "user.message", "content": content}
        if self.session is not None:
            message["session_id"] = self.session
        await self.ws.send(message)
        self.said.append(content)

    async def answer(self, timeout: float = 20) -> str:
        answer = await self.ws.event("agent.final_answer", timeout)
        self.session = answer["session_id"]
        seen, replica = answer_text(answer)
        assert seen == " | ".join(self.said), (self.name, answer)
        return replica

    def switches(self) -> list[dict[str, Any]]:
        return [e["data"] for e in self.ws.received if e["event"] == "service_switched"]

    def names(self) -> list[str]:
        return [str(e["event"]) for e in self.ws.received]


async def test_replicas_follow_the_sessions_and_shrink_without_losing_a_turn(
    tmp_path: Path,
) -> None:
    config = scaled_config(
        tmp_path / "agentvisor.toml", f"min = 1\nmax = 3\ntarget_sessions = 2\n{QUICK}"
    )
    async with running_daemon(config) as av:
        with trio.fail_after(DEADLINE):
            await av.wait(lambda: av.routable() == ["chat:0"])
            talkers = [await Talker.open(av.url, f"c{n}") for n in range(1, 4)]
            await av.wait(lambda: av.routable() == ["chat:0", "chat:1"])  # 3 sessions: 2
            talkers += [await Talker.open(av.url, f"c{n}") for n in range(4, 6)]
            await av.wait(lambda: av.routable() == ["chat:0", "chat:1", "chat:2"])  # 5: 3
            talkers.append(await Talker.open(av.url, "c6"))
            routed = {t.name: t.routed for t in talkers}
            assert av.replicas() == [0, 1, 2]

            c1, c2, c3, c4, c5, c6 = talkers
            # Turns in flight while it shrinks: c1's outlasts the shrink on the replica that
            # stays; c6's is on a replica that goes, and must finish there first.
            await c1.send("slow:8:c1 long")
            await c6.send("slow:3:c6 thinking")
            for talker in (c1, c6):
                await talker.ws.event("agent.thinking")
            for talker in (c2, c3, c4, c5):
                await talker.ws.close()
            # 2 sessions: 1 replica. chat:1 has none; chat:0 and chat:2 one each, both in a turn.
            await av.wait(lambda: _retiring(av) == [2])  # chat:2 drains while its turn runs
            await av.wait(lambda: av.replicas() == [0])
            assert await c6.answer() == "2"  # finished where it began
            assert await c1.answer() == "0"
            assert await c6.say("c6 after the move") == "0"
            assert await c1.say("c1 after the shrink") == "0"
        statistics = av.router.statistics()
        for talker in (c1, c6):
            assert talker.session is not None
            assert await av.stored_history(talker.session) == talker.said
            await talker.ws.close()

    assert routed == {"c1": "chat:0", "c2": "chat:0", "c3": "chat:0"} | {
        "c4": "chat:1",
        "c5": "chat:1",
        "c6": "chat:2",
    }
    assert c1.switches() == []
    [switch] = c6.switches()
    assert switch["from_instance"] == "chat:2"
    assert switch["to_instance"] == "chat:0"
    assert switch["reason"] == "instance_draining"
    assert switch["session_preserved"] is True
    names = c6.names()
    drain = names.index("management_notification")
    slow = names.index("agent.final_answer", names.index("agent.thinking"))
    assert drain < slow < names.index("service_switched")  # told, turn finished, then moved
    assert statistics.drain_moves == 1
    assert statistics.failovers == 0


async def test_every_scaling_decision_is_an_audit_event_with_its_signals(
    tmp_path: Path,
) -> None:
    config = scaled_config(
        tmp_path / "agentvisor.toml", f"min = 1\nmax = 2\ntarget_sessions = 1\n{QUICK}"
    )
    async with running_daemon(config) as av, av.http() as http:
        with trio.fail_after(DEADLINE):
            await av.wait(lambda: av.routable() == ["chat:0"])
            talkers = [await Talker.open(av.url, f"c{n}") for n in range(2)]
            await av.wait(lambda: av.routable() == ["chat:0", "chat:1"])
            await talkers[1].ws.close()
            await av.wait(lambda: av.replicas() == [0])
            events = await _autoscaler_events(av, http, 2)
            await talkers[0].ws.close()

    up, down = events[-2:]
    assert up["action"] == "scale"
    assert up["service"] == "chat"
    assert up["outcome"] == "ok"
    assert up["message"].startswith("1 → 2 replicas: sessions ask for 2 at target_sessions 1")
    assert "(sessions 2, turns 0, cpu" in up["message"]
    assert down["message"].startswith("2 → 1 replicas: sessions ask for 1")
    assert "retiring chat:1" in down["message"]
    assert up["details"]["previous"] == 1
    assert up["details"]["desired"] == 2
    assert up["details"]["signals"]["sessions"] == 2
    assert up["details"]["signals"]["by_signal"] == {"sessions": 2}
    assert down["details"]["retiring"] == ["chat:1"]
    assert down["details"]["reason"] == "sessions ask for 1 at target_sessions 1"


async def _autoscaler_events(av: Running, http: Any, count: int) -> list[dict[str, Any]]:
    """The audit log's autoscaler events as ``/api/v1/events`` serves them, once there are
    ``count`` (oldest first); the caller bounds the wait."""
    store = av.daemon.store
    assert store is not None
    async with av.daemon.bus.subscribe() as bus:
        while True:
            await store.flush()
            response = await http.get("/api/v1/events", params={"service_id": "chat"})
            rows = response.json()["data"]["events"]
            found = [r for r in rows if r["source"] == "autoscaler"]
            if len(found) >= count:
                return sorted(found, key=lambda r: r["timestamp"])
            with trio.move_on_after(0.1):
                await bus.receive()


async def test_scaled_to_zero_the_first_client_waits_for_a_replica_and_is_served(
    tmp_path: Path,
) -> None:
    config = scaled_config(
        tmp_path / "agentvisor.toml",
        f"min = 0\nmax = 2\ntarget_sessions = 2\ncold_start_wait = 30\n{QUICK}",
    )
    async with running_daemon(config) as av:
        with trio.fail_after(DEADLINE):
            assert av.replicas() == []
            first = await Talker.open(av.url, "first")  # held while chat:0 starts
            assert first.routed == "chat:0"
            assert await first.say("first again") == "0"
            status = av.supervisor.autoscaler.status("chat")
            assert status is not None
            change = status["last_change"]
            assert change["reason"].startswith("cold start: a client is waiting")
            assert change["signals"]["waiting_clients"] == 1
            await first.ws.close()
            await av.wait(lambda: av.replicas() == [])  # and back to zero once it left
            again = await Talker.open(av.url, "again")
            assert again.routed == "chat:0"
            await again.ws.close()


async def test_scaled_to_zero_a_replica_too_slow_to_start_gets_the_client_a_503(
    tmp_path: Path,
) -> None:
    config = scaled_config(
        tmp_path / "agentvisor.toml",
        f"min = 0\nmax = 2\ncold_start_wait = 0.5\n{QUICK}",
        startsecs=20,  # running (and routable) only after 20 s
    )
    async with running_daemon(config) as av:
        with trio.fail_after(DEADLINE):
            clients = []
            async with trio.open_nursery() as nursery:
                for _ in range(3):  # a few at once: each waits, each is told
                    nursery.start_soon(_refused, av.url, clients)
            await av.wait(lambda: av.replicas() == [0])
        assert [status for status, _ in clients] == [503, 503, 503]
        for _, body in clients:
            assert body == (
                "no replica of chat became ready within 0.5s "
                "(scaled to zero; autoscale.cold_start_wait)"
            )
        assert av.router.statistics().refused.get("503", 0) >= 3


async def _refused(url: str, into: list[tuple[int, str]]) -> None:
    try:
        await Client.connect(url)
    except InvalidStatus as refused:
        response = refused.response
        into.append((response.status_code, response.body.decode().strip()))
    else:
        raise AssertionError("the handshake was accepted")


async def test_turns_in_flight_grow_the_agent_when_target_turns_asks_for_more(
    tmp_path: Path,
) -> None:
    config = scaled_config(
        tmp_path / "agentvisor.toml",
        f"min = 1\nmax = 2\ntarget_sessions = 100\ntarget_turns = 1\n{QUICK}",
    )
    async with running_daemon(config) as av:
        with trio.fail_after(DEADLINE):
            await av.wait(lambda: av.routable() == ["chat:0"])
            talkers = [await Talker.open(av.url, f"c{n}") for n in range(2)]
            for talker in talkers:
                await talker.send(f"slow:5:{talker.name} busy")
            await av.wait(lambda: av.routable() == ["chat:0", "chat:1"])
            status = av.supervisor.autoscaler.status("chat")
            for talker in talkers:
                await talker.ws.close()
    assert status is not None
    change = status["last_change"]
    assert change["reason"] == "turns in flight ask for 2 at target_turns 1"
    assert change["signals"]["by_signal"] == {"sessions": 1, "turns": 2}


def _retiring(av: Running) -> list[int]:
    status = av.supervisor.autoscaler.status("chat")
    assert status is not None
    return list(status["retiring"])


async def test_a_shrink_onto_a_replica_full_of_left_sessions_keeps_the_moved_one(
    tmp_path: Path,
) -> None:
    """The replica that stays holds max_sessions, most of them of clients that left (kept
    for session_timeout); the moved session still gets in, and keeps its history."""
    config = scaled_config(
        tmp_path / "agentvisor.toml",
        f"min = 1\nmax = 2\ntarget_sessions = 2\n{QUICK}",
        agent="max_sessions = 3",
    )
    async with running_daemon(config) as av:
        with trio.fail_after(DEADLINE):
            await av.wait(lambda: av.routable() == ["chat:0"])
            c1, c2, c3 = [await Talker.open(av.url, f"c{n}") for n in range(1, 4)]
            await av.wait(lambda: av.routable() == ["chat:0", "chat:1"])
            c4 = await Talker.open(av.url, "c4")
            assert [t.routed for t in (c1, c2, c3, c4)] == ["chat:0"] * 3 + ["chat:1"]
            await c1.ws.close()  # their sessions stay on chat:0, which holds 3 = max_sessions
            await c2.ws.close()
            await av.wait(lambda: av.replicas() == [0])
            assert await c4.say("c4 after the move") == "0"
            assert await c3.say("c3 still here") == "0"
            for talker in (c3, c4):
                await talker.ws.close()
    [switch] = c4.switches()
    assert switch["session_preserved"] is True
    assert "agent.error" not in c4.names()
