"""A drain says why: a scale-down is not called a restart (issue 14).

The real supervisor drives the drains here (a reload that lowers ``replicas``,
an operator's rolling restart), with the router's drain wired as the daemon
wires it; independent ``websockets`` clients read the notices.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import trio

from tests.integration.router.harness import Client, client
from tests.integration.router.supervised import agent_config, supervised


async def test_a_scale_down_drain_says_scale_down_and_the_conversation_goes_on(
    tmp_path: Path,
) -> None:
    config = agent_config(
        tmp_path / "agentvisor.toml", replicas=2, router='default_strategy = "round_robin"'
    )
    async with supervised(config) as stack, contextlib.AsyncExitStack() as up:
        stack.supervisor.drain = stack.router.drain  # as the daemon wires it
        clients: list[Client] = [await up.enter_async_context(client(stack.url)) for _ in range(2)]
        routed = [(await c.event("connection_routed"))["data"]["target_instance"] for c in clients]
        assert sorted(routed) == ["chat:0", "chat:1"]
        sessions = [(await c.ask(f"first {n}"))["session_id"] for n, c in enumerate(clients)]
        config.write_text(config.read_text().replace("replicas = 2", "replicas = 1"))
        with trio.fail_after(30):
            await stack.supervisor.reload(source="cli")
            retired = clients[routed.index("chat:1")]
            notice = await retired.event("management_notification")
            switched = await retired.event("service_switched")
            await stack.wait(lambda: stack.routable() == ["chat:0"])
        answers = [await c.ask(f"second {n}", sessions[n]) for n, c in enumerate(clients)]
        stayed = clients[routed.index("chat:0")]

    assert notice["data"]["type"] == "drain"
    assert notice["data"]["reason"] == "scale-down"
    assert "scale-down" in notice["data"]["message"]
    assert "restart" not in notice["data"]["message"]
    assert (switched["data"]["from_instance"], switched["data"]["to_instance"]) == (
        "chat:1",
        "chat:0",
    )
    assert switched["data"]["session_preserved"] is True
    assert "management_notification" not in [e["event"] for e in stayed.received]
    for n, answer in enumerate(answers):
        assert answer["content"] == f"first {n} | second {n}"


async def test_an_operator_restart_drain_says_restarting(tmp_path: Path) -> None:
    config = agent_config(tmp_path / "agentvisor.toml", replicas=2)
    async with supervised(config) as stack, client(stack.url) as ws:
        stack.supervisor.drain = stack.router.drain
        session = (await ws.ask("first"))["session_id"]
        with trio.fail_after(60):
            await stack.supervisor.restart("chat", source="cli")
        answer = await ws.ask("second", session)  # the notices came before it
        notices = [e["data"] for e in ws.received if e["event"] == "management_notification"]

    assert notices, ws.received
    assert {(n["type"], n["reason"]) for n in notices} == {("drain", "restart")}
    assert all("is restarting" in n["message"] for n in notices)
    assert answer["content"] == "first | second"
