"""agentvisor with one worker flooding its stdout: state.db's size and agentvisor's CPU.

Run: ``.venv/bin/python bench/log_flood.py [--seconds 300] [--cap-mb 64]``.

How it measures. It writes a config into a temporary directory (router and
admin API on port 0, ``[supervisor] store_max_mb = --cap-mb``) with one agent
running ``tests/children/stdout_flood.py``, which writes ~110-byte lines to its stdout
as fast as the pipe takes them for ``--seconds`` and then sleeps. It starts
``agentvisor run`` as a child process and once a second samples agentvisor's
CPU time (user + system, all threads; the worker is another process and not
counted) and the size of ``state.db`` plus its ``-wal`` file, the size the
operator sees. At the end it reads the store's counters from ``/metrics``,
reads how many lines the worker wrote (its stderr log), then stops agentvisor.

Printed: the largest file size seen against the cap, agentvisor's CPU over
the whole flood and its worst 10-second window (1.0 = one core), the lines
the worker wrote, the lines kept by the log files, and what the store wrote,
sampled out and dropped.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024


def _config(directory: Path, cap_mb: float, seconds: float) -> Path:
    worker = [
        sys.executable,
        str(ROOT / "tests" / "children" / "stdout_flood.py"),
        "--seconds",
        str(seconds),
    ]
    command = "[" + ", ".join(f'"{part}"' for part in worker) + "]"
    path = directory / "agentvisor.toml"
    path.write_text(
        f"""
[supervisor]
state_dir = "state"
port_range = [30000, 39999]
store_max_mb = {cap_mb}

[admin]
bind = ["127.0.0.1:0"]

[router]
bind = ["127.0.0.1:0"]

[agents.flood]
command = {command}
startsecs = 0
health.enabled = false
"""
    )
    return path


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{name}(?:\{{[^}}]*\}})? ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else float("nan")


def _file_bytes(state: Path) -> int:
    total = 0
    for name in ("state.db", "state.db-wal"):
        try:
            total += (state / name).stat().st_size
        except FileNotFoundError:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--cap-mb", type=float, default=64.0)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="log-flood-"))
    config = _config(directory, args.cap_mb, args.seconds)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "agentvisor", "run", "-c", str(config)],
        cwd=directory,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert daemon.stderr is not None
    admin = ""
    for line in daemon.stderr:
        found = re.search(r"admin API on (http://[0-9.:]+)", line)
        if found:
            admin = found.group(1)
            break
    process = psutil.Process(daemon.pid)
    state = directory / "state"
    samples: list[tuple[float, float, int]] = []  # (wall, cpu seconds, file bytes)
    started = time.monotonic()
    while time.monotonic() - started < args.seconds + 2:
        times = process.cpu_times()
        samples.append((time.monotonic(), times.user + times.system, _file_bytes(state)))
        time.sleep(1.0)
    metrics = httpx.get(f"{admin}/metrics", timeout=10).text
    done = re.search(r"done (\d+)", (state / "logs" / "flood.0.stderr.log").read_text())
    flooded = int(done.group(1)) if done else 0
    daemon.send_signal(signal.SIGTERM)
    daemon.communicate(timeout=60)
    flood = [s for s in samples if s[0] - started <= args.seconds]
    cpu = (flood[-1][1] - flood[0][1]) / (flood[-1][0] - flood[0][0])
    worst = max(
        (later[1] - earlier[1]) / (later[0] - earlier[0])
        for earlier, later in zip(flood, flood[10:], strict=False)
    )
    largest = max(s[2] for s in samples)
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, flood of {args.seconds:g} s")
    print()
    print("| what | value |")
    print("| --- | ---: |")
    print(f"| store_max_mb | {args.cap_mb:g} |")
    print(f"| largest state.db + WAL seen, MiB | {largest / MiB:.1f} |")
    print(f"| state.db + WAL at the end, MiB | {samples[-1][2] / MiB:.1f} |")
    print(f"| agentvisor CPU over the flood, cores | {cpu:.2f} |")
    print(f"| agentvisor CPU, worst 10 s, cores | {worst:.2f} |")
    print(f"| lines the worker wrote | {flooded:,} |")
    for label, name in (
        ("log lines written to the store", "agentvisor_store_log_lines_written_total"),
        ("log lines sampled out", "agentvisor_store_log_lines_sampled_out_total"),
        ("rows dropped from the queue", "agentvisor_store_dropped_total"),
    ):
        print(f"| {label} | {_metric(metrics, name):,.0f} |")


if __name__ == "__main__":
    main()
