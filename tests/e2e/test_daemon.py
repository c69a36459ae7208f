"""`agentvisor run` as a real subprocess, driven by `agentvisorctl` and signals."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

CHILDREN = Path(__file__).resolve().parents[1] / "children"
BIN = Path(sys.executable).parent
DEADLINE = 20.0


def config_text(agents: str) -> str:
    return f"""
[supervisor]
state_dir = "state"
port_range = [30000, 39999]

[admin]
bind = ["unix:state/admin.sock"]

[router]
bind = ["127.0.0.1:0"]

{agents}
"""


def sleeper_agent(name: str, replicas: int = 1) -> str:
    command = json.dumps([sys.executable, str(CHILDREN / "sleeper.py")])
    return (
        f"[agents.{name}]\ncommand = {command}\nreplicas = {replicas}\nstartsecs = 0\n"
        "health.enabled = false\n"
    )


def eventually(check: Any, what: str, timeout: float = DEADLINE) -> Any:
    """Poll ``check()`` (a fact in another process) until truthy, bounded by a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def ctl(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "agentvisorctl"), "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


def status(config: Path) -> list[dict[str, Any]]:
    result = ctl(config, "--json", "status")
    if result.returncode not in (0, 3) or not result.stdout.strip():  # 3: not all running
        return []
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data


def all_running(config: Path, count: int) -> list[dict[str, Any]]:
    services = status(config)
    ok = len(services) == count and all(s["state"] == "running" for s in services)
    return services if ok else []


def stop(process: subprocess.Popen[Any], timeout: float = DEADLINE) -> None:
    """SIGTERM a daemon this test started, SIGKILL it if it does not exit in time."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def worker_pids(services: list[dict[str, Any]]) -> list[int]:
    return [i["pid"] for s in services for i in s["instances"] if i["pid"]]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    config = tmp_path / "agentvisor.toml"
    config.write_text(config_text(sleeper_agent("alpha", replicas=2) + sleeper_agent("beta")))
    process = subprocess.Popen(
        [str(BIN / "agentvisor"), "run", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process, config
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=DEADLINE)
        if process.stdout is not None:
            process.stdout.close()


def test_status_shows_agents_running_and_a_killed_worker_returns(
    daemon: tuple[subprocess.Popen[str], Path],
) -> None:
    _process, config = daemon
    services = eventually(lambda: all_running(config, 2), "both agents running")
    beta = next(s for s in services if s["name"] == "beta")
    (old_pid,) = worker_pids([beta])
    os.kill(old_pid, signal.SIGKILL)

    def replaced() -> bool:
        beta_now = next(s for s in status(config) if s["name"] == "beta")
        return beta_now["state"] == "running" and worker_pids([beta_now]) not in ([], [old_pid])

    eventually(replaced, "beta's replacement")
    table = ctl(config, "status")
    assert table.returncode == 0
    assert "alpha" in table.stdout
    assert "beta" in table.stdout


def test_sigkill_of_agentvisor_leaves_no_orphan_workers(
    daemon: tuple[subprocess.Popen[str], Path],
) -> None:
    process, config = daemon
    pids = worker_pids(eventually(lambda: all_running(config, 2), "agents running"))
    assert len(pids) == 3
    process.kill()
    process.wait(timeout=DEADLINE)
    eventually(lambda: all(gone(pid) for pid in pids), "every worker gone")


def test_sigterm_stops_workers_and_exits_cleanly(
    daemon: tuple[subprocess.Popen[str], Path],
) -> None:
    process, config = daemon
    pids = worker_pids(eventually(lambda: all_running(config, 2), "agents running"))
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=DEADLINE) == 0
    assert all(gone(pid) for pid in pids)
    assert not (config.parent / "state" / "agentvisor.pid").exists()


def test_second_daemon_on_the_same_state_dir_refuses(
    daemon: tuple[subprocess.Popen[str], Path],
) -> None:
    _process, config = daemon
    eventually(lambda: all_running(config, 2), "agents running")
    second = subprocess.run(
        [str(BIN / "agentvisor"), "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert second.returncode == 1
    assert "another agentvisor" in second.stderr
    assert "Traceback" not in second.stderr


def test_sighup_reload_applies_an_edit_and_keeps_other_workers(
    daemon: tuple[subprocess.Popen[str], Path],
) -> None:
    process, config = daemon
    services = eventually(lambda: all_running(config, 2), "agents running")
    alpha_pids = worker_pids([s for s in services if s["name"] == "alpha"])
    config.write_text(config_text(sleeper_agent("alpha", replicas=2) + sleeper_agent("gamma")))
    process.send_signal(signal.SIGHUP)
    names = eventually(
        lambda: {s["name"] for s in all_running(config, 2)} == {"alpha", "gamma"},
        "gamma added and beta removed",
    )
    assert names
    alpha_now = worker_pids([s for s in status(config) if s["name"] == "alpha"])
    assert alpha_now == alpha_pids


def test_reload_command_reports_every_error_and_changes_nothing(
    daemon: tuple[subprocess.Popen[str], Path],
) -> None:
    _process, config = daemon
    before = worker_pids(eventually(lambda: all_running(config, 2), "agents running"))
    good = config.read_text()
    config.write_text(
        good + "\n[agents.bad]\ncommand = 'x'\nreplica = 2\nautorestart = 'sometimes'\n"
    )
    result = subprocess.run(
        [str(BIN / "agentvisor"), "reload", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert result.returncode == 1
    assert 'unknown key "replica" (did you mean "replicas"?)' in result.stdout + result.stderr
    assert "agents.bad.autorestart" in result.stdout + result.stderr
    assert worker_pids(status(config)) == before


def test_the_state_store_keeps_what_happened_after_shutdown(
    daemon: tuple[subprocess.Popen[str], Path],
) -> None:
    process, config = daemon
    eventually(lambda: all_running(config, 2), "agents running")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=DEADLINE) == 0
    with sqlite3.connect(config.parent / "state" / "state.db") as db:
        kinds = {kind for (kind,) in db.execute("SELECT DISTINCT kind FROM events")}
        services = {name for (name,) in db.execute("SELECT name FROM services")}
        lines = db.execute("SELECT count(*) FROM logs").fetchone()[0]
    assert "instance.state" in kinds  # transitions, including the shutdown's
    assert {"alpha", "beta"} <= services
    assert lines >= 3  # every sleeper printed "ready"
