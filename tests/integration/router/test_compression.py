"""permessage-deflate on agent routes: agreed with the client at the router (issue 11.10).

The router reads these routes' messages and moves clients between workers, so the
client's compression contexts live in the router's connection and the worker leg stays
uncompressed: a ``websockets`` client offering "deflate" keeps a compressed stream
across a SIGKILL of its worker, with the history and every payload's hash exact. A
client that offers nothing, and a router with ``compression = false``, get plain
frames; a deflate bomb is refused like any message over the limit. Payloads larger
than the frames the router holds back (64 KiB) stream through; their hashes are
compared.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
from pathlib import Path

import pytest
import trio
from websockets.extensions.permessage_deflate import PerMessageDeflate

from tests.integration.router.harness import client
from tests.integration.router.supervised import DEADLINE, agent_config, supervised

SCRIPTED = Path(__file__).resolve().parents[2] / "agents" / "scripted.py"


def text(size: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("abcdefghij klmnopqrst") for _ in range(size))


def digest(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


async def test_a_deflate_client_keeps_its_compressed_stream_across_a_failover(
    tmp_path: Path,
) -> None:
    config = agent_config(tmp_path / "agentvisor.toml", agent_file=SCRIPTED)
    before, after = text(100_000, 1), text(150_000, 2)
    async with supervised(config) as stack, client(stack.url, compression="deflate") as ws:
        extensions = list(ws.ws.protocol.extensions)
        routed = await ws.event("connection_routed")
        serving = routed["data"]["target_instance"]
        first = await ws.ask(before)
        session = first["session_id"]
        connection = next(iter(stack.router.connections.values()))
        worker_leg = connection.upstream.extensions if connection.upstream else "none"
        # SIGKILL the worker with a turn in flight: the new one runs it again.
        await ws.send({"event": "user.message", "content": "sleep:0.5", "session_id": session})
        with trio.fail_after(DEADLINE):
            while not connection.turns_in_flight:
                await trio.sleep(0.01)
        os.kill(stack.pid_of(serving), signal.SIGKILL)
        switched = await ws.event("service_switched", timeout=DEADLINE)
        slept = await ws.event("agent.final_answer", timeout=DEADLINE)
        second = await ws.ask(after, session)
        told = (await ws.ask("history", session))["content"]
        history = json.loads(told)
        relayed = stack.router.statistics().bytes_out

    assert [type(e) for e in extensions] == [PerMessageDeflate]
    assert worker_leg is None  # the worker leg is uncompressed
    assert switched["data"]["session_preserved"] is True
    assert digest(first["content"]) == digest(before)
    assert slept["content"].startswith("slept")
    assert digest(second["content"]) == digest(after)
    contents = [digest(entry["content"]) for entry in history]
    expected = [before, before, "sleep:0.5", slept["content"], after, after]
    assert contents == [digest(c) for c in expected]
    answered = len(first["content"]) + len(second["content"]) + len(told)
    assert relayed < 0.8 * answered  # the client got it compressed


@pytest.mark.parametrize("router", ["", "compression = false"])
async def test_plain_frames_without_an_offer_or_with_compression_off(
    tmp_path: Path, router: str
) -> None:
    config = agent_config(tmp_path / "agentvisor.toml", agent_file=SCRIPTED, router=router)
    offer = "deflate" if router else None
    payload = text(90_000, 5)
    async with supervised(config) as stack, client(stack.url, compression=offer) as ws:
        extensions = list(ws.ws.protocol.extensions)
        answer = await ws.ask(payload)
        relayed = stack.router.statistics().bytes_out

    assert extensions == []
    assert digest(answer["content"]) == digest(payload)
    assert relayed > len(payload)


async def test_a_deflate_bomb_is_refused_like_a_message_over_the_limit(tmp_path: Path) -> None:
    """17 MiB of one letter compress to ~17 KiB; inflated, they pass the 16 MiB ceiling
    of agent routes: 1009, as for an uncompressed message that large, and the router
    serves the next client."""
    config = agent_config(tmp_path / "agentvisor.toml", agent_file=SCRIPTED, replicas=1)
    bomb = json.dumps({"event": "user.message", "content": "a" * (17 * 1024 * 1024)})
    async with supervised(config) as stack:
        async with client(stack.url, compression="deflate") as ws:
            await ws.event("connection_routed")
            await ws.send(bomb)
            code, reason = await ws.closed(timeout=DEADLINE)
        async with client(stack.url, compression="deflate") as ws:
            answer = await ws.ask("still here")

    assert code == 1009
    assert "larger than" in reason
    assert answer["content"] == "still here"


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
