"""The installed `agentvisor` and `agentvisorctl` commands against `agentvisor run`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHILDREN = Path(__file__).resolve().parents[1] / "children"
BIN = Path(sys.executable).parent
DEADLINE = 20.0


def sleeper(name: str) -> str:
    command = json.dumps([sys.executable, str(CHILDREN / "sleeper.py")])
    return f"[agents.{name}]\ncommand = {command}\nstartsecs = 0\nhealth.enabled = false\n"


def write_config(path: Path, agents: str) -> Path:
    path.write_text(
        '[supervisor]\nstate_dir = "state"\nport_range = [17000, 19999]\n'
        f'[admin]\nbind = ["unix:state/admin.sock"]\n\n[router]\nbind = ["127.0.0.1:0"]\n\n{agents}'
    )
    return path


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert "Traceback" not in result.stderr
    return result


def eventually(check: Any, what: str) -> Any:
    """Poll a fact held by another process until it is true, within a deadline."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {DEADLINE}s waiting for {what}")


def running_services(config: Path) -> list[dict[str, Any]]:
    result = run("agentvisorctl", "-c", str(config), "--json", "status")
    if result.returncode not in (0, 3) or not result.stdout.strip():  # 3: not all running
        return []
    services: list[dict[str, Any]] = json.loads(result.stdout)
    return services if all(s["state"] == "running" for s in services) else []


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha") + sleeper("beta"))
    process = subprocess.Popen(
        [str(BIN / "agentvisor"), "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: running_services(config), "alpha and beta running")
        yield process, config
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_ctl_reads_and_drives_a_running_daemon(
    daemon: tuple[subprocess.Popen[bytes], Path],
) -> None:
    _process, config = daemon
    ctl = ("agentvisorctl", "-c", str(config))
    table = run(*ctl, "status")
    assert table.returncode == 0
    assert [line.split()[0] for line in table.stdout.splitlines()] == ["NAME", "alpha", "beta"]
    show = run(*ctl, "show", "alpha")
    assert show.returncode == 0
    assert "instances" in show.stdout
    assert run(*ctl, "tail", "alpha", "-n", "5").stdout == "ready\n"
    stopped = run(*ctl, "stop", "beta")
    assert (stopped.returncode, stopped.stdout) == (0, "beta: stopped (0/1)\n")
    started = run(*ctl, "start", "beta")
    assert (started.returncode, started.stdout) == (0, "beta: running (1/1)\n")
    missing = run(*ctl, "show", "nope")
    assert (missing.returncode, missing.stderr) == (1, "agentvisorctl: Service 'nope' not found\n")
    reload = run("agentvisor", "reload", "-c", str(config))
    assert (reload.returncode, reload.stdout) == (0, "reloaded: no changes\n")


def test_tail_follow_exits_3_when_agentvisor_stops(
    daemon: tuple[subprocess.Popen[bytes], Path],
) -> None:
    process, config = daemon
    follower = subprocess.Popen(
        [str(BIN / "agentvisorctl"), "-c", str(config), "tail", "-f", "alpha"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "ready\n"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE) == 0
        _out, err = follower.communicate(timeout=DEADLINE)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == 3
    assert err.startswith("agentvisorctl: cannot reach agentvisor at ")
    assert "Traceback" not in err
    after = run("agentvisorctl", "-c", str(config), "status")
    assert after.returncode == 3
    assert after.stderr == (
        f"agentvisorctl: cannot reach agentvisor at {config.parent / 'state' / 'admin.sock'} "
        "(is it running? start it with 'agentvisor run')\n"
    )
    assert run("agentvisor", "reload", "-c", str(config)).returncode == 3


def test_check_prints_ok_or_every_error(tmp_path: Path) -> None:
    good = write_config(tmp_path / "good.toml", sleeper("alpha") + sleeper("beta"))
    result = run("agentvisor", "check", "-c", str(good))
    assert (result.returncode, result.stdout) == (0, f"{good}: ok (2 agents, 0 routes)\n")
    bad = write_config(tmp_path / "bad.toml", "[agents.x]\nreplica = 2\nautorestart = 'maybe'\n")
    result = run("agentvisor", "check", "-c", str(bad))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) >= 2
    assert all(line.startswith(f"{bad}:") for line in lines)
