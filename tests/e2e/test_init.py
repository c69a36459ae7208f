"""`agentvisor init`: a starter config and agent that check clean, and never an overwrite."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.e2e.test_daemon import BIN, DEADLINE


def agentvisor(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "agentvisor"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=DEADLINE,
        check=False,
    )


def test_init_writes_a_config_and_an_agent_that_check_clean(tmp_path: Path) -> None:
    result = agentvisor(tmp_path, "init")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "wrote agentvisor.toml",
        "wrote agents/assistant.py",
        "next: agentvisor run, then ws://127.0.0.1:9090/ws?service=assistant",
    ]
    check = agentvisor(tmp_path, "check")  # the agent file is loaded, not only the TOML
    assert check.returncode == 0, check.stdout + check.stderr
    ok, environment = check.stdout.splitlines()
    assert ok == "agentvisor.toml: ok (1 agent, 0 routes)"
    # The starter reads ${AGENTVISOR_LOG_LEVEL}; check says whose environment it used.
    assert environment.startswith("${VAR} read from this shell's environment")


def test_init_into_a_new_directory_names_it(tmp_path: Path) -> None:
    result = agentvisor(tmp_path, "init", "demo/here")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("next: cd demo/here && agentvisor run")
    assert (tmp_path / "demo" / "here" / "agents" / "assistant.py").is_file()


def test_init_overwrites_nothing_and_writes_nothing_when_a_file_is_there(tmp_path: Path) -> None:
    (tmp_path / "agentvisor.toml").write_text("# mine\n")
    result = agentvisor(tmp_path, "init")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "agentvisor: agentvisor.toml already exists; nothing written (move it away or pick a DIR)\n"
    )
    assert (tmp_path / "agentvisor.toml").read_text() == "# mine\n"
    assert not (tmp_path / "agents").exists()


def test_a_second_init_names_every_file_in_the_way(tmp_path: Path) -> None:
    assert agentvisor(tmp_path, "init").returncode == 0
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    result = agentvisor(tmp_path, "init")
    assert result.returncode == 1
    assert "agentvisor.toml, agents/assistant.py already exist;" in result.stderr
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_init_into_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    result = agentvisor(tmp_path, "init", "plain")
    assert result.returncode == 1
    assert result.stderr == "agentvisor: plain is not a directory\n"
