"""Routing end to end: every condition op once, reject, narrowing, affinity, hashing, wrap, dry run.

The pure tests (tests/unit/router) cover the rule and strategy matrix; here
each op decides a real connection's target at least once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.router.harness import (
    StaticSource,
    Worker,
    agent_table,
    client,
    endpoint,
    running_router,
    running_workers,
    write_config,
)


def rule(name: str, priority: int, target: str, *conditions: str, extra: str = "") -> str:
    match = ", ".join(conditions)
    return (
        f'[[routes]]\nname = "{name}"\npriority = {priority}\nmatch = [{match}]\n'
        f'target_agents = ["{target}"]\n{extra}\n'
    )


def cond(field: str, op: str, value: Any = None) -> str:
    if value is None:
        return f'{{ field = "{field}", op = "{op}" }}'
    rendered = (
        "[" + ", ".join(f'"{v}"' for v in value) + "]" if isinstance(value, list) else f'"{value}"'
    )
    return f'{{ field = "{field}", op = "{op}", value = {rendered} }}'


ROUTES = "\n".join(
    [
        rule("block", 100, "alpha", cond("header.x-block", "equals", "yes")).replace(
            'target_agents = ["alpha"]', 'action = "reject"'
        ),
        rule("tier-gold", 90, "beta", cond("header.x-tier", "equals", "gold")),
        rule(
            "odd-mode",
            89,
            "gamma",
            cond("query.mode", "exists"),
            cond("query.mode", "not_equals", "normal"),
        ),
        rule("bots", 88, "beta", cond("user_agent", "contains", "bot")),
        rule("vip-origin", 87, "gamma", cond("origin", "starts_with", "https://vip.")),
        rule("europe", 86, "beta", cond("header.x-region", "ends_with", "-eu")),
        rule("numbered-user", 85, "gamma", cond("query.user", "regex", "^u[0-9]+$")),
        rule("paid", 84, "beta", cond("header.x-plan", "in", ["pro", "team"])),
        rule(
            "not-free",
            83,
            "gamma",
            cond("header.x-plan2", "exists"),
            cond("header.x-plan2", "not_in", ["free"]),
        ),
        rule("debugging", 82, "beta", cond("header.x-debug", "exists")),
        rule(
            "loopback",
            81,
            "gamma",
            cond("header.x-cidr", "exists"),
            cond("client_ip", "cidr", "127.0.0.0/8"),
        ),
        rule("vip-path", 80, "gamma", cond("path", "equals", "/ws/vip")),
        rule("beta-protocol", 79, "beta", cond("subprotocol", "equals", "beta.v1")),
        rule("wrapped", 78, "alpha", cond("header.x-wrap", "exists"), extra="wrap_messages = true"),
        rule(
            "hashed",
            77,
            "alpha",
            cond("header.x-user", "exists"),
            extra='strategy = "hash:header.x-user"',
        ),
    ]
)
AGENTS = "\n".join(
    [
        agent_table("alpha", tags=("general",)),
        agent_table("beta", tags=("vip",)),
        agent_table("gamma", tags=("vip", "fast")),
    ]
)


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Worker]]:
    with running_workers(tmp_path_factory.mktemp("store"), ["w:0", "w:1"]) as started:
        yield started


def source_for(tmp_path: Path, workers: dict[str, Worker], router: str = "") -> StaticSource:
    config = write_config(
        tmp_path / "agentvisor.toml",
        router='path = "*"\ndefault_strategy = "round_robin"\n' + router,
        agents=AGENTS,
        routes=ROUTES,
    )
    w0, w1 = workers["w:0"].port, workers["w:1"].port
    endpoints = [
        endpoint("alpha:0", w0, tags=("general",)),
        endpoint("alpha:1", w1, tags=("general",)),
        endpoint("beta:0", w0, tags=("vip",)),
        endpoint("gamma:0", w1, tags=("vip", "fast")),
    ]
    return StaticSource(config, endpoints)


CASES = [
    ("equals", "/ws", {"additional_headers": {"X-Tier": "GOLD"}}, "beta", "tier-gold"),
    ("not_equals + exists", "/ws?mode=turbo", {}, "gamma", "odd-mode"),
    ("contains", "/ws", {"user_agent_header": "SuperBot/2"}, "beta", "bots"),
    ("starts_with", "/ws", {"origin": "https://vip.example.com"}, "gamma", "vip-origin"),
    ("ends_with", "/ws", {"additional_headers": {"X-Region": "west-eu"}}, "beta", "europe"),
    ("regex", "/ws?user=u42", {}, "gamma", "numbered-user"),
    ("in", "/ws", {"additional_headers": {"X-Plan": "team"}}, "beta", "paid"),
    ("not_in", "/ws", {"additional_headers": {"X-Plan2": "gold"}}, "gamma", "not-free"),
    ("exists", "/ws", {"additional_headers": {"X-Debug": ""}}, "beta", "debugging"),
    ("cidr", "/ws", {"additional_headers": {"X-Cidr": "1"}}, "gamma", "loopback"),
    ("path", "/ws/vip", {}, "gamma", "vip-path"),
    ("subprotocol", "/ws", {"subprotocols": ["beta.v1"]}, "beta", "beta-protocol"),
    ("no rule", "/ws?mode=normal&user=x", {}, "alpha", None),
]


@pytest.mark.parametrize(
    ("op", "target", "options", "service", "rule_name"), CASES, ids=[case[0] for case in CASES]
)
async def test_each_condition_op_routes_a_real_client(
    tmp_path: Path,
    workers: dict[str, Worker],
    op: str,
    target: str,
    options: dict[str, Any],
    service: str,
    rule_name: str | None,
) -> None:
    source = source_for(tmp_path, workers)
    async with running_router(source) as running, client(running.base + target, **options) as ws:
        routed = await ws.event("connection_routed")

    assert (routed["data"]["target_service"], routed["data"]["rule"]) == (service, rule_name)


async def test_a_reject_rule_closes_1008_naming_the_rule(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers)
    async with (
        running_router(source) as running,
        client(running.url, additional_headers={"X-Block": "yes"}) as ws,
    ):
        code, reason = await ws.closed()

    assert code == 1008
    assert "block" in reason


async def test_an_unknown_service_is_refused_with_an_error_event(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers)
    async with running_router(source) as running, client(running.url + "?service=nope") as ws:
        code, _reason = await ws.closed()

    assert code == 1008
    assert ws.received[0]["event"] == "error"
    assert ws.received[0]["data"]["code"] == "SERVICE_NOT_FOUND"


async def test_service_narrows_to_that_agent(tmp_path: Path, workers: dict[str, Worker]) -> None:
    source = source_for(tmp_path, workers)
    async with running_router(source) as running, client(running.url + "?service=gamma") as ws:
        routed = await ws.event("connection_routed")
        async with client(running.url, additional_headers={"X-Agentvisor-Service": "beta"}) as ws:
            by_header = await ws.event("connection_routed")

    assert routed["data"]["target_service"] == "gamma"
    assert by_header["data"]["target_service"] == "beta"


async def test_no_routable_instance_is_1013_no_healthy_service(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers)
    source.set("beta:0", routable=False)
    async with running_router(source) as running, client(running.url + "?service=beta") as ws:
        code, _reason = await ws.closed()

    assert code == 1013
    assert ws.received[0]["data"]["code"] == "NO_HEALTHY_SERVICE"


async def test_a_named_session_goes_to_the_instance_holding_it(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    """Round robin would alternate; the learned session pins later connections."""
    source = source_for(tmp_path, workers)
    async with running_router(source) as running, client(running.url + "?service=alpha") as ws:
        holder = (await ws.event("connection_routed"))["data"]["target_instance"]
        session = (await ws.ask("remember me"))["session_id"]
        targets = []
        for _ in range(3):
            async with client(running.url + f"?service=alpha&session_id={session}") as ws:
                routed = await ws.event("connection_routed")
                targets.append(
                    (routed["data"]["target_instance"], routed["data"]["routing_strategy"])
                )
                answer = await ws.ask("still me", session)

    assert targets == [(holder, "affinity")] * 3
    assert answer["content"] == "remember me" + " | still me" * 3


async def test_hash_on_a_header_is_sticky(tmp_path: Path, workers: dict[str, Worker]) -> None:
    source = source_for(tmp_path, workers)
    async with running_router(source) as running:
        seen: dict[str, set[str]] = {"ann": set(), "bob": set(), "cid": set(), "dee": set()}
        for _ in range(3):
            for user in seen:
                async with client(running.url, additional_headers={"X-User": user}) as ws:
                    routed = await ws.event("connection_routed")
                    seen[user].add(routed["data"]["target_instance"])

    assert all(len(instances) == 1 for instances in seen.values())
    assert routed["data"]["routing_strategy"] == "hash:header.x-user"


async def test_wrap_messages_sends_the_seed_envelope(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers)
    sent = {"event": "user.message", "content": "wrapped?"}
    async with (
        running_router(source) as running,
        client(running.url, additional_headers={"X-Wrap": "1"}) as ws,
    ):
        routed = await ws.event("connection_routed")
        await ws.send(sent)
        answer = await ws.event("wrapped")

    envelope = answer["envelope"]
    assert envelope["original_message"] == sent
    metadata = envelope["proxy_metadata"]
    assert metadata["connection_id"] == routed["data"]["connection_id"]
    assert metadata["target_service"] == "alpha"
    assert metadata["routing_strategy"] == "round_robin"
    assert metadata["timestamp"].endswith("Z")


async def test_the_dry_run_names_rule_and_instance_and_connects_nothing(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers)
    async with running_router(source) as running:
        router = running.router
        gold = router.test_route(ip="10.1.2.3", path="/ws", headers={"X-Tier": "gold"})
        blocked = router.test_route(ip="10.1.2.3", headers={"x-block": "yes"})
        unknown = router.test_route(ip="10.1.2.3", query={"service": "nope"})
        first = router.test_route(ip="10.1.2.3", query={"service": "alpha"})
        second = router.test_route(ip="10.1.2.3", query={"service": "alpha"})
        statistics = router.statistics()

    assert (gold["action"], gold["rule"], gold["agents"]) == ("route", "tier-gold", ["beta"])
    assert gold["instance"]["instance_id"] == "beta:0"
    assert (blocked["action"], blocked["rule"]) == ("reject", "block")
    assert (unknown["action"], unknown["code"]) == ("no_route", "SERVICE_NOT_FOUND")
    # No round-robin step was taken: the same pick twice, and no connection made.
    assert first["instance"] == second["instance"]
    assert [c["instance_id"] for c in first["candidates"]] == ["alpha:0", "alpha:1"]
    assert statistics.accepted == 0


async def test_a_reload_of_the_routes_applies_to_the_next_client(
    tmp_path: Path, workers: dict[str, Worker]
) -> None:
    source = source_for(tmp_path, workers)
    async with (
        running_router(source) as running,
        client(running.url, additional_headers={"X-Tier": "gold"}) as ws,
    ):
        before = await ws.event("connection_routed")
        source.config = write_config(
            tmp_path / "reloaded.toml",
            router='path = "*"',
            agents=AGENTS,
            routes=rule("gold-now-gamma", 5, "gamma", cond("header.x-tier", "equals", "gold")),
        )
        async with client(running.url, additional_headers={"X-Tier": "gold"}) as ws:
            after = await ws.event("connection_routed")

    assert before["data"]["target_service"] == "beta"
    assert (after["data"]["target_service"], after["data"]["rule"]) == ("gamma", "gold-now-gamma")
