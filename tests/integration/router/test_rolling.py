"""Issue 15: consecutive rolling restarts move live sessions silently.

Three replicas of agentvisor's own worker runtime, ten idle ``websockets``
clients on live sessions, three rolling restarts through the supervisor (with
the router's drain, as the daemon wires it). Each client must see no
``agent.session_closed`` and no event twice, and its next turn answered once
over the whole stored history.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import trio

from agentvisor.config.load import load_config
from agentvisor.supervise.spec import session_store_path
from tests.integration.router.harness import Client, client
from tests.integration.router.supervised import agent_config, supervised
from tests.integration.router.test_integrity import POISON, stored_user_messages

CLIENTS = 10
RESTARTS = 3


async def test_issue_15_three_rolling_restarts_send_no_session_closed_and_no_duplicate(
    tmp_path: Path,
) -> None:
    config = agent_config(
        tmp_path / "agentvisor.toml",
        replicas=3,
        agent_file=POISON,
        router='default_strategy = "round_robin"',
    )
    store = session_store_path(load_config(config), "chat")
    async with supervised(config, failover_grace=15.0) as stack, contextlib.AsyncExitStack() as up:
        stack.supervisor.drain = stack.router.drain  # as the daemon wires it
        clients: list[Client] = [
            await up.enter_async_context(client(stack.url)) for _ in range(CLIENTS)
        ]
        sessions = [(await c.ask(f"first {n}"))["session_id"] for n, c in enumerate(clients)]
        with trio.fail_after(120):
            for _ in range(RESTARTS):
                await stack.supervisor.restart("chat", source="cli")
        answers = [await c.ask(f"second {n}", sessions[n]) for n, c in enumerate(clients)]
        for c in clients:  # a barrier: whatever came late arrives before the pong
            await c.send({"event": "ping"})
            await c.event("pong")
        switched = stack.router.statistics().drain_moves

    assert switched >= CLIENTS  # every client was moved at least once
    for n, c in enumerate(clients):
        names = [e.get("event") for e in c.received]
        assert "agent.session_closed" not in names, (n, c.received)
        assert "error" not in names, (n, c.received)
        seqs = [e["seq"] for e in c.received if "seq" in e]
        assert seqs == sorted(set(seqs)), (n, seqs)  # increasing, never twice
        assert names.count("agent.final_answer") == 2, (n, names)
        assert answers[n]["content"] == f"second {n} has {len(f'second {n}')} characters"
        assert stored_user_messages(store, sessions[n]) == [f"first {n}", f"second {n}"]
