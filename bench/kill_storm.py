"""Issue 9's kill-storm, full size: 30 clients x 5 turns, 3 replicas, a serving worker
SIGKILLed every 2 s, 10 times. Prints how many sessions' stored histories are exactly
their conversations (each user message and each answer once, in order).

Run from the repository root: ``.venv/bin/python -m bench.kill_storm`` (uses the test
harness's supervisor + router and ``tests/agents/scripted.py``).
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

from agentvisor.config.load import load_config
from agentvisor.supervise.spec import session_store_path
from tests.integration.router import test_integrity as storm
from tests.integration.router.harness import client
from tests.integration.router.supervised import agent_config, supervised

CLIENTS, TURNS, KILLS, KILL_INTERVAL = 30, 5, 10, 2.0
TURN_SECONDS = 4  # turns long enough that the ten kills land while conversations run


async def converse(url: str, number: int, results: dict[int, dict[str, Any]]) -> None:
    """One client's conversation of TURNS sleeping turns, each sent once."""
    ends: list[dict[str, Any]] = []
    said: list[str] = []
    session: str | None = None
    async with client(url) as ws:
        for turn in range(TURNS):
            content = f"sleep:{TURN_SECONDS}.{number:02d}{turn}"
            message: dict[str, Any] = {"event": "user.message", "content": content}
            if session is not None:
                message["session_id"] = session
            await ws.send(message)
            end = await ws.recv_until(lambda e: e.get("event") in storm.TURN_ENDS, timeout=120)
            ends.append(end)
            if end["event"] == "agent.final_answer":
                said.append(content)
            session = session or end.get("session_id")
        await ws.send({"event": "ping"})  # whatever came after the last end arrives first
        await ws.event("pong")
        after = ws.received[ws.received.index(ends[-1]) + 1 :]
        extra = [e for e in after if str(e.get("event")).startswith("agent.")]  # duplicates
    results[number] = {"session": session, "ends": ends, "said": said, "extra": extra}


async def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        config = agent_config(Path(tmp) / "agentvisor.toml", replicas=3, agent_file=storm.SCRIPTED)
        store = session_store_path(load_config(config), "chat")
        results: dict[int, dict[str, Any]] = {}
        kills = 0
        async with supervised(config, failover_grace=15.0) as stack:
            with trio.fail_after(300):
                async with trio.open_nursery() as nursery:
                    for number in range(CLIENTS):
                        nursery.start_soon(converse, stack.url, number, results)
                    for _ in range(KILLS):
                        await trio.sleep(KILL_INTERVAL)
                        table = stack.router.table
                        serving = [i for i in stack.routable() if table.connections_of(i)]
                        if serving:
                            os.kill(stack.pid_of(max(serving, key=table.connections_of)), 9)
                            kills += 1
                        await stack.wait(lambda: len(stack.routable()) >= 2)
        correct = poisoned = 0
        for result in results.values():
            history = storm.stored_history(store, result["session"])
            answers = [e["content"] for e in result["ends"] if e["event"] == "agent.final_answer"]
            ok = (
                len(result["ends"]) == TURNS
                and not result["extra"]
                and [m["content"] for m in history if m["role"] == "user"] == result["said"]
                and [m["content"] for m in history if m["role"] == "assistant"] == answers
                and [m["role"] for m in history] == ["user", "assistant"] * len(result["said"])
            )
            correct += ok
            if not ok and "-v" in sys.argv:
                print(
                    "session",
                    result["session"],
                    "ends",
                    [(e["event"], e.get("code")) for e in result["ends"]],
                    "extra",
                    [e.get("event") for e in result["extra"]],
                    "said",
                    result["said"],
                    "stored",
                    [(m["role"], m["content"][:14]) for m in history],
                )
            poisoned += sum(e.get("code") == "MESSAGE_POISONED" for e in result["ends"])
        print(
            f"kills: {kills}; sessions correct: {correct}/{CLIENTS}; "
            f"turns answered MESSAGE_POISONED: {poisoned}/{CLIENTS * TURNS}"
        )
        return 0 if correct == CLIENTS else 1


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(trio.run(main))
