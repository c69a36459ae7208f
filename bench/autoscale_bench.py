"""Autoscaling benchmark: a ramp of 0 → 200 → 0 sessions through the router.

    .venv/bin/python bench/autoscale_bench.py            # 200 sessions, about 3 minutes
    .venv/bin/python bench/autoscale_bench.py --quick    # 40 sessions, about a minute

``agentvisor run`` (a subprocess, the real daemon) supervises one agent,
``examples/echo_agent.py``, with ``[agents.echo.autoscale]`` from ``min = 0``
to ``max = 4`` replicas at ``target_sessions = 50``. This process is the load:
``websockets`` clients through the router, opened one after the other over the
ramp up, held, then closed in a random order over the ramp down. Each client
keeps one session and sends a turn now and then (every 4 to 12 s): idle sessions
with a turn now and then, cheap enough for 200 on two shared cores. The echo
agent numbers the turns of a session from its history (``Echo #3: …``), so
an answer proves the session's history came along through every move.

Measured:

- **reaction**: each time the load asks for a different count (``clamp(ceil(
  open sessions / target_sessions), min, max)``), the time until that many
  replicas run (up) or only that many remain (down); sampled every 0.25 s from
  ``GET /api/v1/services/echo``. It includes the configured ``stabilization``
  and cooldowns, printed beside it.
- **cold start**: the first client's handshake, held while the first replica
  starts (the agent is at zero).
- **turns lost**: a turn without its ``agent.final_answer`` (30 s), with the
  wrong number (history lost) or cut by a closed connection. Goal 0.
- **replica-seconds**: worker processes alive, summed over the run, against a
  fixed deployment of ``max`` replicas for the same time.

Results go to ``bench/results/autoscale-DATE.json`` as well as the table.
Needs Linux; the daemon binds 127.0.0.1 port 0 and a unix socket only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import random
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
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
AGENT = ROOT / "examples" / "echo_agent.py"
TURN_TIMEOUT = 30.0
SAMPLE_INTERVAL = 0.25


def write_config(directory: Path, args: argparse.Namespace) -> Path:
    low = random.Random().randrange(20000, 60000, 100)
    path = directory / "agentvisor.toml"
    path.write_text(
        f"""
[supervisor]
state_dir = "state"
sample_interval = 1
port_range = [{low}, {low + 99}]

[admin]
bind = ["unix:state/admin.sock"]

[router]
bind = ["127.0.0.1:0"]
max_connections_per_ip = 10000
connect_rate_per_ip = 10000

[agents.echo]
agent = "{AGENT}"
startsecs = 0
drain_timeout = 10
health.interval = 2

