"""Issue 9's kill-storm, full size: 30 clients x 5 turns, 3 replicas, a serving worker
SIGKILLed every 2 s, 10 times. Prints how many sessions' stored histories are exactly
their conversations (each user message and each answer once, in order) and how many
turns ended ``MESSAGE_POISONED`` (none should: the kills come from outside).

Run from the repository root: ``.venv/bin/python -m bench.kill_storm [--turn-seconds S]
[-v]`` (uses the test harness's supervisor + router, ``tests/agents/scripted.py`` and
the tests' ``kill_storm``).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
from pathlib import Path

import trio

from agentvisor.config.load import load_config
from agentvisor.supervise.spec import session_store_path
from tests.integration.router import test_integrity as storm
from tests.integration.router.supervised import agent_config, supervised

CLIENTS, TURNS, KILLS, KILL_INTERVAL = 30, 5, 10, 2.0


async def main(turn_seconds: float, verbose: bool) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        config = agent_config(Path(tmp) / "agentvisor.toml", replicas=3, agent_file=storm.SCRIPTED)
        store = session_store_path(load_config(config), "chat")
        async with supervised(config, failover_grace=15.0) as stack:
            with trio.fail_after(600):
                results, kills = await storm.kill_storm(
                    stack,
                    clients=CLIENTS,
                    turns=TURNS,
                    seconds=turn_seconds,
                    kills=KILLS,
                    interval=KILL_INTERVAL,
                    rng=random.Random(9),
                    timeout=240.0,
                )
        correct = poisoned = 0
        for number, result in sorted(results.items()):
            problems = storm.conversation_problems(store, result, TURNS)
            correct += not problems
            if problems and verbose:
                print("client", number, "session", result["session"], problems)
            poisoned += sum(e.get("code") == "MESSAGE_POISONED" for e in result["ends"])
        print(
            f"turns of {turn_seconds:g} s; kills: {kills}; sessions correct: "
            f"{correct}/{CLIENTS}; turns answered MESSAGE_POISONED: {poisoned}/{CLIENTS * TURNS}"
        )
        return 0 if correct == CLIENTS else 1


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turn-seconds", type=float, default=4.0)
    parser.add_argument("-v", action="store_true", help="print what is wrong with a session")
    arguments = parser.parse_args()
    sys.exit(trio.run(main, arguments.turn_seconds, arguments.v))
