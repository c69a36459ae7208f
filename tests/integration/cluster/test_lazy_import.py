"""Without ``[cluster]`` agentvisor never loads redis-py (no start-up cost)."""

from __future__ import annotations

import subprocess
import sys


def test_the_daemon_and_the_worker_runtime_do_not_import_redis() -> None:
    code = (
        "import sys, agentvisor.daemon, agentvisor.worker.serve, agentvisor.cli.ctl\n"
        "print(sorted(m for m in sys.modules if m == 'redis' or m.startswith('redis.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
