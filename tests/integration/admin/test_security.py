"""The admin API's guards over a real Hypercorn: rate limit, CORS, body limits, no tracebacks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio

from agentvisor.admin.app import AdminLimits
from agentvisor.admin.security import ClientBuckets
from tests.integration.admin.harness import TOKEN, running_admin, sleeper, write_config

#: Cheap and mutating: refused with 404 by the handler, after the guards let it through.
MUTATION = "/api/v1/services/nope/start"
ORIGIN = "https://console.example"


@attrs.define
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


# -- rate limit ------------------------------------------------------------------------


async def test_mutations_beyond_the_burst_get_429_then_recover(tmp_path: Path) -> None:
    clock = FakeClock()
    limits = AdminLimits(mutating_rate=2.0, mutating_burst=3.0, clock=clock)
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config, limits=limits) as admin, admin.tcp(TOKEN) as client:
        for _ in range(3):
            assert (await client.post(MUTATION)).status_code == 404
        limited = await client.post(MUTATION)
        assert limited.status_code == 429
        assert error_code(limited) == "RATE_LIMITED"
        assert limited.headers["Retry-After"] == "1"
        assert limited.json()["error"]["details"]["retry_after_seconds"] == 0.5
        # Reads are never limited.
        assert (await client.get("/api/v1/services")).status_code == 200
        clock.now += 0.5  # one token back at 2 per second
        assert (await client.post(MUTATION)).status_code == 404
        assert (await client.post(MUTATION)).status_code == 429
        clock.now += 10  # the bucket is full again, and no fuller than the burst
        statuses = [(await client.post(MUTATION)).status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]


async def test_each_client_has_its_own_bucket(tmp_path: Path) -> None:
    limits = AdminLimits(mutating_rate=1.0, mutating_burst=2.0, clock=FakeClock())
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config, limits=limits) as admin:
        async with admin.tcp() as anonymous:
            # Refused by the token before the limit: anonymous calls spend nothing.
            for _ in range(5):
                assert (await anonymous.post(MUTATION)).status_code == 401
        async with admin.tcp(TOKEN) as tcp:
            assert [(await tcp.post(MUTATION)).status_code for _ in range(3)] == [404, 404, 429]
        async with admin.unix() as local:  # the unix socket is a client of its own
            assert [(await local.post(MUTATION)).status_code for _ in range(3)] == [404, 404, 429]


def test_buckets_stay_bounded_under_a_flood_of_clients() -> None:
    buckets = ClientBuckets(rate=1.0, burst=2.0, max_clients=100)
    for client in range(10_000):
        assert buckets.take(f"10.0.{client // 256}.{client % 256}", now=0.0) == 0.0
    assert len(buckets) == 100
    # A full bucket is the same as no bucket: once refilled, they are all forgotten.
    buckets.take("10.9.9.9", now=5.0)
    assert len(buckets) == 1


def test_retry_after_is_the_time_to_the_next_token() -> None:
    buckets = ClientBuckets(rate=4.0, burst=1.0)
    assert buckets.take("a", now=0.0) == 0.0
    assert buckets.take("a", now=0.1) == pytest.approx(0.15)
    assert buckets.take("a", now=0.25) == 0.0


# -- CORS ------------------------------------------------------------------------------


@pytest.fixture
async def cors_admin(tmp_path: Path) -> AsyncIterator[Any]:
    extra = f'cors_origins = ["{ORIGIN}"]'
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"), admin_extra=extra)
    async with running_admin(config) as admin:
        yield admin


async def test_preflight_from_an_allowed_origin_needs_no_token(cors_admin: Any) -> None:
    headers = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with cors_admin.tcp() as anonymous:
        response = await anonymous.options("/api/v1/services/alpha/stop", headers=headers)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "Origin" in response.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in response.headers


async def test_other_origins_get_no_cors_headers(cors_admin: Any) -> None:
    headers = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    async with cors_admin.tcp() as anonymous:
        preflight = await anonymous.options("/api/v1/services/alpha/stop", headers=headers)
    async with cors_admin.tcp(TOKEN) as client:
        read = await client.get("/api/v1/services", headers={"Origin": "https://evil.example"})
    for response in (preflight, read):
        assert "Access-Control-Allow-Origin" not in response.headers
    assert preflight.status_code == 401  # no preflight answer: the token is asked as ever
    assert read.status_code == 200
    assert "Origin" in read.headers["Vary"]


async def test_answers_to_an_allowed_origin_carry_its_name(cors_admin: Any) -> None:
    async with cors_admin.tcp(TOKEN) as client:
        ok = await client.get("/api/v1/services", headers={"Origin": ORIGIN})
    async with cors_admin.tcp() as anonymous:
        refused = await anonymous.get("/api/v1/services", headers={"Origin": ORIGIN})
    for response in (ok, refused):  # errors too, so the console can show them
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]
    assert refused.status_code == 401


async def test_without_cors_origins_no_origin_is_allowed(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    headers = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        preflight = await client.options("/api/v1/services", headers=headers)
        read = await client.get("/api/v1/services", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "Access-Control-Allow-Origin" not in read.headers


# -- bodies ------------------------------------------------------------------------------


async def test_large_bodies_get_413_with_the_envelope(tmp_path: Path) -> None:
    limits = AdminLimits(max_body_bytes=1024)
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    big = b'{"pad": "' + b"x" * 4096 + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 512):  # no Content-Length: chunked
            yield big[start : start + 512]

    async with running_admin(config, limits=limits) as admin, admin.tcp(TOKEN) as client:
        declared = await client.post("/api/v1/reload", content=big)
        chunked = await client.post("/api/v1/reload", content=chunks())
        on_a_read = await client.request("GET", "/api/v1/services", content=big)
        fits = await client.post(MUTATION, json={"pad": "x" * 100})
    for response in (declared, chunked, on_a_read):
        assert response.status_code == 413, response.text
        assert error_code(response) == "INVALID_REQUEST"
        assert "1024 bytes" in response.json()["error"]["message"]
    assert fits.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"a": 1,}',
        b"\xff\xfe\x00garbage",
        b"[" * 100_000,  # deep enough to exhaust the recursion limit
    ],
    ids=["syntax", "trailing-comma", "not-utf8", "deep"],
)
async def test_malformed_json_is_a_400_never_a_500(tmp_path: Path, body: bytes) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    headers = {"Content-Type": "application/json"}
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        responses = [
            await client.post(MUTATION, content=body, headers=headers),
            await client.post("/api/v1/services", content=body, headers=headers),
            await client.post("/api/v1/reload", content=body),  # whatever its type says
        ]
    for response in responses:
        assert response.status_code == 400, response.text
        assert error_code(response) == "INVALID_REQUEST"
        assert "not valid JSON" in response.json()["error"]["message"]
        assert "Traceback" not in response.text


async def test_odd_requests_get_envelopes_and_no_traceback(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    odd = [
        ("GET", "/api/v1/services/%ff%fe"),
        ("GET", "/api/v1/services?limit=%ff"),
        ("GET", "/api/v1/services?limit=99999999999999999999999"),
        ("GET", "/api/v1/logs/services/alpha?wait=nan"),
        ("GET", "/api/v1/services/" + "a" * 10_000),
        ("PATCH", "/api/v1/services/alpha"),
        ("DELETE", "/metrics"),
        ("POST", "/api/v1/services/alpha/restart?timeout=-1"),
        ("GET", "/api/v1/events/stream?types=%00"),
    ]
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        for method, url in odd:
            response = await client.request(method, url)
            assert response.status_code < 500, (method, url, response.text)
            assert response.json()["success"] is False, (method, url)
            assert "Traceback" not in response.text


# -- what needs the token ----------------------------------------------------------------


async def test_token_covers_everything_but_health_and_the_docs_page(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.tcp() as anonymous:
        guarded = [
            await anonymous.get(path)
            for path in ("/metrics", "/openapi.json", "/api/v1/events/stream", "/api/v1/info")
        ]
        open_paths = [
            await anonymous.get(path)
            for path in ("/health", "/docs", "/docs/assets/agentvisor-docs.js")
        ]
    assert [response.status_code for response in guarded] == [401] * 4
    assert [response.status_code for response in open_paths] == [200] * 3


async def test_rate_limit_holds_within_the_deadline(tmp_path: Path) -> None:
    # The default limit is generous: 40 changes at once from one client all pass.
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        statuses: list[int] = []

        async def change() -> None:
            statuses.append((await client.post(MUTATION)).status_code)

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for _ in range(40):
                    nursery.start_soon(change)
    assert statuses == [404] * 40
