"""Web console: first load (bytes, first contentful paint) and the daemon's CPU with 5 consoles.

Runs `agentvisor run` (admin and router on port 0, a temp dir) with one agent that the
bench scales 1 <-> 2 every few seconds, so instance, state and metric events flow on the
live stream. Then, in headless Chromium (bench/console_browser.mjs, playwright-core from
web-console/node_modules):

- first load of the dashboard on a fresh profile, cache off, ROUNDS times: bytes on the
  wire (what the browser got), the console files' raw and gzip -6 sizes, FCP;
- the agentvisor process's CPU (psutil, user + system) over SECONDS with no console open,
  then over SECONDS with 5 consoles open on the live stream (A B, ROUNDS times).

    .venv/bin/python bench/console_bench.py [--rounds 3] [--seconds 60]

Needs a built console (`make console`), Node.js and /usr/bin/chromium (`make chromium`).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

HERE = Path(__file__).resolve().parent
BROWSER = HERE / "console_browser.mjs"
GOAL_KIB = 400
GOAL_CPU = 2.0

CONFIG = """
[supervisor]
state_dir = "state"
sample_interval = 1
port_range = [42000, 48999]

[admin]
bind = ["127.0.0.1:0"]

[router]
bind = ["127.0.0.1:0"]

[agents.idle]
command = {command}
startsecs = 0
health.enabled = false
"""


def start_daemon(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    command = json.dumps([sys.executable, "-S", str(HERE / "idle_worker.py")])
    (tmp / "agentvisor.toml").write_text(CONFIG.format(command=command))
    log = tmp / "agentvisor.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "agentvisor"), "run", "-c", "agentvisor.toml"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"admin API on (\S+)", log.read_text())
        if match:
            return process, match.group(1).rstrip(",")
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"agentvisor did not start:\n{log.read_text()}")


def scale_forever(url: str, stop: threading.Event, interval: float) -> None:
    """Events on the live stream: the agent scaled 1 -> 2 -> 1 ... every `interval` s."""
    replicas = 2
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.wait(interval):
            client.post("/api/v1/services/idle/scale", json={"replicas": replicas})
            replicas = 3 - replicas


def browser(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["node", str(BROWSER), *args], stdout=subprocess.PIPE, text=True, cwd=HERE.parent
    )


def first_loads(url: str, rounds: int) -> list[dict[str, Any]]:
    process = browser("load", f"{url}/", str(rounds))
    out, _ = process.communicate(timeout=300)
    if process.returncode:
        raise SystemExit(f"console_browser.mjs load failed ({process.returncode})")
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def gzip_sizes(url: str, paths: list[str]) -> tuple[int, int]:
    raw = zipped = 0
    with httpx.Client(base_url=url, timeout=10) as client:
        for path in sorted(set(paths)):
            body = client.get(path).content
            raw += len(body)
            zipped += len(gzip.compress(body, compresslevel=6))
    return raw, zipped


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def cpu_percent_over(daemon: psutil.Process, seconds: float, consoles: int, url: str) -> float:
    """% of one core used by the agentvisor process over `seconds`, with `consoles` open."""
    viewer = None
    if consoles:
        viewer = browser("hold", f"{url}/", str(consoles), str(seconds))
        assert viewer.stdout is not None
        if viewer.stdout.readline().strip() != "open":
            raise SystemExit("console_browser.mjs hold did not open its pages")
    start, t0 = cpu_seconds(daemon), time.monotonic()
    if viewer is not None:
        assert viewer.stdout is not None
        viewer.stdout.readline()  # printed after `seconds`, before the pages close
    else:
        time.sleep(seconds)
    used, elapsed = cpu_seconds(daemon) - start, time.monotonic() - t0
    if viewer is not None:
        viewer.wait(timeout=60)
    return 100.0 * used / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--scale-interval", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentvisor-console-bench-") as name:
        daemon_process, url = start_daemon(Path(name))
        stop = threading.Event()
        scaler = threading.Thread(target=scale_forever, args=(url, stop, args.scale_interval))
        scaler.start()
        try:
            loads = first_loads(url, max(args.rounds, 3))
            raw, zipped = gzip_sizes(url, loads[0]["console_files"])
            daemon = psutil.Process(daemon_process.pid)
            idle, five = [], []
            for _ in range(args.rounds):
                idle.append(cpu_percent_over(daemon, args.seconds, 0, url))
                five.append(cpu_percent_over(daemon, args.seconds, 5, url))
        finally:
            stop.set()
            scaler.join()
            daemon_process.terminate()
            daemon_process.wait(timeout=30)
    wire = statistics.median(x["wire_bytes"] for x in loads)
    fcp = statistics.median(x["fcp_ms"] for x in loads)
    gz = "gzip" if any(x["gzip_answers"] for x in loads) else "not compressed"
    extra = [b - a for a, b in zip(idle, five, strict=True)]
    files, requests = len(loads[0]["console_files"]), loads[0]["requests"]
    print(f"first load: {files} console files, {requests} requests")
    print(f"  bytes on the wire (median of {len(loads)}, {gz}): {wire / 1024:.1f} KiB")
    print(
        f"  console files raw {raw / 1024:.1f} KiB, gzip -6 {zipped / 1024:.1f} KiB "
        f"(goal < {GOAL_KIB} KiB gzipped: {'met' if zipped < GOAL_KIB * 1024 else 'not met'})"
    )
    print(f"  first contentful paint (median): {fcp:.0f} ms")
    print(
        f"agentvisor CPU, % of a core over {args.seconds:.0f} s, scale every "
        f"{args.scale_interval:.0f} s (median of {args.rounds}):"
    )
    print(f"  no console      {statistics.median(idle):.2f}  {[round(x, 2) for x in idle]}")
    print(f"  5 consoles open {statistics.median(five):.2f}  {[round(x, 2) for x in five]}")
    # The goal is what the consoles cost: the no-console run already pays for the
    # agent being scaled and for this script's own API calls.
    share = statistics.median(extra)
    verdict = "met" if share < GOAL_CPU else "not met"
    print(f"  consoles' share {share:.2f} (goal: 5 consoles < {GOAL_CPU} % of a core: {verdict})")


if __name__ == "__main__":
    main()