[agents.echo.autoscale]
min = 0
max = {args.max}
target_sessions = {args.target}
stabilization = {args.stabilization}
scale_up_cooldown = {args.up_cooldown}
scale_down_cooldown = {args.down_cooldown}
decision_interval = 0.5
cold_start_wait = 30
"""
    )
    return path


def start_daemon(config: Path) -> tuple[subprocess.Popen[str], str]:
    """``agentvisor run``; its router's ws:// URL, read from its start-up line."""
    daemon = subprocess.Popen(
        [sys.executable, "-m", "agentvisor", "run", "-c", str(config)],
        cwd=config.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert daemon.stderr is not None
    for line in daemon.stderr:
        found = re.search(r"router on (ws://[0-9.:]+)", line)
        if found:
            # Keep reading its log (a full pipe would block the daemon); keep the tail.
            threading.Thread(target=_drain, args=(daemon.stderr,), daemon=True).start()
            return daemon, found.group(1) + "/ws"
    sys.exit(f"autoscale_bench: agentvisor exited before it was ready ({daemon.wait()})")


LOG_TAIL: list[str] = []


def _drain(stream: Any) -> None:
    for line in stream:
        LOG_TAIL.append(line.rstrip())
        del LOG_TAIL[:-200]


class Load:
    """What the clients saw."""

    def __init__(self) -> None:
        self.open = 0
        self.turns = 0
        self.answered = 0
        self.lost: list[str] = []
        self.switches = 0
        self.preserved = 0
        self.connect_seconds: list[float] = []
        self.cold_start: float | None = None
        self.refused: list[str] = []
        self.evidence: dict[str, list[dict[str, Any]]] = {}  # a lost turn's client: last events
        self.not_preserved: list[list[dict[str, Any]]] = []


async def session(
    url: str,
    name: str,
    close_at: float,
    rng: random.Random,
    load: Load,
    loop: Any,
    pauses: tuple[float, float],
) -> None:
    began = loop.time()
    try:
        ws = await connect(url, open_timeout=40, max_size=None, compression=None)
    except (OSError, WebSocketException, TimeoutError) as error:
        load.refused.append(f"{name}: {error}")
        return
    load.connect_seconds.append(loop.time() - began)
    if name == "s0":  # the first client: the agent is at zero
        load.cold_start = loop.time() - began
    load.open += 1
    session_id: str | None = None
    turn = 0
    seen: list[dict[str, Any]] = []  # what this client received (the tail kept on a loss)
    try:
        while loop.time() < close_at:
            turn += 1
            content = f"{name} turn {turn}"
            message: dict[str, Any] = {"event": "user.message", "content": content}
            if session_id:
                message["session_id"] = session_id
            load.turns += 1
            await ws.send(json.dumps(message))
            answer = await asyncio.wait_for(_final_answer(ws, load, seen), TURN_TIMEOUT)
            session_id = answer["session_id"]
            if answer["content"] != f"Echo #{turn}: {content}":
                load.lost.append(f"{name}: {answer['content']!r} for turn {turn}")
            else:
                load.answered += 1
            pause = min(rng.uniform(*pauses), max(0.0, close_at - loop.time()))
            await asyncio.sleep(pause)
    except (OSError, WebSocketException, TimeoutError) as error:
        load.lost.append(f"{name} turn {turn}: {type(error).__name__} {error}")
        load.evidence[name] = seen[-12:]
    finally:
        load.open -= 1
        await ws.close()


async def _final_answer(ws: Any, load: Load, seen: list[dict[str, Any]]) -> dict[str, Any]:
    while True:
        event = json.loads(await ws.recv())
        seen.append(event)
        del seen[:-50]
        if event.get("event") == "service_switched":
            load.switches += 1
            if event.get("data", {}).get("session_preserved"):
                load.preserved += 1
            else:
                load.not_preserved.append(list(seen[-12:]))
        if event.get("event") == "agent.final_answer":
            return dict(event)


async def sample(
    socket: str, load: Load, samples: list[dict[str, Any]], stop: asyncio.Event, t0: float
) -> None:
    transport = httpx.AsyncHTTPTransport(uds=socket)
    async with httpx.AsyncClient(base_url="http://agentvisor", transport=transport) as http:
        while not stop.is_set():
            try:
                data = (await http.get("/api/v1/services/echo")).json()["data"]
            except (httpx.HTTPError, KeyError, ValueError):
                data = None
            if data is not None:
                samples.append(
                    {
                        "t": time.monotonic() - t0,
                        "sessions": load.open,
                        "running": data["replicas"]["running"],
                        "desired": data["replicas"]["desired"],
                        "alive": sum(1 for i in data["instances"] if i.get("pid")),
                    }
                )
            try:
                await asyncio.wait_for(stop.wait(), SAMPLE_INTERVAL)
            except TimeoutError:
                pass


async def drive(url: str, socket: str, args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    rng = random.Random(args.seed)
    load, stop = Load(), asyncio.Event()
    samples: list[dict[str, Any]] = []
    t0 = time.monotonic()
    start = loop.time()
    up_end = start + args.ramp
    down_start = up_end + args.hold
    closing = list(range(args.sessions))
    rng.shuffle(closing)
    close_at = {n: down_start + args.ramp * rank / args.sessions for rank, n in enumerate(closing)}
    sampler = asyncio.create_task(sample(socket, load, samples, stop, t0))
    tasks = []
    for n in range(args.sessions):
        await asyncio.sleep(max(0.0, start + args.ramp * n / args.sessions - loop.time()))
        task = session(
            url, f"s{n}", close_at[n], random.Random(rng.random()), load, loop, tuple(args.pause)
        )
        tasks.append(asyncio.create_task(task))
    await asyncio.gather(*tasks)
    end_of_load = time.monotonic() - t0
    deadline = loop.time() + args.tail
    while loop.time() < deadline and not (samples and samples[-1]["alive"] == 0):
        await asyncio.sleep(SAMPLE_INTERVAL)
    stop.set()
    await sampler
    left = await _connections_left(socket)
    return {"load": load, "samples": samples, "end_of_load": end_of_load, "left": left}


async def _connections_left(socket: str) -> list[dict[str, Any]]:
    """The router's connections after the load (none expected), with their details."""
    transport = httpx.AsyncHTTPTransport(uds=socket)
    async with httpx.AsyncClient(base_url="http://agentvisor", transport=transport) as http:
        listed = (await http.get("/api/v1/connections")).json()["data"]["connections"]
        return [
            (await http.get(f"/api/v1/connections/{c['connection_id']}")).json()["data"]
            for c in listed
        ]


def reactions(samples: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each change of the count the load asks for, and how long until the replicas matched."""
    found: list[dict[str, Any]] = []
    needed_before = 0
    for index, point in enumerate(samples):
        needed = max(0, min(args.max, math.ceil(point["sessions"] / args.target)))
        if needed == needed_before:
            continue
        up = needed > needed_before
        needed_before = needed
        reached = None
        for later in samples[index:]:
            again = max(0, min(args.max, math.ceil(later["sessions"] / args.target)))
            if again != needed:
                break  # the load moved on before the replicas matched: not counted
            if (later["running"] >= needed) if up else (later["alive"] <= needed):
                reached = later["t"]
                break
        if reached is not None:
            found.append(
                {"direction": "up" if up else "down", "to": needed, "seconds": reached - point["t"]}
            )
    return found


def summarize(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    load: Load = result["load"]
    samples = result["samples"]
    used = sum(a["alive"] * (b["t"] - a["t"]) for a, b in itertools.pairwise(samples))
    duration = samples[-1]["t"] - samples[0]["t"] if len(samples) > 1 else 0.0
    found = reactions(samples, args)

    def seconds(direction: str) -> list[float]:
        return [r["seconds"] for r in found if r["direction"] == direction]

    return {
        "sessions": args.sessions,
        "settings": {
            "min": 0,
            "max": args.max,
            "target_sessions": args.target,
            "stabilization": args.stabilization,
            "scale_up_cooldown": args.up_cooldown,
            "scale_down_cooldown": args.down_cooldown,
        },
        "turns": load.turns,
        "answered": load.answered,
        "turns_lost": len(load.lost),
        "lost": load.lost[:20],
        "lost_evidence": load.evidence,
        "not_preserved": load.not_preserved[:10],
        "refused": load.refused[:20],
        "switches": load.switches,
        "switches_preserved": load.preserved,
        "cold_start_seconds": load.cold_start,
        "connect_p50": statistics.median(load.connect_seconds) if load.connect_seconds else None,
        "reactions": found,
        "up_median": statistics.median(seconds("up")) if seconds("up") else None,
        "up_max": max(seconds("up"), default=None),
        "down_median": statistics.median(seconds("down")) if seconds("down") else None,
        "down_max": max(seconds("down"), default=None),
        "peak_running": max((s["running"] for s in samples), default=0),
        "replica_seconds": used,
        "fixed_replica_seconds": args.max * duration,
        "duration": duration,
        "end_of_load": result["end_of_load"],
        "connections_left": result["left"],
        "samples": samples,
    }


def table(summary: dict[str, Any]) -> str:
    def num(value: float | None, unit: str = "s") -> str:
        return "-" if value is None else f"{value:.1f} {unit}".strip()

    settings = summary["settings"]
    ratio = summary["replica_seconds"] / summary["fixed_replica_seconds"]
    rows = [
        ("sessions (peak)", str(summary["sessions"])),
        (
            "policy",
            f"min 0, max {settings['max']}, target_sessions {settings['target_sessions']}, "
            f"stabilization {settings['stabilization']} s, cooldowns "
            f"{settings['scale_up_cooldown']} / {settings['scale_down_cooldown']} s",
        ),
        ("cold start (first handshake held)", num(summary["cold_start_seconds"])),
        (
            "scale up: load change → replicas running",
            f"median {num(summary['up_median'])}, max {num(summary['up_max'])}",
        ),
        (
            "scale down: load change → replicas gone",
            f"median {num(summary['down_median'])}, max {num(summary['down_max'])}",
        ),
        ("peak replicas running", str(summary["peak_running"])),
        ("turns answered / sent", f"{summary['answered']} / {summary['turns']}"),
        ("turns lost", str(summary["turns_lost"])),
        ("refused handshakes", str(len(summary["refused"]))),
        ("router connections left after the load", str(len(summary["connections_left"]))),
        (
            "sessions moved (service_switched, preserved)",
            f"{summary['switches']} ({summary['switches_preserved']})",
        ),
        (
            "replica-seconds: autoscaled vs fixed max",
            f"{summary['replica_seconds']:.0f} vs {summary['fixed_replica_seconds']:.0f} "
            f"({ratio:.0%}) over {summary['duration']:.0f} s",
        ),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--ramp", type=float, default=45.0, help="seconds of each ramp")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds at the peak")
    parser.add_argument("--tail", type=float, default=45.0, help="at most, after the last close")
    parser.add_argument("--max", type=int, default=4)
    parser.add_argument("--target", type=int, default=50, help="target_sessions")
    parser.add_argument("--stabilization", type=float, default=3.0)
    parser.add_argument("--up-cooldown", type=float, default=5.0)
    parser.add_argument("--down-cooldown", type=float, default=10.0)
    parser.add_argument(
        "--pause", type=float, nargs=2, default=[4.0, 12.0], help="seconds between turns"
    )
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="40 sessions, short ramps")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.target, args.ramp, args.hold, args.tail = 40, 10, 15.0, 10.0, 30.0
    with tempfile.TemporaryDirectory(prefix="avscale-") as scratch:
        config = write_config(Path(scratch), args)
        daemon, url = start_daemon(config)
        try:
            result = asyncio.run(drive(url, str(Path(scratch) / "state" / "admin.sock"), args))
        finally:
            daemon.terminate()
            try:
                daemon.wait(timeout=40)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
    summary = summarize(result, args)
    summary["daemon_log"] = [line for line in LOG_TAIL if "autoscale" in line]
    print(table(summary))
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"autoscale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(summary, indent=1))
    print(f"\nsamples and reactions: {out}")
    return 1 if summary["turns_lost"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
