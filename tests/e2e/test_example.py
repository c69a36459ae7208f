"""The shipped agentvisor.toml.example, run as an operator would from a plain shell."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_daemon import BIN, all_running, eventually, stop

REPO = Path(__file__).resolve().parents[2]


def _plain_example(tmp_path: Path) -> Path:
    """The example with its fixed ports swapped for a unix socket and port 0, nothing else."""
    text = (REPO / "agentvisor.toml.example").read_text()
    text = text.replace(
        'bind = ["127.0.0.1:8080", "unix:.agentvisor/admin.sock"]',
        'bind = ["unix:.agentvisor/admin.sock"]',
    )
    text = text.replace('bind = ["127.0.0.1:9090"]', 'bind = ["127.0.0.1:0"]')
    text = text.replace("port_range = [8100, 8999]", "port_range = [40000, 49999]")
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    config = tmp_path / "agentvisor.toml"
    config.write_text(text)
    return config


@pytest.fixture
def example(tmp_path: Path) -> Iterator[Path]:
    config = _plain_example(tmp_path)
    # A plain shell: the virtualenv is not on PATH, so `python3` there is the
    # system's, which lacks agentvisor's libraries.
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    process = subprocess.Popen(
        [str(BIN / "agentvisor"), "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    )
    try:
        yield config
    finally:
        stop(process)


def test_every_example_agent_runs_without_the_virtualenv_on_path(example: Path) -> None:
    services = eventually(lambda: all_running(example, 3), "weather, calculator and echo running")
    assert {s["name"] for s in services} == {"weather", "calculator", "echo"}
