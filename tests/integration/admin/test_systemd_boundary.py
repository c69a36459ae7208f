"""Issue 13: what is agentvisor's own under systemd stays agentvisor's.

Workers do not inherit the notify socket, the watchdog or the admin and metrics tokens, and
a reload through the API is told to systemd as one (RELOADING=1 … READY=1 with
a STATUS= line), as SIGHUP's is. A real datagram socket stands in for systemd;
the worker is a real process that writes down the environment it got.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
import trio

from agentvisor import sdnotify
from tests.integration.admin.harness import TOKEN, all_running, running_admin, write_config
from tests.integration.admin.stack import data_of

WRITE_ENVIRONMENT = (
    "import json, os, sys, time\n"
    "tmp = sys.argv[1] + '.tmp'\n"
    "with open(tmp, 'w') as out: json.dump(dict(os.environ), out)\n"
    "os.rename(tmp, sys.argv[1])\n"
    "time.sleep(600)\n"
)


def environment_writer(name: str, path: Path, extra: str = "") -> str:
    command = json.dumps([sys.executable, "-c", WRITE_ENVIRONMENT, str(path)])
    return f"[agents.{name}]\ncommand = {command}\nstartsecs = 0\nhealth.enabled = false\n{extra}\n"


async def wait_for_file(path: Path) -> dict[str, str]:
    with trio.fail_after(20):
        while not path.exists():
            await trio.sleep(0.02)
    environment: dict[str, str] = json.loads(path.read_text())
    return environment


async def test_workers_do_not_inherit_systemd_sockets_or_the_admin_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")
    monkeypatch.setenv("AGENTVISOR_TOKEN", "another-token")
    monkeypatch.setenv("OPS_ADMIN_SECRET", TOKEN)  # the token under a name of its own
    monkeypatch.setenv("OPS_METRICS_SECRET", "metrics-secret")  # and the metrics token
    monkeypatch.setenv("AGENTVISOR_TEST_KEPT", "yes")
    plain, explicit = tmp_path / "plain.json", tmp_path / "explicit.json"
    agents = environment_writer("plain", plain) + environment_writer(
        "explicit", explicit, 'environment = { NOTIFY_SOCKET = "/run/mine.sock" }'
    )
    extra = 'metrics_token = "${OPS_METRICS_SECRET}"'
    config = write_config(tmp_path / "agentvisor.toml", agents, admin_extra=extra)
    async with running_admin(config):
        inherited = await wait_for_file(plain)
        chosen = await wait_for_file(explicit)
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "AGENTVISOR_TOKEN"):
        assert name not in inherited, name
    assert TOKEN not in inherited.values()
    assert "metrics-secret" not in inherited.values()
    assert inherited["AGENTVISOR_TEST_KEPT"] == "yes"
    assert inherited["AGENTVISOR_SERVICE"] == "plain"
    assert chosen["NOTIFY_SOCKET"] == "/run/mine.sock"  # set in its config on purpose


async def test_a_reload_through_the_api_is_told_to_systemd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify.sock"
    systemd = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with systemd:
        await systemd.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        config = write_config(tmp_path / "agentvisor.toml", environment_writer("a", tmp_path / "a"))
        async with running_admin(config) as admin, admin.unix() as client:
            admin.supervisor.notify = sdnotify.notify  # as the daemon composes it
            await all_running(admin)
            data_of(await client.post("/api/v1/reload"))
            with trio.fail_after(10):
                reloading = (await systemd.recv(4096)).decode().splitlines()
                ready = (await systemd.recv(4096)).decode().splitlines()
            config.write_text(config.read_text() + "\n[agents.broken\n")
            response = await client.post("/api/v1/reload")
            assert response.status_code == 422
            with trio.fail_after(10):
                assert (await systemd.recv(4096)).startswith(b"RELOADING=1\n")
                rejected = (await systemd.recv(4096)).decode().splitlines()
    assert reloading[0] == "RELOADING=1"
    assert reloading[1].startswith("MONOTONIC_USEC=")
    assert reloading[2] == "STATUS=reloading the config (requested by api)"
    assert ready[0] == "READY=1"
    assert ready[1].startswith("STATUS=supervising 1 agents; reload:")
    assert rejected == ["READY=1", "STATUS=reload rejected: still running the previous config"]
