"""`agentvisor check` and `reload` load-check agent files, as an operator runs them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.e2e.test_daemon import (
    BIN,
    DEADLINE,
    all_running,
    daemon,  # noqa: F401  (the fixture)
    eventually,
    status,
    worker_pids,
)

BROKEN_AGENT = "from agentvisor.agent import FinalAnswer\n\ndef create_agent(:\n    return None\n"


def _agentvisor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "agentvisor"), *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


def test_check_reports_an_agent_file_that_does_not_compile_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(BROKEN_AGENT)
    config = tmp_path / "agentvisor.toml"
    config.write_text('[agents.broken]\nagent = "broken.py"\n\n[agents.gone]\nagent = "gone.py"\n')
    result = _agentvisor("check", "-c", str(config))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{config}:2:9 agents.broken.agent: broken.py:3: SyntaxError: invalid syntax",
        f"{config}:5:9 agents.gone.agent: gone.py: file not found",
    ]


def test_reload_rejects_an_invalid_agent_file_and_changes_nothing(
    daemon: tuple[subprocess.Popen[str], Path],  # noqa: F811
) -> None:
    _process, config = daemon
    before = worker_pids(eventually(lambda: all_running(config, 2), "agents running"))
    (config.parent / "broken.py").write_text(BROKEN_AGENT)
    config.write_text(config.read_text() + '\n[agents.broken]\nagent = "broken.py"\n')
    result = _agentvisor("reload", "-c", str(config))
    assert result.returncode == 1
    assert "agents.broken.agent: broken.py:3: SyntaxError: invalid syntax" in (
        result.stdout + result.stderr
    )
    services = status(config)
    assert {s["name"] for s in services} == {"alpha", "beta"}
    assert worker_pids(services) == before
