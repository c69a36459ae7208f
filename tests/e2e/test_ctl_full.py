"""agentvisorctl's editing commands against `agentvisor run`: what is registered survives a restart.

The daemon is a real subprocess and the commands are the installed
``agentvisorctl``; the only shared state is agentvisor.toml, which must keep
the operator's comments through every edit.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.test_ctl import BIN, DEADLINE, eventually, run, sleeper

ROOT = Path(__file__).resolve().parents[2]
NOTES = "# Production agents. Ask #ops before changing ports.\n"


def write_config(path: Path) -> Path:
    path.write_text(
        NOTES
        + '[supervisor]\nstate_dir = "state"\nport_range = [17000, 19999]\n\n'
        + '[admin]\nbind = ["unix:state/admin.sock"]  # local only\n\n'
        + '[router]\nbind = ["127.0.0.1:0"]\n\n'
        + "# the first agent\n"
        + sleeper("alpha")
    )
    return path


@contextmanager
def daemon(config: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [str(BIN / "agentvisor"), "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: states(config), "agentvisor answering")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def ctl(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return run("agentvisorctl", "-c", str(config), *argv)


def states(config: Path) -> dict[str, str]:
    result = ctl(config, "--json", "status")
    if result.returncode not in (0, 3) or not result.stdout.strip():  # 3: not all running
        return {}
    services: list[dict[str, Any]] = json.loads(result.stdout)
    return {service["name"]: service["state"] for service in services}


def all_running(config: Path, names: set[str]) -> bool:
    current = states(config)
    return set(current) == names and all(state == "running" for state in current.values())


def test_registered_agents_survive_a_restart_with_the_file_intact(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml")
    agent = tmp_path / "agents" / "echo_agent.py"
    agent.parent.mkdir()
    agent.write_text((ROOT / "examples" / "echo_agent.py").read_text())
    command = json.dumps([sys.executable, str(ROOT / "tests" / "children" / "sleeper.py")])

    with daemon(config) as process:
        registered = run(
            "agentvisorctl", "-c", str(config), "register", "echo", str(agent),
            "--tags", "demo,echo", "--max-sessions", "10", "--description", "Echo agent",
        )  # fmt: skip
        assert registered.returncode == 0, registered.stderr
        assert registered.stdout.startswith("registered echo")
        assert ": starting, ws://127.0.0.1:" in registered.stdout
        side = ctl(config, "register", "side", "--command", command, "--no-auto-start")
        assert side.returncode == 0, side.stderr
        assert "not started (autostart is off)" in side.stdout
        eventually(lambda: states(config).get("echo") == "running", "echo running")
        health = ctl(config, "health", "echo")
        assert (health.returncode, health.stdout.splitlines()[0]) == (0, "echo: healthy")

        taken = ctl(config, "register", "alpha", "--command", command)
        assert (taken.returncode, taken.stderr) == (
            1,
            "agentvisorctl: Service 'alpha' already exists\n",
        )
        scaled = ctl(config, "scale", "alpha", "2")
        assert scaled.returncode == 0, scaled.stderr
        assert scaled.stdout.startswith("alpha: scaled from 1 to 2 replicas")

        created = ctl(
            config, "route", "create", "vip", "--condition", "header.x-user-tier=vip",
            "--target-tag", "demo", "--strategy", "least_connections", "--priority", "5",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        listed = json.loads(ctl(config, "--json", "route", "list").stdout)
        assert [rule["name"] for rule in listed] == ["vip"]

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE) == 0

    text = config.read_text()
    assert text.startswith(NOTES)
    assert '["unix:state/admin.sock"]  # local only' in text
    assert "# the first agent\n" in text
    data = tomllib.loads(text)
    assert data["agents"]["echo"]["agent"] == str(agent)
    assert data["agents"]["alpha"]["replicas"] == 2
    assert data["routes"][0]["match"] == [
        {"field": "header.x-user-tier", "op": "equals", "value": "vip"}
    ]

    with daemon(config):
        eventually(
            lambda: states(config) == {"alpha": "running", "echo": "running", "side": "stopped"},
            "what was registered running again after the restart",
        )
        detail = json.loads(ctl(config, "--json", "show", "echo").stdout)
        assert (detail["description"], detail["tags"]) == ("Echo agent", ["demo", "echo"])
        assert len(json.loads(ctl(config, "--json", "show", "alpha").stdout)["instances"]) == 2
        for argv in (("unregister", "echo"), ("remove", "side"), ("route", "delete", "vip")):
            result = ctl(config, *argv)
            assert result.returncode == 0, (argv, result.stderr)
        missing = ctl(config, "show", "echo")
        assert (missing.returncode, missing.stderr) == (
            1,
            "agentvisorctl: Service 'echo' not found\n",
        )
        assert set(states(config)) == {"alpha"}

    assert ctl(config, "scale", "alpha", "1").returncode == 3, "agentvisor is not running"
    data = tomllib.loads(config.read_text())
    assert set(data["agents"]) == {"alpha"}
    assert "routes" not in data or data["routes"] == []
    assert config.read_text().startswith(NOTES)


def test_events_follow_shows_operator_actions_with_their_source(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml")
    with daemon(config):
        eventually(lambda: all_running(config, {"alpha"}), "alpha running")
        follower = subprocess.Popen(
            [str(BIN / "agentvisorctl"), "-c", str(config), "events", "-f", "-n", "1",
             "--kind", "operator.action"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert follower.stdout is not None
            lines: list[str] = []

            def stop_shows_up() -> bool:
                # Until the stream is open a stop may go unseen: stop again then.
                assert ctl(config, "stop", "alpha").returncode == 0
                ready, _, _ = select.select([follower.stdout], [], [], 1.0)
                if ready:
                    lines.append(follower.stdout.readline())
                return any(" stop (cli)" in line for line in lines)

            eventually(stop_shows_up, "the stop in the followed audit log")
        finally:
            follower.send_signal(signal.SIGINT)
            _out, err = follower.communicate(timeout=DEADLINE)
    assert follower.returncode == 0
    assert "Traceback" not in err
