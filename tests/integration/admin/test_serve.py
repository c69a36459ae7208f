"""AdminServer's binds: refusals, stale and live sockets, and the 500 envelope."""

from __future__ import annotations

import logging
import os
import re
import socket
import stat
from pathlib import Path

import attrs
import httpx
import pytest
import trio
import trio.testing
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from agentvisor.admin.app import create_app
from agentvisor.admin.serve import GRACEFUL_TIMEOUT, AdminBindError, AdminServer, check_exposure
from agentvisor.config.model import AdminConfig
from tests.integration.admin.harness import running_admin, sleeper, write_config


@pytest.mark.parametrize("bind", ["0.0.0.0:0", "[::]:0", "192.0.2.1:8080", "example.com:80"])
def test_public_tcp_bind_without_token_is_refused(bind: str) -> None:
    with pytest.raises(AdminBindError, match=re.escape("set a token or bind to 127.0.0.1")):
        check_exposure((bind, "unix:a.sock"), None)


@pytest.mark.parametrize("bind", ["127.0.0.1:0", "[::1]:8080", "localhost:8080", "unix:/x"])
def test_loopback_and_unix_binds_need_no_token(bind: str) -> None:
    check_exposure((bind,), None)


def test_a_token_allows_public_binds() -> None:
    check_exposure(("0.0.0.0:8080",), "s3cret")


async def test_admin_server_refuses_to_start_exposed(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, trio.open_nursery() as nursery:
        exposed = AdminServer(admin.deps, AdminConfig(bind=("0.0.0.0:0",)), str(tmp_path))
        with pytest.raises(AdminBindError, match="reachable from other hosts"):
            await nursery.start(exposed.run)


async def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    stale = tmp_path / "adm.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(stale))  # closed without unlink: what a crash leaves
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.unix() as client:
        assert (await client.get("/health")).status_code == 200
        assert stat.S_IMODE(os.stat(stale).st_mode) == 0o600


async def test_live_socket_and_busy_port_are_not_taken_over(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, trio.open_nursery() as nursery:
        second = AdminServer(admin.deps, AdminConfig(bind=("unix:adm.sock",)), str(tmp_path))
        with pytest.raises(AdminBindError, match="in use by a running process"):
            await nursery.start(second.run)
        port_bind = admin.url.removeprefix("http://")
        third = AdminServer(admin.deps, AdminConfig(bind=(port_bind,)), str(tmp_path))
        with pytest.raises(
            AdminBindError, match=re.escape(f"cannot listen on admin bind '{port_bind}'")
        ):
            await nursery.start(third.run)
        async with admin.unix() as client:  # the first one is unharmed
            assert (await client.get("/health")).status_code == 200


async def test_a_file_in_the_socket_path_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "precious.sock").write_text("not a socket")
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, trio.open_nursery() as nursery:
        server = AdminServer(admin.deps, AdminConfig(bind=("unix:precious.sock",)), str(tmp_path))
        with pytest.raises(AdminBindError, match="is not a socket"):
            await nursery.start(server.run)
    assert (tmp_path / "precious.sock").read_text() == "not a socket"


async def test_unexpected_errors_are_500_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"), token=None)
    async with running_admin(config) as admin:
        app = create_app(admin.deps)

        @app.get("/api/v1/boom")
        async def boom() -> str:
            raise RuntimeError("the secret internals")

        hyper = HyperConfig()
        hyper.bind = ["127.0.0.1:0"]
        hyper.accesslog = None
        hyper.errorlog = logging.getLogger("test.hypercorn")
        async with trio.open_nursery() as nursery:
            (url,) = await nursery.start(serve, app, hyper)
            async with httpx.AsyncClient(base_url=url) as client:
                response = await client.get("/api/v1/boom")
            nursery.cancel_scope.cancel()
    assert response.status_code == 500
    assert response.json() == {
        "success": False,
        "error": {
            "code": "INTERNAL_ERROR",
            "message": "Internal error; the details are in agentvisor's log",
            "details": {},
        },
    }
    assert "the secret internals" not in response.text
    assert "Traceback" not in response.text
    logged = [r for r in caplog.records if r.name == "agentvisor.admin" and r.exc_info]
    assert logged
    assert "the secret internals" in str(logged[0].exc_info)


async def test_cancelling_the_server_answers_in_flight_long_polls_at_once(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin:
        path = tmp_path / "second.sock"
        deps = attrs.evolve(admin.deps, binds=[])
        server = AdminServer(deps, AdminConfig(bind=("unix:second.sock",)), str(tmp_path))
        server_scope = trio.CancelScope()
        server_done = trio.Event()
        outcome: list[str] = []
        polled = trio.Event()

        async def run_server(*, task_status: trio.TaskStatus[list[str]]) -> None:
            with server_scope:
                await server.run(task_status=task_status)
            server_done.set()

        async def long_poll() -> None:
            transport = httpx.AsyncHTTPTransport(uds=str(path))
            async with httpx.AsyncClient(base_url="http://a", transport=transport) as client:
                try:
                    await client.get("/api/v1/logs/services/alpha?since=999999&wait=60", timeout=90)
                except httpx.TransportError as error:
                    outcome.append(type(error).__name__)
                else:
                    outcome.append("answered")
            polled.set()

        async with trio.open_nursery() as nursery:
            assert await nursery.start(run_server) == [f"unix:{path}"]
            assert deps.binds == [f"unix:{path}"]
            nursery.start_soon(long_poll)
            await trio.testing.wait_all_tasks_blocked(0.05)  # the poll waits for lines
            server_scope.cancel()
            with trio.fail_after(GRACEFUL_TIMEOUT / 2):  # well before the grace runs out
                await server_done.wait()
                await polled.wait()
    assert not path.exists()
    assert deps.binds == []
    assert outcome == ["answered"]
