"""Issue 15: an API config edit whose audit entry a kill -9 cut off is in the audit log after
the next start, marked recovered.

agentvisor is a real subprocess; the edit is a real HTTP request (httpx) that changes an
agent's environment and its ``startsecs`` to 60 s, so the request waits for the rolling
restart: the file is renamed at once, the audit entry would come a minute later. The test
kills agentvisor -9 once the file shows the change, then starts it again.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_daemon import BIN, CHILDREN, DEADLINE, eventually, gone

CONFIG = f"""
[supervisor]
state_dir = "state"
port_range = [30000, 39999]

[admin]
bind = ["127.0.0.1:0"]

[router]
bind = ["127.0.0.1:0"]

[agents.slow]
command = {json.dumps([sys.executable, str(CHILDREN / "sleeper.py")])}
startsecs = 0
health.enabled = false
"""


class Agentvisor:
    """``agentvisor run`` with its output in a file, and its admin API's address."""

    def __init__(self, config: Path) -> None:
        self.output = config.parent / f"run-{len(list(config.parent.glob('run-*')))}.log"
        with open(self.output, "w") as out:
            self.process = subprocess.Popen(
                [str(BIN / "agentvisor"), "run", "-c", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.admin = eventually(self._admin, "the admin API's address")

    def _admin(self) -> str | None:
        found = re.search(r"admin API on (http://[0-9.:]+)", self.output.read_text())
        return found.group(1) if found else None

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.admin}/api/v1{path}", timeout=DEADLINE)
        response.raise_for_status()
        return response.json()["data"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=DEADLINE)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "agentvisor.toml"
    path.write_text(CONFIG)
    return path


def updates(config: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(config.parent / "state" / "state.db") as db:
        rows = db.execute("SELECT outcome, message FROM events WHERE action = 'update'")
        return [(str(outcome), str(message)) for outcome, message in rows]


def test_issue_15_a_kill_between_the_config_write_and_its_audit_entry_loses_no_entry(
    config: Path,
) -> None:
    first = Agentvisor(config)
    try:
        eventually(
            lambda: [s for s in first.get("/services")["services"] if s["state"] == "running"],
            "slow running",
        )

        def edit() -> None:  # answered only after the roll; the kill cuts it off first
            try:
                httpx.put(
                    f"{first.admin}/api/v1/services/slow/config",
                    json={"environment": {"EDITED": "1"}, "startsecs": 60},
                    timeout=DEADLINE * 5,
                )
            except httpx.HTTPError:
                pass

        request = threading.Thread(target=edit, daemon=True)
        request.start()
        eventually(lambda: "EDITED" in config.read_text(), "the edit in agentvisor.toml")
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=DEADLINE)
        request.join(timeout=DEADLINE)
    finally:
        first.stop()
    assert updates(config) == []  # the kill came between the write and the audit entry
    assert eventually(lambda: gone(first.process.pid), "agentvisor gone")

    second = Agentvisor(config)
    try:
        events = second.get("/events?kind=operator.action")["events"]
    finally:
        second.stop()
    (entry,) = [event for event in events if event["action"] == "update"]
    assert entry["service"] == "slow"
    assert entry["source"] == "api"
    assert entry["outcome"] == "ok"
    assert entry["message"].startswith("changed environment, startsecs of slow")
    assert "recovered at start-up" in entry["message"]
    assert entry["details"]["recovered"] is True
