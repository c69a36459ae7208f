"""A client that offers permessage-deflate (Chromium and ``websockets`` do by default).

The router relays frames as they are and negotiates no extension (docs/decisions.md):
it declines the offer, as RFC 6455 lets a server, so such a client gets a working,
uncompressed stream, across a failover too (a compression context would not survive
the switch to another worker). Payloads larger than the frames the router holds back
(64 KiB) stream through; their hashes are compared.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
from pathlib import Path

import trio

from tests.integration.router.harness import client
from tests.integration.router.supervised import DEADLINE, agent_config, supervised

SCRIPTED = Path(__file__).resolve().parents[2] / "agents" / "scripted.py"


def text(size: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("abcdefghij klmnopqrst") for _ in range(size))


def digest(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


async def test_a_deflate_offer_gets_an_intact_uncompressed_stream_across_a_failover(
    tmp_path: Path,
) -> None:
    config = agent_config(tmp_path / "agentvisor.toml", agent_file=SCRIPTED)
    before, after = text(100_000, 1), text(150_000, 2)
    async with supervised(config) as stack, client(stack.url, compression="deflate") as ws:
        extensions = list(ws.ws.protocol.extensions)
        routed = await ws.event("connection_routed")
        serving = routed["data"]["target_instance"]
        first = await ws.ask(before)
        connection = next(iter(stack.router.connections.values()))
        in_flight = connection.turns_in_flight  # the large answer ended its turn
        os.kill(stack.pid_of(serving), signal.SIGKILL)
        switched = await ws.event("service_switched", timeout=DEADLINE)
        second = await ws.ask(after, first["session_id"])
        with trio.fail_after(DEADLINE):
            while connection.turns_in_flight:
                await trio.sleep(0.01)

    assert extensions == []
    assert switched["data"]["session_preserved"] is True
    assert digest(first["content"]) == digest(before)
    assert digest(second["content"]) == digest(after)
    assert in_flight == 0


async def test_an_answer_over_64_kib_ends_its_turn_at_the_router(tmp_path: Path) -> None:
    """The router reads an agent's events up to 1 MiB even when they stream through in
    pieces: before, a final answer over 64 KiB left its turn in flight for ever (a drain
    then waited for its deadline, and the autoscaler counted a busy session)."""
    config = agent_config(tmp_path / "agentvisor.toml", agent_file=SCRIPTED)
    async with supervised(config) as stack, client(stack.url) as ws:
        first = await ws.ask(text(60_000, 3))
        session = first["session_id"]
        await ws.ask(text(60_000, 4), session)
        history = await ws.ask("history", session)  # a small question, a 120 KB answer
        connection = next(iter(stack.router.connections.values()))
        with trio.fail_after(DEADLINE):
            while connection.turns_in_flight:
                await trio.sleep(0.01)
        load = stack.router.load()

    assert len(history["content"]) > 120_000
    assert [turns for _sessions, turns in load.values()] == [0]
