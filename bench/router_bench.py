"""Router relay benchmark: agentvisor's router vs nginx vs direct, side by side, one run.

    .venv/bin/python bench/router_bench.py                # 3 rounds x 5 s, 100 conns, 5000 idle
    .venv/bin/python bench/router_bench.py --quick        # 1 round x 3 s, 1000 idle

Every target relays to the same upstream, a node ``ws`` echo server
(``echo_server.js``). The load generator is node + ``ws`` too (``load.js``):
N connections in a closed loop (send, wait for the echo, send again), so
messages/s is round trips per second and p50/p99 are round-trip times. The
targets are measured alternately (direct, router, nginx, direct, …) and the
medians reported, because the machine is shared and noisy.

- **direct**: the load generator talks to the echo server itself.
- **router**: agentvisor's ``Router`` in its own process (``--serve-router``),
  management events off and the per-IP limits lifted (one client address).
- **nginx**: the Debian package as a WebSocket reverse proxy, one worker
  process (the router is one process too), config from
  ``nginx.conf.template`` rendered into a temporary prefix, stopped by PID.

CPU per relayed message is the proxy's process CPU time (user + system,
nginx: its worker) during the measured window divided by the round trips in
it. Memory per idle connection: the proxy's RSS with N idle WebSocket
connections through it, minus its RSS before, over N.

Needs node and npm (``ws`` is installed once into ``~/.cache/agentvisor-bench``,
or ``$AGENTVISOR_BENCH_NODE``), nginx (``apt-get install nginx``) and Linux.
Results go to ``bench/results/router-DATE.json`` as well as the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NODE_CACHE = Path(os.environ.get("AGENTVISOR_BENCH_NODE", Path.home() / ".cache/agentvisor-bench"))


# -- processes ----------------------------------------------------------------------------


def node_env() -> dict[str, str]:
    """Node with ``ws`` on its path (installed once with npm)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        sys.exit("router_bench: needs node and npm (apt-get install nodejs npm)")
    if not (NODE_CACHE / "node_modules" / "ws").is_dir():
        NODE_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(NODE_CACHE), "--no-audit", "--no-fund", "ws@8"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return {**os.environ, "NODE_PATH": str(NODE_CACHE / "node_modules")}


def spawn(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, cwd=HERE)


def first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line:
        sys.exit(f"router_bench: {process.args!r} exited before it was ready")
    return line


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def rss(pids: list[int]) -> int:
    return sum(psutil.Process(pid).memory_info().rss for pid in pids)


