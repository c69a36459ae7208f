"""Issue 13: nothing out of range is a 500. Bodies and parameters beyond what the schema
allows are 400s with the envelope, naming the field; the file is untouched and the
system stays up. Sent as a storm over the real API, the ones schemathesis found included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio

from tests.integration.admin.harness import sleeper, write_config
from tests.integration.admin.stack import DEADLINE, data_of, error_of, running_stack

HUGE = 2**70  # past SQLite's and TOML's 64-bit integers
DEEP = "[" * 100_000 + "]" * 100_000  # past Python's recursion limit

#: (method, path, body, the field the error must name; None: the body as a whole)
BAD_BODIES: list[tuple[str, str, Any, str | None]] = [
    ("POST", "/api/v1/services", {"name": "x", "command": "y", "replicas": HUGE}, "replicas"),
    ("POST", "/api/v1/services", {"name": "x", "command": "y", "port": HUGE}, "port"),
    ("POST", "/api/v1/services", {"name": "x", "command": "y", "max_sessions": HUGE}, None),
    ("POST", "/api/v1/services", {"name": "x", "command": "y", "weight": 1e300}, "weight"),
    ("POST", "/api/v1/services", {"name": "x", "command": "y", "exitcodes": [HUGE]}, None),
    (
        "POST",
        "/api/v1/services",
        {"name": "x", "command": "y", "autoscale": {"max": HUGE}},
        "autoscale.max",
    ),
    ("PUT", "/api/v1/services/alpha/config", {"startretries": -HUGE}, "startretries"),
    ("PUT", "/api/v1/services/alpha/config", {"config": {"stopwaitsecs": -1}}, None),
    ("POST", "/api/v1/services/alpha/scale", {"replicas": HUGE}, "replicas"),
    ("POST", "/api/v1/routing/rules", {"name": "r", "priority": HUGE}, "priority"),
    ("POST", "/api/v1/routing/rules", {"name": "r", "priority": -HUGE}, "priority"),
]
#: Raw bodies that are not acceptable JSON at all.
BAD_RAW = [b'{"replicas": NaN}', b'{"replicas": Infinity}', b'{"replicas": 1e999}', DEEP.encode()]
#: Query parameters out of range (issue 13's OverflowError first).
BAD_QUERIES = [
    "/api/v1/health/services/alpha/history?instance=9223372036854775808",
    "/api/v1/logs/services/alpha?since=99999999999999999999999",
    "/api/v1/events?since=1e5",
    "/api/v1/events?offset=100001",
    "/api/v1/services?limit=1001",
]


async def test_out_of_range_bodies_and_parameters_are_400s_naming_the_field(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    before = config.read_bytes()
    with trio.fail_after(DEADLINE):
        async with running_stack(config) as stack, stack.client() as client:
            for _storm in range(3):
                for method, path, body, field in BAD_BODIES:
                    response = await client.request(method, path, json=body)
                    error = error_of(response, 400, "INVALID_REQUEST")
                    if field is not None:
                        assert error["details"].get("field") == field, (body, error)
                    assert "must be" in error["message"], error
                for raw in BAD_RAW:
                    response = await client.post(
                        "/api/v1/services/alpha/scale",
                        content=raw,
                        headers={"Content-Type": "application/json"},
                    )
                    error_of(response, 400, "INVALID_REQUEST")
                for query in BAD_QUERIES:
                    error_of(await client.get(query), 400, "INVALID_REQUEST")
            # Still up, and nothing was written.
            assert data_of(await client.get("/api/v1/services/alpha"))["name"] == "alpha"
    assert config.read_bytes() == before


async def test_times_as_the_schema_gives_them_are_accepted(tmp_path: Path) -> None:
    """schemathesis found ``since`` documented as any string: RFC 3339 or epoch seconds."""
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    with trio.fail_after(DEADLINE):
        async with running_stack(config) as stack, stack.client() as client:
            for since in ("2024-01-01T10:00:00+05:30", "0001-01-01T00:00:00Z", "1700000000.5"):
                events = data_of(await client.get("/api/v1/events", params={"since": since}))
                assert isinstance(events["events"], list)


async def test_a_null_spelling_beside_another_is_no_clash(tmp_path: Path) -> None:
    """schemathesis found ``target_service: null`` beside ``target_agents`` refused."""
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    rule = {"name": "r", "target_service": None, "target_agents": ["alpha"]}
    with trio.fail_after(DEADLINE):
        async with running_stack(config, store=False) as stack, stack.client() as client:
            created = data_of(await client.post("/api/v1/routing/rules", json=rule), 201)
    assert created["rule"]["target_agents"] == ["alpha"]
    assert json.dumps(["alpha"]) in config.read_text()
