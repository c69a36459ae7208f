"""`agentvisor check --against-daemon` (issue 11.6): the daemon's environment, not the shell's.

The daemon is started with a variable the shell running ``check`` does not have,
and the shell has one the daemon lacks: the local check and the daemon's dry run
disagree exactly as a reload and the local check would, and the dry run changes
nothing (file bytes, worker processes, audit log).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_daemon import (
    BIN,
    DEADLINE,
    all_running,
    config_text,
    ctl,
    eventually,
    sleeper_agent,
    status,
    stop,
    worker_pids,
)

DAEMON_ONLY = "AGENTVISOR_TEST_DAEMON_ONLY"
SHELL_ONLY = "AGENTVISOR_TEST_SHELL_ONLY"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (DAEMON_ONLY, SHELL_ONLY)}
    return {**env, **extra}


def _with_environment(agent: str, name: str, value: str) -> str:
    return agent + f'environment = {{ GREETING = "{value}" }}\n'.replace("GREETING", name)


def _check(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "agentvisor"), "check", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
        env=_env(**{SHELL_ONLY: "from the shell"}),
    )


def _reload_events(config: Path) -> list[dict[str, Any]]:
    result = ctl(config, "--json", "events")
    assert result.returncode == 0, result.stderr
    events: list[dict[str, Any]] = json.loads(result.stdout)
    return [e for e in events if e.get("action") == "reload"]


@pytest.fixture
def daemon_env(tmp_path: Path) -> Iterator[Path]:
    config = tmp_path / "agentvisor.toml"
    alpha = _with_environment(sleeper_agent("alpha"), "GREETING", f"${{{DAEMON_ONLY}}}")
    config.write_text(config_text(alpha))
    process = subprocess.Popen(
        [str(BIN / "agentvisor"), "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(**{DAEMON_ONLY: "from the daemon"}),
    )
    try:
        yield config
    finally:
        stop(process)


def test_check_says_it_read_the_shells_environment(daemon_env: Path) -> None:
    config = daemon_env
    eventually(lambda: all_running(config, 1), "alpha running")
    result = _check(config)
    assert result.returncode == 1
    assert f'environment variable "{DAEMON_ONLY}" is not set' in result.stdout
    assert f"${{VAR}} read from this shell's environment; unset: {DAEMON_ONLY}" in result.stderr
    assert "agentvisor check --against-daemon" in result.stderr


def test_check_against_daemon_uses_its_environment_and_changes_nothing(daemon_env: Path) -> None:
    config = daemon_env
    before = worker_pids(eventually(lambda: all_running(config, 1), "alpha running"))
    # beta needs a variable only the shell has: fine for the shell, not for the daemon.
    beta = _with_environment(sleeper_agent("beta"), "WHO", f"${{{SHELL_ONLY}}}")
    config.write_text(config.read_text() + "\n" + beta)
    written = config.read_bytes()

    against = _check(config, "--against-daemon")
    assert against.returncode == 1, against.stdout + against.stderr
    assert f'agents.beta.environment.WHO: environment variable "{SHELL_ONLY}" is not set' in (
        against.stdout
    )
    assert "invalid with the running agentvisor's (pid " in against.stderr

    # With a default it passes: the plan says beta would be added, and which variables
    # the daemon had.
    config.write_text(written.decode().replace(f"${{{SHELL_ONLY}}}", f"${{{SHELL_ONLY}:-none}}"))
    written = config.read_bytes()
    against = _check(config, "--against-daemon")
    assert against.returncode == 0, against.stdout + against.stderr
    lines = against.stdout.splitlines()
    assert (
        lines[0] == f"{config}: ok with the running agentvisor's (pid " + lines[0].split("(pid ")[1]
    )
    assert lines[1] == "dry run, a reload would do (nothing was done): added beta"
    assert lines[2].endswith(f"environment; set: {DAEMON_ONLY}; unset: {SHELL_ONLY}")

    # Nothing changed: the file, the workers, the services; the audit log has no reload.
    assert config.read_bytes() == written
    services = status(config)
    assert [s["name"] for s in services] == ["alpha"]
    assert worker_pids(services) == before
    # A real reload afterwards is recorded: once it is in the log, so would the dry runs be.
    reload = subprocess.run(
        [str(BIN / "agentvisor"), "reload", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert reload.returncode == 0, reload.stderr
    events = eventually(lambda: _reload_events(config), "the real reload in the audit log")
    # Its two records (the change, the operator's action), and none of the dry runs.
    assert sorted(e["kind"] for e in events) == ["config.reload", "operator.action"]
    assert eventually(lambda: all_running(config, 2), "beta added by the real reload")


def test_check_against_daemon_refuses_another_file(daemon_env: Path, tmp_path: Path) -> None:
    config = daemon_env
    eventually(lambda: all_running(config, 1), "alpha running")
    other = tmp_path / "other.toml"
    other.write_text(config.read_text())
    result = _check(other, "--against-daemon")
    assert result.returncode == 1
    assert f"runs {config}, not {other}" in result.stderr
