"""The router keeps a session's messages in flight to send them again after a failover; its
bound is a guarantee, not a silent loss (issue 9).

An independent ``websockets`` client sends seven messages at once in one session to
agentvisor's own worker runtime through the router, and the serving worker is
SIGKILLed while they queue. Each message must end exactly once at the client: answered
after the failover, or refused at once with ``TOO_MANY_IN_FLIGHT`` naming the limit;
the stored history holds each answered one once, in order.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from agentvisor.config.load import load_config
from agentvisor.supervise.spec import session_store_path
from tests.integration.router.harness import client
from tests.integration.router.supervised import agent_config, supervised
from tests.integration.router.test_integrity import SCRIPTED, TURN_ENDS, stored_user_messages

SENT = 7


@pytest.mark.parametrize(("limit", "refused"), [(None, SENT - 4), (SENT, 0)])
async def test_messages_queued_at_a_worker_kill_are_answered_or_refused_never_lost(
    tmp_path: Path, limit: int | None, refused: int
) -> None:
    router = "" if limit is None else f"max_messages_in_flight = {limit}"
    config = agent_config(
        tmp_path / "agentvisor.toml", replicas=2, agent_file=SCRIPTED, router=router
    )
    store = session_store_path(load_config(config), "chat")
    async with supervised(config, failover_grace=15.0) as stack, client(stack.url) as ws:
        session = (await ws.ask("hello"))["session_id"]
        [serving] = [i for i in stack.routable() if stack.router.table.connections_of(i)]
        contents = [f"sleep:0.5{n}" for n in range(SENT)]
        for n, content in enumerate(contents):
            await ws.send(
                {
                    "event": "user.message",
                    "session_id": session,
                    "content": content,
                    "message_id": f"m{n}",
                }
            )
        os.kill(stack.pid_of(serving), signal.SIGKILL)  # while they wait behind the first
        ends = [
            await ws.recv_until(lambda e: e.get("event") in TURN_ENDS, timeout=60)
            for _ in range(SENT)
        ]
        await ws.send({"event": "ping"})  # anything after the last end arrives before this
        await ws.event("pong")

    errors = [e for e in ends if e["event"] == "agent.error"]
    answered = [e["message_id"] for e in ends if e["event"] == "agent.final_answer"]
    assert len(errors) == refused, ends
    for error in errors:
        assert (error["code"], error["recoverable"], error["session_id"]) == (
            "TOO_MANY_IN_FLIGHT",
            True,
            session,
        )
        assert "4 messages of a session" in error["message"]
        assert "max_messages_in_flight" in error["message"]
    expected = [f"m{n}" for n in range(SENT - refused)]  # the first ones; the rest refused
    assert sorted(answered) == expected
    assert sorted(e["message_id"] for e in errors) == [f"m{n}" for n in range(SENT - refused, SENT)]
    all_ends = [e for e in ws.received if e.get("event") in TURN_ENDS]
    assert len(all_ends) == SENT + 1  # "hello" and each message once: nothing twice
    assert stored_user_messages(store, session) == ["hello", *contents[: SENT - refused]]
