"""agentvisor's log as an operator and a log shipper read it: its own lines, no library noise."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

from tests.e2e.test_daemon import BIN, DEADLINE, all_running, config_text, eventually, status

REPO = Path(__file__).resolve().parents[2]


def test_json_log_has_agentvisor_lines_and_no_per_request_library_lines(tmp_path: Path) -> None:
    agent = REPO / "examples" / "echo_agent.py"
    config = tmp_path / "agentvisor.toml"
    text = config_text(f'[agents.echo]\nagent = "{agent}"\nstartsecs = 0\n')
    config.write_text(text.replace("[supervisor]\n", "[supervisor]\nsample_interval = 0.2\n"))
    process = subprocess.Popen(
        [str(BIN / "agentvisor"), "run", "-c", str(config), "--log-format", "json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        eventually(lambda: all_running(config, 1), "echo running")
        # Let the sampler poll the worker's /stats several times over HTTP.
        eventually(
            lambda: (
                any(i.get("sessions") is not None for s in status(config) for i in s["instances"])
                and process.poll() is None
            ),
            "a sample of echo",
        )
        for _ in range(5):
            status(config)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=DEADLINE)
    entries = [json.loads(line) for line in stderr.splitlines()]
    assert entries, "agentvisor logged nothing"
    loggers = {entry["logger"] for entry in entries}
    assert any(name.startswith("agentvisor") for name in loggers)
    noisy = [e for e in entries if not e["logger"].startswith("agentvisor")]
    assert all(e["level"] in ("warning", "error", "critical") for e in noisy), noisy


def test_a_router_bind_in_use_is_named_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "agentvisor.toml"
        config.write_text(config_text("").replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        result = subprocess.run(
            [str(BIN / "agentvisor"), "run", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen on router bind '127.0.0.1:{port}': Address already in use" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