def free_port() -> int:
    """For nginx's config only (a benchmark, not a test: the race is harmless here)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Target:
    def __init__(self, name: str, url: str, pids: list[int]) -> None:
        self.name = name
        self.url = url
        self.pids = pids  # whose CPU and memory count as the proxy's; none for direct


def start_router(upstream: int, workdir: Path) -> tuple[subprocess.Popen[str], Target]:
    process = spawn(
        [sys.executable, str(Path(__file__)), "--serve-router", str(upstream), str(workdir)]
    )
    base = first_line(process)
    return process, Target("router", base + "/ws", [process.pid])


def start_nginx(upstream: int, workdir: Path) -> tuple[subprocess.Popen[str], Target]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        sys.exit("router_bench: needs nginx (apt-get install nginx)")
    prefix = workdir / "nginx"
    prefix.mkdir()
    port = free_port()
    template = (HERE / "nginx.conf.template").read_text()
    config = template.replace("{prefix}", str(prefix)).replace("{port}", str(port))
    config = config.replace("{upstream_port}", str(upstream))
    (prefix / "nginx.conf").write_text(config)
    process = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 10
    workers: list[int] = []
    while time.monotonic() < deadline and not workers:
        time.sleep(0.05)
        workers = [child.pid for child in psutil.Process(process.pid).children()]
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        pass
    return process, Target("nginx", f"ws://127.0.0.1:{port}/ws", workers)


# -- measurements --------------------------------------------------------------------------


def measure(target: Target, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    load = spawn(
        ["node", "load.js", target.url, str(args.connections), str(args.seconds), "1", "64"],
        env=env,
    )
    if first_line(load) != '{"phase":"measuring"}':
        sys.exit(f"router_bench: the load generator failed against {target.name}")
    cpu_before = cpu_seconds(target.pids)
    load_before = cpu_seconds([load.pid])
    assert load.stdout is not None
    # Read the proxy's CPU right after the window: the result line follows it at once.
    result: dict[str, Any] = json.loads(load.stdout.readline())
    cpu = cpu_seconds(target.pids) - cpu_before
    load_cpu = cpu_seconds([load.pid]) - load_before if load.poll() is None else float("nan")
    stop(load)
    messages = result["messages"]
    return {
        "rate": result["rate"],
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "cpu_us_per_message": cpu / messages * 1e6 if target.pids and messages else None,
        "proxy_cpu_percent": cpu / result["seconds"] * 100 if target.pids else None,
        "load_cpu_percent": load_cpu / result["seconds"] * 100,
    }


def idle_memory(target: Target, env: dict[str, str], count: int) -> float:
    """KiB of proxy RSS per idle proxied connection."""
    time.sleep(0.5)
    before = rss(target.pids)
    idle = spawn(["node", "idle.js", target.url, str(count)], env=env)
    try:
        line = json.loads(first_line(idle))
        if line.get("opened") != count:
            sys.exit(f"router_bench: idle connections to {target.name} failed: {line}")
        time.sleep(2.0)  # let allocations settle
        after = rss(target.pids)
    finally:
        stop(idle)
    return (after - before) / count / 1024


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = node_env()
    workdir = Path(tempfile.mkdtemp(prefix="router-bench-"))
    processes: list[subprocess.Popen[str]] = []
    try:
        echo = spawn(["node", "echo_server.js", "0"], env=env)
        processes.append(echo)
        upstream = int(first_line(echo))
        router_process, router = start_router(upstream, workdir)
        processes.append(router_process)
        nginx_process, nginx = start_nginx(upstream, workdir)
        processes.append(nginx_process)
        targets = [Target("direct", f"ws://127.0.0.1:{upstream}/", []), router, nginx]
        rounds: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
        for number in range(args.rounds):
            for target in targets:
                outcome = measure(target, env, args)
                rounds[target.name].append(outcome)
                print(
                    f"round {number + 1} {target.name:7} {outcome['rate']:9.0f} msg/s "
                    f"p50 {outcome['p50_ms']:6.2f} ms p99 {outcome['p99_ms']:6.2f} ms"
                    + (
                        f" cpu {outcome['cpu_us_per_message']:5.1f} us/msg"
                        if outcome["cpu_us_per_message"]
                        else ""
                    ),
                    flush=True,
                )
        memory = {}
        for target in (router, nginx):
            memory[target.name] = idle_memory(target, env, args.idle)
            print(f"idle    {target.name:7} {memory[target.name]:6.1f} KiB/connection", flush=True)
    finally:
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(workdir, ignore_errors=True)
    summary = {
        name: {
            key: median([r[key] for r in results])
            for key in ("rate", "p50_ms", "p99_ms", "cpu_us_per_message", "load_cpu_percent")
        }
        for name, results in rounds.items()
    }
    return {"rounds": rounds, "summary": summary, "idle_kib_per_connection": memory}


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    summary = results["summary"]
    memory = results["idle_kib_per_connection"]
    print()
    print(
        f"{args.connections} active connections, {args.rounds} rounds x {args.seconds} s "
        f"(medians); {args.idle} idle connections"
    )
    print(
        f"{'target':8} {'msg/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/msg':>11} {'KiB/idle':>9}"
    )
    for name in ("direct", "router", "nginx"):
        row = summary[name]
        cpu = row["cpu_us_per_message"]
        print(
            f"{name:8} {row['rate']:9.0f} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} "
            f"{'-' if cpu is None else f'{cpu:.1f}':>11} "
            f"{memory.get(name, float('nan')):9.1f}"
        )
    router, nginx = summary["router"], summary["nginx"]
    goals = [
        ("msg/s >= 1/2 nginx", router["rate"] / nginx["rate"], router["rate"] >= nginx["rate"] / 2),
        (
            "CPU/msg <= 3x nginx",
            router["cpu_us_per_message"] / nginx["cpu_us_per_message"],
            router["cpu_us_per_message"] <= 3 * nginx["cpu_us_per_message"],
        ),
        (
            "p99 <= nginx + 2 ms",
            router["p99_ms"] - nginx["p99_ms"],
            router["p99_ms"] <= nginx["p99_ms"] + 2,
        ),
        ("<= 30 KiB / idle conn", memory["router"], memory["router"] <= 30),
    ]
    print()
    for goal, value, met in goals:
        print(f"{goal:24} {value:8.2f}  {'met' if met else 'NOT met'}")


# -- the router under test, in its own process ----------------------------------------------------


def serve_router(upstream: int, workdir: Path) -> None:
    import trio

    sys.path.insert(0, str(ROOT))
    from agentvisor.config.load import load_config
    from agentvisor.events import EventBus
    from agentvisor.router.server import Router
    from agentvisor.supervise.registry import Endpoint

    path = workdir / "agentvisor.toml"
    path.write_text(
        """
[supervisor]
state_dir = "state"
[admin]
bind = []
[router]
bind = ["127.0.0.1:0"]
management_events = false
max_connections = 20000
max_connections_per_ip = 20000
connect_rate_per_ip = 100000
[agents.echo]
command = ["true"]
max_sessions = 100000
"""
    )
    endpoint = Endpoint(
        "echo:0", "echo", 0, "127.0.0.1", upstream, "/", True, False, 1.0, 100000, 0, ()
    )

    class Source:
        config = load_config(path)

        def endpoints(self) -> list[Endpoint]:
            return [endpoint]

    async def main() -> None:
        router = Router(Source(), EventBus())
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(router.run)
            print(binds[0], flush=True)
            with trio.open_signal_receiver(signal.SIGTERM) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    trio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--idle", type=int, default=5000, help="idle connections for memory")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s, 1000 idle")
    parser.add_argument("--serve-router", nargs=2, metavar=("UPSTREAM_PORT", "DIR"))
    args = parser.parse_args()
    if args.serve_router:
        serve_router(int(args.serve_router[0]), Path(args.serve_router[1]))
        return
    if args.quick:
        args.rounds, args.seconds, args.idle = 1, 3.0, 1000
    results = run(args)
    report(results, args)
    out = HERE / "results" / time.strftime("router-%Y%m%d-%H%M%S.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), **results}, indent=2))
    print(f"\nresults: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
