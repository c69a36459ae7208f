"""The agent worker runtime: turns/s and memory per idle session, asyncio vs trio.

    .venv/bin/python bench/worker_bench.py                 # 3 rounds, 1 and 50 connections
    .venv/bin/python bench/worker_bench.py --quick         # 1 round, shorter windows
    .venv/bin/python bench/worker_bench.py --rounds 5 --connections 1,10,100 --sessions 5000

For each round and each runtime (alternating asyncio, trio, asyncio, trio…)
one worker process (``python -m agentvisor.worker``, its SQLite session store
in a temporary directory) serves a no-op echo agent, and this process drives
it with the ``websockets`` asyncio client:

- throughput: N connections, each with its own session, each sending the
  next message as soon as the previous turn's final answer arrives, for a
  fixed window; turns/s and the median round trip;
- memory: the worker's RSS after the warm-up, then after creating
  ``--sessions`` idle sessions (``user.create_session`` on 10 connections),
  the difference divided by the count.

Prints one table of medians over the rounds and the trio/asyncio ratios.
Needs Linux or macOS (psutil) and nothing else outside the dev extra.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
from websockets.asyncio.client import ClientConnection, connect

ECHO_AGENT = """
async def agent(message):
    return message
"""
READY = re.compile(r"on ws://127\.0\.0\.1:(\d+)/")
RUNTIMES = ("asyncio", "trio")


class Worker:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/"

    @property
    def rss(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)


async def start_worker(directory: Path, runtime: str, max_sessions: int) -> Worker:
    agent = directory / "echo_agent.py"
    agent.write_text(ECHO_AGENT)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentvisor.worker",
        str(agent),
        "--port",
        "0",
        "--runtime",
        runtime,
        "--max-sessions",
        str(max_sessions),
        "--session-store",
        str(directory / f"{runtime}.sqlite3"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    async with asyncio.timeout(30):
        while True:
            line = (await process.stdout.readline()).decode()
            if not line:
                raise RuntimeError("the worker exited before serving")
            match = READY.search(line)
            if match:
                return Worker(process, int(match.group(1)))


async def stop_worker(worker: Worker) -> None:
    worker.process.terminate()
    async with asyncio.timeout(30):
        await worker.process.wait()


async def converse(ws: ClientConnection, deadline: float, round_trips: list[float]) -> int:
    """Turns of one session until ``deadline``: send, wait for the final answer, repeat."""
    await ws.send(json.dumps({"event": "user.create_session"}))
    session_id = json.loads(await ws.recv())["session_id"]
    message = json.dumps({"event": "user.message", "session_id": session_id, "content": "hi"})
    turns = 0
    while time.monotonic() < deadline:
        sent = time.perf_counter()
        await ws.send(message)
        while json.loads(await ws.recv())["event"] != "agent.final_answer":
            pass
        round_trips.append(time.perf_counter() - sent)
        turns += 1
    return turns


async def throughput(worker: Worker, connections: int, window: float) -> tuple[float, float]:
    """(turns/s, median round trip in ms) with ``connections`` busy clients."""
    sockets = [await connect(worker.url, max_size=None) for _ in range(connections)]
    try:
        # warm-up, then the measured window
        await asyncio.gather(*(converse(ws, time.monotonic() + 0.3, []) for ws in sockets))
        round_trips: list[float] = []
        started = time.monotonic()
        deadline = started + window
        counts = await asyncio.gather(*(converse(ws, deadline, round_trips) for ws in sockets))
        elapsed = time.monotonic() - started
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
    return sum(counts) / elapsed, statistics.median(round_trips) * 1000


async def create_sessions(ws: ClientConnection, count: int) -> None:
    request = json.dumps({"event": "user.create_session"})
    for _ in range(count):
        await ws.send(request)
    created = 0
    while created < count:
        if json.loads(await ws.recv())["event"] == "agent.session_created":
            created += 1


async def memory_per_session(worker: Worker, sessions: int) -> tuple[float, float]:
    """(worker RSS in MiB before, bytes per idle session)."""
    await asyncio.sleep(0.5)
    before = worker.rss
    sockets = [await connect(worker.url) for _ in range(10)]
    try:
        share = sessions // len(sockets)
        await asyncio.gather(*(create_sessions(ws, share) for ws in sockets))
        await asyncio.sleep(0.5)
        after = worker.rss
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
    return before / 2**20, (after - before) / (share * len(sockets))


async def one_run(
    directory: Path, runtime: str, connections: list[int], window: float, sessions: int
) -> dict[str, float]:
    worker = await start_worker(directory, runtime, max_sessions=sessions + 1000)
    result: dict[str, float] = {}
    try:
        for count in connections:
            rate, rtt = await throughput(worker, count, window)
            result[f"turns/s, {count} conn"] = rate
            result[f"p50 round trip ms, {count} conn"] = rtt
        rss, per_session = await memory_per_session(worker, sessions)
        result["RSS MiB before sessions"] = rss
        result[f"bytes per idle session ({sessions})"] = per_session
    finally:
        await stop_worker(worker)
    return result


def table(results: dict[str, list[dict[str, float]]]) -> str:
    metrics = list(results[RUNTIMES[0]][0])
    header = f"| metric (median of {len(results[RUNTIMES[0]])}) | asyncio | trio | trio/asyncio |"
    lines = [header, "| --- | ---: | ---: | ---: |"]
    for metric in metrics:
        medians = [statistics.median(r[metric] for r in results[rt]) for rt in RUNTIMES]
        ratio = medians[1] / medians[0] if medians[0] else float("nan")
        lines.append(f"| {metric} | {medians[0]:,.1f} | {medians[1]:,.1f} | {ratio:.2f} |")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", default="1,50", help="comma-separated client counts")
    parser.add_argument("--window", type=float, default=3.0, help="seconds of load per count")
    parser.add_argument("--sessions", type=int, default=2000, help="idle sessions to create")
    parser.add_argument("--quick", action="store_true", help="1 round, 1.5 s windows")
    args = parser.parse_args()
    rounds, window = (1, 1.5) if args.quick else (args.rounds, args.window)
    connections = [int(part) for part in args.connections.split(",")]
    results: dict[str, list[dict[str, float]]] = {runtime: [] for runtime in RUNTIMES}
    with tempfile.TemporaryDirectory(prefix="worker-bench-") as directory:
        for index in range(rounds):
            for runtime in RUNTIMES:
                run = await one_run(Path(directory), runtime, connections, window, args.sessions)
                results[runtime].append(run)
                print(f"round {index + 1} {runtime}: {run}", file=sys.stderr, flush=True)
    cpu = os.cpu_count()
    print(f"\nagent worker runtime, echo agent, {cpu} CPUs, Python {sys.version.split()[0]}\n")
    print(table(results))


if __name__ == "__main__":
    asyncio.run(main())
