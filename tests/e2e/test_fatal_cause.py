"""A fatal agent's cause, where an operator looks: `show`, the API and the stored exit event."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.e2e.test_daemon import BIN, DEADLINE, config_text, ctl, eventually, status

CAUSE = "ModuleNotFoundError: No module named 'no_such_module_here'"


def test_show_the_api_and_the_exit_event_carry_the_stderr_cause(tmp_path: Path) -> None:
    command = json.dumps([sys.executable, "-c", "import no_such_module_here"])
    config = tmp_path / "agentvisor.toml"
    config.write_text(
        config_text(
            f"[agents.broken]\ncommand = {command}\nstartsecs = 1\nstartretries = 0\n"
            "fatal_cooldown = 0\nhealth.enabled = false\n"
        )
    )
    process = subprocess.Popen(
        [str(BIN / "agentvisor"), "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def fatal_with_reason() -> dict[str, object] | None:
            for service in status(config):
                for instance in service["instances"]:
                    if instance["state"] == "fatal" and instance["exit_reason"]:
                        return dict(instance)
            return None

        instance = eventually(fatal_with_reason, "broken fatal with its exit reason")
        assert instance["exit_reason"] == f"exit status 1: {CAUSE}"
        tail = instance["stderr_tail"]
        assert isinstance(tail, list)
        assert tail[0] == "Traceback (most recent call last):"
        assert tail[-1] == CAUSE
        shown = ctl(config, "show", "broken")
        assert shown.returncode == 0
        assert f"replica 0 last exit: exit status 1: {CAUSE}" in " ".join(shown.stdout.split())
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=DEADLINE)
    with sqlite3.connect(config.parent / "state" / "state.db") as db:
        rows = db.execute(
            "SELECT message, details FROM events WHERE kind = 'instance.exited'"
        ).fetchall()
    assert rows
    message, details = rows[0]
    assert message.endswith(f": exit status 1: {CAUSE}")
    assert json.loads(details)["stderr_tail"][-1] == CAUSE
