"""Issue 13: what the OpenAPI document accepts, the server accepts; beyond it, a 400, never a 500.

The bounds are read from ``/openapi.json`` itself, so this covers every
integer query parameter of every GET, present and future: its documented
maximum is answered (not 400, not 500), one more is a 400 naming it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from agentvisor.router.server import Router
from tests.integration.admin.harness import sleeper, write_config
from tests.integration.admin.stack import Stack, data_of, error_of, running_stack


@asynccontextmanager
async def whole_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The API with its store and router: every endpoint can answer for real."""
    router_section = '[router]\nbind = ["127.0.0.1:0"]\n'
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha") + router_section)
    async with running_stack(config) as stack, trio.open_nursery() as nursery:
        router = Router(stack.supervisor, stack.supervisor.bus)
        await nursery.start(router.run)
        stack.admin.deps.router = router
        yield stack
        nursery.cancel_scope.cancel()


def integer_parameters(document: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(path with alpha for {service_id}, parameter, maximum) of every GET."""
    found = []
    for path, item in document["paths"].items():
        operation = item.get("get")
        if operation is None or path.endswith("/stream"):
            continue
        for parameter in operation["parameters"]:
            schema = parameter["schema"]
            if parameter["in"] == "query" and schema.get("type") == "integer":
                assert "maximum" in schema, f"{path} ?{parameter['name']} has no maximum"
                found.append((path.replace("{service_id}", "alpha"), parameter["name"], schema))
    return [(path, name, schema["maximum"]) for path, name, schema in found]


async def test_every_integer_parameter_is_bounded_alike_in_schema_and_server(
    tmp_path: Path,
) -> None:
    async with whole_stack(tmp_path) as stack, stack.client() as client:
        document = (await client.get("/openapi.json")).json()
        checked = integer_parameters(document)
        assert len(checked) >= 12
        for path, name, maximum in checked:
            query: dict[str, Any] = {name: maximum}
            if path.endswith("/logs/search"):
                query["query"] = "anything"
            at_bound = await client.get(path, params=query)
            assert at_bound.status_code == 200, (path, name, at_bound.text)
            beyond = await client.get(path, params={**query, name: maximum + 1})
            error = error_of(beyond, 400, "INVALID_REQUEST")
            assert f"'{name}'" in error["message"], (path, error)


async def test_a_huge_instance_is_a_400_not_an_overflow(tmp_path: Path) -> None:
    async with whole_stack(tmp_path) as stack, stack.client() as client:
        path = "/api/v1/health/services/alpha/history?instance=9223372036854775808"
        error = error_of(await client.get(path), 400, "INVALID_REQUEST")
        assert error["message"].startswith("Query parameter 'instance' must be an integer")


async def test_requests_valid_by_the_schema_are_accepted(tmp_path: Path) -> None:
    async with whole_stack(tmp_path) as stack, stack.client() as client:
        document = (await client.get("/openapi.json")).json()
        search = document["paths"]["/api/v1/logs/search"]["get"]["parameters"]
        assert next(p for p in search if p["name"] == "query")["required"] is True
        # The smallest period the pattern allows is one the server takes; a longer one than
        # is stored is cut to what is stored.
        for period in ("1", "1s", "01m", "100000w"):
            data_of(await client.get("/api/v1/stats/timeseries", params={"period": period}))
        for bad in ("0", "0.5s", "soon"):
            response = await client.get("/api/v1/stats/timeseries", params={"period": bad})
            assert "'period'" in error_of(response, 400, "INVALID_REQUEST")["message"]
        for ip in ("::1", "10.0.0.7", "fe80::1"):
            body = {"ip": ip, "path": "/ws"}
            data_of(await client.post("/api/v1/routing/test", json=body))
        empty = await client.put("/api/v1/services/alpha/config", json={})
        assert data_of(empty)["reload"]["failed"] == []


async def test_a_wrong_method_names_the_allowed_ones_in_allow(tmp_path: Path) -> None:
    async with whole_stack(tmp_path) as stack, stack.client() as client:
        response: httpx.Response = await client.get("/api/v1/reload")
        error = error_of(response, 405, "METHOD_NOT_ALLOWED")
        assert "POST" in response.headers["Allow"].split(", ")
        assert error["details"]["allowed"] == response.headers["Allow"].split(", ")
