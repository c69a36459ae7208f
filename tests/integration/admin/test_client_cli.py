"""agentvisor.client and the CLIs against a live admin API (Supervisor + Hypercorn)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import trio

from agentvisor.cli import ctl, daemon
from agentvisor.client import AgentvisorClient, ApiError, AsyncAgentvisorClient, Unreachable
from tests.integration.admin.harness import (
    TOKEN,
    Admin,
    all_running,
    running_admin,
    sleeper,
    write_config,
)

ROOT = Path(__file__).resolve().parents[3]


async def run_ctl(*argv: str) -> int:
    """agentvisorctl in a thread: it blocks, and the server runs on this trio loop."""
    return await trio.to_thread.run_sync(partial(ctl.main, list(argv)))


async def wait_for_line(admin: Admin, service: str, text: str) -> None:
    """A worker counts as running (startsecs = 0) before its first line reaches the log."""
    async with AsyncAgentvisorClient(admin.socket) as client:
        with trio.fail_after(10):
            while text not in [line["text"] for line in (await client.logs(service))["lines"]]:
                await trio.sleep(0.05)


async def test_async_client_mirrors_the_endpoints(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha") + sleeper("beta"))
    async with running_admin(config) as admin:
        await all_running(admin)
        async with AsyncAgentvisorClient(admin.socket) as client:
            assert (await client.health())["status"] == "ok"
            assert (await client.info())["pid"] == admin.deps.pid
            listed = await client.services(limit=1)
            assert [s["name"] for s in listed["services"]] == ["alpha"]
            assert (await client.service("beta"))["config"]["replicas"] == 1
            assert len((await client.instances("beta"))["instances"]) == 1
            stopped = await client.stop("beta")
            assert stopped["service"]["state"] == "stopped"
            assert (await client.start("beta"))["service"]["state"] == "running"
            assert (await client.restart("beta", force=True))["settled"] is True
            assert (await client.reload())["changed"] is False
            logs = await client.logs("alpha", limit=5, stream="stdout", instance=0)
            assert [line["text"] for line in logs["lines"]] == ["ready"]
            with pytest.raises(ApiError) as not_found:
                await client.service("nope")
            assert (not_found.value.code, not_found.value.status) == ("SERVICE_NOT_FOUND", 404)
    async with AsyncAgentvisorClient(admin.socket) as client:
        with pytest.raises(Unreachable):
            await client.info()


async def test_sync_client_over_tcp_sends_the_token(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin:

        def calls() -> tuple[str, str]:
            with AgentvisorClient(admin.url, token=TOKEN) as client:
                name = client.service("alpha")["name"]
            with AgentvisorClient(admin.url) as anonymous:
                try:
                    anonymous.info()
                except ApiError as error:
                    return name, error.code
            return name, "no error"

        assert await trio.to_thread.run_sync(calls) == ("alpha", "UNAUTHORIZED")


async def test_ctl_status_show_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha", replicas=2))
    async with running_admin(config) as admin:
        await all_running(admin)
        sock = admin.socket
        assert await run_ctl("-s", sock, "status") == 0
        table = capsys.readouterr().out
        assert "alpha" in table
        assert "running" in table
        assert "2/2" in table

        assert await run_ctl("-s", sock, "--json", "status") == 0
        (alpha,) = json.loads(capsys.readouterr().out)
        assert alpha["state"] == "running"

        assert await run_ctl("-c", str(config), "show", "alpha") == 0
        assert "instances" in capsys.readouterr().out

        assert await run_ctl("-s", sock, "show", "nope") == 1
        assert capsys.readouterr().err == "agentvisorctl: Service 'nope' not found\n"

        assert await run_ctl("-s", sock, "status", "alpha", "nope") == 1
        captured = capsys.readouterr()
        assert "alpha" in captured.out
        assert captured.err == "agentvisorctl: Service 'nope' not found\n"

        assert await run_ctl("-s", admin.url, "status") == 1
        assert "bearer token" in capsys.readouterr().err
        assert await run_ctl("-s", admin.url, "--token", TOKEN, "status") == 0
        capsys.readouterr()

        # issue 13: --json after the subcommand too; 3 once something is not running.
        assert await run_ctl("-s", sock, "status", "--json") == 0
        assert json.loads(capsys.readouterr().out)[0]["state"] == "running"
        assert await run_ctl("-s", sock, "stop", "alpha") == 0
        capsys.readouterr()
        assert await run_ctl("-s", sock, "status", "alpha", "--json") == 3
        assert json.loads(capsys.readouterr().out)[0]["state"] == "stopped"

        # issue 11: errors name what the operator typed, not the API's field names.
        assert await run_ctl("-s", sock, "register", "x", str(tmp_path / "gone.py")) == 1
        assert capsys.readouterr().err.startswith("agentvisorctl: FILE: agent file ")
        assert await run_ctl("-s", sock, "register", "x", "--command", "y", "--port", "0") == 1
        assert capsys.readouterr().err.startswith(
            "agentvisorctl: --port must be an integer from 1 to 65535, got 0"
        )
        assert await run_ctl("-s", sock, "scale", "alpha", "5000") == 1
        assert capsys.readouterr().err.startswith(
            "agentvisorctl: N must be an integer from 0 to 1000, got 5000"
        )


async def test_ctl_stop_start_all_and_tail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha") + sleeper("beta"))
    async with running_admin(config) as admin:
        await all_running(admin)
        sock = admin.socket
        assert await run_ctl("-s", sock, "stop", "all") == 0
        assert capsys.readouterr().out.splitlines() == [
            "alpha: stopped (0/1)",
            "beta: stopped (0/1)",
        ]
        assert await run_ctl("-s", sock, "start", "alpha") == 0
        assert capsys.readouterr().out == "alpha: running (1/1)\n"
        await wait_for_line(admin, "alpha", "ready")
        assert await run_ctl("-s", sock, "tail", "alpha", "-n", "1") == 0
        assert capsys.readouterr().out == "ready\n"
        assert await run_ctl("-s", sock, "restart", "nope", "alpha") == 1
        captured = capsys.readouterr()
        assert captured.err == "agentvisorctl: Service 'nope' not found\n"
        assert captured.out == "alpha: running (1/1)\n"


async def test_reload_commands_report_the_result_or_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config):
        reload = partial(daemon.main, ["reload", "-c", str(config)])
        assert await trio.to_thread.run_sync(reload) == 0
        assert capsys.readouterr().out == "reloaded: no changes\n"

        write_config(config, sleeper("alpha") + sleeper("gamma"))
        assert await run_ctl("-c", str(config), "reload") == 0
        assert capsys.readouterr().out == "reloaded: added gamma\n"

        config.write_text(config.read_text() + "\n[agents.bad]\nreplica = 2\n")
        assert await trio.to_thread.run_sync(reload) == 1
        err = capsys.readouterr().err.splitlines()
        assert err[0].startswith("agentvisor: reload rejected, the config is invalid")
        assert any('unknown key "replica"' in line for line in err[1:])
        assert all(line.startswith(f"  {config}:") for line in err[1:])


async def test_ctrl_c_ends_tail_follow_quietly(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin:
        await all_running(admin)
        code = "import sys; from agentvisor.cli.ctl import main; sys.exit(main(sys.argv[1:]))"
        process = await trio.lowlevel.open_process(
            [sys.executable, "-c", code, "-s", admin.socket, "tail", "-f", "alpha"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        assert process.stdout is not None
        assert process.stderr is not None
        with trio.fail_after(30):
            seen = b""
            while b"ready\n" not in seen:
                chunk = await process.stdout.receive_some()
                assert chunk, "agentvisorctl exited before printing"
                seen += chunk
            process.send_signal(signal.SIGINT)
            returncode = await process.wait()
            err = await process.stderr.receive_some()
        await process.stdout.aclose()
        await process.stderr.aclose()
    assert (returncode, err) == (0, b"")
